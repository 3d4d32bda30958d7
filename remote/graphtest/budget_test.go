package graphtest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// Graph requests are metered in resource units per minute: RateLimit
// headers from 80% of the budget on, 429 with a Retry-After until the
// window ends beyond it, a fresh budget after it.
func TestResourceBudget(t *testing.T) {
	clock := newManualClock()
	h := startFake(t, graphtest.Options{Clock: clock.Now, ResourceUnitsPerMinute: 10})
	// A single-item GET costs 1, a listing 2.
	for i := range 7 {
		r := h.api("GET", "/me/drive/root", nil)
		require.Equal(t, http.StatusOK, r.status)
		assert.Empty(t, r.header.Get("RateLimit-Remaining"), "quiet below 80%%: request %d", i+1)
	}
	clock.Advance(20 * time.Second)
	r := h.api("GET", "/me/drive/root/children", nil) // 9 of 10
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "10", r.header.Get("RateLimit-Limit"))
	assert.Equal(t, "1", r.header.Get("RateLimit-Remaining"))
	assert.Equal(t, "40", r.header.Get("RateLimit-Reset"), "seconds until the window ends")

	r = h.api("GET", "/me/drive/root/children", nil) // 11 of 10
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Equal(t, "40", r.header.Get("Retry-After"))
	assert.Equal(t, "activityLimitReached", r.errorCode())
	assert.EqualValues(t, 1, h.srv.Stats().Throttled)

	// The control API is not metered.
	assert.Equal(t, http.StatusOK, h.plain("GET", "/_fake/stats", nil).status)

	clock.Advance(40 * time.Second)
	r = h.api("GET", "/me/drive/root", nil)
	assert.Equal(t, http.StatusOK, r.status, "a new window")
	assert.Empty(t, r.header.Get("RateLimit-Remaining"))

	h.srv.SetResourceBudget(0)
	for range 20 {
		require.Equal(t, http.StatusOK, h.api("GET", "/me/drive/root/children", nil).status)
	}
}
