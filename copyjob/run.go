package copyjob

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
)

type pollResult struct {
	e   *tracked
	st  *remote.JobStatus // nil when err is set
	err error
}

// Run polls the tracked jobs until ctx is done or Close is called, and hands
// finished jobs to OnDone. It returns nil after Close, ctx.Err() when ctx
// ended it, ErrRunning if another Run is active and ErrClosed after Close.
// Polls in flight when Run stops are cancelled; their jobs are polled again by
// the next Run (or the next Tracker, from disk). Run may be called again after
// it returned because ctx ended.
func (t *Tracker) Run(ctx context.Context) error {
	t.mu.Lock()
	switch {
	case t.closed:
		t.mu.Unlock()
		return ErrClosed
	case t.running:
		t.mu.Unlock()
		return ErrRunning
	}
	t.running = true
	runDone := make(chan struct{})
	t.runDone = runDone
	q := &queue{}
	for _, e := range t.jobs {
		if e.final == nil && !e.job.State.Terminal() {
			e.sched.index = -1
			heap.Push(q, e)
		}
	}
	t.incoming = nil // all pushed above; the notifier finds t.pending on its own
	t.mu.Unlock()

	parent := ctx
	ctx, cancel := context.WithCancel(parent)
	var notifier sync.WaitGroup
	notifier.Go(func() { t.notify(ctx) })
	t.loop(ctx, q)
	cancel()
	notifier.Wait()
	if err := t.save(false); err != nil {
		t.log.Error("copy jobs not saved on stop", "err", err)
	}

	t.mu.Lock()
	t.running = false
	closed := t.closed
	t.mu.Unlock()
	close(runDone)
	if closed {
		return nil
	}
	return parent.Err()
}

