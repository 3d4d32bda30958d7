package remote

// Sign-in with the Microsoft identity platform (OAuth2), shared by the device
// flow (auth_device.go) and the refreshing token source (token_source.go).
//
// The token endpoint is called here rather than through x/oauth2's
// DeviceAccessToken and refresher, for three reasons: the device flow needs
// the `message` and `error_codes` fields x/oauth2 drops, the poll loop must be
// testable without sleeping, and Microsoft documents `scope` as required on
// the refresh_token grant, which x/oauth2's refresher does not send. x/oauth2
// still provides the Config and Token types, and errors from the endpoint are
// returned as *oauth2.RetrieveError so that errors.As works as usual.
//
// Nothing here logs or prints a token, a refresh token or a device code; the
// user code is printed for the user, on purpose, by DeviceLogin only.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Errors of sign-in and token storage, for errors.Is.
var (
	// ErrNotSignedIn: there is no saved token (or profile); run login.
	ErrNotSignedIn = errors.New("not signed in: run 'onedrivefs login'")
	// ErrLoginRequired: the service no longer accepts the saved sign-in
	// (invalid_grant: revoked, expired after long disuse, password changed…),
	// or the token was removed by 'onedrivefs logout'.
	ErrLoginRequired = errors.New("sign-in required: run 'onedrivefs login' again")
	// ErrSignInDeclined: the user declined the sign-in in the browser.
	ErrSignInDeclined = errors.New("sign-in was declined")
	// ErrCodeExpired: the device code expired before the user signed in.
	ErrCodeExpired = errors.New("the code expired; run 'onedrivefs login' again")
	// ErrInsecureTokenFile: the token file is open to other users.
	ErrInsecureTokenFile = errors.New("the token file is not private")
)

// OAuth2 error codes (RFC 6749 §5.2, RFC 8628 §3.5, Microsoft identity platform).
const (
	oauthAuthorizationPending = "authorization_pending"
	oauthSlowDown             = "slow_down"
	oauthDeclined             = "authorization_declined" // Microsoft
	oauthAccessDenied         = "access_denied"          // RFC 8628
	oauthExpiredToken         = "expired_token"
	oauthCodeExpired          = "code_expired" // seen from Azure AD in place of expired_token
	oauthBadVerificationCode  = "bad_verification_code"
	oauthInvalidGrant         = "invalid_grant"
	oauthInteractionRequired  = "interaction_required"
	oauthInvalidClient        = "invalid_client"
	oauthUnauthorizedClient   = "unauthorized_client"

	deviceCodeGrantType = "urn:ietf:params:oauth:grant-type:device_code"

	// maxAuthBody bounds what is read from the identity service.
	maxAuthBody = 1 << 20
	// authRequestTimeout bounds one request to the identity service when the
	// caller did not supply an HTTP client.
	authRequestTimeout = 60 * time.Second
)

// authHTTPClient returns the HTTP client for identity requests: the one in
// ctx under oauth2.HTTPClient if any, otherwise a new client with its own
// transport and a timeout (never http.DefaultClient).
func authHTTPClient(ctx context.Context) *http.Client {
	if c, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && c != nil {
		return c
	}
	tr, _ := http.DefaultTransport.(*http.Transport)
	var rt http.RoundTripper
	if tr != nil {
		rt = tr.Clone()
	}
	return &http.Client{Transport: rt, Timeout: authRequestTimeout}
}

// authResponse is the union of the JSON bodies the identity endpoints send.
type authResponse struct {
	// token endpoint, success
	AccessToken  string      `json:"access_token"`
	TokenType    string      `json:"token_type"`
	RefreshToken string      `json:"refresh_token"`
	ExpiresIn    json.Number `json:"expires_in"` // a number; a string from some servers
	Scope        string      `json:"scope"`
	// devicecode endpoint, success
	DeviceCode      string      `json:"device_code"`
	UserCode        string      `json:"user_code"`
	VerificationURI string      `json:"verification_uri"`
	VerificationURL string      `json:"verification_url"` // older spelling
	Interval        json.Number `json:"interval"`
	Message         string      `json:"message"`
	// any endpoint, failure
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorURI         string `json:"error_uri"`
	ErrorCodes       []int  `json:"error_codes"`
}

