package remote

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The watcher for a silent service (unanswered.go) must not take a slow
// but living service for a gone one.

// driveJSON is the drive a check or probe gets.
var driveJSON = map[string]any{"id": "d1", "driveType": "personal"}

// A reply that takes seconds (the service's own work) while the service
// answers a fresh connection at once: the watcher checks, finds the
// service answering, and the slow request gets its reply; the link never
// goes down.
func TestUnansweredSlowReplyStaysOnline(t *testing.T) {
	var checks atomic.Int32
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case drivePrefix:
			checks.Add(1)
			replyJSON(w, http.StatusOK, driveJSON)
		case drivePrefix + "/items/slow":
			time.Sleep(1500 * time.Millisecond)
			replyJSON(w, http.StatusOK, itemJSON("slow", "slow.txt", 3))
		default:
			http.NotFound(w, r)
		}
	}), func(c *Config) { c.DetectOffline = true })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go env.c.WatchUnanswered(ctx)
	changed := env.c.Link().Changed()

	it, err := env.c.Item(ctx, "slow")
	require.NoError(t, err)
	assert.Equal(t, "slow.txt", it.Name)
	assert.Positive(t, checks.Load(), "the long wait made the watcher check the service")
	select {
	case <-changed:
		t.Fatal("the link went down for a slow reply")
	default:
	}
}

// A check that gets no answer takes the link down and cancels the waiting
// requests, unless the body of a request sent before the check kept
// moving meanwhile: its connection acknowledges bytes, so the path is
// alive (a large fragment on a thin uplink).
func TestUnansweredMovingBodyStaysOnline(t *testing.T) {
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // a drive GET that is never answered
	}), func(c *Config) { c.DetectOffline = true })
	ctx := context.Background()
	link := env.c.Link()

	var cancelled atomic.Bool
	id, w := link.track(false, func(error) { cancelled.Store(true) })
	time.Sleep(10 * time.Millisecond) // sent before the check
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the transport keeps taking body bytes
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				w.active.Store(time.Now().UnixNano())
			}
		}
	}()
	require.NoError(t, env.c.CheckReachable(ctx))
	close(stop)
	<-done
	assert.False(t, link.State().Offline, "an upload still moving keeps the link up")
	assert.False(t, cancelled.Load())

	// The body stops moving: the next check takes the link down and
	// cancels the request.
	require.ErrorIs(t, env.c.CheckReachable(ctx), ErrOffline)
	st := link.State()
	assert.True(t, st.Offline)
	assert.Contains(t, st.Cause, "no answer")
	assert.True(t, cancelled.Load(), "the waiting request was cancelled")
	link.untrack(id)
}

// The thresholds follow the link's latency: the median of the recent
// small replies, times four, within bounds.
func TestUnansweredThresholdsFollowLatency(t *testing.T) {
	var l Link
	assert.Equal(t, suspectMin, l.suspectAfter(), "no sample yet: the lower bound")
	assert.Equal(t, checkMin, l.checkTimeout())
	for range latencyWindow {
		l.latency.add(300 * time.Millisecond)
	}
	l.latency.add(10 * time.Second) // one slow call of the service
	assert.Equal(t, 1200*time.Millisecond, l.suspectAfter())
	assert.Equal(t, 1200*time.Millisecond, l.checkTimeout())
	for range latencyWindow {
		l.latency.add(5 * time.Second)
	}
	assert.Equal(t, suspectMax, l.suspectAfter(), "a very slow link: the upper bound")
	assert.Equal(t, checkMax, l.checkTimeout())

	// A fresh connection that took long to answer (a probe after a
	// mistaken verdict) sets the check's patience to twice that.
	var m Link
	for range latencyWindow {
		m.latency.add(10 * time.Millisecond)
	}
	m.answered(time.Now().Add(-1200*time.Millisecond), true)
	assert.InDelta(t, float64(2400*time.Millisecond), float64(m.checkTimeout()), float64(100*time.Millisecond))
	assert.Equal(t, suspectMin, m.suspectAfter(), "requests stay fast: the suspicion is not delayed")
}

// A service that becomes uniformly slower than the check's patience is
// taken for gone at most once: the probe that brings the link back
// measures the slowness, and the next check waits long enough.
func TestUnansweredSuddenlySlowServiceFlapsOnce(t *testing.T) {
	var slow atomic.Bool
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			time.Sleep(time.Second)
		}
		switch r.URL.Path {
		case drivePrefix:
			replyJSON(w, http.StatusOK, driveJSON)
		default:
			replyJSON(w, http.StatusOK, itemJSON("x", "x.txt", 1))
		}
	}), func(c *Config) { c.DetectOffline = true })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go env.c.WatchUnanswered(ctx)
	for range 3 {
		_, err := env.c.Item(ctx, "x")
		require.NoError(t, err)
	}

	slow.Store(true)
	verdicts := 0
	for range 4 {
		_, err := env.c.Item(ctx, "x")
		if errors.Is(err, ErrOffline) {
			verdicts++
			require.NoError(t, env.c.Probe(ctx), "the probe, patient, finds the service")
			continue
		}
		require.NoError(t, err)
	}
	t.Logf("measured: %d mistaken offline verdicts over 4 requests to a service slowed to 1 s", verdicts)
	assert.LessOrEqual(t, verdicts, 1, "taken for gone at most once")
}

