package cache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// FetchFunc downloads bytes [off, off+n) of the item and streams them, in
// order, to w. It must write exactly those bytes: n of them unless it fails,
// and the ones at off (a download that ignored the Range header must be
// caught by fetch, e.g. by checking for 206 and Content-Range). A write error
// from w (entry dropped, disk full) must stop it. It receives the context of
// the Fetch that started it. Writing more than n bytes is treated as a broken
// fetch: the whole entry is discarded.
type FetchFunc func(ctx context.Context, off, n int64, w io.Writer) error

// cachedVersion is the shared state of one cached version of an item; handles
// (*Entry) point to it.
type cachedVersion struct {
	c    *Content
	key  Key
	size int64
	base string // data file is base+".data", sidecar base+".ranges"

	// Guarded by c.mu.
	refs      int           // open handles
	indexed   bool          // in c.byID; false once dropped
	idleElem  *list.Element // position in c.idle while refs == 0
	accounted int64         // present bytes counted in c.used

	// persistMu serialises sidecar writes with the removal of the files.
	persistMu sync.Mutex

	mu       sync.Mutex
	f        *os.File      // guarded by mu; open while refs > 0
	mapped   []byte        // guarded by mu; f mapped read-only for Spans, from the first until refs == 0
	present  RangeSet      // guarded by mu; bytes valid in the data file
	verified bool          // guarded by mu
	gen      uint64        // guarded by mu; bumped on every change to present/verified
	savedGen uint64        // guarded by mu; gen last written to the sidecar
	flights  []*flight     // guarded by mu; fetches in progress, disjoint ranges
	notify   chan struct{} // guarded by mu; closed (and cleared) on every change
	gone     error         // guarded by mu; non-nil once dropped or closed
	waiters  int           // guarded by mu; Fetch calls waiting on others' flights (read by tests)
}

// flight is one FetchFunc call in progress, for a range no other flight
// covers. Other Fetch calls that need bytes in it wait instead of fetching.
type flight struct {
	r      Range                   // claimed bytes; a stream's End grows as it is paced on
	pace   Pace                    // non-nil for a stream: it may claim further, up to pace's limit
	cancel context.CancelCauseFunc // cancels the fetch (entry dropped)
	// Set under entry.mu when the fetch returns.
	finished  bool
	err       error
	abandoned bool // the fetcher's own ctx ended: waiters retry rather than fail
}

func (e *cachedVersion) dataPath() string    { return e.base + dataExt }
func (e *cachedVersion) sidecarPath() string { return e.base + sidecarExt }

// openFile reopens the data file of an idle entry. Caller holds c.mu.
func (e *cachedVersion) openFile() error {
	f, err := os.OpenFile(e.dataPath(), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != e.size {
		_ = f.Close()
		return fmt.Errorf("data file changed size or is unreadable (%v)", err)
	}
	e.mu.Lock()
	e.f = f
	e.mu.Unlock()
	return nil
}

func (e *cachedVersion) dirty() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.gen != e.savedGen
}

// failLocked makes e unusable with cause and wakes everyone waiting on it.
func (e *cachedVersion) failLocked(cause error) {
	if e.gone == nil {
		e.gone = cause
	}
	for _, fl := range e.flights {
		fl.cancel(cause)
	}
	e.broadcastLocked()
}

func (e *cachedVersion) waitChanLocked() <-chan struct{} {
	if e.notify == nil {
		e.notify = make(chan struct{})
	}
	return e.notify
}

func (e *cachedVersion) broadcastLocked() {
	if e.notify != nil {
		close(e.notify)
		e.notify = nil
	}
}

// Entry is one open handle on a cached file version, returned by
// Content.Open. Several handles may share an entry; the entry stays pinned
// (never evicted) until all are released. Methods are safe for concurrent
// use, but Release must be called once every other call on the handle has
// returned (a background read-ahead holds its own handle, or is waited for).
type Entry struct {
	e        *cachedVersion
	released atomic.Bool
}

// Key returns the (item id, cTag) of the entry.
func (h *Entry) Key() Key { return h.e.key }

// Size returns the item size the entry was opened with.
func (h *Entry) Size() int64 { return h.e.size }