// loop is the scheduler: it starts due polls within the rate and concurrency
// bounds, applies their results, writes debounced progress, and sleeps until
// the next thing to do.
func (t *Tracker) loop(ctx context.Context, q *queue) {
	pollCtx, cancelPolls := context.WithCancel(ctx)
	var polls sync.WaitGroup
	defer polls.Wait()  // runs second: in-flight polls have returned
	defer cancelPolls() // runs first

	results := make(chan pollResult, t.cfg.MaxConcurrentPolls) // never blocks a poll goroutine
	listed := make(chan listResult, t.cfg.MaxConcurrentPolls)
	spacing := t.cfg.pollSpacing()
	var nextSlot time.Time // no poll may start before this (rate bound, global Retry-After)
	inflight := 0
	for {
		t.takeIncoming(q)
		if p := t.pauseEnd(); p.After(nextSlot) {
			nextSlot = p
		}
		now := time.Now()
		for inflight < t.cfg.MaxConcurrentPolls && q.Len() > 0 {
			e := (*q)[0]
			if e.sched.next.After(now) || now.Before(nextSlot) {
				break
			}
			heap.Pop(q)
			inflight++
			if spacing > 0 {
				nextSlot = now.Add(spacing)
			}
			if batch := t.takeListBatch(q, e, now, t.cfg.FirstInterval); batch != nil {
				polls.Go(func() { listed <- t.listOnce(pollCtx, batch) })
				continue
			}
			polls.Go(func() {
				st, err := t.pollOnce(pollCtx, e.monitorURL)
				results <- pollResult{e: e, st: st, err: err}
			})
		}

		var wake time.Time
		if inflight < t.cfg.MaxConcurrentPolls && q.Len() > 0 {
			wake = (*q)[0].sched.next
			if nextSlot.After(wake) {
				wake = nextSlot
			}
		}
		if due, ok := t.saveDue(); ok && (wake.IsZero() || due.Before(wake)) {
			wake = due
		}
		var timer *time.Timer
		var timerC <-chan time.Time
		if !wake.IsZero() {
			timer = time.NewTimer(wake.Sub(now))
			timerC = timer.C
		}

		select {
		case <-ctx.Done():
		case <-t.closing:
		case r := <-results:
			inflight--
			if pause := t.apply(r, q); pause > 0 {
				t.Pause(pause)
			}
		case r := <-listed:
			inflight--
			if pause := t.applyListing(r, q); pause > 0 {
				t.Pause(pause)
			}
		case <-timerC:
		case <-t.wake:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil || isClosed(t.closing) {
			return
		}
		if due, ok := t.saveDue(); ok && !time.Now().Before(due) {
			if err := t.save(false); err != nil {
				t.log.Warn("copy jobs progress not saved; will retry", "err", err)
			}
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (t *Tracker) pollOnce(ctx context.Context, monitorURL string) (*remote.JobStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.PollTimeout)
	defer cancel()
	st, err := t.cfg.Poller.Monitor(ctx, monitorURL)
	if err == nil && st == nil {
		err = errors.New("the monitor poll returned no status")
	}
	return st, err
}

// takeIncoming moves jobs added since the last look into the schedule, and
// pulls in the next poll of jobs that a Wait began on since: a job scheduled
// by the back-off (up to MaxInterval ahead) is now due by the waited rule
// (schedule.due). A job in flight gets that rule when its answer is applied;
// one not polled yet is already due within FirstInterval of its Add.
func (t *Tracker) takeIncoming(q *queue) {
	t.mu.Lock()
	in, hurried := t.incoming, t.hurried
	t.incoming, t.hurried = nil, nil
	t.mu.Unlock()
	for _, e := range in {
		heap.Push(q, e)
	}
	for _, e := range hurried {
		s := &e.sched
		if !q.holds(e) || s.polled.IsZero() {
			continue
		}
		if next := s.due(t.cfg.FirstInterval, true); next.Before(s.next) {
			s.next = next
			heap.Fix(q, s.index)
		}
	}
}

// apply records one poll's outcome: the job is rescheduled, or finished
// (written to disk, then queued for OnDone). It returns how long all polling
// must pause (a throttled answer), or 0.
func (t *Tracker) apply(r pollResult, q *queue) (pause time.Duration) {
	e, s := r.e, &r.e.sched
	now := time.Now()
	s.monitorAt = now // the monitor has been asked (or a listing confirmed the job)

	t.mu.Lock()
	j := e.job // work on a copy; e.job changes only if the job goes on
	j.Polls++
	j.Updated = now
	visible := false
	var retryAfter time.Duration
	failure := pollFailure{}
	if r.err != nil {
		failure = classifyPollError(r.err)
	}
	switch {
	case r.err == nil:
		s.errStreak, s.goneStreak = 0, 0
		st := r.st
		retryAfter = st.RetryAfter
		switch st.State {
		case remote.JobCompleted:
			j.State, j.Raw, j.Percent = StateCompleted, st.Status, 100
			j.ResourceID, j.ResourceURL = st.ResourceID, st.ResourceURL
		case remote.JobFailed:
			j.State, j.Raw = StateFailed, st.Status
			j.Error = serviceError(st, e.monitorURL)
		default:
			pct := percent(st.Percent)
			visible = j.State != StateRunning || j.Raw != st.Status || j.Percent != pct
			j.State, j.Raw, j.Percent = StateRunning, st.Status, pct
			s.progress.observe(now, pct)
		}
	case failure.throttle > 0:
		retryAfter, pause = failure.throttle, failure.throttle
		t.log.Info("copy monitor throttled; pausing all polls", "job", e.id, "retry_after", failure.throttle)
	default:
		if s.errStreak == 0 {
			s.errSince = now
		}
		s.errStreak++
		if failure.gone {
			s.goneStreak++
		}
		msg := scrub(r.err.Error(), e.monitorURL)
		t.log.Debug("copy monitor poll failed", "job", e.id, "gone", failure.gone, "streak", s.errStreak, "err", msg)
		switch {
		case failure.gone && s.goneStreak >= t.cfg.MaxGonePolls:
			j.State = StateFailed
			j.Error = &JobError{Code: CodeMonitorGone, Message: fmt.Sprintf(
				"the copy monitor no longer knows this job (%d answers in a row: %s); the copy's outcome is unknown, look for the destination",
				s.goneStreak, msg)}
		case s.errStreak >= t.cfg.MaxConsecutiveErrors && now.Sub(s.errSince) >= t.cfg.MaxErrorDuration:
			j.State = StateFailed
			j.Error = &JobError{Code: CodeMonitorUnreachable, Message: fmt.Sprintf(
				"gave up polling the copy monitor after %d failed polls over %s; last error: %s",
				s.errStreak, now.Sub(s.errSince).Round(time.Second), msg)}
		}
	}

	if !j.State.Terminal() {
		e.job = j
		if visible {
			t.changedLocked(e, now)
		}
		waited := e.waiters > 0
		t.mu.Unlock()
		s.delay = min(time.Duration(float64(s.delay)*t.cfg.BackoffFactor), t.cfg.MaxInterval)
		s.polled, s.notBefore = now, now.Add(retryAfter)
		s.next = s.due(t.cfg.FirstInterval, waited)
		heap.Push(q, e)
		return pause
	}

	// Terminal: durable first, then OnDone, then visible (see Config.OnDone).
	j.Finished = now
	j.MonitorURL = ""
	e.final = &j
	t.changedLocked(e, now) // persist-worthy; observers still see e.job
	t.mu.Unlock()
	if err := t.save(false); err != nil {
		t.log.Error("copy job outcome not saved; notifying anyway", "job", j.ID, "err", err)
	}
	t.mu.Lock()
	t.pending = append(t.pending, e)
	t.mu.Unlock()
	nudge(t.notifyWake)
	return pause
}

// percent is a reported percentageComplete kept within 0..100.
func percent(p float64) float64 {
	if math.IsNaN(p) {
		return 0
	}
	return min(max(p, 0), 100)
}

// serviceError is the JobError for a job the service reported as failed.
func serviceError(st *remote.JobStatus, monitorURL string) *JobError {
	e := &JobError{}
	if st.Err != nil {
		e.Code, e.Message = st.Err.Code, scrub(st.Err.Message, monitorURL)
	}
	if e.Code == "" {
		e.Code = CodeCopyFailed
		if st.Status != "" && st.Status != "failed" {
			e.Code = st.Status // cancelled, deleteFailed
		}
	}
	if e.Message == "" {
		e.Message = "the service reported the copy as " + firstNonEmpty(st.Status, "failed")
	}
	return e
}

// notify calls OnDone for finished jobs, one at a time in finishing order, and
// then makes each visible as terminal. It stops, leaving the rest pending,
// when ctx ends or the tracker closes.
func (t *Tracker) notify(ctx context.Context) {
	for {
		t.mu.Lock()
		if len(t.pending) == 0 {
			t.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.closing:
				return
			case <-t.notifyWake:
				continue
			}
		}
		if ctx.Err() != nil || isClosed(t.closing) {
			t.mu.Unlock()
			return
		}
		e := t.pending[0]
		final := *e.final
		t.mu.Unlock()
		if t.cfg.OnDone != nil {
			t.cfg.OnDone(final)
		}
		t.publish(e)
	}
}

// publish makes a notified job terminal for everyone and moves it to history.
func (t *Tracker) publish(e *tracked) {
	t.mu.Lock()
	t.pending = t.pending[1:] // e: notify is the only consumer, and takes the front
	e.job = *e.final
	e.final = nil
	close(e.done)
	t.history = append(t.history, e)
	t.trimHistoryLocked()
	t.changedLocked(e, time.Now())
	j := e.job
	t.mu.Unlock()
	nudge(t.wake) // the loop writes the notified flag, debounced

	attrs := append(jobAttrs(j), "state", j.State, "polls", j.Polls)
	if j.Error != nil {
		t.log.Warn("copy job failed", append(attrs, "code", j.Error.Code, "message", j.Error.Message)...)
		return
	}
	t.log.Info("copy job completed", append(attrs, "resource_id", j.ResourceID)...)
}
