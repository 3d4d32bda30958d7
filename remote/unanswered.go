package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"
)

// Finding a service that answers nothing. A network that drops packets (a
// train in a tunnel, a captive Wi-Fi, a dead mobile link behind a NAT that
// still holds the connection) refuses no connection: requests are sent and
// wait for a reply that never comes. Waiting time alone proves nothing, as
// a request may legitimately wait long for its reply's header: a 40 MiB
// upload fragment on a 1 Mbit/s uplink is still being sent after minutes,
// and the service takes a second or two over some calls. So the age of a
// waiting request is only a suspicion; the proof is a small separate
// request on a fresh connection (CheckReachable) that gets no answer
// either. A fresh connection, because the one a waiting request uses may
// be the dead one, or (HTTP/2) carry the suspect's body ahead of the check.
//
// The thresholds follow the latency the link has shown (the median reply
// time of the last small requests, checks and probes included):
//
//   - a request is suspect once it has shown no sign of life (sent, or
//     bytes of its body taken by the transport) for suspectAfter =
//     4 × latency, within [250 ms, 2 s];
//   - the check then gets checkTimeout = 4 × latency, within [700 ms, 3 s],
//     to answer.
//
// The check also gets at least twice what the slowest of the last three
// fresh connections took to answer (checks and probes, handshakes
// included), so that a link that is slow to open connections is not taken
// for gone again and again.
//
// On a good link (a latency of 20–150 ms) the first call into a silent
// network fails within about a second, where it took 6–9 s; on a slow
// mobile link (500 ms) within 4 s, so that a link that is merely slow is
// not taken for gone. A check also counts as answered when the body of a
// request sent before it kept moving meanwhile (the connection
// acknowledges bytes: the path is alive). A mistaken verdict costs little:
// the waiting requests fail with ErrOffline (uploads go to the journal,
// reads fail with EIO) and the owner's prober brings the link back at its
// next probe (bounded to probeTimeout, generous). A link that suddenly
// becomes much slower than it was (a train's Wi-Fi falling back to a thin
// mobile link) may be taken for gone once: what that probe took then sets
// the next checks' patience.
//
// Once a check found the service answering, the requests that were already
// suspect are not checked again before recheckAfter (a long upload is
// not probed every second); a request that becomes suspect later is, a
// second after the last check at the earliest (minCheckGap: a busy mount
// with many slow replies sends one check a second at most).
//
// A reply's body is watched the same way while it is read (watchedBody):
// a read that has waited suspectAfter for bytes makes the service
// checked, so a download cut mid-stream by a silent network fails too.

// Thresholds (see above).
const (
	suspectMin    = 250 * time.Millisecond
	suspectMax    = 2 * time.Second
	checkMin      = 700 * time.Millisecond
	checkMax      = probeTimeout
	latencyFactor = 4
	recheckAfter  = 5 * time.Second
	// minCheckGap spaces checks on a busy mount (many slow replies): one a
	// second at most, a small cost to the service.
	minCheckGap = time.Second
	// smallBody: a request with at most this much body is a latency
	// sample (its reply time is round trips and the service's work).
	smallBody = 64 << 10
	// latencyWindow is how many recent samples the latency is the
	// median of: one slow call of the service does not move it.
	latencyWindow = 9
)

// latencySamples is a ring of the last reply times of small requests.
type latencySamples struct {
	d [latencyWindow]time.Duration
	n int // samples recorded (the ring is full when n >= latencyWindow)
}

func (s *latencySamples) add(d time.Duration) {
	s.d[s.n%latencyWindow] = d
	s.n++
}

// median returns the median sample, 0 without any.
func (s *latencySamples) median() time.Duration {
	k := min(s.n, latencyWindow)
	if k == 0 {
		return 0
	}
	v := slices.Clone(s.d[:k])
	slices.Sort(v)
	return v[k/2]
}

// freshSamples are the answer times of the last reachability checks and
// probes, each on a connection of its own (handshakes included).
type freshSamples struct {
	d [3]time.Duration
	n int
}

func (s *freshSamples) add(d time.Duration) {
	s.d[s.n%len(s.d)] = d
	s.n++
}

// max returns the slowest, 0 without any.
func (s *freshSamples) max() time.Duration {
	return slices.Max(s.d[:]) // unset ones are 0
}

// scaled returns latencyFactor × latency, within [lo, hi].
func scaled(latency, lo, hi time.Duration) time.Duration {
	return min(max(latencyFactor*latency, lo), hi)
}

// suspectAfter is how long a request may show no sign of life before the
// service is checked.
func (l *Link) suspectAfter() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return scaled(l.latency.median(), suspectMin, suspectMax)
}