// Present reports whether [off, off+n) (clamped to the size) is cached.
func (h *Entry) Present(off, n int64) bool {
	e := h.e
	off, end := clamp(off, n, e.size)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.gone == nil && e.present.Contains(off, end-off)
}

// Covered returns the number of bytes cached.
func (h *Entry) Covered() int64 {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	return h.e.present.Covered()
}

// Complete reports whether every byte of the file is cached.
func (h *Entry) Complete() bool {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	return h.e.present.Covered() == h.e.size
}

// Verified reports whether MarkVerified (or a passing Verify) was called on
// this version, in this run or a previous one.
func (h *Entry) Verified() bool {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	return h.e.verified
}

// Fetch makes sure bytes [off, off+length) (clamped to the size) are cached,
// calling fetch only for the sub-ranges that are neither present nor being
// fetched by another caller. Bytes are marked present as fetch writes them,
// so a concurrent Fetch waiting on part of this range returns as soon as its
// own part has arrived. Waiting honours ctx; fetch receives ctx too.
//
// If a fetch this call depends on fails, the error is returned to every caller
// waiting for it, and the bytes written before the failure stay present. If
// it was abandoned because its caller's ctx ended, the waiters fetch the
// remainder themselves instead.
//
// Each missing gap is fetched with one call, however long: the caller bounds
// the range it asks for (the read plus the read-ahead window), which also
// bounds how long another reader may wait behind it.
func (h *Entry) Fetch(ctx context.Context, off, length int64, fetch FetchFunc) error {
	if h.released.Load() {
		return ErrReleased
	}
	if off < 0 || length < 0 {
		return fmt.Errorf("cache: invalid range off=%d length=%d", off, length)
	}
	e := h.e
	off, end := clamp(off, length, e.size)
	var deps []*flight // flights a previous round waited for
	for {
		e.mu.Lock()
		if e.gone != nil {
			e.mu.Unlock()
			return e.gone
		}
		missing := e.present.Missing(off, end-off)
		if len(missing) == 0 {
			e.mu.Unlock()
			return nil
		}
		for _, d := range deps {
			if d.finished && d.err != nil && !d.abandoned {
				e.mu.Unlock()
				return d.err
			}
		}
		claim, waitFor := e.planLocked(missing)
		if claim.Len() == 0 {
			deps = waitFor
			wake := e.waitChanLocked()
			e.waiters++
			e.mu.Unlock()
			var err error
			select {
			case <-ctx.Done():
				err = ctx.Err()
			case <-wake:
			}
			e.mu.Lock()
			e.waiters--
			e.mu.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		fctx, cancel := context.WithCancelCause(ctx)
		fl := &flight{r: claim, cancel: cancel}
		e.flights = append(e.flights, fl)
		f := e.f
		e.mu.Unlock()

		err := e.run(ctx, fctx, fl, f, fetch)
		cancel(nil)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errOverrun):
			// fetch sent more than it was asked for: it may as well have sent
			// other bytes than asked for (a server ignoring Range), so nothing
			// it wrote can be trusted.
			h.Discard()
			return err
		default:
			e.mu.Lock()
			got := e.gone == nil && e.present.Contains(claim.Start, claim.Len())
			e.mu.Unlock()
			if !got { // an error after the last byte is not worth failing for
				return err
			}
		}
	}
}

// spanLocked is the range fl stands for: its claim, and for a stream also
// what it will fetch without anybody reading further (up to its pace's
// limit), so that nobody else fetches those bytes. Caller holds e.mu.
func (e *cachedVersion) spanLocked(fl *flight) Range {
	if fl.pace == nil || fl.finished {
		return fl.r
	}
	lim, _ := fl.pace.Limit()
	return Range{fl.r.Start, min(max(fl.r.End, lim), e.size)}
}

// planLocked picks the first part of missing that no flight covers (claim),
// or, when flights cover all of it, returns those flights to wait for.
func (e *cachedVersion) planLocked(missing []Range) (claim Range, waitFor []*flight) {
	for _, m := range missing {
		if r, ok := e.firstUncoveredLocked(m); ok {
			return r, nil
		}
	}
	for _, fl := range e.flights {
		sp := e.spanLocked(fl)
		for _, m := range missing {
			if sp.Start < m.End && m.Start < sp.End {
				waitFor = append(waitFor, fl)
				break
			}
		}
	}
	return Range{}, waitFor
}

