package cache

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Errors of the content cache. Compare with errors.Is.
var (
	// ErrDropped: the entry was removed while the handle was open, because the
	// item's content changed (another cTag was opened, or Remove was called) or
	// failed verification. Its bytes are no longer served; open the current
	// key again.
	ErrDropped = errors.New("cache: entry dropped; open the current version again")
	// ErrNotPresent: ReadAt reached bytes that are not cached; call Fetch first.
	ErrNotPresent = errors.New("cache: bytes not present")
	// ErrIncomplete: the entry does not hold every byte of the file yet.
	ErrIncomplete = errors.New("cache: entry is not complete")
	// ErrReleased: the handle was used after Release.
	ErrReleased = errors.New("cache: entry handle already released")
	// ErrClosed: the cache was closed.
	ErrClosed = errors.New("cache: closed")
)

// Key identifies one version of a file's content: the item id and its cTag.
// A different cTag is different content, so (id, cTag) is the cache key.
type Key struct {
	ID   string
	CTag string
}

// ContentOptions configure OpenContent.
type ContentOptions struct {
	// Dir holds the cached files. The cache owns it: it creates it when
	// missing, and deletes the entries it cannot trust (data files without a
	// valid sidecar, torn or inconsistent sidecars, temporary files). Other
	// files are left alone.
	Dir string
	// MaxBytes is the budget of present bytes kept across entries. Entries
	// that are not in use are evicted, least recently released first, while
	// the total is above it. 0 keeps nothing once the last handle is released.
	MaxBytes int64
	// Logger receives debug lines (evictions, going over budget) and warnings
	// (discarded entries on load, failed persistence). nil discards.
	Logger *slog.Logger
	// StreamIdle is how long a Stream waits at its pace's limit (its reader
	// stopped reading) before it ends and gives its connection back; the
	// next read starts another. 0 means 30 s.
	StreamIdle time.Duration
}

// ContentStats is a snapshot of the cache's bookkeeping.
type ContentStats struct {
	Entries  int   // entries in the index (in use or idle)
	InUse    int   // entries with at least one open handle
	Used     int64 // present bytes counted against the budget
	MaxBytes int64
}

// Content is the on-disk cache of file bytes.
//
// Each entry is a sparse local file of the item's size plus a RangeSet of the
// byte ranges present in it, keyed by (item id, cTag). At most one version of
// an item is indexed: opening a new cTag drops the old one, so stale bytes are
// never served. The range set is persisted beside the data file (a small JSON
// sidecar, written atomically when the last handle is released and on Close,
// after the data file is fsynced), so a restarted mount reuses cached bytes.
//
// Eviction: entries with no open handle sit in an LRU list ordered by the time
// of their last release; while the present bytes exceed MaxBytes the oldest
// idle entry is deleted. Entries in use are never evicted, even when that keeps
// the cache over budget. The list is a container/list owned by Content rather
// than golang-lru: the bound is in bytes, not entries, in-use entries must be
// pinned outside the list, and Content already holds its own mutex, so an
// intrusive list of idle entries is both simpler and exact.
//
// Lock order: Content.mu, then entry.persistMu, then entry.mu. Code holding
// entry.mu or entry.persistMu never acquires Content.mu.
type Content struct {
	dir        string
	max        int64
	log        *slog.Logger
	streamIdle time.Duration

	mu         sync.Mutex
	byID       map[string]*cachedVersion // guarded by mu; the indexed entry of each item id
	idle       *list.List                // guarded by mu; *cachedVersion with refs == 0, front = most recently released
	used       int64                     // guarded by mu; INVARIANT: sum of accounted over byID
	closed     bool                      // guarded by mu
	overBudget bool                      // guarded by mu; an "over budget while in use" line was logged
}

// OpenContent opens (creating it if needed) the content cache in opts.Dir and
// loads the entries a previous run persisted, discarding those whose sidecar
// is missing, torn or inconsistent with the data file. It starts no goroutine.
func OpenContent(opts ContentOptions) (*Content, error) {
	if opts.Dir == "" {
		return nil, errors.New("cache: ContentOptions.Dir is empty")
	}
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("cache: negative MaxBytes %d", opts.MaxBytes)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: create content dir: %w", err)
	}
	c := &Content{
		dir:        opts.Dir,
		max:        opts.MaxBytes,
		log:        orDiscard(opts.Logger),
		streamIdle: opts.StreamIdle,
		byID:       make(map[string]*cachedVersion),
		idle:       list.New(),
	}
	if c.streamIdle <= 0 {
		c.streamIdle = 30 * time.Second
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
	return c, nil
}

