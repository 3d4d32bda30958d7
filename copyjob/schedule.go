package copyjob

import (
	"math"
	"time"
)

// schedule is a job's place in the poll schedule. Owned by the Run goroutine.
//
// When the next poll is due (due):
//   - A job nobody waits on backs off: polled + delay, where delay starts at
//     FirstInterval and grows by BackoffFactor after every poll, up to
//     MaxInterval. Most jobs are background (xattr) copies: nobody is blocked
//     on them, and a few seconds' lag costs nothing.
//   - A job someone Waits on (cp in copy_file_range) is polled sooner, since
//     the gap between its end and the next poll is added to the caller's
//     time: halfway to the end predicted from its percentageComplete readings,
//     never sooner than FirstInterval after the last poll and never later than
//     the back-off would. Without a prediction (no progress reported yet) it
//     is polled every FirstInterval. So, while the progress is steady, the
//     poll that sees the end comes at most FirstInterval after it, and a long
//     job costs a handful of extra polls near its end (not one every
//     FirstInterval throughout). Halving, rather than aiming just past the
//     predicted end, keeps a job that speeds up from finishing long before
//     its next poll.
//   - A monitor that errs backs off, waited on or not: errors are not
//     progress, and a waiter does not make a failing monitor worth hammering.
//   - Never before a Retry-After the last answer carried (notBefore).
//
// The global rate bound and a throttled answer's pause (Run's nextSlot)
// apply on top, to every job alike.
type schedule struct {
	next  time.Time     // when the job is due
	delay time.Duration // the back-off delay last used; grows after every poll
	index int           // position in the queue; -1 when not queued (in flight, or finished)

	polled    time.Time // when the last poll's outcome was applied (zero before the first)
	notBefore time.Time // the last answer's Retry-After: no poll before this
	progress  progress  // percentageComplete readings, for waited jobs

	monitorAt time.Time // when a poll of the monitor was last applied (confirm.go)

	errStreak  int       // failed polls in a row (throttling excluded)
	errSince   time.Time // when the current streak began
	goneStreak int       // "monitor gone" answers since the last good answer
}

// due returns when the job should next be polled, after its last poll
// (s.polled), by the rules above. waited says whether a Wait is in progress
// on the job.
func (s *schedule) due(first time.Duration, waited bool) time.Time {
	d := s.delay
	if waited && s.errStreak == 0 {
		d = first
		if end, ok := s.progress.end(); ok {
			d = min(max(end.Sub(s.polled)/2, first), s.delay)
		}
	}
	next := s.polled.Add(d)
	if s.notBefore.After(next) {
		next = s.notBefore
	}
	return next
}

// progress holds a job's percentageComplete readings: the first of the
// current run of rising readings, and the latest. The rate between them
// predicts the end. A reading below the latest (the service restarted its
// count) starts a new run; readings of 0 (not started) and 100 say nothing
// about the rate and are ignored.
type progress struct {
	fromAt, lastAt   time.Time // zero before the first reading
	fromPct, lastPct float64
}

// observe records a reading of pct at time at.
func (p *progress) observe(at time.Time, pct float64) {
	if pct <= 0 || pct >= 100 {
		return
	}
	if p.fromAt.IsZero() || pct < p.lastPct {
		p.fromAt, p.fromPct = at, pct
	}
	p.lastAt, p.lastPct = at, pct
}

// maxPrediction caps how far ahead end predicts (a rate near zero), which
// also keeps the arithmetic inside time.Duration.
const maxPrediction = 24 * time.Hour

// end returns when the job is predicted to reach 100%, extrapolating the
// rate from the first to the latest reading of the current run; false when
// there is no rate yet (fewer than two readings, or no rise between them).
func (p progress) end() (time.Time, bool) {
	span := p.lastAt.Sub(p.fromAt)
	if p.fromAt.IsZero() || span <= 0 || p.lastPct <= p.fromPct {
		return time.Time{}, false
	}
	left := float64(span) * (100 - p.lastPct) / (p.lastPct - p.fromPct)
	left = math.Min(left, float64(maxPrediction))
	return p.lastAt.Add(time.Duration(left)), true
}

// queue is a min-heap of jobs by due time (then id, so ties go oldest first).
type queue []*tracked

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].sched.next.Equal(q[j].sched.next) {
		return q[i].sched.next.Before(q[j].sched.next)
	}
	return q[i].id < q[j].id
}
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].sched.index, q[j].sched.index = i, j
}
func (q *queue) Push(x any) {
	e := x.(*tracked)
	e.sched.index = len(*q)
	*q = append(*q, e)
}
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	e.sched.index = -1
	return e
}

// holds reports whether e is queued in q (not in flight, not finished, and
// not a leftover index from a queue of an earlier Run).
func (q queue) holds(e *tracked) bool {
	i := e.sched.index
	return i >= 0 && i < len(q) && q[i] == e
}