// After a check found the service answering, the requests already waiting
// are checked again only after recheckAfter; a new one when it becomes
// suspect.
func TestUnansweredNextCheck(t *testing.T) {
	var l Link
	_, ok := l.nextCheck()
	assert.False(t, ok, "nothing waits")
	id1, w1 := l.track(true, func(error) {})
	due, ok := l.nextCheck()
	require.True(t, ok)
	assert.Equal(t, time.Unix(0, w1.active.Load()).Add(suspectMin), due)

	start := time.Unix(0, w1.active.Load()).Add(suspectMin + time.Millisecond)
	l.answered(start, false)
	due, _ = l.nextCheck()
	assert.Equal(t, start.Add(recheckAfter), due, "cleared until recheckAfter")

	_, w2 := l.track(true, func(error) {})
	w2.active.Store(start.Add(time.Second).UnixNano())
	due, _ = l.nextCheck()
	assert.Equal(t, start.Add(time.Second).Add(suspectMin), due, "a request that became suspect later")

	l.checking(start.Add(time.Second))
	due, _ = l.nextCheck()
	assert.Equal(t, start.Add(time.Second).Add(minCheckGap), due, "a second between checks at least")
	l.untrack(id1)
}

// A download whose body stops coming as the network goes silent (the
// header came, then nothing, and a check gets no answer either) fails with
// ErrOffline and takes the link down; a body that comes in slow bursts
// while the service answers does not.
func TestUnansweredBodyStops(t *testing.T) {
	const size = 1 << 20
	var silent, bursty atomic.Bool
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case drivePrefix:
			if silent.Load() {
				<-r.Context().Done()
				return
			}
			replyJSON(w, http.StatusOK, driveJSON)
		case drivePrefix + "/items/big/content":
			w.Header().Set("Location", "http://"+r.Host+"/dl/big")
			w.WriteHeader(http.StatusFound)
		case "/dl/big":
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.WriteHeader(http.StatusOK)
			chunk := make([]byte, size/8)
			for i := range 8 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				switch {
				case bursty.Load():
					time.Sleep(400 * time.Millisecond)
				case i == 1:
					silent.Store(true) // the network goes silent mid-body
					<-r.Context().Done()
					return
				}
			}
		default:
			http.NotFound(w, r)
		}
	}), func(c *Config) { c.DetectOffline = true })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go env.c.WatchUnanswered(ctx)

	bursty.Store(true)
	n, err := env.c.Download(ctx, "big", 0, -1, io.Discard)
	require.NoError(t, err, "a body in slow bursts is not a silence")
	assert.Equal(t, int64(size), n)
	assert.False(t, env.c.Link().State().Offline)

	bursty.Store(false)
	start := time.Now()
	dctx, dcancel := context.WithTimeout(ctx, 20*time.Second) // unwatched, it would wait for ever
	defer dcancel()
	n, err = env.c.Download(dctx, "big", 0, -1, io.Discard)
	t.Logf("measured: a download whose body stopped failed after %v (%d bytes read)", time.Since(start), n)
	require.ErrorIs(t, err, ErrOffline)
	assert.Equal(t, int64(size/4), n)
	assert.True(t, env.c.Link().State().Offline)
}

// ctxRecorder is a transport that keeps the context of every request it
// carries.
type ctxRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	ctxs []context.Context
}

func (c *ctxRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.ctxs = append(c.ctxs, req.Context())
	c.mu.Unlock()
	return c.base.RoundTrip(req)
}

// A request's context is released once its reply is read and closed, so
// that a long-lived caller's context (the mount's, for background
// requests) does not gather one child per request for ever; a body being
// read keeps its context.
func TestUnansweredRequestContextReleased(t *testing.T) {
	rec := &ctxRecorder{base: &http.Transport{DisableKeepAlives: true}}
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		replyJSON(w, http.StatusOK, itemJSON("x", "x.txt", 1))
	}), func(c *Config) { c.DetectOffline = true; c.Transport = rec })
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 3 {
		_, err := env.c.Item(parent, "x")
		require.NoError(t, err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.ctxs, 3)
	for _, ctx := range rec.ctxs {
		assert.Error(t, ctx.Err(), "the request's context is released with its reply")
	}
	assert.NoError(t, parent.Err())
}
