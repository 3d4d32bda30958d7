package remote

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// expiredToken returns a token whose access token has expired and whose
// refresh token the fake accepts.
func expiredToken(f *oauthFake, n string) *oauth2.Token {
	tok := sampleToken(n)
	tok.Expiry = time.Now().Add(-time.Hour)
	f.grantRefresh(tok.RefreshToken)
	return tok
}

// debugLogger returns a logger writing every level to buf.
func debugLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestTokenSourceValidTokenNeedsNoRequest(t *testing.T) {
	f := newOAuthFake(t)
	tok := sampleToken("0")
	ts := NewTokenSource(t.Context(), f.config(), NewTokenStore(t.TempDir(), nil), tok, nil)
	got, err := ts.Token()
	require.NoError(t, err)
	assert.Same(t, tok, got)
	_, _, refreshes := f.counts()
	assert.Zero(t, refreshes)
}

func TestTokenSourceRefreshWritesBack(t *testing.T) {
	f := newOAuthFake(t)
	dir := t.TempDir()
	store := NewTokenStore(dir, nil)
	old := expiredToken(f, "0")
	require.NoError(t, store.Save(old))
	var logs bytes.Buffer
	ts := NewTokenSource(t.Context(), f.config(), store, old, debugLogger(&logs))

	got, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, "ACCESS-SECRET-1", got.AccessToken)
	assert.Equal(t, "REFRESH-SECRET-1", got.RefreshToken, "the rotated refresh token is kept")
	assert.True(t, got.Valid())

	forms := f.tokenForms()
	require.Len(t, forms, 1)
	assert.Equal(t, "refresh_token", forms[0].Get("grant_type"))
	assert.Equal(t, "REFRESH-SECRET-0", forms[0].Get("refresh_token"))
	assert.Equal(t, "client-abc", forms[0].Get("client_id"))
	assert.Equal(t, "Files.ReadWrite.All offline_access", forms[0].Get("scope"))
	assert.Empty(t, forms[0].Get("client_secret"))

	// A restarted mount finds the refreshed token on disk.
	onDisk, err := NewTokenStore(dir, nil).Load()
	require.NoError(t, err)
	assert.Equal(t, "ACCESS-SECRET-1", onDisk.AccessToken)
	assert.Equal(t, "REFRESH-SECRET-1", onDisk.RefreshToken)
	assert.Equal(t, os.FileMode(0o600), perm(t, store.Path()))
	assert.Equal(t, []string{"token.json"}, dirNames(t, dir))

	// The new token is reused until it expires.
	again, err := ts.Token()
	require.NoError(t, err)
	assert.Same(t, got, again)
	_, _, refreshes := f.counts()
	assert.Equal(t, 1, refreshes)

	assert.Contains(t, logs.String(), "access token refreshed")
	assertNoSecrets(t, logs.String())
}

func TestTokenSourceKeepsRefreshTokenWhenNoneIsReturned(t *testing.T) {
	f := newOAuthFake(t)
	f.omitRefreshToken = true
	store := NewTokenStore(t.TempDir(), nil)
	old := expiredToken(f, "0")
	require.NoError(t, store.Save(old))
	got, err := NewTokenSource(t.Context(), f.config(), store, old, nil).Token()
	require.NoError(t, err)
	assert.Equal(t, "REFRESH-SECRET-0", got.RefreshToken)
	onDisk, err := store.Load()
	require.NoError(t, err)
	assert.Equal(t, "REFRESH-SECRET-0", onDisk.RefreshToken)
}

func TestTokenSourceInvalidateForcesRefresh(t *testing.T) {
	f := newOAuthFake(t)
	store := NewTokenStore(t.TempDir(), nil)
	tok := sampleToken("0") // valid until 2030
	f.grantRefresh(tok.RefreshToken)
	require.NoError(t, store.Save(tok))
	ts := NewTokenSource(t.Context(), f.config(), store, tok, nil)

	got, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, "ACCESS-SECRET-0", got.AccessToken)

	ts.Invalidate()
	got, err = ts.Token()
	require.NoError(t, err)
	assert.Equal(t, "ACCESS-SECRET-1", got.AccessToken)

	got, err = ts.Token()
	require.NoError(t, err)
	assert.Equal(t, "ACCESS-SECRET-1", got.AccessToken, "one Invalidate, one refresh")
	_, _, refreshes := f.counts()
	assert.Equal(t, 1, refreshes)
}

func TestTokenSourceConcurrentCallersShareOneRefresh(t *testing.T) {
	f := newOAuthFake(t)
	store := NewTokenStore(t.TempDir(), nil)
	old := expiredToken(f, "0")
	require.NoError(t, store.Save(old))
	ts := NewTokenSource(t.Context(), f.config(), store, old, nil)

	const callers = 16
	var wg sync.WaitGroup
	got := make([]string, callers)
	errs := make([]error, callers)
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			tok, err := ts.Token()
			errs[i] = err
			if tok != nil {
				got[i] = tok.AccessToken
			}
		})
	}
	close(start)
	wg.Wait()
	for i := range callers {
		require.NoError(t, errs[i])
		assert.Equal(t, "ACCESS-SECRET-1", got[i])
	}
	_, _, refreshes := f.counts()
	assert.Equal(t, 1, refreshes)
}

