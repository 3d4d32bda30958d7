package remote

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"
)

// BrowserLogin signs a user in with the OAuth2 authorization code grant and
// PKCE (RFC 7636), for tenants that refuse the device-code flow. It listens
// on a free port of 127.0.0.1, calls show with the sign-in page's URL (whose
// redirect_uri is http://localhost:PORT/, the loopback form the identity
// platform accepts from public clients whatever the port), waits for the
// browser to come back with the code, and redeems it with the PKCE verifier.
//
// Errors match ErrSignInDeclined when the user declined, and the service's
// answer is reachable as *oauth2.RetrieveError. Cancelling ctx stops the
// wait. Neither the code nor the token is written anywhere.
func BrowserLogin(ctx context.Context, cfg *oauth2.Config, show func(signInURL string)) (*oauth2.Token, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the sign-in's redirect: %w", err)
	}
	defer ln.Close()
	redirect := fmt.Sprintf("http://localhost:%d/", ln.Addr().(*net.TCPAddr).Port)
	verifier := oauth2.GenerateVerifier()
	state := oauth2.GenerateVerifier() // 32 random bytes, URL-safe
	c := *cfg
	c.RedirectURL = redirect
	signIn := c.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("response_mode", "query"))

	type result struct {
		code string
		err  error
	}
	got := make(chan result, 1)
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			if r.URL.Path != "/" || q.Get("state") != state {
				http.Error(w, "not the sign-in this onedrivefs is waiting for", http.StatusBadRequest)
				return
			}
			res := result{code: q.Get("code")}
			switch {
			case q.Get("error") == oauthAccessDenied:
				res.err = newAuthFailure(ErrSignInDeclined, "the sign-in was declined in the browser",
					&oauth2.RetrieveError{ErrorCode: q.Get("error"), ErrorDescription: q.Get("error_description")})
			case q.Get("error") != "":
				res.err = newAuthFailure(nil, "the sign-in failed",
					&oauth2.RetrieveError{ErrorCode: q.Get("error"), ErrorDescription: q.Get("error_description")})
			case res.code == "":
				res.err = errors.New("the sign-in came back without a code")
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			msg := "Signed in: you can close this page and go back to onedrivefs."
			if res.err != nil {
				msg = "The sign-in failed: " + res.err.Error()
			}
			fmt.Fprintf(w, "<!doctype html><title>onedrivefs</title><p>%s</p>\n", html.EscapeString(msg))
			select {
			case got <- res:
			default: // a second visit: the first one counts
			}
		}),
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	defer func() {
		// Gracefully: the page the browser is being sent is finished
		// before its connection closes (Close cut it short when the code
		// was redeemed faster than the page was written: the browser got
		// an empty reply).
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
		<-served
	}()

	show(signIn)
	var res result
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res = <-got:
	}
	if res.err != nil {
		return nil, res.err
	}
	tok, err := requestToken(ctx, authHTTPClient(ctx), cfg, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {res.code},
		"redirect_uri":  {redirect},
		"code_verifier": {verifier},
	})
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return nil, newAuthFailure(nil, "redeeming the sign-in code failed", re)
		}
		return nil, fmt.Errorf("redeeming the sign-in code: %w", err)
	}
	return tok, nil
}
