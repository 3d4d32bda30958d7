package copyjob

import "time"

// Clock is the tracker's source of time: job timestamps, ids, the poll
// schedule and the rate limiter all read it. The default is the real clock.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once, d from now (at once if d <= 0).
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the tracker uses.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

var _ Clock = RealClock{}

// RealClock is the wall clock, through package time.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer returns a *time.Timer in the Timer interface.
func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }
