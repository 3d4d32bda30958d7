package remote

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// fakeWaits is a deviceFlow clock that records the waits instead of sleeping.
type fakeWaits struct {
	now   time.Time
	waits []time.Duration
}

func (c *fakeWaits) flow() deviceFlow {
	return deviceFlow{
		now: func() time.Time { return c.now },
		wait: func(ctx context.Context, d time.Duration) error {
			c.waits = append(c.waits, d)
			c.now = c.now.Add(d)
			return ctx.Err()
		},
	}
}

func newFakeWaits() *fakeWaits { return &fakeWaits{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func TestDeviceLoginPendingSlowDownThenSuccess(t *testing.T) {
	f := newOAuthFake(t)
	f.pollAnswers = []string{"authorization_pending", "authorization_pending", "slow_down", ""}
	clock := newFakeWaits()
	var out bytes.Buffer

	tok, err := clock.flow().login(t.Context(), f.config(), &out)
	require.NoError(t, err)

	assert.Equal(t, "ACCESS-SECRET-1", tok.AccessToken)
	assert.Equal(t, "REFRESH-SECRET-1", tok.RefreshToken)
	assert.Equal(t, "Bearer", tok.Type())
	assert.True(t, tok.Valid())
	assert.Greater(t, time.Until(tok.Expiry), 50*time.Minute, "expiry comes from expires_in 3599")

	// First poll at once, then the service's 5 s interval, lengthened by 5 s after slow_down.
	assert.Equal(t, []time.Duration{5 * time.Second, 5 * time.Second, 10 * time.Second}, clock.waits)
	_, polls, _ := f.counts()
	assert.Equal(t, 4, polls)

	forms := f.tokenForms()
	require.Len(t, forms, 4)
	for _, form := range forms {
		assert.Equal(t, deviceCodeGrantType, form.Get("grant_type"))
		assert.Equal(t, fakeDeviceCode, form.Get("device_code"))
		assert.Equal(t, "client-abc", form.Get("client_id"))
	}

	text := out.String()
	assert.Contains(t, text, f.srv.URL+"/devicelogin")
	assert.Contains(t, text, fakeUserCode)
	assert.Equal(t, 1, strings.Count(text, fakeUserCode), "the code is printed once: %s", text)
	assert.NotContains(t, text, "To sign in, use a web browser", "the service's message only repeats the page and the code")
	assert.Contains(t, text, "15 minutes")
	assertNoSecrets(t, text)
}

func TestDeviceLoginPublicFirstPollApproved(t *testing.T) {
	f := newOAuthFake(t) // no script: the first poll succeeds, so no wait happens
	var out bytes.Buffer
	tok, err := DeviceLogin(t.Context(), f.config(), &out)
	require.NoError(t, err)
	assert.Equal(t, "ACCESS-SECRET-1", tok.AccessToken)
	dev, polls, _ := f.counts()
	assert.Equal(t, 1, dev)
	assert.Equal(t, 1, polls)
}

func TestDeviceLoginFailures(t *testing.T) {
	tests := []struct {
		name     string
		answers  []string
		sentinel error
		code     string // OAuth code reachable through *oauth2.RetrieveError
		message  string
	}{
		{"declined", []string{"authorization_pending", "authorization_declined"}, ErrSignInDeclined,
			"authorization_declined", "sign-in was declined"},
		{"access denied (RFC 8628 spelling)", []string{"access_denied"}, ErrSignInDeclined,
			"access_denied", "sign-in was declined"},
		{"expired", []string{"authorization_pending", "expired_token"}, ErrCodeExpired,
			"expired_token", "the code expired; run 'onedrivefs login' again"},
		{"bad code", []string{"bad_verification_code"}, nil,
			"bad_verification_code", "did not recognise the sign-in code"},
		{"other OAuth error", []string{"invalid_scope"}, nil, "invalid_scope", "sign-in failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newOAuthFake(t)
			f.pollAnswers = tc.answers
			var out bytes.Buffer
			_, err := newFakeWaits().flow().login(t.Context(), f.config(), &out)
			require.Error(t, err)
			if tc.sentinel != nil {
				assert.ErrorIs(t, err, tc.sentinel)
			}
			var re *oauth2.RetrieveError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tc.code, re.ErrorCode)
			assert.Contains(t, err.Error(), tc.message)
			assert.NotContains(t, err.Error(), "Trace ID", "only the first line of the description is kept")
			assertNoSecrets(t, err.Error())
			_, polls, _ := f.counts()
			assert.Equal(t, len(tc.answers), polls, "no poll after a final answer")
		})
	}
}

