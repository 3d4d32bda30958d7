package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/remote"
)

// The base of a write into an existing file, fetched lazily.
//
// OneDrive replaces whole files, so the content sent for a file changed
// here is all of it: the bytes written here, and the base version's bytes
// everywhere else. Fetching the whole base before the first write returns
// would make a two-byte edit of a 10 GiB file wait for 10 GiB. Instead, a
// write into an existing file of Config.LazyBaseMin bytes or more (4 MiB by default) stages a file of
// the base's size that is a hole, and remembers which of its ranges still
// miss their base bytes (baseFill). Those ranges are filled from the base
// version (through the content cache, so bytes already read are not
// downloaded again):
//   - in the background, from the first write on, so that the window in
//     which the base can change on the service before it is all here stays
//     as short as the download;
//   - by a read of a missing range, before it is answered;
//   - before the content is sent, at the latest (uploadLocked).
//
// A write over a missing range takes it off the list: those bytes are never
// fetched. A journal record keeps the ranges still missing
// (cache.Record.BaseMissing) with the base's version, and its replay fills
// them before sending (replayRecord): a hole is never sent as zeros while
// its base can be fetched. Should the base version be gone from the service
// before all of it was fetched (changed or deleted there), the change
// cannot be completed as written: it is sent by the usual rule (a changed
// item keeps the service's version and gets the local content as a
// conflict copy), with the bytes it did not write left as zeros, and the
// log says which ranges.

// DefaultLazyBaseMin is the size from which the base of a write is fetched
// lazily; a smaller file comes whole before the write (a request or two).
const DefaultLazyBaseMin = 4 << 20

// The background fill fetches up to baseFetchChunk bytes per request (8
// requests per GiB) into the content cache, without the file's lock, and
// copies them into the staged file baseCopyChunk bytes at a time under it,
// so that a write waits for at most one such copy.
const (
	baseFetchChunk = 128 << 20
	baseCopyChunk  = 8 << 20
)

// baseFill is the part of a staged file still to be filled from its base
// version. It is owned by the file and guarded by its lock.
type baseFill struct {
	// item is the base version (id, cTag, size, drive). Immutable.
	item *remote.Item
	// have holds the ranges of [0, limit) that hold their bytes: written
	// here or filled from the base.
	have cache.RangeSet
	// limit is where the base's bytes end in the staged file: the base's
	// size, or less once the file was cut shorter (bytes past it are the
	// writer's or zeros a truncate added, never the base's).
	limit int64
	// recorded is what the file's journal record lists as missing. A write
	// into one of those ranges updates the record, so that a replay never
	// fills a range holding written bytes with the base's.
	recorded []cache.Range
	// stop ends the background fill.
	stop context.CancelFunc
}

// missing returns the ranges of [off, off+n) that still miss their base
// bytes.
func (b *baseFill) missing(off, n int64) []cache.Range {
	end := min(off+n, b.limit)
	if end <= off {
		return nil
	}
	return b.have.Missing(off, end-off)
}

// complete reports whether nothing is missing.
func (b *baseFill) complete() bool { return len(b.missing(0, b.limit)) == 0 }

// lazyBase reports whether a write into it stages its base lazily.
func (f *FS) lazyBase(it *remote.Item) bool {
	return it != nil && !it.IsFolder && it.Size >= f.lazyBaseMin && it.CTag != "" && !strings.HasPrefix(it.CTag, localCTagPrefix)
}

// stageForWriteLocked makes sure st has staged content a write can go into:
// the base's bytes come lazily (above) for a large file, whole for a small
// one. Requires st.mu.
func (st *file) stageForWriteLocked(ctx context.Context) error {
	if err := st.settleCopyLocked(ctx); err != nil {
		return err
	}
	if st.staged != nil {
		return nil
	}
	it := st.e.item.Load()
	if !st.fs.lazyBase(it) {
		return st.stageLocked(ctx, true)
	}
	f := st.fs
	sf, err := f.staging.Stage(cache.NewRecordID())
	if err != nil {
		return err
	}
	if err := sf.File().Truncate(it.Size); err != nil {
		f.abandonStaged(sf)
		return fmt.Errorf("staging %s: %w", it.ID, err)
	}
	st.baseCTag, st.baseETag = it.CTag, it.ETag
	st.staged, st.committed = sf, false
	st.base = &baseFill{item: it, limit: it.Size}
	st.setLocalAttr(true, it.Size, itemMtime(it))
	st.startBaseFillLocked()
	return nil
}

