package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/remote"
)

// The write path: writes go to a staged copy of the whole file
// (cache.Staging) and reach the server on flush, fsync or release (reads:
// read.go).
//
// Durability: flush (close) and fsync return success only once the staged
// content is on the server, or committed to the staging journal, which the
// next mount replays. A failed upload is committed, retried in the
// background, and replayed at the next mount.

// file is the local content state of one file, shared by all its open
// handles.
type file struct {
	// mu serialises changes to the staged content and uploads of this file.
	// Lock order: file.mu before FS.mu.
	mu sync.Mutex
	// The fields below are guarded by mu.
	staged    *cache.StagedFile // full local content; nil while the content is the server's
	committed bool              // a journal record exists for staged
	dirty     bool              // staged differs from the server
	isNew     bool              // created locally, never uploaded (lazy creation)
	baseCTag  string            // cTag of the server content staged was taken from
	baseETag  string            // eTag seen with baseCTag
	// copyIn is set while the file's content is a server-side copy made for
	// a copy_file_range caller that has been answered part of it (copy.go).
	copyIn *serverCopy

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

func newFile() *file { return &file{} }

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

// handle is one open file.
type handle struct {
	f  *FS
	e  *entry
	st *file
	ra *cache.Readahead

	raBusy atomic.Bool // a background read-ahead of this handle is running

	mu sync.Mutex
	ce *cache.Entry // GUARDED_BY(mu): content-cache handle of the version being read
}

// Read-ahead window bounds, and the smallest range fetched for a read.
const (
	readaheadMin = 1 << 20
	readaheadMax = 16 << 20
	minFetch     = 1 << 20
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
	if err := f.stageLocked(ctx, h.e, st, true); err != nil {
		return 0, err
	}
	n, err := st.staged.File().WriteAt(data, off)
	if n > 0 {
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
	if st.copyIn != nil && size == 0 {
		f.dropCopyLocked(st) // all of it goes: no need to cut it first
	}
	if err := f.settleCopyLocked(ctx, e, st); err != nil {
		return err
	}
	if cur, _, ok := st.localAttr(); ok && cur == size {
		return nil
	}
	if st.staged == nil {
		f.mu.Lock()
		it := e.item
		f.mu.Unlock()
		if it != nil && it.Size == size {
			return nil
		}
	}
	if err := f.stageLocked(ctx, e, st, size > 0); err != nil {
		return err
	}
	if err := st.staged.File().Truncate(size); err != nil {
		return err
	}
	st.dirty = true
	st.setLocalAttr(true, size, f.now())
	if st.handles.Load() == 0 {
		return f.finishLocked(ctx, e, st)
	}
	return nil
}

// stageLocked makes sure st has staged content: a new staged file, holding
// the server's content when keep is set (a write into an existing file needs
// all of it: OneDrive replaces whole files). Caller holds st.mu.
func (f *FS) stageLocked(ctx context.Context, e *entry, st *file, keep bool) error {
	if err := f.settleCopyLocked(ctx, e, st); err != nil {
		return err
	}
	if st.staged != nil {
		return nil
	}
	f.mu.Lock()
	it := e.item
	removed := e.removed
	f.mu.Unlock()
	if removed {
		// Unlinked while open: writes still work (POSIX), and the content is
		// discarded at close.
		it, keep = nil, false
	}
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
	if err := ce.Fetch(ctx, 0, size, f.fetcher(it.ID)); err != nil {
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

// flush is close(2) on one descriptor: changes go to the server (or the
// journal). An empty file (new, or truncated to nothing) is only journaled
// here and sent at release: a destination a server-side copy fills is never
// uploaded empty first, and a shell's `echo x > file`, which closes a
// duplicate of the truncated file's descriptor before writing, does not
// send an empty version ahead of the real one.
func (h *handle) flush(ctx context.Context) error {
	f, st := h.f, h.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := f.settleCopyLocked(ctx, h.e, st); err != nil {
		return err
	}
	if !st.dirty {
		return nil
	}
	if size, _, _ := st.localAttr(); size == 0 {
		return f.commitLocked(h.e, st)
	}
	return f.syncLocked(ctx, h.e, st)
}

// fsync sends the changes, creating a new empty file too.
func (h *handle) fsync(ctx context.Context) error {
	st := h.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := h.f.settleCopyLocked(ctx, h.e, st); err != nil {
		return err
	}
	return h.f.syncLocked(ctx, h.e, st)
}

// release is the last close of a handle: when no handle is left, unsent
// changes are sent and the staged copy is dropped.
func (h *handle) release(ctx context.Context) error {
	h.dropCacheEntry()
	f, st := h.f, h.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.handles.Add(-1) > 0 {
		return nil
	}
	f.mu.Lock()
	_, failed := f.pending[h.e]
	f.mu.Unlock()
	if failed {
		// Already journaled after a failed upload: the background retry
		// sends it, rather than this release waiting out the same failure.
		return nil
	}
	return f.finishLocked(ctx, h.e, st)
}

// finishLocked sends unsent changes of a file no handle has open and drops
// its staged copy when clean. Caller holds st.mu.
func (f *FS) finishLocked(ctx context.Context, e *entry, st *file) error {
	if err := f.settleCopyLocked(ctx, e, st); err != nil {
		return err
	}
	err := f.syncLocked(ctx, e, st)
	if !st.dirty && st.handles.Load() == 0 {
		f.discardLocalLocked(st)
	}
	return err
}

// syncLocked uploads st's unsent changes. If the upload fails, the content is
// committed to the journal: a transient failure (network, throttling, the
// service unavailable) then counts as success for the caller, since the data
// is durable and is retried in the background and at the next mount; other
// failures are returned. Caller holds st.mu.
func (f *FS) syncLocked(ctx context.Context, e *entry, st *file) error {
	if !st.dirty || st.staged == nil {
		return nil
	}
	f.mu.Lock()
	removed := e.removed
	f.mu.Unlock()
	if removed {
		f.discardLocalLocked(st)
		return nil
	}
	err := f.uploadLocked(ctx, e, st)
	if err == nil {
		f.mu.Lock()
		delete(f.pending, e)
		f.mu.Unlock()
		return nil
	}
	if cerr := f.commitLocked(e, st); cerr != nil {
		f.log.Error("upload failed and the change could not be journaled", "name", e.name, "err", err, "journal_err", cerr)
		return errors.Join(err, cerr)
	}
	f.mu.Lock()
	if f.pending == nil {
		f.pending = make(map[*entry]struct{})
	}
	f.pending[e] = struct{}{}
	f.mu.Unlock()
	if transient(err) {
		f.log.Warn("upload failed; the change is kept in the journal and will be sent again", "name", e.name, "err", err)
		return nil
	}
	return err
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

// commitLocked makes the staged content and where it goes durable in the
// journal. Caller holds st.mu.
func (f *FS) commitLocked(e *entry, st *file) error {
	f.mu.Lock()
	rec := cache.Record{ID: st.staged.ID(), Name: e.name, BaseETag: st.baseETag, BaseCTag: st.baseCTag}
	if e.item != nil {
		rec.RemoteItemID = e.item.ID
	}
	if e.parent != nil && e.parent.item != nil {
		rec.ParentID = e.parent.item.ID
	}
	f.mu.Unlock()
	_, rec.ModTime, _ = st.localAttr()
	if _, err := f.staging.Commit(rec); err != nil {
		return err
	}
	st.committed = true
	return nil
}

// uploadLocked sends the staged content: a new file by parent and name
// (failing if the name was taken meanwhile), an existing one by id with the
// eTag it was based on. A file changed on the server since it was staged is
// not overwritten: see saveConflictLocked. Caller holds st.mu.
func (f *FS) uploadLocked(ctx context.Context, e *entry, st *file) error {
	f.mu.Lock()
	it, parent, name := e.item, e.parent, e.name
	var parentID string
	if parent != nil && parent.item != nil {
		parentID = parent.item.ID
	}
	f.mu.Unlock()
	size, mtime, _ := st.localAttr()
	req := remote.UploadRequest{Content: st.staged.File(), Size: size, FSModified: mtime}
	newFile := func() error {
		if parentID == "" {
			return errRemoved
		}
		req.ItemID, req.IfMatch = "", ""
		req.ParentID, req.Name, req.Conflict = parentID, name, remote.ConflictFail
		return nil
	}
	if it != nil {
		if it.CTag != st.baseCTag {
			return f.saveConflictLocked(ctx, e, st, parentID, name)
		}
		req.ItemID, req.IfMatch = it.ID, it.ETag
	} else if err := newFile(); err != nil {
		return err
	}
	got, err := f.remote.Upload(ctx, req)
	if it != nil && errors.Is(err, remote.ErrPreconditionFailed) {
		// The eTag moved: a metadata change (rename, times) or new content?
		cur, gerr := f.remote.Item(ctx, it.ID)
		switch {
		case errors.Is(gerr, remote.ErrNotFound):
			err = gerr
		case gerr != nil:
			return gerr
		default:
			f.mu.Lock()
			f.entryForItemFSLocked(cur)
			f.mu.Unlock()
			if cur.CTag != st.baseCTag {
				return f.saveConflictLocked(ctx, e, st, parentID, name)
			}
			req.IfMatch = cur.ETag
			got, err = f.remote.Upload(ctx, req)
		}
	}
	if it != nil && errors.Is(err, remote.ErrNotFound) {
		// Deleted on the server while changed here: the local change wins
		// back the name, as a new file.
		f.log.Warn("file deleted on OneDrive while changed here; uploading it again", "name", name)
		if nerr := newFile(); nerr != nil {
			return nerr
		}
		got, err = f.remote.Upload(ctx, req)
	}
	if errors.Is(err, remote.ErrConflict) && req.ItemID == "" {
		return f.saveConflictLocked(ctx, e, st, parentID, name)
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.bindFSLocked(e, got)
	f.mu.Unlock()
	st.dirty, st.isNew = false, false
	st.baseCTag, st.baseETag = got.CTag, got.ETag
	if st.committed {
		if _, merr := f.staging.Modify(st.staged.ID(), func(r *cache.Record) {
			r.RemoteItemID, r.BaseETag, r.BaseCTag = got.ID, got.ETag, got.CTag
		}); merr != nil {
			f.log.Warn("updating the journal after an upload failed", "name", name, "err", merr)
		}
	}
	return nil
}

// saveConflictLocked handles a file changed on the server since it was
// staged here: the server's version is kept, the local one is uploaded beside
// it as "name (conflict YYYY-MM-DD HHMMSS).ext", and a warning is logged.
// Caller holds st.mu.
func (f *FS) saveConflictLocked(ctx context.Context, e *entry, st *file, parentID, name string) error {
	if parentID == "" {
		return errRemoved
	}
	size, mtime, _ := st.localAttr()
	cname := conflictName(name, f.now())
	got, err := f.remote.Upload(ctx, remote.UploadRequest{
		ParentID: parentID, Name: cname, Content: st.staged.File(), Size: size,
		FSModified: mtime, Conflict: remote.ConflictRename,
	})
	if err != nil {
		return err
	}
	f.log.Warn("file changed on OneDrive since it was changed here: kept the OneDrive version, saved the local one beside it",
		"name", name, "saved_as", got.Name)
	f.mu.Lock()
	parent := f.byID[parentID]
	c := f.entryForItemFSLocked(got)
	if parent != nil {
		c.parent, c.name, c.removed = parent, got.Name, false
		f.updateListingFSLocked(parent, func(l *dirListing) { l.children[foldName(got.Name)] = c })
		if e.item == nil {
			// A new local file lost its name to one created on the server.
			f.forgetChildFSLocked(parent, e)
			e.removed, e.parent = true, nil
			f.listings.Invalidate(parentID)
		}
	}
	f.mu.Unlock()
	st.dirty, st.isNew = false, false
	if st.committed {
		if _, merr := f.staging.Modify(st.staged.ID(), func(r *cache.Record) {
			r.ParentID, r.Name, r.RemoteItemID, r.BaseETag, r.BaseCTag = parentID, got.Name, got.ID, got.ETag, got.CTag
		}); merr != nil {
			f.log.Warn("updating the journal after a conflict failed", "name", name, "err", merr)
		}
	}
	if parent != nil {
		f.notes.aliases(parent, name)
		f.notes.aliases(parent, got.Name)
	}
	f.notes.content(e)
	return nil
}

// discardLocalLocked drops st's staged content and journal record. Caller
// holds st.mu.
func (f *FS) discardLocalLocked(st *file) {
	f.dropCopyLocked(st)
	if st.staged == nil {
		return
	}
	id := st.staged.ID()
	_ = st.staged.Close()
	if err := f.staging.Done(id); err != nil {
		f.log.Warn("removing a staged file failed", "err", err)
	}
	st.staged, st.committed, st.dirty, st.isNew = nil, false, false, false
	st.setLocalAttr(false, 0, time.Time{})
}

// abandonStaged removes a staged file that never became a file's content.
func (f *FS) abandonStaged(sf *cache.StagedFile) {
	_ = sf.Close()
	_ = f.staging.Done(sf.ID())
}

// conflictName returns "name (conflict YYYY-MM-DD HHMMSS).ext" for t.
func conflictName(name string, t time.Time) string {
	ext := path.Ext(name)
	base := strings.TrimSuffix(name, ext)
	if base == "" || len(ext) > 16 || strings.ContainsRune(ext, ' ') {
		base, ext = name, ""
	}
	return fmt.Sprintf("%s (conflict %s)%s", base, t.Format("2006-01-02 150405"), ext)
}

// itemMtime is the modification time shown for an item: its fileSystemInfo
// time when set, else the server's.
func itemMtime(it *remote.Item) time.Time {
	if !it.FSModified.IsZero() {
		return it.FSModified
	}
	return it.Modified
}