// firstUncoveredLocked returns the first sub-range of m that no flight
// covers. Caller holds e.mu.
func (e *cachedVersion) firstUncoveredLocked(m Range) (Range, bool) {
	spans := make([]Range, len(e.flights))
	for i, fl := range e.flights {
		spans[i] = e.spanLocked(fl)
	}
	pos := m.Start
	for pos < m.End {
		advanced := false
		for _, sp := range spans {
			if sp.Start <= pos && pos < sp.End {
				pos = sp.End
				advanced = true
			}
		}
		if !advanced {
			end := m.End
			for _, sp := range spans {
				if sp.Start > pos && sp.Start < end {
					end = sp.Start
				}
			}
			return Range{pos, end}, true
		}
	}
	return Range{}, false
}

// run calls fetch for fl and records the outcome for the waiters. A stream
// asks for everything up to the end of the file and is cut short by its
// writer (errStreamEnd) where it cannot go on; the flight it ends with may
// be a later one than fl (see rangeWriter.room).
func (e *cachedVersion) run(ctx, fctx context.Context, fl *flight, f *os.File, fetch FetchFunc) error {
	w := &rangeWriter{e: e, f: f, fl: fl, ctx: fctx, pos: fl.r.Start}
	n := fl.r.Len()
	if fl.pace != nil {
		n = e.size - fl.r.Start
	}
	err := fetch(fctx, fl.r.Start, n, w)
	if fl.pace != nil && errors.Is(err, errStreamEnd) {
		err = nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	fl = w.fl
	end := fl.r.End
	switch {
	case err == nil && w.err != nil && !errors.Is(w.err, errStreamEnd):
		err = w.err // fetch swallowed a write error
	case err == nil && w.pos < end:
		err = fmt.Errorf("cache: fetch of %v ended after %d bytes: %w",
			Range{fl.r.Start, end}, w.pos-fl.r.Start, io.ErrUnexpectedEOF)
	}
	e.finishLocked(fl, err, ctx.Err() != nil)
	return fl.err
}

// finishLocked records the outcome of fl, removes it from the flights and
// wakes the waiters. Caller holds e.mu.
func (e *cachedVersion) finishLocked(fl *flight, err error, abandoned bool) {
	if err != nil && e.gone != nil {
		err = e.gone
	}
	for i, x := range e.flights {
		if x == fl {
			e.flights = append(e.flights[:i], e.flights[i+1:]...)
			break
		}
	}
	fl.finished, fl.err = true, err
	fl.abandoned = err != nil && abandoned
	e.broadcastLocked()
}

var (
	errOverrun = errors.New("cache: fetch wrote past the requested range")
	// errStreamEnd stops a stream's fetch where its next bytes are already
	// present or claimed by another flight.
	errStreamEnd = errors.New("cache: stream reached bytes present or fetched by another")
)

// rangeWriter is the io.Writer a FetchFunc streams into: it writes each chunk
// at its offset in the data file and marks it present at once. For a stream
// it extends the flight's claim as its pace allows, and blocks while the
// pace holds it back.
type rangeWriter struct {
	e      *cachedVersion
	f      *os.File
	fl     *flight         // the flight being written; a stream moves to a new one past a skip
	ctx    context.Context // the fetch's context: waiting on the pace honours it
	pos    int64
	skipTo int64 // a stream discards the bytes before skipTo (present or another's)
	err    error // first error returned to the fetch
}

// maxStreamSkip is the longest run of bytes (present, or another flight's)
// a stream reads past and discards rather than stopping: stopping wastes
// what the connection already carries, often more.
const maxStreamSkip = 2 << 20

func (w *rangeWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		if w.pos < w.skipTo {
			k := int(min(int64(len(p)), w.skipTo-w.pos))
			w.pos += int64(k)
			written += k
			p = p[k:]
			continue
		}
		room, err := w.room()
		if err == nil && room == 0 {
			if w.pos < w.skipTo {
				continue
			}
			err = errOverrun
		}
		if err != nil {
			w.err = err
			return written, err
		}
		chunk := p[:min(room, int64(len(p)))]
		n, err := w.f.WriteAt(chunk, w.pos)
		if n > 0 {
			e := w.e
			e.mu.Lock()
			gone := e.gone
			var added int64
			if gone == nil {
				added = e.present.Add(w.pos, int64(n))
				e.gen++
				e.broadcastLocked()
			}
			e.mu.Unlock()
			e.c.grow(e, added)
			w.pos += int64(n)
			written += n
			p = p[n:]
			if gone != nil && err == nil {
				err = gone
			}
		}
		if err != nil {
			w.err = err
			return written, err
		}
	}
	return written, nil
}

