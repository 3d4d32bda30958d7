package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"golang.org/x/oauth2"
)

// DeviceLogin signs a user in with the OAuth2 device authorization grant
// (RFC 8628) as the Microsoft identity platform implements it: it asks cfg's
// DeviceAuthURL for a code, writes to out the page to open and the code to
// enter there (and the service's own message), then polls the token endpoint
// until the user has signed in, declined, or the code has expired.
//
// The first poll is sent at once and the next ones at the interval the
// service gives (5 s if it gives none), lengthened by 5 s on each slow_down.
// Up to three failed polls in a row that carry no OAuth error (network
// errors, 5xx, 429) are retried at the same interval.
//
// Errors match ErrSignInDeclined when the user declined, ErrCodeExpired when
// the code expired (by the service's answer or by its expires_in), and the
// service's answer is reachable as *oauth2.RetrieveError. Cancelling ctx stops
// the wait. The HTTP client is taken from ctx (oauth2.HTTPClient) if present.
// The device code is never written to out or to an error.
func DeviceLogin(ctx context.Context, cfg *oauth2.Config, out io.Writer) (*oauth2.Token, error) {
	return deviceFlow{now: time.Now, wait: sleepContext}.login(ctx, cfg, out)
}

// deviceFlow is DeviceLogin with its clock and its sleep replaceable by tests.
type deviceFlow struct {
	now  func() time.Time
	wait func(ctx context.Context, d time.Duration) error
}

// Polling parameters of RFC 8628 §3.2 and §3.5.
const (
	defaultDevicePollInterval = 5 * time.Second
	slowDownIncrement         = 5 * time.Second
	maxTransientPollFailures  = 3
)

func (f deviceFlow) login(ctx context.Context, cfg *oauth2.Config, out io.Writer) (*oauth2.Token, error) {
	client := authHTTPClient(ctx)
	code, err := f.requestCode(ctx, client, cfg)
	if err != nil {
		return nil, err
	}
	start := f.now()
	var deadline time.Time
	expiresIn, _ := code.ExpiresIn.Int64()
	if expiresIn > 0 {
		deadline = start.Add(time.Duration(expiresIn) * time.Second)
	}
	interval := defaultDevicePollInterval
	if s, err := code.Interval.Int64(); err == nil && s > 0 && s < 3600 {
		interval = time.Duration(s) * time.Second
	}
	printDeviceInstructions(out, code, expiresIn)

	grant := url.Values{"grant_type": {deviceCodeGrantType}, "device_code": {code.DeviceCode}}
	transient := 0
	for {
		tok, err := requestToken(ctx, client, cfg, grant)
		if err == nil {
			return tok, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("sign-in cancelled: %w", ctx.Err())
		}
		var re *oauth2.RetrieveError
		isOAuth := errors.As(err, &re) && re.ErrorCode != ""
		switch {
		case isOAuth && re.ErrorCode == oauthAuthorizationPending:
			transient = 0
		case isOAuth && re.ErrorCode == oauthSlowDown:
			transient = 0
			interval += slowDownIncrement
		case isOAuth && (re.ErrorCode == oauthDeclined || re.ErrorCode == oauthAccessDenied):
			return nil, newAuthFailure(ErrSignInDeclined, ErrSignInDeclined.Error(), re)
		case isOAuth && (re.ErrorCode == oauthExpiredToken || re.ErrorCode == oauthCodeExpired):
			return nil, newAuthFailure(ErrCodeExpired, ErrCodeExpired.Error(), re)
		case isOAuth && re.ErrorCode == oauthBadVerificationCode:
			return nil, newAuthFailure(nil,
				"the service did not recognise the sign-in code; run 'onedrivefs login' again", re)
		case isOAuth:
			return nil, newAuthFailure(nil, "sign-in failed", re)
		case isTransientAuthError(err):
			transient++
			if transient > maxTransientPollFailures {
				return nil, fmt.Errorf("sign-in failed: waiting for the sign-in: %w", err)
			}
		default:
			return nil, fmt.Errorf("sign-in failed: %w", err)
		}
		if !deadline.IsZero() && !f.now().Add(interval).Before(deadline) {
			return nil, ErrCodeExpired
		}
		if err := f.wait(ctx, interval); err != nil {
			return nil, fmt.Errorf("sign-in cancelled: %w", err)
		}
	}
}

// requestCode asks the device authorization endpoint for a device code and a
// user code.
func (f deviceFlow) requestCode(ctx context.Context, client *http.Client, cfg *oauth2.Config) (*authResponse, error) {
	if cfg.Endpoint.DeviceAuthURL == "" {
		return nil, errors.New("the OAuth2 configuration has no device authorization URL")
	}
	form := url.Values{"client_id": {cfg.ClientID}}
	if len(cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(cfg.Scopes, " "))
	}
	ar, err := postAuthForm(ctx, client, cfg.Endpoint.DeviceAuthURL, form)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			if re.ErrorCode == oauthInvalidClient || re.ErrorCode == oauthUnauthorizedClient ||
				slices.Contains(ar.ErrorCodes, 700016) { // AADSTS700016: application not found
				return nil, newAuthFailure(nil, fmt.Sprintf("the identity service does not accept the client id %q; "+
					"register an application that allows public client flows and pass its id with --client-id",
					cfg.ClientID), re)
			}
			return nil, newAuthFailure(nil, "requesting a sign-in code failed", re)
		}
		return nil, fmt.Errorf("requesting a sign-in code: %w", err)
	}
	if ar.VerificationURI == "" {
		ar.VerificationURI = ar.VerificationURL
	}
	if ar.DeviceCode == "" || ar.UserCode == "" || ar.VerificationURI == "" {
		return nil, errors.New("requesting a sign-in code: the answer lacks device_code, user_code or verification_uri")
	}
	return ar, nil
}

// printDeviceInstructions tells the user where to sign in. Text from the
// service is stripped of control characters before it reaches a terminal.
func printDeviceInstructions(out io.Writer, code *authResponse, expiresIn int64) {
	fmt.Fprintf(out, "To sign in, open this page in a browser:\n\n    %s\n\nand enter the code:\n\n    %s\n\n",
		printable(code.VerificationURI), printable(code.UserCode))
	// The service's message repeats the page and the code: shown only when
	// it says something else, so that the code is printed once.
	if m := printable(code.Message); m != "" && !strings.Contains(m, printable(code.UserCode)) {
		fmt.Fprintf(out, "%s\n\n", m)
	}
	if expiresIn > 0 {
		valid := (time.Duration(expiresIn) * time.Second).String()
		if expiresIn%60 == 0 {
			valid = fmt.Sprintf("%d minutes", expiresIn/60)
		}
		fmt.Fprintf(out, "Waiting for the sign-in (the code is valid for %s; Ctrl-C to stop)…\n", valid)
	} else {
		fmt.Fprintln(out, "Waiting for the sign-in (Ctrl-C to stop)…")
	}
}

// printable drops control characters (terminal escapes, newlines) from s.
func printable(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s))
}

// isTransientAuthError reports whether a failed identity request is worth
// repeating: no answer at all, or an answer without an OAuth error code and a
// status of 429 or 5xx.
func isTransientAuthError(err error) bool {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return true // transport error
	}
	if re.ErrorCode != "" || re.Response == nil {
		return false
	}
	s := re.Response.StatusCode
	return s == http.StatusTooManyRequests || s >= 500
}