func TestDeviceLoginCodeExpiresLocally(t *testing.T) {
	f := newOAuthFake(t)
	f.pollAnswers = []string{"authorization_pending"} // forever
	f.deviceStatus = http.StatusOK
	f.deviceBody = map[string]any{
		"device_code": fakeDeviceCode, "user_code": fakeUserCode,
		"verification_url": "https://example.test/device", // the older spelling is accepted too
		"expires_in":       "12", "interval": 5,
	}
	clock := newFakeWaits()
	var out bytes.Buffer
	_, err := clock.flow().login(t.Context(), f.config(), &out)
	require.ErrorIs(t, err, ErrCodeExpired)
	// Polls at 0 s, 5 s and 10 s; the next one (15 s) would be past expires_in (12 s).
	assert.Equal(t, []time.Duration{5 * time.Second, 5 * time.Second}, clock.waits)
	_, polls, _ := f.counts()
	assert.Equal(t, 3, polls)
	assert.Contains(t, out.String(), "https://example.test/device")
	assert.NotContains(t, out.String(), "To sign in, use a web browser", "no message when the service sends none")
}

func TestDeviceLoginTransientPollFailures(t *testing.T) {
	t.Run("recovers", func(t *testing.T) {
		f := newOAuthFake(t)
		f.pollAnswers = []string{"http503", "http503", "authorization_pending", ""}
		tok, err := newFakeWaits().flow().login(t.Context(), f.config(), &bytes.Buffer{})
		require.NoError(t, err)
		assert.Equal(t, "ACCESS-SECRET-1", tok.AccessToken)
	})
	t.Run("gives up", func(t *testing.T) {
		f := newOAuthFake(t)
		f.pollAnswers = []string{"http503"}
		_, err := newFakeWaits().flow().login(t.Context(), f.config(), &bytes.Buffer{})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "503")
		_, polls, _ := f.counts()
		assert.Equal(t, maxTransientPollFailures+1, polls)
	})
}

func TestDeviceLoginUnknownClient(t *testing.T) {
	f := newOAuthFake(t)
	f.deviceStatus = http.StatusBadRequest
	f.deviceBody = map[string]any{
		"error": "unauthorized_client", "error_codes": []int{700016},
		"error_description": "AADSTS700016: Application with identifier 'client-abc' was not found.\r\nTrace ID: 9",
	}
	_, err := newFakeWaits().flow().login(t.Context(), f.config(), &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--client-id")
	assert.Contains(t, err.Error(), `"client-abc"`)
	_, polls, _ := f.counts()
	assert.Zero(t, polls)
}

func TestDeviceLoginMalformedCodeAnswer(t *testing.T) {
	f := newOAuthFake(t)
	f.deviceStatus = http.StatusOK
	f.deviceBody = map[string]any{"user_code": fakeUserCode}
	_, err := newFakeWaits().flow().login(t.Context(), f.config(), &bytes.Buffer{})
	require.ErrorContains(t, err, "lacks device_code")
}

func TestDeviceLoginCancelledWhileWaiting(t *testing.T) {
	f := newOAuthFake(t)
	f.pollAnswers = []string{"authorization_pending"}
	ctx, cancel := context.WithCancel(t.Context())
	flow := deviceFlow{now: time.Now, wait: func(ctx context.Context, d time.Duration) error {
		cancel() // the user pressed Ctrl-C during the wait
		return sleepContext(ctx, d)
	}}
	_, err := flow.login(ctx, f.config(), &bytes.Buffer{})
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "sign-in cancelled")
}

func TestDeviceLoginStripsControlCharacters(t *testing.T) {
	f := newOAuthFake(t)
	f.deviceStatus = http.StatusOK
	f.deviceBody = map[string]any{
		"device_code": fakeDeviceCode, "user_code": "AB\x1b[2JCD",
		"verification_uri": "https://example.test/d", "message": "hello\x07\nworld",
	}
	var out bytes.Buffer
	_, err := newFakeWaits().flow().login(t.Context(), f.config(), &out)
	require.NoError(t, err)
	assert.NotContains(t, out.String(), "\x1b")
	assert.NotContains(t, out.String(), "\x07")
	assert.Contains(t, out.String(), "AB[2JCD")
	assert.Contains(t, out.String(), "helloworld")
}
