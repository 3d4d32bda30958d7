package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/remote"
)

// The write path: writes go to a staged copy of the whole file
// (cache.Staging) and reach the service on flush, fsync or release (reads:
// read.go; sending, with the conflict rule: upload.go; the journal and its
// background sender: writeback.go).
//
// Durability: flush (close) and fsync return success only once the staged
// content is on the service, or committed to the staging journal, which the
// background sender retries while mounted and the next mount replays.
//
// Locks: the write path is the file type's: its methods whose names end in
// Locked require the file's lock (file.mu); functions ending in FSLocked
// require FS.mu. Lock order: file.mu, then FS.mu.

// file is one regular file's local content state and the write path that
// changes it (staging, sending, journaling, settling a server-side copy),
// shared by all its open handles. The FS dispatches to it.
type file struct {
	fs *FS    // immutable
	e  *entry // immutable: the file

	// mu serialises changes to the staged content and uploads of this file.
	mu sync.Mutex
	// staged is the full local content; nil while the content is the
	// service's. GUARDED_BY(mu)
	staged *cache.StagedFile
	// committed: a journal record exists for staged. GUARDED_BY(mu)
	committed bool
	// dirty: staged differs from the service. GUARDED_BY(mu)
	dirty bool
	// failed: the last upload failed; the journal record waits for the
	// background sender. GUARDED_BY(mu)
	failed bool
	// baseCTag and baseETag are the service version staged was taken from.
	// GUARDED_BY(mu)
	baseCTag, baseETag string
	// unconfirmed is content a failed upload may have stored all the same
	// (upload.go): the next upload recognises it as its own. GUARDED_BY(mu)
	unconfirmed []cache.ContentRef
	// copyIn is set while the file's content is a server-side copy made for
	// a copy_file_range caller that has been answered part of it (copy.go).
	// GUARDED_BY(mu)
	copyIn *serverCopy
	// base is what the staged content still misses of the version it was
	// based on (basefill.go); nil when it has all of it. GUARDED_BY(mu)
	base *baseFill
	// holds counts the server-side copies taken from this file that have
	// not completed: its uploads wait in the journal meanwhile (pending.go).
	// GUARDED_BY(mu)
	holds int

	// handles counts open handles; changed without mu so that open never
	// waits for an upload.
	handles atomic.Int32

	// attrMu guards the local attributes, which getattr reads without mu
	// (an upload holds mu for as long as it takes).
	attrMu sync.Mutex
	local  bool // GUARDED_BY(attrMu): staged content exists; size and mtime apply
	size   int64
	mtime  time.Time
	// copied: copyIn is set and copiedSize (its answered bytes) is the size
	// stat shows. GUARDED_BY(attrMu)
	copied     bool
	copiedSize int64
}

// newFile returns the content state of file e, empty.
func (f *FS) newFile(e *entry) *file { return &file{fs: f, e: e} }

// localAttr returns the staged size and mtime, and whether there is staged
// content.
func (st *file) localAttr() (int64, time.Time, bool) {
	st.attrMu.Lock()
	defer st.attrMu.Unlock()
	return st.size, st.mtime, st.local
}

func (st *file) setLocalAttr(local bool, size int64, mtime time.Time) {
	st.attrMu.Lock()
	defer st.attrMu.Unlock()
	st.local, st.size, st.mtime = local, size, mtime
}

// copiedAttr returns the size shown for a file filled by a server-side copy
// whose caller has been answered part of it, and whether there is one.
func (st *file) copiedAttr() (int64, bool) {
	st.attrMu.Lock()
	defer st.attrMu.Unlock()
	return st.copiedSize, st.copied
}

func (st *file) setCopiedAttr(copied bool, size int64) {
	st.attrMu.Lock()
	defer st.attrMu.Unlock()
	st.copied, st.copiedSize = copied, size
}

// setMtimeIfLocal records mtime for the staged content, if the file has
// unsent changes, and reports whether it did.
func (st *file) setMtimeIfLocal(mtime time.Time) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.staged == nil || !st.dirty {
		return false
	}
	st.attrMu.Lock()
	st.mtime = mtime
	st.attrMu.Unlock()
	return true
}

