package remote

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// A 429 with Retry-After makes the request wait that long, and every other
// request of the client waits too, without reaching the server.
func TestThrottleHoldsAllRequests(t *testing.T) {
	var hits hitCounter
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requireBearer(t, r)
		id := strings.TrimPrefix(r.URL.Path, drivePrefix+"/items/")
		if hits.inc(id) == 1 && id == "a" {
			w.Header().Set("Retry-After", "7")
			graphError(w, http.StatusTooManyRequests, "activityLimitReached", "throttledRequest")
			return
		}
		replyJSON(w, http.StatusOK, itemJSON(id, id+".txt", 1))
	}))
	sleeper := newGatedSleeper(env.clock)
	env.c.sleep = sleeper.Sleep
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	type result struct {
		it  *Item
		err error
	}
	resA, resB := make(chan result, 1), make(chan result, 1)
	go func() { it, err := env.c.Item(ctx, "a"); resA <- result{it, err} }()
	assert.Equal(t, 7*time.Second, sleeper.next(t), "A waits for Retry-After")

	go func() { it, err := env.c.Item(ctx, "b"); resB <- result{it, err} }()
	assert.Equal(t, 7*time.Second, sleeper.next(t), "B is held by the same gate")
	assert.Equal(t, 0, hits.get("b"), "B must not reach the server while the client is throttled")

	close(sleeper.release)
	a, b := <-resA, <-resB
	require.NoError(t, a.err)
	require.NoError(t, b.err)
	assert.Equal(t, "a", a.it.ID)
	assert.Equal(t, "b", b.it.ID)
	assert.Equal(t, 2, hits.get("a"))
	assert.Equal(t, 1, hits.get("b"))
}

func TestRetryAfterHTTPDate(t *testing.T) {
	var hits atomic.Int32
	var env *clientEnv
	env = newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Retry-After", env.clock.Now().Add(30*time.Second).Format(http.TimeFormat))
			graphError(w, http.StatusServiceUnavailable, "serviceNotAvailable", "")
			return
		}
		replyJSON(w, http.StatusOK, itemJSON("x", "x", 1))
	}))
	_, err := env.c.Item(context.Background(), "x")
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{30 * time.Second}, env.clock.Sleeps())
	assert.Equal(t, int32(2), hits.Load())
}

func TestServerErrorsAndResetsRetried(t *testing.T) {
	var hits atomic.Int32
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch hits.Add(1) {
		case 1:
			graphError(w, http.StatusServiceUnavailable, "serviceNotAvailable", "") // no Retry-After
		case 2:
			breakConn() // connection closed before any reply
		case 3:
			graphError(w, http.StatusBadGateway, "generalException", "")
		case 4:
			// headers, then the body is cut short
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"id":`))
			w.(http.Flusher).Flush()
			breakConn()
		case 5:
			graphError(w, http.StatusInternalServerError, "generalException", "")
		default:
			replyJSON(w, http.StatusOK, itemJSON("x", "x", 1))
		}
	}), func(c *Config) { c.Retry.MaxAttempts = 6 })
	it, err := env.c.Item(context.Background(), "x")
	require.NoError(t, err)
	assert.Equal(t, "x", it.ID)
	assert.Equal(t, int32(6), hits.Load())
	sleeps := env.clock.Sleeps()
	require.Len(t, sleeps, 5, "one back-off per failure")
	for _, d := range sleeps {
		assert.LessOrEqual(t, d, 2*time.Second, "back-off is capped by MaxDelay")
	}
}

func TestRetriesAreBounded(t *testing.T) {
	var hits atomic.Int32
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		graphError(w, http.StatusGatewayTimeout, "generalException", "")
	}))
	_, err := env.c.Item(context.Background(), "x")
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, http.StatusGatewayTimeout, e.StatusCode)
	assert.Equal(t, int32(5), hits.Load(), "MaxAttempts")
}

func TestThrottleGivesUpWhenRetryAfterTooLong(t *testing.T) {
	var hits atomic.Int32
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Retry-After", "3600")
		graphError(w, http.StatusTooManyRequests, "activityLimitReached", "")
	}))
	_, err := env.c.Item(context.Background(), "x")
	require.ErrorIs(t, err, ErrThrottled)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, time.Hour, e.RetryAfter)
	assert.Equal(t, int32(1), hits.Load())
}

// An access token the API refuses is invalidated and the request repeated
// once with the next token.
func TestExpiredTokenRefreshedTransparently(t *testing.T) {
	var hits atomic.Int32
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("Authorization") != "Bearer tok-2" {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="expired_token"`)
			graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "")
			return
		}
		replyJSON(w, http.StatusOK, itemJSON("x", "x", 1))
	}))
	it, err := env.c.Item(context.Background(), "x")
	require.NoError(t, err)
	assert.Equal(t, "x", it.ID)
	assert.Equal(t, 1, env.tokens.invalidations())
	assert.Equal(t, int32(2), hits.Load())
	assert.Empty(t, env.clock.Sleeps(), "no back-off for a refreshed token")
}

