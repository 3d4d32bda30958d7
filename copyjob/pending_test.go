package copyjob

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSpecCarriesTheSourceVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		a := newHarness(t, Config{Dir: dir})
		spec := specFor(1)
		spec.SourceCTag, spec.SourceETag, spec.SourceHash = `"c:{SRC1},3"`, `"{SRC1},7"`, "aCgDG9jwBhDc4Q1yawMZAAAAAAA="
		j, err := a.tr.Add(spec)
		require.NoError(t, err)
		require.NoError(t, a.tr.Close())

		b := newHarness(t, Config{Dir: dir})
		got, ok := b.tr.Get(j.ID)
		require.True(t, ok)
		assert.Equal(t, spec, got.Spec)
	})
}

func TestAmendIsDurableAndReachesOnDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		a := newHarness(t, Config{Dir: dir})
		j := a.add(t, 1)
		mtime := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)

		calls := 0
		got, err := a.tr.Amend(j.ID, func(s *Spec) {
			calls++
			s.Then.ModTime = mtime
			s.Then.Name, s.Then.ParentID = "renamed.bin", "PARENT2"
			s.MonitorURL = "https://elsewhere.invalid/monitor" // not changeable
		})
		require.NoError(t, err)
		assert.Equal(t, 1, calls)
		want := specFor(1)
		want.Then = Then{Name: "renamed.bin", ParentID: "PARENT2", ModTime: mtime}
		assert.Equal(t, want, got.Spec, "the amended Spec, monitor URL unchanged")
		assert.Equal(t, want.Then, readStore(t, dir)[j.ID].Then, "on disk before Amend returns")

		_, err = a.tr.Amend("nosuchjob000", func(*Spec) { t.Error("fn called for an unknown job") })
		assert.ErrorIs(t, err, ErrNotFound)

		// A crash (no Close: what the log holds is what counts) keeps the
		// amendment, and OnDone gets it.
		crashDir := t.TempDir()
		copyStore(t, dir, crashDir)
		b := newHarness(t, Config{Dir: crashDir})
		b.poller.script(monitorURL(1), completed("NEW1"))
		_, err = b.tr.Amend(j.ID, func(s *Spec) { s.Then.Delete = true })
		require.NoError(t, err)
		b.run(t)
		done, err := b.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		want.Then.Delete = true
		assert.Equal(t, want.Then, done.Then)
		require.Len(t, b.doneJobs(), 1)
		assert.Equal(t, want.Then, b.doneJobs()[0].Then, "OnDone applies what was amended")

		_, err = b.tr.Amend(j.ID, func(*Spec) { t.Error("fn called for a notified job") })
		assert.ErrorIs(t, err, ErrNotified, "after OnDone the caller applies changes itself")
	})
}

func TestAmendWhileOnDoneRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, crashDir := t.TempDir(), t.TempDir()
		inDone, release := make(chan struct{}), make(chan struct{})
		h := start(t, Config{Dir: dir, OnDone: func(Job) {
			close(inDone)
			<-release
		}})
		h.poller.script(monitorURL(1), completed("NEW1"))
		j := h.add(t, 1)
		<-inDone
		_, err := h.tr.Amend(j.ID, func(s *Spec) { s.Then.Name = "late.bin" })
		require.NoError(t, err, "OnDone has not returned: the change is stored")
		assert.Equal(t, "late.bin", readStore(t, dir)[j.ID].Then.Name)
		copyStore(t, dir, crashDir) // a crash now: OnDone runs again after it

		close(release)
		got, err := h.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		assert.Empty(t, h.doneJobs()[0].Then.Name, "the running OnDone's argument cannot change")
		assert.Equal(t, "late.bin", got.Then.Name)
		_, err = h.tr.Amend(j.ID, func(*Spec) { t.Error("fn called for a notified job") })
		assert.ErrorIs(t, err, ErrNotified)

		b := start(t, Config{Dir: crashDir})
		_, err = b.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		require.Len(t, b.doneJobs(), 1)
		assert.Equal(t, "late.bin", b.doneJobs()[0].Then.Name, "the OnDone a restart repeats has it")
	})
}

func TestAmendOfAJobFinishedBeforeACrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, crashDir := t.TempDir(), t.TempDir()
		a := start(t, Config{Dir: dir, OnDone: func(Job) { copyStore(t, dir, crashDir) }})
		a.poller.script(monitorURL(1), completed("NEW1"))
		j := a.add(t, 1)
		_, err := a.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)

		// The crashed mount's job is terminal on disk, OnDone never returned:
		// it is still pending, and can still be amended.
		b := newHarness(t, Config{Dir: crashDir})
		pending := b.tr.Pending()
		require.Len(t, pending, 1)
		assert.Equal(t, j.ID, pending[0].ID)
		_, err = b.tr.Amend(j.ID, func(s *Spec) { s.Then.Delete = true })
		require.NoError(t, err)
		b.run(t)
		got, err := b.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		assert.Equal(t, StateCompleted, got.State)
		require.Len(t, b.doneJobs(), 1)
		assert.True(t, b.doneJobs()[0].Then.Delete)
		assert.Empty(t, b.tr.Pending())
	})
}

func TestPendingListsJobsNotHandedOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := start(t, Config{OnDone: func(j Job) {
			if j.SourceID == "SRC3" {
				<-release
			}
		}})
		h.poller.script(monitorURL(2), completed("NEW2"))
		h.poller.script(monitorURL(3), completed("NEW3"))
		j1, j2, j3 := h.add(t, 1), h.add(t, 2), h.add(t, 3)
		_, err := h.tr.Wait(t.Context(), j2.ID)
		require.NoError(t, err)
		time.Sleep(time.Second)
		synctest.Wait()

		assert.Equal(t, []string{j1.ID, j3.ID}, ids(h.tr.Pending()),
			"running (1) and finished with OnDone not returned (3); not notified (2)")
		for _, j := range h.tr.Pending() {
			assert.False(t, j.State.Terminal(), "reported running until OnDone returned")
		}
		fromSRC3 := func(j *Job) bool { return j.SourceID == "SRC3" }
		assert.Equal(t, []string{j3.ID}, ids(h.tr.PendingWhere(fromSRC3)))
		close(release)
		_, err = h.tr.Wait(t.Context(), j3.ID)
		require.NoError(t, err)
		assert.Equal(t, []string{j1.ID}, ids(h.tr.Pending()))
		assert.Empty(t, h.tr.PendingWhere(fromSRC3), "settled")
	})
}

func TestWaitStartSlotPacesStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{MaxStartsPerSecond: 10, StartBurst: 5})
		t0 := time.Now()
		var at []time.Duration
		for range 8 {
			require.NoError(t, h.tr.WaitStartSlot(t.Context()))
			at = append(at, time.Since(t0))
		}
		assert.Equal(t, []time.Duration{0, 0, 0, 0, 0, 100 * ms, 200 * ms, 300 * ms}, at,
			"a burst, then the steady rate")

		time.Sleep(time.Second) // refills 10 slots, capped at the burst of 5
		t1 := time.Now()
		for range 6 {
			require.NoError(t, h.tr.WaitStartSlot(t.Context()))
		}
		assert.Equal(t, 100*ms, time.Since(t1))

		ctx, cancel := context.WithTimeout(t.Context(), 50*ms)
		defer cancel()
		assert.ErrorIs(t, h.tr.WaitStartSlot(ctx), context.DeadlineExceeded)
		t2 := time.Now()
		require.NoError(t, h.tr.WaitStartSlot(t.Context()))
		assert.Equal(t, 50*ms, time.Since(t2), "the cancelled caller gave its slot back")
	})
}

