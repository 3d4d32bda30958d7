package remote

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// browserFor returns a show func that plays the browser: it opens the
// sign-in page (the fake approves at once and redirects to the listener)
// and records the URL it was given.
func browserFor(t *testing.T, shown *string) func(string) {
	return func(u string) {
		*shown = u
		go func() {
			resp, err := (&http.Client{}).Get(u)
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
}

func TestBrowserLoginPKCE(t *testing.T) {
	srv := graphtest.NewServer(graphtest.Options{})
	t.Cleanup(func() { _ = srv.Close() })
	cfg := Profile{GraphURL: srv.GraphURL(), AuthURL: srv.AuthURL()}.WithDefaults().OAuthConfig()

	var shown string
	tok, err := BrowserLogin(t.Context(), cfg, browserFor(t, &shown))
	require.NoError(t, err)
	assert.NotEmpty(t, tok.AccessToken)
	assert.NotEmpty(t, tok.RefreshToken)

	u, err := url.Parse(shown)
	require.NoError(t, err)
	q := u.Query()
	assert.Equal(t, "code", q.Get("response_type"))
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	assert.NotEmpty(t, q.Get("code_challenge"))
	assert.NotEmpty(t, q.Get("state"))
	assert.Regexp(t, `^http://localhost:\d+/$`, q.Get("redirect_uri"))
	assert.Empty(t, q.Get("code_verifier"), "the verifier never leaves this process before the exchange")

	// The token works against the API.
	c, err := New(Config{GraphURL: srv.GraphURL(), Tokens: oauth2.StaticTokenSource(tok)})
	require.NoError(t, err)
	_, err = c.Drive(t.Context())
	require.NoError(t, err)
}

func TestBrowserLoginRefusesForeignState(t *testing.T) {
	srv := graphtest.NewServer(graphtest.Options{})
	t.Cleanup(func() { _ = srv.Close() })
	cfg := Profile{GraphURL: srv.GraphURL(), AuthURL: srv.AuthURL()}.WithDefaults().OAuthConfig()

	var shown string
	tok, err := BrowserLogin(t.Context(), cfg, func(u string) {
		shown = u
		sign, _ := url.Parse(u)
		redirect := sign.Query().Get("redirect_uri")
		go func() {
			// A page elsewhere sends the browser to the listener with a
			// code of its own: refused, the wait goes on.
			resp, err := (&http.Client{}).Get(redirect + "?code=forged&state=other")
			if err == nil {
				assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
				resp.Body.Close()
			}
			resp, err = (&http.Client{}).Get(redirect + "?error=access_denied&error_description=no&state=" + sign.Query().Get("state"))
			if err == nil {
				resp.Body.Close()
			}
		}()
	})
	require.Error(t, err)
	assert.Nil(t, tok)
	assert.ErrorIs(t, err, ErrSignInDeclined)
	assert.NotEmpty(t, shown)
}