func TestUnauthorizedAfterRefreshIsPermanent(t *testing.T) {
	var hits atomic.Int32
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "")
	}))
	_, err := env.c.Item(context.Background(), "x")
	require.ErrorIs(t, err, ErrUnauthorized)
	assert.Equal(t, 1, env.tokens.invalidations(), "invalidated once, not in a loop")
	assert.Equal(t, int32(2), hits.Load())
}

func TestPermanentErrorsNotRetried(t *testing.T) {
	cases := []struct {
		status      int
		code, inner string
		want        error
	}{
		{http.StatusInsufficientStorage, "quotaLimitReached", "", ErrQuotaExceeded},
		{http.StatusNotFound, "itemNotFound", "", ErrNotFound},
		{http.StatusForbidden, "accessDenied", "", ErrForbidden},
		{http.StatusBadRequest, "invalidRequest", "nameContainsInvalidCharacters", ErrInvalidName},
		{http.StatusConflict, "nameAlreadyExists", "", ErrConflict},
		{http.StatusNotImplemented, "notSupported", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.code, func(t *testing.T) {
			var hits atomic.Int32
			env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				graphError(w, tc.status, tc.code, tc.inner)
			}))
			_, err := env.c.Item(context.Background(), "x")
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tc.status, e.StatusCode)
			assert.Equal(t, tc.code, e.Code)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
			}
			assert.Equal(t, int32(1), hits.Load())
		})
	}
}

func TestWaitsHonourCancellation(t *testing.T) {
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		graphError(w, http.StatusTooManyRequests, "activityLimitReached", "")
	}))
	env.c.sleep = sleepContext // real waits
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := env.c.Item(ctx, "x")
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestSleepContext(t *testing.T) {
	require.NoError(t, sleepContext(t.Context(), time.Millisecond))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.True(t, errors.Is(sleepContext(ctx, time.Hour), context.Canceled))
}

func TestBackoffFullJitter(t *testing.T) {
	env := newClientEnv(t, http.NotFoundHandler())
	c := env.c
	c.jitter = func(d time.Duration) time.Duration { return d } // the ceiling
	var got []time.Duration
	for n := 1; n <= 7; n++ {
		got = append(got, c.backoff(n))
	}
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms}, got)

	env2 := newClientEnv(t, http.NotFoundHandler())
	for n := 1; n <= 50; n++ {
		d := env2.c.backoff(3)
		assert.GreaterOrEqual(t, d, time.Duration(0))
		assert.LessOrEqual(t, d, 400*ms)
	}
}

// POST …/copy is not repeated after a failure that may have reached the
// service, but throttling is waited out.
func TestStartCopyNotRepeatedWhenOutcomeUnknown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(w http.ResponseWriter)
	}{
		{"502", func(w http.ResponseWriter) { graphError(w, http.StatusBadGateway, "generalException", "") }},
		{"500", func(w http.ResponseWriter) { graphError(w, http.StatusInternalServerError, "generalException", "") }},
		{"reset", func(http.ResponseWriter) { breakConn() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				tc.reply(w)
			}))
			_, err := env.c.StartCopy(context.Background(), "src", CopyRequest{DestParentID: "p"})
			require.ErrorIs(t, err, ErrOutcomeUnknown)
			assert.Equal(t, int32(1), hits.Load(), "the POST must not be repeated")
		})
	}

	t.Run("throttled", func(t *testing.T) {
		var hits atomic.Int32
		env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hits.Add(1) == 1 {
				w.Header().Set("Retry-After", "2")
				graphError(w, http.StatusTooManyRequests, "activityLimitReached", "")
				return
			}
			w.Header().Set("Location", "http://"+r.Host+"/monitor/1")
			w.WriteHeader(http.StatusAccepted)
		}))
		mon, err := env.c.StartCopy(context.Background(), "src", CopyRequest{DestParentID: "p"})
		require.NoError(t, err)
		assert.Equal(t, env.srv.URL+"/monitor/1", mon)
		assert.Equal(t, int32(2), hits.Load())
		assert.Equal(t, []time.Duration{2 * time.Second}, env.clock.Sleeps())
	})
}

func TestTokenSourceErrorNotRetried(t *testing.T) {
	var hits atomic.Int32
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }),
		func(c *Config) { c.Tokens = failingTokens{} })
	_, err := env.c.Item(context.Background(), "x")
	require.ErrorIs(t, err, errNoToken)
	assert.Equal(t, int32(0), hits.Load())
	assert.Empty(t, env.clock.Sleeps())
}

var errNoToken = errors.New("no token for you")

type failingTokens struct{}

func (failingTokens) Token() (*oauth2.Token, error) { return nil, errNoToken }