// startBaseFillLocked fetches the missing base ranges in the background,
// chunk by chunk; the file's lock is held only to copy a fetched chunk into
// the staged file. Requires st.mu.
func (st *file) startBaseFillLocked() {
	b := st.base
	if b == nil || b.stop != nil {
		return
	}
	f := st.fs
	ctx, cancel := context.WithCancel(f.bg.ctx)
	b.stop = cancel
	started := f.bg.Go(func(context.Context) {
		defer cancel()
		for ctx.Err() == nil {
			st.mu.Lock()
			if st.base != b {
				st.mu.Unlock()
				return
			}
			gaps := b.missing(0, b.limit)
			if len(gaps) == 0 {
				st.endBaseLocked()
				st.mu.Unlock()
				return
			}
			g := gaps[0]
			g.End = min(g.End, g.Start+baseFetchChunk)
			st.mu.Unlock()
			// Fetched into the content cache unlocked; copied under the
			// lock (from the cache: no request) into what is still missing.
			if err := f.fetchBase(ctx, b.item, g.Start, g.Len()); err != nil {
				if ctx.Err() == nil {
					f.log.Debug("fetching the rest of a file being written stopped; it is fetched when needed",
						"path", f.pathOf(st.e), "err", err)
				}
				return
			}
			for off := g.Start; off < g.End && ctx.Err() == nil; off += baseCopyChunk {
				st.mu.Lock()
				if st.base != b {
					st.mu.Unlock()
					return
				}
				err := st.fillLocked(ctx, off, min(baseCopyChunk, g.End-off))
				st.mu.Unlock()
				if err != nil {
					if ctx.Err() == nil {
						f.log.Debug("filling a file being written from its base stopped", "path", f.pathOf(st.e), "err", err)
					}
					return
				}
			}
		}
	})
	if !started {
		cancel() // unmounting: filled when needed, or journaled as missing
	}
}

// fetchBase makes sure bytes [off, off+n) of the base version it are in the
// content cache.
func (f *FS) fetchBase(ctx context.Context, it *remote.Item, off, n int64) error {
	ce, err := f.content.Open(keyOf(it), it.Size)
	if err != nil {
		return err
	}
	defer ce.Release()
	return ce.Fetch(ctx, off, n, f.fetcherFor(it))
}

// fillLocked fills the missing base ranges of [off, off+n) of st's staged
// content. Requires st.mu.
func (st *file) fillLocked(ctx context.Context, off, n int64) error {
	b := st.base
	if b == nil {
		return nil
	}
	for _, g := range b.missing(off, n) {
		if err := st.fs.copyBase(ctx, b.item, g, st.staged.File()); err != nil {
			return err
		}
		b.have.Add(g.Start, g.Len())
	}
	if b.complete() {
		st.endBaseLocked()
	}
	return nil
}

// copyBase writes bytes g of the base version it into w at the same
// offset, fetching what the content cache lacks.
func (f *FS) copyBase(ctx context.Context, it *remote.Item, g cache.Range, w io.WriterAt) error {
	ce, err := f.content.Open(keyOf(it), it.Size)
	if err != nil {
		return err
	}
	defer ce.Release()
	if err := ce.Fetch(ctx, g.Start, g.Len(), f.fetcherFor(it)); err != nil {
		return err
	}
	n, err := io.Copy(io.NewOffsetWriter(w, g.Start), io.NewSectionReader(ce, g.Start, g.Len()))
	if err == nil && n != g.Len() {
		err = fmt.Errorf("copied %d of %d bytes: %w", n, g.Len(), io.ErrUnexpectedEOF)
	}
	if err != nil {
		return fmt.Errorf("filling %s from its base version: %w", g, err)
	}
	return nil
}

// fillAllLocked fills every missing base range, before the content is sent.
// A base version that is gone from the service (changed or deleted there)
// can never be fetched: the content is then completed with zeros, said in
// the log, and sent by the usual rule, which keeps a changed item and saves
// the local content beside it. Requires st.mu.
func (st *file) fillAllLocked(ctx context.Context) error {
	b := st.base
	if b == nil {
		return nil
	}
	err := st.fillLocked(ctx, 0, b.limit)
	if err == nil || !baseGone(err) {
		return err
	}
	st.fs.logBaseGone(st.fs.pathOf(st.e), b, err)
	st.endBaseLocked()
	return nil
}

// logBaseGone says that the change to the file at p cannot be completed
// as written: its base version is gone.
func (f *FS) logBaseGone(p string, b *baseFill, err error) {
	f.log.Error("the version a change was based on is gone from OneDrive before all of it was fetched: "+
		"the change is sent with the bytes it did not write left as zeros (the service keeps its own version)",
		"path", p, "missing", fmt.Sprint(b.missing(0, b.limit)), "err", err)
}

