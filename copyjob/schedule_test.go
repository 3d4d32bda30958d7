package copyjob

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const ms = time.Millisecond

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{FirstInterval: 100 * ms, BackoffFactor: 2, MaxInterval: time.Second})
		j := h.add(t, 1) // unscripted: inProgress forever
		time.Sleep(5 * time.Second)

		got := gaps(j.Created, h.poller.times(monitorURL(1)))
		require.GreaterOrEqual(t, len(got), 6)
		assert.Equal(t, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}, got[:6])
		for _, g := range got[4:] {
			assert.Equal(t, time.Second, g, "capped at MaxInterval")
		}
	})
}

func TestDefaultSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{})
		j := h.add(t, 1)
		time.Sleep(30 * time.Second)
		got := gaps(j.Created, h.poller.times(monitorURL(1)))
		require.GreaterOrEqual(t, len(got), 10)
		assert.Equal(t, DefaultFirstInterval, got[0])
		assert.Equal(t, 375*ms, got[1])
		assert.Equal(t, 562500*time.Microsecond, got[2])
		assert.Equal(t, DefaultMaxInterval, got[len(got)-1])
	})
}

func TestRetryAfterOnAnswerDelaysThatJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{FirstInterval: 100 * ms, BackoffFactor: 2, MaxInterval: time.Second})
		h.poller.script(monitorURL(1),
			step{st: remote.JobStatus{State: remote.JobRunning, Status: "inProgress", RetryAfter: 7 * time.Second}},
			running("inProgress", 20))
		j1 := h.add(t, 1)
		j2 := h.add(t, 2) // unscripted, no Retry-After
		time.Sleep(10 * time.Second)

		got := gaps(j1.Created, h.poller.times(monitorURL(1)))
		require.GreaterOrEqual(t, len(got), 3)
		assert.Equal(t, []time.Duration{100 * ms, 7 * time.Second, 400 * ms}, got[:3],
			"Retry-After replaces the back-off once; the back-off then carries on")

		other := gaps(j2.Created, h.poller.times(monitorURL(2)))
		spacing := time.Second / DefaultMaxPollsPerSecond
		assert.Equal(t, 100*ms+spacing, other[0], "other jobs are not delayed (only spaced by the rate bound)")
		assert.Equal(t, 200*ms, other[1])
	})
}

func TestThrottlingPausesAllPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{})
		h.poller.script(monitorURL(1),
			errs(&remote.Error{Op: "copy monitor", StatusCode: 429, RetryAfter: 3 * time.Second}),
			completed("NEW1"))
		h.poller.script(monitorURL(2), completed("NEW2"))
		j1 := h.add(t, 1)
		j2 := h.add(t, 2)

		got1, err := h.tr.Wait(t.Context(), j1.ID)
		require.NoError(t, err)
		got2, err := h.tr.Wait(t.Context(), j2.ID)
		require.NoError(t, err)
		assert.Equal(t, StateCompleted, got1.State, "a throttled answer is not a failure")
		assert.Equal(t, StateCompleted, got2.State)

		p1, p2 := h.poller.times(monitorURL(1)), h.poller.times(monitorURL(2))
		require.Len(t, p1, 2)
		require.Len(t, p2, 1)
		assert.GreaterOrEqual(t, p1[1].Sub(p1[0]), 3*time.Second, "the throttled job waits Retry-After")
		assert.Equal(t, 3*time.Second, p2[0].Sub(p1[0]), "so does every other job")
	})
}

func TestGlobalRateBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const jobs, rate = 100, 20
		h := start(t, Config{MaxPollsPerSecond: rate, FirstInterval: 100 * ms, MaxInterval: 500 * ms})
		start := time.Now()
		for n := range jobs {
			h.add(t, n)
		}
		time.Sleep(10 * time.Second)

		all := h.poller.allTimes()
		perSecond := map[int]int{}
		for _, ts := range all {
			perSecond[int(ts.Sub(start)/time.Second)]++
		}
		for sec, n := range perSecond {
			assert.LessOrEqual(t, n, rate, "second %d", sec)
		}
		for i := rate; i < len(all); i++ {
			assert.GreaterOrEqual(t, all[i].Sub(all[i-rate]), time.Second, "any %d consecutive polls span at least 1s", rate+1)
		}
		assert.GreaterOrEqual(t, len(all), 9*rate, "the bound is used, not just respected")
		for n := range jobs {
			assert.NotEmpty(t, h.poller.times(monitorURL(n)), "job %d was starved", n)
		}
	})
}

func TestConcurrentPollsAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		p := newFakePoller()
		h := start(t, Config{Poller: p, MaxConcurrentPolls: 3, MaxPollsPerSecond: -1})
		for n := range 10 {
			p.script(monitorURL(n), step{block: release, st: remote.JobStatus{State: remote.JobCompleted, Status: "completed"}})
			h.add(t, n)
		}
		time.Sleep(10 * time.Second) // less than PollTimeout: the polls hang all along
		assert.Len(t, p.allTimes(), 3, "only MaxConcurrentPolls polls start while they hang")
		close(release)
		for _, j := range h.tr.Jobs() {
			got, err := h.tr.Wait(t.Context(), j.ID)
			require.NoError(t, err)
			assert.Equal(t, StateCompleted, got.State)
		}
		assert.Len(t, p.allTimes(), 10)
	})
}
