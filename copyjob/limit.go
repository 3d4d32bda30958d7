package copyjob

import (
	"context"
	"time"
)

// The service throttles a client, not a request: a 429 or 503 with a
// Retry-After on any request means "nothing for that long". The tracker keeps
// one pause for everything it paces, the polls and the starts of new copies:
// a throttled poll sets it, and so does a caller that saw one elsewhere
// (Pause). New copies are paced by WaitStartSlot, so that a tree of
// thousands of files copied one file at a time turns into a steady stream of
// POST /copy rather than a burst that trips the service's throttling.

// Pause holds every poll and every start slot for d from now (a Retry-After
// the caller received, e.g. on POST /copy). A longer pause already in force
// stays.
func (t *Tracker) Pause(d time.Duration) {
	if d <= 0 {
		return
	}
	until := time.Now().Add(d)
	t.mu.Lock()
	if until.After(t.pausedUntil) {
		t.pausedUntil = until
		t.starts.pause(until)
	}
	t.mu.Unlock()
	nudge(t.wake)
}

// pauseEnd returns the end of the current pause (in the past when none).
func (t *Tracker) pauseEnd() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pausedUntil
}

// StartCost is what one POST /copy costs of the service's request budget
// (resource units: a write costs 2, docs/graph-contract.md §7).
const StartCost = 2

// WaitStartSlot blocks until the caller may start a new copy (POST /copy):
// starts are paced at Config.MaxStartsPerSecond on average with bursts of
// up to Config.StartBurst, and none is started during a Pause (a throttled
// poll, or Pause). When Config.Budget reports the service's budget, the
// starts are also spread evenly until its reset so that they use at most
// half of the units left (the rest is for everything else the mount does);
// with nothing left for them, they wait for the reset. Call it before each
// StartCopy. It returns ctx.Err() when ctx ends first (the slot is given
// back) and ErrClosed once the tracker is closed.
func (t *Tracker) WaitStartSlot(ctx context.Context) error {
	var budget startBudget
	if t.cfg.Budget != nil {
		budget.remaining, budget.reset, budget.ok = t.cfg.Budget()
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	at := t.starts.reserve(time.Now())
	at = t.starts.spread(at, budget)
	t.mu.Unlock()
	for {
		t.mu.Lock()
		if t.pausedUntil.After(at) { // a pause that began after the reservation
			at = t.pausedUntil
		}
		t.mu.Unlock()
		d := time.Until(at)
		if d <= 0 {
			return nil
		}
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			t.mu.Lock()
			t.starts.giveBack()
			t.mu.Unlock()
			return ctx.Err()
		case <-t.closing:
			timer.Stop()
			return ErrClosed
		}
	}
}

// startBudget is the service's budget as WaitStartSlot saw it.
type startBudget struct {
	remaining int
	reset     time.Time
	ok        bool
}

// spread returns the slot for a start the bucket allows at at, moved later
// if the budget asks: with the service's budget reported, starts are at
// least (reset − at) / (remaining / 2 / StartCost) apart, and wait for the
// reset when that share is below one start.
func (l *startLimiter) spread(at time.Time, b startBudget) time.Time {
	if !b.ok || !b.reset.After(at) {
		return at
	}
	if l.spreadNext.After(at) {
		at = l.spreadNext
	}
	share := float64(b.remaining) / 2 / StartCost
	if share < 1 {
		at = b.reset
		l.spreadNext = at
		return at
	}
	interval := time.Duration(float64(b.reset.Sub(at)) / share)
	l.spreadNext = at.Add(interval)
	return at
}

// startLimiter is a token bucket whose tokens may go negative: each caller
// reserves the next slot at once and then waits for it, so waiters are
// served in order at the bucket's rate. Guarded by Tracker.mu.
type startLimiter struct {
	rate  float64 // slots per second; <= 0: unbounded
	burst float64
	// tokens available at last; below zero, slots reserved ahead.
	tokens float64
	// last is when tokens was last brought up to date; after a Pause, the end
	// of the pause (no tokens accrue during it). Zero before the first use.
	last time.Time
	// spreadNext is the earliest next slot while the service's budget
	// spreads the starts (spread).
	spreadNext time.Time
}

// reserve takes one slot and returns when it may be used.
func (l *startLimiter) reserve(now time.Time) time.Time {
	if l.rate <= 0 {
		return now
	}
	if l.last.IsZero() {
		l.tokens, l.last = l.burst, now
	}
	base := now
	if l.last.After(now) {
		base = l.last // paused: nothing accrues before the pause ends
	} else {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
		l.last = now
	}
	l.tokens--
	if l.tokens >= 0 {
		return base
	}
	return base.Add(time.Duration(-l.tokens / l.rate * float64(time.Second)))
}

// giveBack returns a reserved slot that will not be used.
func (l *startLimiter) giveBack() {
	if l.rate > 0 {
		l.tokens = min(l.burst, l.tokens+1)
	}
}

// pause makes the bucket accrue nothing until until, and start empty then:
// starts resume at the steady rate, not with a burst the service has just
// said it does not want.
func (l *startLimiter) pause(until time.Time) {
	if l.rate <= 0 {
		return
	}
	if l.last.IsZero() || until.After(l.last) {
		l.tokens = min(l.tokens, 0)
		l.last = until
	}
}