// setMtimeIfStaged sets the local mtime of staged content that is already
// sent (its times were sent on their own).
func (st *file) setMtimeIfStaged(mtime time.Time) {
	st.attrMu.Lock()
	defer st.attrMu.Unlock()
	if st.local {
		st.mtime = mtime
	}
}

// handle is one open file.
type handle struct {
	f  *FS
	e  *entry
	st *file
	ra *cache.Readahead // the handle's sequential runs and its stream (read.go)

	mu sync.Mutex
	ce *cache.Entry // GUARDED_BY(mu): content-cache handle of the version being read
}

// Read-ahead window bounds: how far a stream runs ahead of its reader.
const (
	readaheadMin = 1 << 20
	readaheadMax = 16 << 20
)

// open returns a handle on file e. truncate empties it (O_TRUNC).
func (f *FS) open(ctx context.Context, e *entry, truncate bool) (*handle, error) {
	if e.isDir {
		return nil, errIsDir
	}
	st := f.ensureFile(e)
	st.handles.Add(1)
	h := &handle{f: f, e: e, st: st, ra: cache.NewReadahead(readaheadMin, readaheadMax)}
	if truncate {
		if err := f.truncate(ctx, e, 0); err != nil {
			st.handles.Add(-1)
			return nil, err
		}
	}
	return h, nil
}

// write stores data at off in the staged content.
func (h *handle) write(ctx context.Context, data []byte, off int64) (int, error) {
	f, st := h.f, h.st
	if err := f.checkWritable(); err != nil {
		return 0, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.stageForWriteLocked(ctx); err != nil {
		return 0, err
	}
	n, err := st.staged.File().WriteAt(data, off)
	if n > 0 {
		st.wroteBaseLocked(off, int64(n))
		size, _, _ := st.localAttr()
		st.dirty = true
		st.setLocalAttr(true, max(size, off+int64(n)), f.now())
	}
	return n, err
}

// truncate sets e's size. With no open handle (truncate(2)) the change is
// sent at once, as a close would.
func (f *FS) truncate(ctx context.Context, e *entry, size int64) error {
	if err := f.checkWritable(); err != nil {
		return err
	}
	if e.isDir {
		return errIsDir
	}
	st := f.ensureFile(e)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.copyIn != nil && size == 0 && pendingCopyLocked(st) == nil {
		st.dropCopyLocked() // all of it goes: no need to cut it first
	}
	if err := st.settleCopyLocked(ctx); err != nil {
		return err
	}
	if cur, _, ok := st.localAttr(); ok && cur == size {
		return nil
	}
	if st.staged == nil {
		it := e.item.Load()
		if it != nil && it.Size == size {
			return nil
		}
	}
	stage := st.stageForWriteLocked
	if size == 0 {
		stage = func(ctx context.Context) error { return st.stageLocked(ctx, false) }
	}
	if err := stage(ctx); err != nil {
		return err
	}
	if err := st.staged.File().Truncate(size); err != nil {
		return err
	}
	st.cutBaseLocked(size)
	st.dirty = true
	st.setLocalAttr(true, size, f.now())
	if st.handles.Load() == 0 {
		return st.finishLocked(ctx)
	}
	return nil
}

// stageLocked makes sure st has staged content: a new staged file, holding
// the server's content when keep is set (a write into an existing file needs
// all of it: OneDrive replaces whole files). Requires st.mu.
func (st *file) stageLocked(ctx context.Context, keep bool) error {
	f, e := st.fs, st.e
	if err := st.settleCopyLocked(ctx); err != nil {
		return err
	}
	if st.staged != nil {
		return nil
	}
	it := e.item.Load()
	sf, err := f.staging.Stage(cache.NewRecordID())
	if err != nil {
		return err
	}
	var size int64
	mtime := f.now()
	if it != nil {
		st.baseCTag, st.baseETag = it.CTag, it.ETag
		mtime = itemMtime(it)
		if keep && it.Size > 0 {
			if err := f.copyServerContent(ctx, it, it.Size, sf); err != nil {
				f.abandonStaged(sf)
				return err
			}
			size = it.Size
		}
	}
	st.staged = sf
	st.committed = false
	st.setLocalAttr(true, size, mtime)
	return nil
}

// copyServerContent fills sf with the first size bytes of it (the whole
// content when size is it.Size), through the content cache (so that bytes
// already read are not downloaded again).
func (f *FS) copyServerContent(ctx context.Context, it *remote.Item, size int64, sf *cache.StagedFile) error {
	ce, err := f.content.Open(keyOf(it), it.Size)
	if err != nil {
		return err
	}
	defer ce.Release()
	if err := ce.Fetch(ctx, 0, size, f.fetcherFor(it)); err != nil {
		return err
	}
	n, err := io.Copy(io.NewOffsetWriter(sf.File(), 0), io.NewSectionReader(ce, 0, size))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("staging %s: copied %d of %d bytes: %w", it.ID, n, size, io.ErrUnexpectedEOF)
	}
	return nil
}

