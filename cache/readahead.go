package cache

import "sync"

// Readahead detects sequential reading on one open file handle and sizes the
// range worth prefetching after each read: the window starts at Min on the
// first sequential read, doubles on every further one up to Max, and resets
// to nothing on random access. The fs owns the policy of what to do with the
// range (typically a background Entry.Fetch on its own handle).
//
// A read counts as sequential when it starts within the current window (or
// Min, whichever is larger) of where the previous read ended, in either
// direction: the kernel issues read-ahead requests concurrently, so they may
// arrive slightly out of order. The first read of a handle is sequential when
// it starts at offset 0.
//
// Readahead is safe for concurrent use.
type Readahead struct {
	min, max int64

	mu     sync.Mutex
	next   int64 // guarded by mu; where the previous read ended
	window int64 // guarded by mu; current window, 0 after random access
	seen   bool  // guarded by mu; a read was observed
}

// NewReadahead returns a tracker with the given window bounds; min is raised
// to 1 and max to min when smaller.
func NewReadahead(minWindow, maxWindow int64) *Readahead {
	minWindow = max(minWindow, 1)
	return &Readahead{min: minWindow, max: max(maxWindow, minWindow)}
}

// Next records a read of n bytes at off and returns the range to prefetch
// after it, [off+n, off+n+window); a zero Range means none (random access).
// The caller clamps it to the file size.
func (r *Readahead) Next(off, n int64) Range {
	r.mu.Lock()
	defer r.mu.Unlock()
	slack := max(r.window, r.min)
	sequential := (!r.seen && off == 0) ||
		(r.seen && off >= r.next-slack && off <= r.next+slack)
	r.seen = true
	end := off + max(n, 0)
	if !sequential {
		r.window = 0
		r.next = end
		return Range{}
	}
	if r.window == 0 {
		r.window = r.min
	} else {
		r.window = min(r.window*2, r.max)
	}
	r.next = max(r.next, end)
	return Range{Start: end, End: end + r.window}
}

// Reset forgets the access history (e.g. after the handle's file changed).
func (r *Readahead) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next, r.window, r.seen = 0, 0, false
}
