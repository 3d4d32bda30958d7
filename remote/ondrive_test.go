package remote

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOnDriveSharesTheThrottlingGate: the service throttles the account,
// not a drive, so a 429 met on one drive holds the requests of a Client of
// another drive made with OnDrive, and the other drive is addressed by id.
func TestOnDriveSharesTheThrottlingGate(t *testing.T) {
	var hits hitCounter
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requireBearer(t, r)
		id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		if hits.inc(r.URL.EscapedPath()) == 1 && id == "a" {
			w.Header().Set("Retry-After", "5")
			graphError(w, http.StatusTooManyRequests, "activityLimitReached", "")
			return
		}
		replyJSON(w, http.StatusOK, itemJSON(id, id+".txt", 1))
	}))
	sleeper := newGatedSleeper(env.clock)
	env.c.sleep = sleeper.Sleep
	other := env.c.OnDrive("b!Other Drive")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	resA, resB := make(chan error, 1), make(chan error, 1)
	go func() { _, err := env.c.Item(ctx, "a"); resA <- err }()
	assert.Equal(t, 5*time.Second, sleeper.next(t))
	go func() { _, err := other.Item(ctx, "b"); resB <- err }()
	assert.Equal(t, 5*time.Second, sleeper.next(t), "the other drive's request is held too")
	close(sleeper.release)
	require.NoError(t, <-resA)
	require.NoError(t, <-resB)
	assert.Equal(t, 1, hits.get("/v1.0/drives/b!Other%20Drive/items/b"), "addressed by escaped drive id")
	assert.Equal(t, 2, hits.get(drivePrefix+"/items/a"))
}