// With the service's budget reported, starts are spread so that they use at
// most half of what is left until its reset, and wait for the reset when
// nothing is left for them; without it, the bucket alone paces them.
func TestWaitStartSlotSpreadsByTheServiceBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var remaining int
		var reset time.Time
		var reported bool
		budget := func() (int, time.Time, bool) {
			mu.Lock()
			defer mu.Unlock()
			return remaining, reset, reported
		}
		h := start(t, Config{MaxStartsPerSecond: 1000, StartBurst: 1000, Budget: budget})
		t0 := time.Now()
		for range 3 {
			require.NoError(t, h.tr.WaitStartSlot(t.Context()))
		}
		assert.Equal(t, time.Duration(0), time.Since(t0), "nothing reported: the burst")

		// 40 units left for 10 s: 10 starts' worth (2 units each, half of
		// it), one a second; the next interval is measured from the slot
		// (9 s left, the same share: 0.9 s).
		mu.Lock()
		remaining, reset, reported = 40, time.Now().Add(10*time.Second), true
		mu.Unlock()
		t1 := time.Now()
		var at []time.Duration
		for range 3 {
			require.NoError(t, h.tr.WaitStartSlot(t.Context()))
			at = append(at, time.Since(t1))
		}
		assert.Equal(t, []time.Duration{0, time.Second, 1900 * ms}, at)

		// Nothing left for copies: the next start waits for the reset.
		mu.Lock()
		remaining = 3
		mu.Unlock()
		t2 := time.Now()
		require.NoError(t, h.tr.WaitStartSlot(t.Context()))
		mu.Lock()
		assert.Equal(t, reset, time.Now(), "waited for the reset")
		mu.Unlock()
		assert.Equal(t, 8100*ms, time.Since(t2))
	})
}

func TestPauseHoldsStartsAndPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{MaxStartsPerSecond: 10, StartBurst: 5, FirstInterval: 100 * ms, MaxInterval: 100 * ms})
		j := h.add(t, 1)
		time.Sleep(150 * ms) // one poll
		h.tr.Pause(3 * time.Second)
		t0 := time.Now()
		require.NoError(t, h.tr.WaitStartSlot(t.Context()))
		assert.Equal(t, 3*time.Second+100*ms, time.Since(t0),
			"no start during the pause, and no burst after it: the steady rate resumes")
		polls := h.poller.times(monitorURL(1))
		// A third poll may fall at the very instant the start slot is
		// granted (3.25 s); the order of the two is not defined.
		require.GreaterOrEqual(t, len(polls), 2)
		assert.Equal(t, 3*time.Second, polls[1].Sub(t0), "nor any poll")
		assert.Equal(t, j.ID, h.tr.Pending()[0].ID)
	})
}

func TestThrottledPollHoldsStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{FirstInterval: 100 * ms})
		h.poller.script(monitorURL(1), errs(&remote.Error{Op: "copy monitor", StatusCode: 503, RetryAfter: 4 * time.Second}), completed("NEW1"))
		h.add(t, 1)
		time.Sleep(100 * ms) // the throttled poll
		synctest.Wait()
		t0 := time.Now()
		require.NoError(t, h.tr.WaitStartSlot(t.Context()))
		assert.Equal(t, 4*time.Second+time.Second/DefaultMaxStartsPerSecond, time.Since(t0),
			"held for the Retry-After, then at the steady rate")
	})
}

func TestWaitStartSlotAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{MaxStartsPerSecond: 1, StartBurst: 1})
		require.NoError(t, h.tr.WaitStartSlot(t.Context()))
		errc := make(chan error, 1)
		go func() { errc <- h.tr.WaitStartSlot(context.Background()) }()
		synctest.Wait()
		require.NoError(t, h.tr.Close())
		assert.ErrorIs(t, <-errc, ErrClosed, "a waiter returns at Close")
		assert.ErrorIs(t, h.tr.WaitStartSlot(t.Context()), ErrClosed)
	})
}