// baseGone reports whether err says a base version can no longer be
// fetched.
func baseGone(err error) bool {
	return errors.Is(err, remote.ErrContentChanged) || errors.Is(err, remote.ErrNotFound)
}

// endBaseLocked forgets st's base (all of it is here, or it is given up).
// Requires st.mu.
func (st *file) endBaseLocked() {
	b := st.base
	if b == nil {
		return
	}
	if b.stop != nil {
		b.stop()
	}
	if st.committed && len(b.recorded) > 0 && b.complete() {
		// The journal record still lists ranges that are now filled: a
		// later write into them would not update it (the base is gone
		// from st), and a replay would fill them over that write. The
		// filled bytes are made durable before the record stops listing
		// them; should that fail, the base stays, so that writes keep
		// updating the record.
		err := st.staged.File().Sync()
		if err == nil {
			_, err = st.fs.staging.Modify(st.staged.ID(), func(r *cache.Record) { r.BaseMissing = nil })
		}
		if err != nil {
			st.fs.log.Warn("updating the journal after a file's base was filled failed", "path", st.fs.pathOf(st.e), "err", err)
			return
		}
	}
	st.base = nil
}

// wroteBaseLocked notes that [off, off+n) of the staged content holds
// written bytes. A journal record that lists part of it as missing is
// updated, so that its replay never fills written bytes from the base.
// Requires st.mu.
func (st *file) wroteBaseLocked(off, n int64) {
	b := st.base
	if b == nil || n <= 0 {
		return
	}
	b.have.Add(off, n)
	if overlaps(b.recorded, off, off+n) {
		st.rerecordBaseLocked()
	}
	if b.complete() {
		st.endBaseLocked()
	}
}

// cutBaseLocked notes that the staged content was cut to size. Requires
// st.mu.
func (st *file) cutBaseLocked(size int64) {
	b := st.base
	if b == nil || size >= b.limit {
		return
	}
	b.limit = size
	if overlaps(b.recorded, size, 1<<62) {
		st.rerecordBaseLocked()
	}
	if b.complete() {
		st.endBaseLocked()
	}
}

// rerecordBaseLocked writes the ranges still missing into st's journal
// record. Requires st.mu.
func (st *file) rerecordBaseLocked() {
	b := st.base
	if !st.committed || b == nil {
		return
	}
	missing := b.missing(0, b.limit)
	if _, err := st.fs.staging.Modify(st.staged.ID(), func(r *cache.Record) { r.BaseMissing = missing }); err != nil {
		st.fs.log.Warn("updating the journal after a write failed", "path", st.fs.pathOf(st.e), "err", err)
		return
	}
	b.recorded = missing
}

// overlaps reports whether any of rs meets [start, end).
func overlaps(rs []cache.Range, start, end int64) bool {
	for _, r := range rs {
		if r.Start < end && start < r.End {
			return true
		}
	}
	return false
}

// baseOfRecord is the base version a journal record's missing ranges come
// from.
func baseOfRecord(rec cache.Record) *remote.Item {
	return &remote.Item{ID: rec.BaseItemID, CTag: rec.BaseCTag, Size: rec.BaseSize, DriveID: rec.DriveID}
}

// baseFillOfRecord rebuilds the base state of a journaled file.
func baseFillOfRecord(rec cache.Record) *baseFill {
	if len(rec.BaseMissing) == 0 {
		return nil
	}
	b := &baseFill{item: baseOfRecord(rec), limit: min(rec.Size, rec.BaseSize), recorded: rec.BaseMissing}
	next := int64(0)
	for _, r := range rec.BaseMissing {
		b.have.Add(next, r.Start-next)
		next = r.End
	}
	b.have.Add(next, b.limit-next)
	return b
}

// fillRecord fills the missing base ranges of a journal record's staged
// file before it is replayed, and clears them from the record. A base that
// is gone is handled as in fillAllLocked.
func (f *FS) fillRecord(ctx context.Context, rec cache.Record) error {
	b := baseFillOfRecord(rec)
	if b == nil {
		return nil
	}
	file, err := os.OpenFile(rec.StagedPath, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer file.Close()
	for _, g := range b.missing(0, b.limit) {
		if err := f.copyBase(ctx, b.item, g, file); err != nil {
			if !baseGone(err) {
				return err
			}
			f.logBaseGone(path.Join("/", rec.DirPath, rec.Name), b, err)
			break
		}
		b.have.Add(g.Start, g.Len())
	}
	if err := file.Sync(); err != nil {
		return err
	}
	_, err = f.staging.Modify(rec.ID, func(r *cache.Record) { r.BaseMissing = nil })
	return err
}