// room returns how many bytes may be written at w.pos: what is left of the
// claim, which a stream extends (waiting for its pace when needed). 0 means
// the fetch overran what it was asked for, unless it set w.skipTo: a stream
// that meets a short run of bytes present or claimed by another flight ends
// its flight there and goes on with a new one after them, discarding what
// it receives in between.
func (w *rangeWriter) room() (int64, error) {
	e := w.e
	for {
		fl := w.fl
		e.mu.Lock()
		if e.gone != nil {
			err := e.gone
			e.mu.Unlock()
			return 0, err
		}
		if w.pos < fl.r.End || fl.pace == nil || w.pos >= e.size {
			room := max(fl.r.End-w.pos, 0)
			e.mu.Unlock()
			return room, nil
		}
		stop := e.present.NextStart(w.pos, e.size)
		if e.present.RunEnd(w.pos) > w.pos {
			stop = w.pos
		}
		for _, o := range e.flights {
			if o == fl {
				continue
			}
			if o.r.Start <= w.pos && w.pos < o.r.End {
				stop = w.pos
			} else if o.r.Start > w.pos {
				stop = min(stop, o.r.Start)
			}
		}
		if stop <= w.pos {
			skipEnd := e.present.RunEnd(w.pos)
			for _, o := range e.flights {
				if o != fl && o.r.Start <= w.pos && w.pos < o.r.End {
					skipEnd = max(skipEnd, o.r.End)
				}
			}
			if skipEnd <= w.pos || skipEnd-w.pos > maxStreamSkip || skipEnd >= e.size {
				e.mu.Unlock()
				return 0, errStreamEnd
			}
			next := &flight{r: Range{skipEnd, skipEnd}, pace: fl.pace, cancel: fl.cancel}
			e.finishLocked(fl, nil, false)
			e.flights = append(e.flights, next)
			w.fl, w.skipTo = next, skipEnd
			e.mu.Unlock()
			return 0, nil
		}
		lim, moved := fl.pace.Limit()
		if end := min(lim, stop); end > w.pos {
			fl.r.End = end
			e.mu.Unlock()
			return end - w.pos, nil
		}
		e.mu.Unlock()
		idle := time.NewTimer(e.c.streamIdle)
		select {
		case <-moved:
			idle.Stop()
		case <-w.ctx.Done():
			idle.Stop()
			return 0, context.Cause(w.ctx)
		case <-idle.C:
			// The reader stopped reading: give the connection back
			// rather than hold it open until the service drops it.
			return 0, errStreamEnd
		}
	}
}

// Pace bounds how far ahead a Stream fetches: Limit returns the offset it
// may fetch up to, and a channel closed when that may have changed.
// Readahead is the fs's Pace. Limit is called with the entry's lock held:
// it must not call back into the cache.
type Pace interface {
	Limit() (int64, <-chan struct{})
}

// Stream is one fetch for a sequential reader: a single request from an
// offset toward the end of the file, consumed as it arrives and paced so
// that it runs at most its Pace's limit ahead. It stops where the bytes
// ahead are already present or being fetched by another, when the entry is
// dropped, and when its context ends. Readers need nothing of it: Fetch
// and ReadAt wait for and find its bytes as for any flight.
type Stream struct {
	h      *Entry // its own handle: the entry stays pinned while it runs
	fl     *flight
	ctx    context.Context
	cancel context.CancelCauseFunc
	once   sync.Once
}