// Open returns a handle on the cached content of key, creating an empty entry
// of the given size when none exists. If another version of the same item is
// indexed (different cTag, or a different size) it is dropped first: its
// bytes are deleted and its open handles get ErrDropped. Every handle must be
// released with Release.
func (c *Content) Open(key Key, size int64) (*Entry, error) {
	if key.ID == "" {
		return nil, errors.New("cache: empty item id")
	}
	if size < 0 {
		return nil, fmt.Errorf("cache: negative size %d", size)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	e := c.byID[key.ID]
	if e != nil && (e.key != key || e.size != size) {
		c.log.Debug("cache: content changed, dropping old version",
			"id", key.ID, "old_ctag", e.key.CTag, "new_ctag", key.CTag)
		c.dropLocked(e, ErrDropped)
		e = nil
	}
	if e != nil && e.refs == 0 {
		if err := e.openFile(); err != nil {
			c.log.Warn("cache: cached data file unusable, dropping entry", "id", key.ID, "err", err)
			c.dropLocked(e, ErrDropped)
			e = nil
		}
	}
	if e == nil {
		var err error
		if e, err = c.createLocked(key, size); err != nil {
			return nil, err
		}
	}
	if e.idleElem != nil {
		c.idle.Remove(e.idleElem)
		e.idleElem = nil
	}
	e.refs++
	return &Entry{e: e}, nil
}

// Adopt makes the file at path the complete cached content of key (the
// version just uploaded from it, say), so that reading it back downloads
// nothing. The file is moved into the cache (renamed: the staging and
// content directories share a file system; a copy when they do not), so
// the caller must not use path afterwards, and must not have it open for
// writing. Its size must be size. Any cached version of the item is
// dropped first, as by Open of a new cTag. The entry is persisted at once
// and becomes idle: it is evicted like any other when over budget.
func (c *Content) Adopt(key Key, size int64, path string) error {
	if key.ID == "" {
		return errors.New("cache: empty item id")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("cache: adopt: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != size {
		return fmt.Errorf("cache: adopt: %s is %d bytes (%v), expected a regular file of %d", path, fi.Size(), fi.Mode().Type(), size)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if old := c.byID[key.ID]; old != nil {
		c.dropLocked(old, ErrDropped)
	}
	e := &cachedVersion{c: c, key: key, size: size, base: filepath.Join(c.dir, fileBase(key))}
	_ = os.Remove(e.sidecarPath())
	if err := moveFile(path, e.dataPath()); err != nil {
		return fmt.Errorf("cache: adopt: %w", err)
	}
	f, err := os.OpenFile(e.dataPath(), os.O_RDWR, 0)
	if err != nil {
		_ = os.Remove(e.dataPath())
		return fmt.Errorf("cache: adopt: %w", err)
	}
	e.f = f
	e.present.Add(0, size)
	e.gen++
	e.indexed = true
	e.accounted = size
	c.used += size
	c.byID[key.ID] = e
	e.persistMu.Lock()
	err = c.persistLocked(e)
	e.persistMu.Unlock()
	e.mu.Lock()
	e.f = nil
	e.mu.Unlock()
	_ = f.Close()
	if err != nil {
		c.dropLocked(e, ErrDropped)
		return err
	}
	e.idleElem = c.idle.PushFront(e)
	c.evictLocked()
	return nil
}

// moveFile renames src to dst, or copies it (and removes src) when they are
// on different file systems.
func moveFile(src, dst string) error {
	err := os.Rename(src, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		_ = os.Remove(dst)
		return err
	}
	if err := out.Close(); err != nil {
		_ = os.Remove(dst)
		return err
	}
	return os.Remove(src)
}

// ref returns another handle on e, which the caller already holds one on.
func (c *Content) ref(e *cachedVersion) (*Entry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if e.refs == 0 {
		return nil, ErrReleased
	}
	e.refs++
	return &Entry{e: e}, nil
}

// Remove drops the cached content of item id, whatever its cTag (the item was
// deleted or is being rewritten locally). Open handles get ErrDropped.
func (c *Content) Remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.byID[id]; e != nil {
		c.dropLocked(e, ErrDropped)
	}
}

// Stats returns a snapshot of the cache's bookkeeping.
func (c *Content) Stats() ContentStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ContentStats{Entries: len(c.byID), Used: c.used, MaxBytes: c.max}
	for _, e := range c.byID {
		if e.refs > 0 {
			s.InUse++
		}
	}
	return s
}

// Close persists the range sets of entries still in use and closes their
// files. Handles still open afterwards fail with ErrClosed. Close is
// idempotent.
func (c *Content) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	entries := make([]*cachedVersion, 0, len(c.byID))
	for _, e := range c.byID {
		entries = append(entries, e)
	}
	c.mu.Unlock()

	var errs []error
	for _, e := range entries {
		e.persistMu.Lock()
		if err := c.persistLocked(e); err != nil {
			errs = append(errs, err)
		}
		e.mu.Lock()
		e.failLocked(ErrClosed)
		f := e.f
		e.f = nil
		e.mu.Unlock()
		if f != nil {
			if err := f.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		e.persistMu.Unlock()
	}
	return errors.Join(errs...)
}

// createLocked makes a new, empty entry: a sparse data file of the item's size
// and no sidecar yet (a data file without sidecar is an orphan that the next
// load deletes, which is right: nothing in it is known to be valid).
func (c *Content) createLocked(key Key, size int64) (*cachedVersion, error) {
	e := &cachedVersion{c: c, key: key, size: size, base: filepath.Join(c.dir, fileBase(key))}
	_ = os.Remove(e.sidecarPath()) // a stale sidecar must not describe the new file
	f, err := os.OpenFile(e.dataPath(), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache: create data file: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		_ = f.Close()
		_ = os.Remove(e.dataPath())
		return nil, fmt.Errorf("cache: size data file: %w", err)
	}
	e.f = f
	e.indexed = true
	c.byID[key.ID] = e
	return e, nil
}

// release drops one reference of e. When it is the last one, the range set
// is persisted (if it changed) before e becomes idle: the entry stays pinned
// while the sidecar is written, so eviction cannot race with it.
func (c *Content) release(e *cachedVersion) error {
	var perr error
	for tried := false; ; tried = true {
		c.mu.Lock()
		if e.refs > 1 || c.closed || !e.indexed || (tried && perr != nil) || !e.dirty() {
			e.refs--
			if e.refs == 0 {
				c.idleLocked(e)
			}
			c.mu.Unlock()
			return perr
		}
		c.mu.Unlock()
		e.persistMu.Lock()
		perr = c.persistLocked(e)
		e.persistMu.Unlock()
		if perr != nil {
			c.log.Warn("cache: persist range set", "id", e.key.ID, "err", perr)
		}
	}
}

// idleLocked handles an entry whose last handle was released: its file is
// closed and it joins the front of the LRU list, or it is dropped when it has
// nothing worth keeping.
func (c *Content) idleLocked(e *cachedVersion) {
	e.mu.Lock()
	f, m := e.f, e.mapped
	e.f, e.mapped = nil, nil
	empty := e.present.Covered() == 0
	e.mu.Unlock()
	if m != nil {
		_ = syscall.Munmap(m) // no Span is left: each holds a reference
	}
	if f != nil {
		_ = f.Close()
	}
	if !e.indexed || c.closed {
		return
	}
	if empty {
		c.dropLocked(e, ErrDropped)
		return
	}
	e.idleElem = c.idle.PushFront(e)
	c.evictLocked()
}

// grow accounts bytes newly present in e and evicts if that broke the budget.
func (c *Content) grow(e *cachedVersion, added int64) {
	if added == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !e.indexed || c.closed {
		return
	}
	e.accounted += added
	c.used += added
	c.evictLocked()
}

// evictLocked deletes idle entries, least recently released first, until the
// budget holds or only entries in use remain.
func (c *Content) evictLocked() {
	for c.used > c.max {
		back := c.idle.Back()
		if back == nil {
			if !c.overBudget {
				c.overBudget = true
				c.log.Debug("cache: over budget, every remaining entry is in use",
					"used", c.used, "max", c.max)
			}
			return
		}
		e := back.Value.(*cachedVersion)
		c.log.Debug("cache: evict", "id", e.key.ID, "bytes", e.accounted)
		c.dropLocked(e, ErrDropped)
	}
	c.overBudget = false
}

// dropLocked removes e from the index and deletes its files. Handles still
// open on e fail with cause from now on; fetches in flight are cancelled.
func (c *Content) dropLocked(e *cachedVersion, cause error) {
	if !e.indexed {
		return
	}
	e.indexed = false
	if c.byID[e.key.ID] == e {
		delete(c.byID, e.key.ID)
	}
	if e.idleElem != nil {
		c.idle.Remove(e.idleElem)
		e.idleElem = nil
	}
	c.used -= e.accounted
	e.accounted = 0

	e.persistMu.Lock() // wait out a sidecar write, which must not resurrect the entry
	defer e.persistMu.Unlock()
	e.mu.Lock()
	e.failLocked(cause)
	e.mu.Unlock()
	// Sidecar first: a crash between the two leaves an orphan data file, which
	// the next load deletes; the opposite order could leave a sidecar
	// describing a data file that no longer exists.
	if err := os.Remove(e.sidecarPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Warn("cache: remove sidecar", "id", e.key.ID, "err", err)
	}
	if err := os.Remove(e.dataPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Warn("cache: remove data file", "id", e.key.ID, "err", err)
	}
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