// postAuthForm posts form to endpoint and decodes the answer. A failure
// answer (non-2xx status or an "error" member) is returned as
// *oauth2.RetrieveError, with an empty ErrorCode when the body is not an OAuth
// error (a proxy's HTML page, say). Error messages never quote a success body.
func postAuthForm(ctx context.Context, client *http.Client, endpoint string, form url.Values) (*authResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAuthBody))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", req.URL.Redacted(), err)
	}
	var ar authResponse
	jsonErr := json.Unmarshal(body, &ar)
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	if !ok || (jsonErr == nil && ar.Error != "") {
		re := &oauth2.RetrieveError{Response: resp, Body: body}
		if jsonErr == nil {
			re.ErrorCode, re.ErrorDescription, re.ErrorURI = ar.Error, ar.ErrorDescription, ar.ErrorURI
		}
		return &ar, re
	}
	if jsonErr != nil {
		return nil, fmt.Errorf("the identity service at %s answered with something other than JSON (HTTP %d)",
			req.URL.Redacted(), resp.StatusCode)
	}
	return &ar, nil
}

// requestToken calls cfg's token endpoint with the given grant fields (plus
// client id, secret if any, and scopes) and returns the token. A missing
// refresh_token in the answer is left empty; the caller decides.
func requestToken(ctx context.Context, client *http.Client, cfg *oauth2.Config, grant url.Values) (*oauth2.Token, error) {
	form := url.Values{}
	for k, v := range grant {
		form[k] = v
	}
	form.Set("client_id", cfg.ClientID)
	if cfg.ClientSecret != "" {
		form.Set("client_secret", cfg.ClientSecret)
	}
	if len(cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(cfg.Scopes, " "))
	}
	ar, err := postAuthForm(ctx, client, cfg.Endpoint.TokenURL, form)
	if err != nil {
		return nil, err
	}
	if ar.AccessToken == "" {
		return nil, errors.New("the token endpoint answered without an access token")
	}
	tok := &oauth2.Token{
		AccessToken:  ar.AccessToken,
		TokenType:    ar.TokenType,
		RefreshToken: ar.RefreshToken,
	}
	if s, err := ar.ExpiresIn.Int64(); err == nil && s > 0 {
		tok.ExpiresIn = s
		tok.Expiry = time.Now().Add(time.Duration(s) * time.Second)
	}
	return tok, nil
}

// authFailure is an error of sign-in: a message for the user, and the errors
// it stands for (a sentinel above and the service's answer), for errors.Is
// and errors.As.
type authFailure struct {
	msg   string
	wraps []error
}

func (e *authFailure) Error() string   { return e.msg }
func (e *authFailure) Unwrap() []error { return e.wraps }

// newAuthFailure returns an error reading "msg (code: first line of the
// description)" that wraps kind (may be nil) and cause.
func newAuthFailure(kind error, msg string, cause *oauth2.RetrieveError) error {
	e := &authFailure{msg: msg}
	if kind != nil {
		e.wraps = append(e.wraps, kind)
	}
	if cause != nil {
		e.msg += " (" + describeRetrieveError(cause) + ")"
		e.wraps = append(e.wraps, cause)
	}
	return e
}

// describeRetrieveError shortens an identity error for a message: the OAuth
// code and the first line of the description (Microsoft appends trace and
// correlation ids on further lines), or the HTTP status when there is no
// code.
func describeRetrieveError(re *oauth2.RetrieveError) string {
	if re.ErrorCode == "" {
		if re.Response != nil {
			return "HTTP " + re.Response.Status
		}
		return "no error code"
	}
	desc, _, _ := strings.Cut(strings.TrimSpace(re.ErrorDescription), "\n")
	desc = strings.TrimSpace(desc)
	if desc == "" {
		return re.ErrorCode
	}
	return re.ErrorCode + ": " + desc
}
