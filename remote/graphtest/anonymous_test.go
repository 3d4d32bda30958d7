package graphtest

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Graph request without a token is refused with 401 at the front door,
// even while the server's lock is held (a long delta page, say), in the
// forms in force; one with a token waits for the lock as before.
func TestAnonymousRefusedWithoutLock(t *testing.T) {
	s := NewServer(Options{})
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.SetForms(FormOptions{InnerErrorSpelling: innerErrorOD}))
	tok := s.IssueToken()
	get := func(ctx context.Context, token string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.GraphURL()+"/me/drive", nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return http.DefaultClient.Do(req)
	}

	s.mu.Lock()
	resp, err := get(context.Background(), "")
	if err == nil {
		var body map[string]map[string]any
		assert.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Equal(t, codeInvalidAuthToken, body["error"]["code"])
		assert.Contains(t, body["error"], "innererror", "in the forms in force (the OData spelling set above)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, werr := get(ctx, tok)
	cancel()
	s.mu.Unlock()
	require.NoError(t, err, "answered while the lock is held")
	assert.ErrorIs(t, werr, context.DeadlineExceeded, "a request with a token waits for the lock")

	resp, err = get(context.Background(), tok)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}
