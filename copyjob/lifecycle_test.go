package copyjob

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWaitReturnsOnCancelAndTheJobGoesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{FirstInterval: time.Second, MaxInterval: time.Second})
		steps := []step{}
		for range 10 {
			steps = append(steps, running("inProgress", 10))
		}
		h.poller.script(monitorURL(1), append(steps, completed("NEW1"))...)
		j := h.add(t, 1)

		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			time.Sleep(2500 * ms) // a FUSE interrupt, mid-copy
			cancel()
		}()
		began := time.Now()
		got, err := h.tr.Wait(ctx, j.ID)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 2500*ms, time.Since(began), "Wait returns when ctx ends, not at the next poll")
		assert.Equal(t, StateRunning, got.State, "Wait reports the job as it stands")
		assert.Equal(t, 2, got.Polls)

		got, err = h.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		assert.Equal(t, StateCompleted, got.State, "the job was still tracked")
		assert.Len(t, h.doneJobs(), 1)
	})
}

func TestWaitUnknownAndFinishedJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{})
		_, err := h.tr.Wait(t.Context(), "nope")
		assert.ErrorIs(t, err, ErrNotFound)

		h.poller.script(monitorURL(1), completed("NEW1"))
		j := h.add(t, 1)
		_, err = h.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)

		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		got, err := h.tr.Wait(ctx, j.ID)
		assert.NoError(t, err, "a finished job is returned even to a cancelled ctx")
		assert.Equal(t, StateCompleted, got.State)
	})
}

func TestOnDoneRunsBeforeTheJobIsVisiblyTerminal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var h *harness
		var seenDuringOnDone atomic.Value
		var onDoneReturned atomic.Bool
		h = start(t, Config{OnDone: func(j Job) {
			// OnDone may call back into the tracker: no lock is held.
			cur, ok := h.tr.Get(j.ID)
			if ok {
				seenDuringOnDone.Store(cur.State)
			}
			_ = h.tr.Jobs()
			_, _ = h.tr.LatestForSource(j.SourceID)
			time.Sleep(time.Second) // a slow OnDone (fetching the new item)
			onDoneReturned.Store(true)
		}})
		h.poller.script(monitorURL(1), running("inProgress", 50), completed("NEW1"))
		j := h.add(t, 1)

		got, err := h.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		assert.True(t, onDoneReturned.Load(), "Wait returns after OnDone")
		assert.Equal(t, StateCompleted, got.State)
		assert.Equal(t, StateRunning, seenDuringOnDone.Load(), "observers see completed only after OnDone")
	})
}

func TestCloseStopsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		hang := make(chan struct{}) // never closed: a poll is in flight when Close comes
		h.poller.script(monitorURL(1), step{block: hang})
		j := h.add(t, 1)

		runDone := make(chan error)
		go func() { runDone <- h.tr.Run(context.Background()) }()
		time.Sleep(time.Second)
		assert.Len(t, h.poller.times(monitorURL(1)), 1, "the poll is in flight")

		waitDone := make(chan error)
		go func() {
			_, err := h.tr.Wait(context.Background(), j.ID)
			waitDone <- err
		}()
		synctest.Wait()

		began := time.Now()
		require.NoError(t, h.tr.Close())
		assert.Zero(t, time.Since(began), "Close cancels the poll in flight rather than waiting for its timeout")
		// Close waited for Run; were Run stuck, this receive would deadlock
		// and synctest would fail the test.
		assert.NoError(t, <-runDone, "Run returns nil after Close")
		assert.ErrorIs(t, <-waitDone, ErrClosed)

		assert.ErrorIs(t, h.tr.Run(context.Background()), ErrClosed)
		_, err := h.tr.Add(specFor(2))
		assert.ErrorIs(t, err, ErrClosed)
		assert.NoError(t, h.tr.Close(), "Close is idempotent")
		got, ok := h.tr.Get(j.ID)
		require.True(t, ok)
		assert.Equal(t, StateQueued, got.State, "a cancelled poll changes nothing")
	})
}

func TestRunStopsWithItsContextAndCanRunAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		steps := []step{running("inProgress", 10), running("inProgress", 20)}
		h.poller.script(monitorURL(1), append(steps, completed("NEW1"))...)
		j := h.add(t, 1)
		time.Sleep(time.Hour)
		assert.Empty(t, h.poller.times(monitorURL(1)), "nothing is polled before Run")

		ctx, cancel := context.WithCancel(t.Context())
		runDone := make(chan error)
		go func() { runDone <- h.tr.Run(ctx) }()
		time.Sleep(300 * ms)
		assert.ErrorIs(t, h.tr.Run(t.Context()), ErrRunning)
		cancel()
		assert.ErrorIs(t, <-runDone, context.Canceled)
		polled := len(h.poller.times(monitorURL(1)))
		assert.Equal(t, 1, polled)

		time.Sleep(time.Hour)
		assert.Len(t, h.poller.times(monitorURL(1)), polled, "nothing is polled after Run returned")

		h.run(t)
		got, err := h.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		assert.Equal(t, StateCompleted, got.State)
		assert.Equal(t, 3, got.Polls)
	})
}

func TestConcurrentAddJobsWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const writers, each = 8, 10
		p := newFakePoller()
		h := start(t, Config{Poller: p, MaxHistory: 1000, MaxPollsPerSecond: -1, Dir: t.TempDir()})

		stop := make(chan struct{})
		var readers sync.WaitGroup
		for range 4 {
			readers.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-h.tr.Changed():
					case <-time.After(10 * ms):
					}
					if jobs := h.tr.Jobs(); len(jobs) > 0 {
						_, _ = h.tr.Get(jobs[len(jobs)/2].ID)
						_, _ = jobs[0].StatusJSON()
					}
					_, _ = h.tr.LatestForSource("SRC1")
				}
			})
		}

		var writersWG sync.WaitGroup
		results := make(chan Job, writers*each)
		for w := range writers {
			writersWG.Go(func() {
				for i := range each {
					n := w*each + i
					p.script(monitorURL(n), running("inProgress", 50), completed("NEW"))
					j, err := h.tr.Add(specFor(n))
					if !assert.NoError(t, err) {
						return
					}
					got, err := h.tr.Wait(t.Context(), j.ID)
					assert.NoError(t, err)
					results <- got
				}
			})
		}
		writersWG.Wait()
		close(stop)
		readers.Wait()
		close(results)

		ids := map[string]bool{}
		for j := range results {
			assert.Equal(t, StateCompleted, j.State)
			ids[j.ID] = true
		}
		assert.Len(t, ids, writers*each, "ids are unique")
		assert.Len(t, h.doneJobs(), writers*each, "OnDone once per job")
		assert.Len(t, h.tr.Jobs(), writers*each)
	})
}

func TestAddRejectsBadMonitorURLs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		for _, u := range []string{"", "/monitor/" + pathSecret, "ftp://host/" + pathSecret, "https:///" + pathSecret} {
			s := specFor(1)
			s.MonitorURL = u
			_, err := h.tr.Add(s)
			if assert.Error(t, err, "%q", u) {
				assert.NotContains(t, err.Error(), pathSecret, "errors never echo a monitor URL")
			}
		}
		assert.Empty(t, h.tr.Jobs())
	})
}

func TestJobsOrderAndLatestForSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		a1, _ := h.tr.Add(Spec{SourceID: "A", SourcePath: "/a", MonitorURL: monitorURL(1)})
		time.Sleep(time.Second)
		b, _ := h.tr.Add(Spec{SourceID: "B", SourcePath: "/b", MonitorURL: monitorURL(2)})
		a2, _ := h.tr.Add(Spec{SourceID: "A", SourcePath: "/a", MonitorURL: monitorURL(3)}) // same instant as b

		ids := []string{}
		for _, j := range h.tr.Jobs() {
			ids = append(ids, j.ID)
		}
		assert.Equal(t, []string{a2.ID, b.ID, a1.ID}, ids, "newest first")

		for _, key := range []string{"A", "/a"} {
			got, ok := h.tr.LatestForSource(key)
			assert.True(t, ok)
			assert.Equal(t, a2.ID, got.ID, key)
		}
		got, ok := h.tr.LatestForSource("B")
		assert.True(t, ok)
		assert.Equal(t, b.ID, got.ID)
		_, ok = h.tr.LatestForSource("C")
		assert.False(t, ok)
		_, ok = h.tr.LatestForSource("")
		assert.False(t, ok)
	})
}

func TestChangedFiresOnAdd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		ch := h.tr.Changed()
		assert.False(t, isClosed(ch))
		h.add(t, 1)
		assert.True(t, isClosed(ch))
		assert.False(t, isClosed(h.tr.Changed()), "a fresh channel for the next change")
	})
}

func TestConfigValidation(t *testing.T) {
	p := newFakePoller()
	for name, cfg := range map[string]Config{
		"no poller":           {},
		"max below first":     {Poller: p, FirstInterval: time.Second, MaxInterval: time.Millisecond},
		"factor below one":    {Poller: p, BackoffFactor: 0.5},
		"negative duration":   {Poller: p, SaveDelay: -1},
		"negative gone polls": {Poller: p, MaxGonePolls: -1},
	} {
		_, err := New(cfg)
		assert.Error(t, err, name)
	}
	tr, err := New(Config{Poller: p})
	require.NoError(t, err)
	assert.Equal(t, DefaultFirstInterval, tr.cfg.FirstInterval)
	assert.Equal(t, float64(DefaultMaxPollsPerSecond), tr.cfg.MaxPollsPerSecond)
	assert.Equal(t, 20*time.Millisecond, tr.cfg.pollSpacing())
	assert.NoError(t, tr.Close())
}