// flush is close(2) on one descriptor: changes go to the service (or the
// journal). An empty file (new, or truncated to nothing) is only journaled
// here and sent at release: a destination a server-side copy fills is never
// uploaded empty first, and a shell's `echo x > file`, which closes a
// duplicate of the truncated file's descriptor before writing, does not
// send an empty version ahead of the real one.
func (h *handle) flush(ctx context.Context) error {
	f, fl := h.f, h.st
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if pendingCopyLocked(fl) != nil {
		return nil // a pending copy has nothing to send; close never waits for it
	}
	if err := fl.settleCopyLocked(ctx); err != nil {
		return err
	}
	if !fl.dirty || f.unlinked(h.e) {
		return nil
	}
	if size, _, _ := fl.localAttr(); size == 0 {
		return fl.commitLocked()
	}
	return fl.syncLocked(uninterrupted(ctx))
}

// uninterrupted detaches an upload that close or fsync waits for from the
// request's interrupt. The kernel interrupts a waiting request for any
// signal the caller handles — in a Go program the runtime's own signals are
// enough — and the caller then goes on waiting for the answer: giving up
// the upload would answer EINTR (a close that fails for nothing) or a
// success before the content is on the service. A fatal signal does not
// wait for the answer at all; the upload then finishes on its own (or is
// journaled), as a close's always does.
func uninterrupted(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// fsync sends the changes, creating a new empty file too.
func (h *handle) fsync(ctx context.Context) error {
	fl := h.st
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if err := fl.settleCopyLocked(ctx); err != nil {
		return err
	}
	return fl.syncLocked(uninterrupted(ctx))
}

// release is the last close of a handle: when no handle is left, unsent
// changes are sent and the staged copy is dropped; the content of a file
// unlinked while open goes with its last handle.
func (h *handle) release(ctx context.Context) error {
	h.dropCacheEntry()
	f, fl := h.f, h.st
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.handles.Add(-1) > 0 {
		return nil
	}
	if fl.failed && fl.dirty && !f.unlinked(h.e) {
		// Journaled after a failed upload: the background sender sends it,
		// rather than this release waiting out the same failure.
		return nil
	}
	return fl.finishLocked(ctx)
}

// unlinked reports whether this mount deleted e.
func (f *FS) unlinked(e *entry) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return e.unlinked
}

// finishLocked sends unsent changes of a file no handle has open and drops
// its staged copy when clean (or unlinked). Requires fl.mu.
func (fl *file) finishLocked(ctx context.Context) error {
	f, e := fl.fs, fl.e
	if pendingCopyLocked(fl) != nil {
		return nil // the copy's completion settles it
	}
	if f.unlinked(e) {
		if fl.handles.Load() == 0 {
			fl.discardLocalLocked()
		}
		return nil
	}
	if err := fl.settleCopyLocked(ctx); err != nil {
		return err
	}
	err := fl.syncLocked(ctx)
	if !fl.dirty && fl.handles.Load() == 0 {
		fl.adoptLocked()
		fl.discardLocalLocked()
	}
	return err
}

// adoptLocked hands the staged bytes of a file just sent to the content
// cache, as the version now on the service, so that reading it back or
// writing into it again downloads nothing. The staged file is moved, not
// copied; discardLocalLocked then drops its journal record. Requires
// fl.mu.
func (fl *file) adoptLocked() {
	f, e := fl.fs, fl.e
	it := e.item.Load()
	if fl.staged == nil || fl.dirty || it == nil || it.CTag != fl.baseCTag || f.unlinked(e) {
		return
	}
	if size, _, _ := fl.localAttr(); size != it.Size {
		return
	}
	_ = fl.staged.Close()
	if err := f.content.Adopt(keyOf(it), it.Size, fl.staged.Path()); err != nil {
		f.log.Debug("keeping a sent file in the content cache failed", "path", f.pathOf(e), "err", err)
	}
}