// checkTimeout is how long a reachability check waits for an answer: 4 ×
// the link's latency, and at least twice what the slowest of the last
// fresh connections (checks, probes) took to answer, within bounds.
func (l *Link) checkTimeout() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return min(max(scaled(l.latency.median(), checkMin, checkMax), 2*l.fresh.max()), checkMax)
}

// answered records that a check or probe begun at start got an answer
// (a latency sample when sample is set): the requests suspect before start
// are cleared until recheckAfter.
func (l *Link) answered(start time.Time, sample bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sample {
		d := time.Since(start)
		l.latency.add(d)
		l.fresh.add(d)
	}
	if start.After(l.lastAnswer) {
		l.lastAnswer = start
	}
}

// movedSince reports whether a waiting request sent before t took body
// bytes after t.
func (l *Link) movedSince(t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.waiting {
		if w.sent.Before(t) && w.active.Load() > t.UnixNano() {
			return true
		}
	}
	return false
}

// nextCheck returns when the service must next be checked, and false when
// no request waits.
func (l *Link) nextCheck() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	suspect := scaled(l.latency.median(), suspectMin, suspectMax)
	var next time.Time
	now := time.Now()
	for _, w := range l.waiting {
		due := time.Unix(0, w.active.Load()).Add(suspect)
		if w.reading {
			// Suspect once its reader has waited for bytes that long;
			// while it does not wait, looked at again in a while.
			b := w.blocked.Load()
			if b == 0 {
				due = now.Add(suspect)
			} else if t := time.Unix(0, b).Add(suspect); t.After(due) {
				due = t
			}
		}
		if !due.After(l.lastAnswer) {
			due = l.lastAnswer.Add(recheckAfter)
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	if gap := l.lastCheck.Add(minCheckGap); !next.IsZero() && next.Before(gap) {
		next = gap
	}
	return next, !next.IsZero()
}

// checking records that a check begins at start.
func (l *Link) checking(start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastCheck = start
}

// kicked returns the channel a request starting to wait signals.
func (l *Link) kicked() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kickLocked()
}

// WatchUnanswered runs until ctx ends: while the link is up, it checks
// that the service answers (CheckReachable) whenever a request has waited
// suspiciously long for its reply (see the top of this file), so that a
// silent network takes the link down within about a second instead of
// leaving every call to wait for the transport's timeouts. The owner of a
// Client that detects offline runs it (fs: the prober); it does nothing
// for a Client that does not.
func (c *Client) WatchUnanswered(ctx context.Context) {
	if !c.detectOffline {
		return
	}
	l := c.link
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		kick, changed := l.kicked(), l.Changed()
		var wake <-chan time.Time
		if !l.State().Offline {
			if due, ok := l.nextCheck(); ok {
				d := time.Until(due)
				if d <= 0 {
					if err := c.CheckReachable(ctx); err != nil && ctx.Err() != nil {
						return
					}
					continue
				}
				timer.Reset(d)
				wake = timer.C
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-changed:
		case <-wake:
		}
		timer.Stop()
	}
}

// watchedBody is a reply's body, watched while it is read: a read that
// waits for bytes is a request waiting for an answer (nextCheck), bytes
// that come are signs of life, and a read cut because the link went down
// fails with ErrOffline. Close (or the body's end) stops the watch.
type watchedBody struct {
	io.ReadCloser
	link *Link
	id   uint64
	w    *waitingRequest
	ctx  context.Context // the request's, cancelled with ErrOffline as the link goes down
	// cancel releases ctx once the body is done with.
	cancel context.CancelCauseFunc
	op     string
	done   atomic.Bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.w.blocked.Store(time.Now().UnixNano())
	n, err := b.ReadCloser.Read(p)
	b.w.blocked.Store(0)
	if n > 0 {
		b.w.active.Store(time.Now().UnixNano())
	}
	if err != nil {
		b.stop()
		if errors.Is(context.Cause(b.ctx), ErrOffline) && !errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: %s: the reply stopped coming: %w", ErrOffline, b.op, err)
		}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.ReadCloser.Close()
	b.stop()
	b.cancel(nil)
	return err
}

// stop ends the watch (the body ended, failed or was closed).
func (b *watchedBody) stop() {
	if b.done.CompareAndSwap(false, true) {
		b.link.untrack(b.id)
	}
}

// progressReader notes when the transport takes bytes of a request's body.
type progressReader struct {
	r io.Reader
	w *waitingRequest
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.active.Store(time.Now().UnixNano())
	}
	return n, err
}