// StartStream claims the bytes from off for a stream paced by pace and
// returns it; Run (or Abandon) must then be called exactly once, typically
// on a background goroutine. It returns nil, with no error, when there is
// nothing to stream at off: it is past the end, present, or already being
// fetched. ctx bounds the stream's life (cancel it to stop the stream).
func (h *Entry) StartStream(ctx context.Context, off int64, pace Pace) (*Stream, error) {
	if h.released.Load() {
		return nil, ErrReleased
	}
	e := h.e
	sh, err := e.c.ref(e)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	var r Range
	ok := false
	if e.gone == nil && off >= 0 && off < e.size && e.present.RunEnd(off) == off {
		r, ok = e.firstUncoveredLocked(Range{off, e.present.NextStart(off, e.size)})
	}
	if !ok || r.Start != off {
		gone := e.gone
		e.mu.Unlock()
		_ = sh.Release()
		return nil, gone
	}
	lim, _ := pace.Limit()
	fctx, cancel := context.WithCancelCause(ctx)
	fl := &flight{r: Range{off, min(max(lim, off+1), r.End)}, pace: pace, cancel: cancel}
	e.flights = append(e.flights, fl)
	e.mu.Unlock()
	return &Stream{h: sh, fl: fl, ctx: fctx, cancel: cancel}, nil
}

// Start is the offset the stream started at.
func (s *Stream) Start() int64 { return s.fl.r.Start }

// Run fetches the stream's bytes with fetch until the end of the file, or
// until it stops (see Stream), and releases the stream's handle. Bytes
// written before a failure stay present; a fetch that overran the file
// discards the entry, as in Fetch.
func (s *Stream) Run(fetch FetchFunc) error {
	err := ErrReleased
	s.once.Do(func() {
		defer s.h.Release()
		e := s.h.e
		e.mu.Lock()
		f := e.f
		e.mu.Unlock()
		err = e.run(s.ctx, s.ctx, s.fl, f, fetch)
		s.cancel(nil)
		if errors.Is(err, errOverrun) {
			s.h.Discard()
		}
	})
	return err
}

// Abandon gives up a stream that will not Run (its goroutine could not be
// started): its claim is withdrawn, and readers waiting on it fetch the
// bytes themselves.
func (s *Stream) Abandon() {
	s.once.Do(func() {
		defer s.h.Release()
		e := s.h.e
		e.mu.Lock()
		e.finishLocked(s.fl, context.Canceled, true)
		e.mu.Unlock()
		s.cancel(nil)
	})
}

// Span is a run of cached bytes pinned for a reply sent after the read
// returns: the data file stays open, and mapped, until Release. Data is
// those bytes in the read-only mapping of the data file (nil when it could
// not be mapped: then read them from Fd), so a reply can be written from the
// page cache with no copy through the process.
type Span struct {
	h    *Entry
	f    *os.File
	Off  int64
	Len  int
	Data []byte
}

// Fd is the data file's descriptor, valid until Release.
func (s *Span) Fd() uintptr { return s.f.Fd() }

// Release unpins the span; it is idempotent. The span's pages leave the
// process's mapping (they stay in the page cache): a file read once does
// not stay in the daemon's resident set.
func (s *Span) Release() {
	if s.h.released.Load() {
		return
	}
	if s.Data != nil {
		e := s.h.e
		e.mu.Lock()
		if m := e.mapped; m != nil {
			page := int64(os.Getpagesize())
			start := s.Off &^ (page - 1)
			end := min((s.Off+int64(s.Len)+page-1)&^(page-1), int64(len(m)))
			_ = syscall.Madvise(m[start:end], syscall.MADV_DONTNEED)
		}
		e.mu.Unlock()
	}
	_ = s.h.Release()
}

// Span pins the cached bytes at off, up to n of them: the run of present
// bytes there, cut at n and at the end of the file. Errors are those of
// ReadAt: io.EOF at or past the end, ErrNotPresent when the byte at off is
// not cached, ErrDropped once the entry is dropped.
func (h *Entry) Span(off int64, n int) (*Span, error) {
	if h.released.Load() {
		return nil, ErrReleased
	}
	if off < 0 {
		return nil, fmt.Errorf("cache: negative offset %d", off)
	}
	e := h.e
	if off >= e.size {
		return nil, io.EOF
	}
	e.mu.Lock()
	if e.gone != nil {
		err := e.gone
		e.mu.Unlock()
		return nil, err
	}
	avail := min(e.present.RunEnd(off), off+int64(n), e.size) - off
	e.mu.Unlock()
	if avail <= 0 {
		return nil, ErrNotPresent
	}
	sh, err := e.c.ref(e)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	f := e.f
	if f != nil && e.mapped == nil {
		if m, err := syscall.Mmap(int(f.Fd()), 0, int(e.size), syscall.PROT_READ, syscall.MAP_SHARED); err == nil {
			e.mapped = m
		}
	}
	var data []byte
	if e.mapped != nil {
		data = e.mapped[off : off+avail : off+avail]
	}
	e.mu.Unlock()
	if f == nil {
		_ = sh.Release()
		return nil, ErrClosed
	}
	return &Span{h: sh, f: f, Off: off, Len: int(avail), Data: data}, nil
}