// syncLocked uploads fl's unsent changes. If the upload fails, the content
// is committed to the journal: a transient failure (network, throttling, the
// service unavailable) then counts as success for the caller, since the data
// is durable and the background sender retries it; other failures are
// returned. Requires fl.mu.
func (fl *file) syncLocked(ctx context.Context) error {
	f, e := fl.fs, fl.e
	if !fl.dirty || fl.staged == nil || f.unlinked(e) {
		return nil
	}
	if fl.holds > 0 {
		// A copy taken from this file is running: its upload waits in the
		// journal until the copy has the version the caller saw.
		if err := fl.commitLocked(); err != nil {
			return err
		}
		fl.failed = true
		return nil
	}
	err := fl.uploadLocked(ctx)
	wasFailed := fl.failed
	fl.failed = err != nil
	if err == nil {
		return nil
	}
	if cerr := fl.commitLocked(); cerr != nil {
		f.log.Error("upload failed and the change could not be journaled", "path", f.pathOf(e), "err", err, "journal_err", cerr)
		return errors.Join(err, cerr)
	}
	if !wasFailed {
		f.kickWriteback() // new to the sender; a retry's failure keeps its back-off
	}
	if transient(err) {
		f.log.Warn("upload failed; the change is kept in the journal and will be sent again", "path", f.pathOf(e), "err", err)
		return nil
	}
	if interrupted(ctx, err) {
		// The caller gave up (a release or truncate whose request was
		// interrupted; close and fsync are not: uninterrupted). The change
		// is durable in the journal and the background sender sends it:
		// answering EINTR would report a failure that lost nothing.
		f.log.Info("upload interrupted by the caller; the change is kept in the journal and will be sent", "path", f.pathOf(e))
		return nil
	}
	return err
}

// interrupted reports whether err is the cancellation of ctx, the request's
// context, which a FUSE interrupt cancels.
func interrupted(ctx context.Context, err error) bool {
	return ctx.Err() != nil && errors.Is(err, context.Canceled)
}

// transient reports failures worth retrying later: network errors, and the
// service's throttling and 5xx answers. Cancellation is not (the caller gave
// up), nor is an answer about the request itself (quota, name, access).
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, remote.ErrQuotaExceeded) {
		return false
	}
	if errors.Is(err, remote.ErrThrottled) {
		return true
	}
	var re *remote.Error
	if errors.As(err, &re) {
		return re.StatusCode >= 500
	}
	return !errors.Is(err, errRemoved)
}

// targetFSLocked says where e's content goes: its item, or its folder and
// name (the last known ones for a removed entry). Requires FS.mu.
func (f *FS) targetFSLocked(e *entry, fl *file) sendTarget {
	t := sendTarget{name: e.name, baseETag: fl.baseETag, baseCTag: fl.baseCTag, unconfirmed: fl.unconfirmed}
	if e.item.Load() != nil && !e.removed {
		t.itemID, t.knownCTag = e.item.Load().ID, e.item.Load().CTag
	}
	if p := e.parent; p != nil {
		if p.item.Load() != nil {
			t.parentID = f.serviceFolderID(p) // drives.go
		}
		t.driveID = f.contentDrive(p)
		if names, ok := f.pathNamesFSLocked(p); ok {
			t.dirPath = strings.Join(names, "/")
		}
	}
	return t
}

// commitLocked makes the staged content and where it goes durable in the
// journal. Requires fl.mu.
func (fl *file) commitLocked() error {
	f, e := fl.fs, fl.e
	f.mu.Lock()
	t := f.targetFSLocked(e, fl)
	rec := cache.Record{ID: fl.staged.ID(), Name: t.name, ParentID: t.parentID, DirPath: t.dirPath,
		RemoteItemID: t.itemID, BaseETag: t.baseETag, BaseCTag: t.baseCTag,
		Unconfirmed: t.unconfirmed, DriveID: t.driveID}
	f.mu.Unlock()
	_, rec.ModTime, _ = fl.localAttr()
	if b := fl.base; b != nil {
		// Bytes still to come from the base version (basefill.go).
		rec.BaseItemID, rec.BaseCTag, rec.BaseSize = b.item.ID, b.item.CTag, b.item.Size
		rec.BaseMissing = b.missing(0, b.limit)
	}
	if _, err := f.staging.Commit(rec); err != nil {
		return err
	}
	fl.committed = true
	if fl.base != nil {
		fl.base.recorded = rec.BaseMissing
	}
	f.mu.Lock()
	if f.journaled == nil {
		f.journaled = make(map[string]*entry)
	}
	f.journaled[rec.ID] = e
	f.mu.Unlock()
	return nil
}