func TestTokenSourceInvalidGrantRequiresLogin(t *testing.T) {
	f := newOAuthFake(t)
	f.refreshError = "invalid_grant"
	store := NewTokenStore(t.TempDir(), nil)
	old := expiredToken(f, "0")
	require.NoError(t, store.Save(old))
	var logs bytes.Buffer
	ts := NewTokenSource(t.Context(), f.config(), store, old, debugLogger(&logs))

	_, err := ts.Token()
	require.ErrorIs(t, err, ErrLoginRequired)
	var re *oauth2.RetrieveError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "invalid_grant", re.ErrorCode)
	assert.Contains(t, err.Error(), "onedrivefs login")
	assert.Contains(t, err.Error(), "AADSTS70008")
	assertNoSecrets(t, err.Error())
	assert.Contains(t, logs.String(), "refused the refresh token")
	assertNoSecrets(t, logs.String())

	onDisk, err := store.Load()
	require.NoError(t, err)
	assert.Equal(t, old.RefreshToken, onDisk.RefreshToken, "a failed refresh leaves the file alone")
}

func TestTokenSourceTransientRefreshFailureIsRetried(t *testing.T) {
	f := newOAuthFake(t)
	f.refreshError = "temporarily_unavailable"
	f.refreshStatus = http.StatusServiceUnavailable
	store := NewTokenStore(t.TempDir(), nil)
	old := expiredToken(f, "0")
	require.NoError(t, store.Save(old))
	ts := NewTokenSource(t.Context(), f.config(), store, old, nil)

	_, err := ts.Token()
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrLoginRequired)
	assert.Contains(t, err.Error(), "temporarily_unavailable")

	f.mu.Lock()
	f.refreshError = ""
	f.mu.Unlock()
	got, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, "ACCESS-SECRET-1", got.AccessToken)
}

func TestTokenSourceAfterLogoutRequiresLogin(t *testing.T) {
	f := newOAuthFake(t)
	store := NewTokenStore(t.TempDir(), nil)
	old := expiredToken(f, "0")
	require.NoError(t, store.Save(old))
	ts := NewTokenSource(t.Context(), f.config(), store, old, nil)
	require.NoError(t, store.Remove()) // 'onedrivefs logout' while mounted

	_, err := ts.Token()
	require.ErrorIs(t, err, ErrLoginRequired)
	assert.Contains(t, err.Error(), "signed out")
	_, _, refreshes := f.counts()
	assert.Zero(t, refreshes)
	_, err = store.Load()
	assert.ErrorIs(t, err, ErrNotSignedIn, "the token is not brought back")
}

func TestTokenSourceAdoptsTokenSavedByAnotherProcess(t *testing.T) {
	f := newOAuthFake(t)
	store := NewTokenStore(t.TempDir(), nil)
	old := expiredToken(f, "0")
	require.NoError(t, store.Save(old))
	ts := NewTokenSource(t.Context(), f.config(), store, old, nil)

	require.NoError(t, store.Save(sampleToken("other"))) // e.g. a new 'onedrivefs login'
	got, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, "ACCESS-SECRET-other", got.AccessToken)
	_, _, refreshes := f.counts()
	assert.Zero(t, refreshes)
}

func TestTokenSourceLoadsFromStoreWhenNoInitialToken(t *testing.T) {
	f := newOAuthFake(t)
	store := NewTokenStore(t.TempDir(), nil)
	require.NoError(t, store.Save(sampleToken("0")))
	got, err := NewTokenSource(t.Context(), f.config(), store, nil, nil).Token()
	require.NoError(t, err)
	assert.Equal(t, "ACCESS-SECRET-0", got.AccessToken)
}

func TestTokenSourceWithoutStoreOrRefreshToken(t *testing.T) {
	f := newOAuthFake(t)
	t.Run("memory only", func(t *testing.T) {
		ts := NewTokenSource(t.Context(), f.config(), nil, expiredToken(f, "0"), nil)
		got, err := ts.Token()
		require.NoError(t, err)
		assert.Equal(t, "REFRESH-SECRET-1", got.RefreshToken)
	})
	t.Run("no refresh token", func(t *testing.T) {
		tok := &oauth2.Token{AccessToken: "ACCESS-SECRET-x", Expiry: time.Now().Add(-time.Minute)}
		_, err := NewTokenSource(t.Context(), f.config(), nil, tok, nil).Token()
		assert.ErrorIs(t, err, ErrLoginRequired)
	})
}

func TestTokenSourceCancelledContextStopsRefresh(t *testing.T) {
	f := newOAuthFake(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := NewTokenSource(ctx, f.config(), nil, expiredToken(f, "0"), nil).Token()
	assert.ErrorIs(t, err, context.Canceled)
}

// The token source plugs into oauth2.Transport, as the Graph client uses it.
func TestTokenSourceAuthorizesRequests(t *testing.T) {
	f := newOAuthFake(t)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer ACCESS-SECRET-1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(api.Close)
	ts := NewTokenSource(t.Context(), f.config(), nil, expiredToken(f, "0"), nil)
	client := &http.Client{Transport: &oauth2.Transport{Source: ts, Base: api.Client().Transport}}
	resp, err := client.Get(api.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
}

func TestLoadSignIn(t *testing.T) {
	f := newOAuthFake(t)
	dir := t.TempDir()
	_, _, err := LoadSignIn(t.Context(), dir, nil)
	require.ErrorIs(t, err, ErrNotSignedIn)

	require.NoError(t, SaveProfile(dir, f.profile(), nil))
	_, _, err = LoadSignIn(t.Context(), dir, nil)
	require.ErrorIs(t, err, ErrNotSignedIn, "a profile without a token is not a sign-in")

	store := NewTokenStore(dir, nil)
	require.NoError(t, store.Save(expiredToken(f, "0")))
	p, ts, err := LoadSignIn(t.Context(), dir, nil)
	require.NoError(t, err)
	assert.Equal(t, f.profile(), p)
	got, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, "ACCESS-SECRET-1", got.AccessToken)
}