// ReadAt reads cached bytes at off. It returns io.EOF at or past the end of
// the file, and ErrNotPresent (with the count of present bytes read) when it
// reaches bytes that are not cached; call Fetch first. It reads directly into
// p: nothing is buffered in memory.
func (h *Entry) ReadAt(p []byte, off int64) (int, error) {
	if h.released.Load() {
		return 0, ErrReleased
	}
	if off < 0 {
		return 0, fmt.Errorf("cache: negative offset %d", off)
	}
	e := h.e
	if off >= e.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), e.size-off)
	e.mu.Lock()
	if e.gone != nil {
		e.mu.Unlock()
		return 0, e.gone
	}
	avail := min(e.present.RunEnd(off), off+want) - off
	f := e.f
	e.mu.Unlock()
	if avail <= 0 {
		return 0, ErrNotPresent
	}
	n, err := f.ReadAt(p[:avail], off)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("cache: data file shorter than its size: %w", io.ErrUnexpectedEOF)
		}
		return n, err
	}
	switch {
	case int64(n) == int64(len(p)):
		return n, nil
	case off+int64(n) == e.size:
		return n, io.EOF
	default:
		return n, ErrNotPresent
	}
}

// MarkVerified records that the complete content was checked (e.g. its
// quickXorHash matched the item's) and persists that with the range set.
// It fails with ErrIncomplete if bytes are missing.
func (h *Entry) MarkVerified() error {
	if h.released.Load() {
		return ErrReleased
	}
	e := h.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone != nil {
		return e.gone
	}
	if e.present.Covered() != e.size {
		return ErrIncomplete
	}
	if !e.verified {
		e.verified = true
		e.gen++
	}
	return nil
}

// Discard drops the entry (e.g. its hash did not match): its bytes are
// deleted, this and every other handle on it get ErrDropped from now on, and
// the next Open of the key starts empty. The handle must still be released.
func (h *Entry) Discard() {
	c := h.e.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(h.e, ErrDropped)
}

// Verify streams the complete content to check (which, for instance, hashes
// it and compares with the item's hash). If check returns nil the entry is
// marked verified; otherwise it is discarded and Verify returns check's error.
// It fails with ErrIncomplete, without calling check, if bytes are missing.
func (h *Entry) Verify(check func(r io.Reader) error) error {
	if h.released.Load() {
		return ErrReleased
	}
	if !h.Complete() {
		return ErrIncomplete
	}
	if err := check(io.NewSectionReader(h, 0, h.e.size)); err != nil {
		h.Discard()
		return fmt.Errorf("cache: verification of %s failed, entry dropped: %w", h.e.key.ID, err)
	}
	return h.MarkVerified()
}

// Persist writes the entry's range set to disk now, rather than at the last
// Release (for a file kept open for a long time). The data file is fsynced
// first.
func (h *Entry) Persist() error {
	if h.released.Load() {
		return ErrReleased
	}
	e := h.e
	e.persistMu.Lock()
	defer e.persistMu.Unlock()
	return e.c.persistLocked(e)
}

// Release gives the handle back. When it was the entry's last handle, the
// range set is persisted and the entry becomes evictable. Release is
// idempotent; it returns the persistence error, if any (the cached bytes
// stay usable in this run either way).
func (h *Entry) Release() error {
	if !h.released.CompareAndSwap(false, true) {
		return nil
	}
	return h.e.c.release(h.e)
}

// clamp turns (off, n) into [off, end) within [0, size], safe from overflow.
func clamp(off, n, size int64) (int64, int64) {
	off = min(max(off, 0), size)
	if n < 0 {
		n = 0
	}
	if n > size-off {
		return off, size
	}
	return off, off + n
}