// uploadLocked sends the staged content (upload.go has the rule) and
// records where it went. A file deleted on the service meanwhile is created
// again; one changed there is saved beside it. Requires fl.mu.
func (fl *file) uploadLocked(ctx context.Context) error {
	f, e := fl.fs, fl.e
	f.mu.Lock()
	t := f.targetFSLocked(e, fl)
	gone := e.removed && e.item.Load() != nil
	f.mu.Unlock()
	if t.parentID == "" && t.itemID == "" {
		return errRemoved
	}
	if gone {
		f.log.Warn("a file changed here was deleted on OneDrive; creating it again", "name", t.name, "folder", "/"+t.dirPath)
	}
	if err := fl.fillAllLocked(ctx); err != nil {
		return fmt.Errorf("fetching the unwritten bytes of %q: %w", t.name, err)
	}
	size, mtime, _ := fl.localAttr()
	res, err := f.send(ctx, fl.staged.File(), size, mtime, t)
	if err != nil {
		fl.unconfirmed = withUnconfirmed(fl.unconfirmed, res.attempted)
		return err
	}
	fl.unconfirmed = nil
	got := res.sent
	f.mu.Lock()
	if res.conflict {
		c := f.setItemFSLocked(got)
		if parent := f.folderByServiceIDFSLocked(got.ParentID); parent != nil {
			f.placeFSLocked(c, parent, got.Name)
		}
		if e.item.Load() == nil && !e.removed {
			// A new local file lost its name to one made on the service:
			// the service's item shows under the name at the next listing.
			f.dropFSLocked(e, false)
			if e.parent != nil && e.parent.item.Load() != nil {
				f.listings.Invalidate(e.parent.item.Load().ID)
			}
		}
		f.notes.content(e)
	} else {
		f.bindFSLocked(e, got)
		if res.recreated || e.removed {
			if parent := f.folderByServiceIDFSLocked(got.ParentID); parent != nil {
				f.placeFSLocked(e, parent, got.Name)
			}
		}
		e.mtime = mtime
	}
	f.mu.Unlock()
	fl.dirty = false
	if !res.conflict {
		fl.baseCTag, fl.baseETag = got.CTag, got.ETag
	}
	if fl.committed {
		if _, merr := f.staging.Modify(fl.staged.ID(), func(r *cache.Record) {
			r.RemoteItemID, r.BaseETag, r.BaseCTag = got.ID, got.ETag, got.CTag
			r.ParentID, r.Name, r.DriveID = got.ParentID, got.Name, f.itemDrive(got)
			r.Unconfirmed, r.BaseMissing, r.BaseItemID, r.BaseSize = nil, nil, "", 0
		}); merr != nil {
			f.log.Warn("updating the journal after an upload failed", "name", got.Name, "err", merr)
		}
	}
	return nil
}

// discardLocalLocked drops fl's staged content and journal record. Requires
// fl.mu.
func (fl *file) discardLocalLocked() {
	f := fl.fs
	fl.dropCopyLocked()
	fl.endBaseLocked()
	if fl.staged == nil {
		return
	}
	id := fl.staged.ID()
	_ = fl.staged.Close()
	if err := f.staging.Done(id); err != nil {
		f.log.Warn("removing a staged file failed", "err", err)
	}
	f.mu.Lock()
	delete(f.journaled, id)
	f.mu.Unlock()
	fl.staged, fl.committed, fl.dirty = nil, false, false
	fl.setLocalAttr(false, 0, time.Time{})
}

// abandonStaged removes a staged file that never became a file's content.
func (f *FS) abandonStaged(sf *cache.StagedFile) {
	_ = sf.Close()
	_ = f.staging.Done(sf.ID())
}

// pathOf returns e's path in the drive, for log lines.
func (f *FS) pathOf(e *entry) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pathOfFSLocked(e)
}
