package cache

import "sync"

// Readahead follows the reads of one open file handle: it tells sequential
// reading from random access, sizes how far ahead of the reader a stream
// may fetch (the window), and owns the stop function of the stream running
// for the handle, if any. The fs owns the policy of what to do with it
// (typically one Stream per sequential run, paced by this Readahead).
//
// The window starts at min on the first sequential read, doubles on every
// further one up to max, and drops to nothing on random access (which also
// stops the handle's stream: the next sequential run starts a new one).
//
// A read counts as sequential when it starts within 8×min of where the
// furthest read of the run ended, in either direction: the kernel issues its
// own read-ahead as several requests at once (up to the mount's
// read_ahead_kb, 4 MiB by default), so they arrive out of order. A forward
// seek shorter than that is taken as part of the run, and the stream
// fetches the bytes skipped; a longer one stops it. The first read of a handle
// is sequential when it starts within 4×min of offset 0 (the kernel's first
// read-ahead requests may arrive before the one at 0). A run is worth a stream
// (Streamable) once it has read min/4 bytes (at most 256 KiB): scattered
// small reads that happen to land near each other never start one.
//
// As a Pace, it lets a stream fetch up to the end of the furthest read plus
// the window. Readahead is safe for concurrent use; it never calls into an
// Entry, so an entry may call Limit while holding its own lock.
type Readahead struct {
	min, max int64

	mu      sync.Mutex
	next    int64         // guarded by mu; where the furthest read of the run ended
	window  int64         // guarded by mu; current window, 0 after random access
	run     int64         // guarded by mu; bytes read in the current sequential run
	seen    bool          // guarded by mu; a read was observed
	changed chan struct{} // guarded by mu; closed (and cleared) when the limit moves
	stop    func()        // guarded by mu; stops the attached stream; nil when none
	gen     uint64        // guarded by mu; identifies the attached stream
}

// NewReadahead returns a tracker with the given window bounds; min is raised
// to 1 and max to min when smaller.
func NewReadahead(minWindow, maxWindow int64) *Readahead {
	minWindow = max(minWindow, 1)
	return &Readahead{min: minWindow, max: max(maxWindow, minWindow)}
}

// Next records a read of n bytes at off and returns the range worth having
// after it, [off+n, off+n+window); a zero Range means none (random access,
// which also stops the attached stream). The caller clamps it to the file
// size.
func (r *Readahead) Next(off, n int64) Range {
	r.mu.Lock()
	defer r.mu.Unlock()
	slack := 8 * r.min
	sequential := (!r.seen && off <= 4*r.min) ||
		(r.seen && off >= r.next-slack && off <= r.next+slack)
	r.seen = true
	end := off + max(n, 0)
	if !sequential {
		r.window = 0
		r.next = end
		r.run = max(n, 0)
		r.stopLocked()
		r.movedLocked()
		return Range{}
	}
	if r.window == 0 {
		r.window = r.min
	} else {
		r.window = min(r.window*2, r.max)
	}
	r.next = max(r.next, end)
	r.run += max(n, 0)
	r.movedLocked()
	return Range{Start: end, End: end + r.window}
}

// Streamable reports whether the current run is sequential and long enough
// to be worth a stream.
func (r *Readahead) Streamable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.window > 0 && r.run >= min(max(r.min/4, 1), 256<<10)
}

// Limit implements Pace: a stream may fetch bytes before the returned
// offset; the channel is closed when the limit may have moved.
func (r *Readahead) Limit() (int64, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.next + r.window, r.changed
}

// Attach records stop as the way to end the handle's stream. It returns
// false (and keeps nothing) when a stream is already attached; otherwise
// the returned token is what Detach takes when that stream ends.
func (r *Readahead) Attach(stop func()) (token uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop != nil {
		return 0, false
	}
	r.gen++
	r.stop = stop
	return r.gen, true
}

// Detach forgets the stream of token, which has ended; a later stream's
// attachment is left alone.
func (r *Readahead) Detach(token uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen == token {
		r.stop = nil
	}
}

// Streaming reports whether a stream is attached.
func (r *Readahead) Streaming() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stop != nil
}

// Stop stops the attached stream, if any (the handle is released, or its
// file changed).
func (r *Readahead) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
}

// Reset forgets the access history (e.g. after the handle's file changed)
// and stops the attached stream.
func (r *Readahead) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next, r.window, r.run, r.seen = 0, 0, 0, false
	r.stopLocked()
	r.movedLocked()
}

func (r *Readahead) stopLocked() {
	if r.stop != nil {
		r.stop()
		r.stop = nil
	}
}

func (r *Readahead) movedLocked() {
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}
