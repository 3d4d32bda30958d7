package copyjob

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Jobs someone Waits on (cp blocked in copy_file_range) are polled by the
// waited rule of schedule.due; these tests pin it down on exact schedules.

const us = time.Microsecond

func TestWaitedJobIsPolledEveryFirstIntervalWhileBackgroundJobsBackOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Defaults, but no rate bound, so that the two jobs' polls do not
		// push each other by the spacing.
		h := start(t, Config{MaxPollsPerSecond: -1})
		// Two copies of 3.4s that report no progress: the benchmark's case
		// (a 3.5s job made cp take 5.2s).
		began := time.Now()
		job := timedJob{start: began, total: 3400 * ms, flat: true}
		h.poller.time(monitorURL(1), job)
		h.poller.time(monitorURL(2), job)
		waited := h.add(t, 1)
		background := h.add(t, 2)

		got, err := h.tr.Wait(t.Context(), waited.ID)
		require.NoError(t, err)
		require.Equal(t, StateCompleted, got.State)
		assert.Equal(t, 3500*ms, time.Since(began), "cp's Wait returns at the first FirstInterval tick after the end")
		assert.LessOrEqual(t, time.Since(job.end()), DefaultFirstInterval, "overhead after the job's end")
		polls := gaps(waited.Created, h.poller.times(monitorURL(1)))
		assert.Len(t, polls, 14)
		for i, g := range polls {
			assert.Equal(t, DefaultFirstInterval, g, "gap %d: a waited job does not back off", i)
		}

		time.Sleep(3 * time.Second)
		assert.Equal(t, []time.Duration{250 * ms, 375 * ms, 562500 * us, 843750 * us, 1265625 * us, 1898437500 * time.Nanosecond},
			gaps(background.Created, h.poller.times(monitorURL(2))),
			"a job nobody waits on keeps the back-off, and is seen completed only at 5.195s")
		bg, _ := h.tr.Get(background.ID)
		assert.Equal(t, StateCompleted, bg.State)
	})
}

func TestWaitedJobIsPolledHalfwayToThePredictedEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{FirstInterval: 100 * ms, BackoffFactor: 2, MaxInterval: 1600 * ms})
		began := time.Now()
		job := timedJob{start: began, total: 6400 * ms} // percentageComplete rises steadily
		h.poller.time(monitorURL(1), job)
		j := h.add(t, 1)

		got, err := h.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		require.Equal(t, StateCompleted, got.State)
		assert.Equal(t, []time.Duration{
			100 * ms,  // first poll: 1.5625%
			100 * ms,  // no rate yet: FirstInterval; now 3.125%, end predicted at 6.4s
			400 * ms,  // halfway to the end is further than the back-off: the back-off (0.4s)
			800 * ms,  // …
			1600 * ms, // … up to MaxInterval
			1600 * ms, // 3.4s left: half is 1.7s, capped at 1.6s
			900 * ms,  // 1.8s left: half of it
			450 * ms,
			225 * ms,
			112500 * us,
			100 * ms, // 56.25ms would be sooner than FirstInterval
			100 * ms, // the end passes 12.5ms into this gap: seen completed
		}, gaps(j.Created, h.poller.times(monitorURL(1))))
		assert.Equal(t, 87500*us, time.Since(job.end()), "overhead after the job's end, under FirstInterval")
	})
}

func TestWaitPullsInAFarPollAndTheBackoffResumesAfterIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{FirstInterval: 100 * ms, BackoffFactor: 2, MaxInterval: 1600 * ms})
		j := h.add(t, 1) // unscripted: inProgress forever, no progress
		time.Sleep(2 * time.Second)
		// Polled at 0.1, 0.3, 0.7 and 1.5s; by the back-off the next is at 3.1s.

		ctx, cancel := context.WithTimeout(t.Context(), 450*ms) // cp interrupted at 2.45s
		defer cancel()
		_, err := h.tr.Wait(ctx, j.ID)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		time.Sleep(6*time.Second - time.Since(j.Created))

		polls := h.poller.times(monitorURL(1))
		at := make([]time.Duration, len(polls))
		for i, p := range polls {
			at[i] = p.Sub(j.Created)
		}
		assert.Equal(t, []time.Duration{
			100 * ms, 300 * ms, 700 * ms, 1500 * ms, // background
			2000 * ms,                                             // Wait begins: polled at once, not at 3.1s
			2100 * ms, 2200 * ms, 2300 * ms, 2400 * ms, 2500 * ms, // waited (the 2.5s poll was set at 2.4s)
			4100 * ms, 5700 * ms, // the waiter gone, the back-off goes on where it stood
		}, at)
	})
}

func TestWaitedJobRespectsRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{FirstInterval: 100 * ms, BackoffFactor: 2, MaxInterval: time.Second})
		h.poller.script(monitorURL(1),
			step{st: remote.JobStatus{State: remote.JobRunning, Status: "inProgress", RetryAfter: 2 * time.Second}},
			running("inProgress", 0), // no progress: FirstInterval
			completed("NEW1"))
		j := h.add(t, 1)

		got, err := h.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		assert.Equal(t, StateCompleted, got.State)
		assert.Equal(t, []time.Duration{100 * ms, 2 * time.Second, 100 * ms},
			gaps(j.Created, h.poller.times(monitorURL(1))), "Retry-After wins over the waited rule")
	})
}

func TestWaitedJobWithAFailingMonitorBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{FirstInterval: 100 * ms, BackoffFactor: 2, MaxInterval: 1600 * ms})
		boom := errs(errors.New("HTTP 500"))
		h.poller.script(monitorURL(1), boom, boom, boom, boom,
			running("inProgress", 0), running("inProgress", 0), completed("NEW1"))
		j := h.add(t, 1)

		got, err := h.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		assert.Equal(t, StateCompleted, got.State)
		assert.Equal(t, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 100 * ms, 100 * ms},
			gaps(j.Created, h.poller.times(monitorURL(1))),
			"errors back off even while waited on; a good answer brings the waited rule back")
	})
}

func TestProgressPredictsTheEnd(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type reading struct {
		at  time.Duration
		pct float64
	}
	for name, c := range map[string]struct {
		readings []reading
		end      time.Duration // 0: no prediction
	}{
		"none":                     {},
		"one reading":              {readings: []reading{{time.Second, 10}}},
		"no rise":                  {readings: []reading{{time.Second, 10}, {2 * time.Second, 10}}},
		"zero and 100 say nothing": {readings: []reading{{time.Second, 0}, {2 * time.Second, 100}}},
		"steady":                   {readings: []reading{{time.Second, 10}, {2 * time.Second, 20}}, end: 10 * time.Second},
		"rate from the first rising reading": {
			readings: []reading{{time.Second, 0}, {2 * time.Second, 10}, {3 * time.Second, 15}, {4 * time.Second, 20}},
			end:      20 * time.Second, // 5%/s from 2s
		},
		"a fall starts over": {
			readings: []reading{{time.Second, 50}, {2 * time.Second, 10}, {3 * time.Second, 40}},
			end:      5 * time.Second,
		},
		"a crawl is capped": {
			readings: []reading{{0, 1}, {time.Hour, 1.0001}},
			end:      time.Hour + maxPrediction,
		},
	} {
		t.Run(name, func(t *testing.T) {
			var p progress
			for _, r := range c.readings {
				p.observe(at(r.at), r.pct)
			}
			end, ok := p.end()
			if c.end == 0 {
				assert.False(t, ok)
				return
			}
			require.True(t, ok)
			assert.Equal(t, at(c.end), end)
		})
	}
}
