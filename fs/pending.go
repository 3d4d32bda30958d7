package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/copyjob"
	"github.com/onedrivefs/onedrivefs/remote"
)

// Pending copies: a copy_file_range that becomes a server-side copy returns
// as soon as the service has accepted the job (docs/copy-semantics.md). The
// destination is then a pending copy of the source's version at that
// moment, and behaves like the finished copy:
//
//   - stat shows the bytes answered to the caller (the whole size for cp);
//   - read is served from the source's version (the content cache is keyed
//     by item id and cTag); if that version cannot be had, the read waits
//     for the job;
//   - write, truncate, fsync wait for the job, then work on the new item;
//     fsync of a folder waits for the pending copies beneath it;
//   - utimens, rename and unlink are applied locally at once, recorded in
//     the job (copyjob.Spec.Then, durable) and applied to the new item when
//     the job completes, by a PATCH or a DELETE — also after a restart;
//   - the source's own uploads and deletion are held until the copies taken
//     from it have completed, so that the service copies the version the
//     caller saw (a held upload waits in the journal, durable);
//   - a job that fails is completed through the byte path, from the source
//     version copied, into the journal; only if that version is gone does
//     the destination end with an error (EIO on read, logged with both
//     paths).
//
// One binder: the job's completion (settleServerCopy, the tracker's OnDone)
// binds the new item to the destination, or reveals it when no entry waits
// for it (a job resumed by a later mount).

// serverCopy is the server-side copy that makes a file's content: pending
// until done is closed, then the file's item (or its staged bytes, when the
// job failed). It lives in file.copyIn, under file.mu, and in
// FS.pendingCopies until its job ends.
type serverCopy struct {
	dst     *entry       // immutable: the destination
	src     *entry       // immutable: the source (continuation calls)
	srcItem *remote.Item // immutable: the source version copied
	size    int64        // immutable
	job     string       // immutable: the copy job's id
	done    chan struct{}
	// answered is what the copy_file_range caller was told so far.
	// GUARDED_BY(file.mu of dst)
	answered int64
	// then mirrors the job's Spec.Then: the changes to apply at completion.
	// GUARDED_BY(file.mu of dst)
	then copyjob.Then
	// err says why the destination has no content (the copy failed and the
	// source version is gone); set before done is closed.
	err error
}

// errCopyLost: a copy failed and the source version it was taken from is no
// longer available: the destination has no content.
var errCopyLost = errors.New("the server-side copy failed and the source version it copied is gone")

// pending reports whether the copy's job has not ended.
func (c *serverCopy) pending() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// startPendingCopy has the service copy the source version it into r.dst's
// folder and name and returns as soon as the job is accepted, making r.dst a
// pending copy. fallback tells whether an error came before anything
// happened, so that the bytes may be copied instead.
func (f *FS) startPendingCopy(ctx context.Context, r copyRange, it *remote.Item) (got int64, fallback bool, err error) {
	f.mu.Lock()
	parent, name := r.dst.parent, r.dst.name
	if r.dst.removed || parent == nil || parent.item.Load() == nil {
		f.mu.Unlock()
		return 0, true, errRemoved
	}
	parentID := parent.item.Load().ID
	srcPath, dstPath := f.pathOfFSLocked(r.src), f.pathOfFSLocked(r.dst)
	destIsNew := r.dst.item.Load() == nil // never on the service: nothing to mistake for the copy
	f.mu.Unlock()

	monitor, err := f.startCopy(ctx, it, parent, remote.CopyRequest{Name: name, Conflict: remote.ConflictReplace})
	if err != nil {
		return 0, true, fmt.Errorf("starting the copy: %w", err)
	}
	got = min(r.n, it.Size)
	f.holdSource(r.src)
	f.addPendingDest(destKey(parentID, name))
	// The binder must not run before the copy is registered.
	f.startMu.Lock()
	defer f.startMu.Unlock()
	job, err := f.copies.Add(copyjob.Spec{
		SourceID: it.ID, SourcePath: srcPath, DestParentID: parentID, DestName: name, DestPath: dstPath,
		MonitorURL: monitor, Size: it.Size, Origin: originCP,
		SourceCTag: it.CTag, SourceETag: it.ETag, SourceHash: it.QuickXorHash, DestIsNew: destIsNew,
	})
	if err != nil && !errors.Is(err, copyjob.ErrNotPersisted) {
		// The service copies anyway; the next listing shows the result.
		f.releaseSource(r.src)
		f.donePendingDest(destKey(parentID, name))
		return 0, false, fmt.Errorf("tracking the copy: %w", err)
	}
	c := &serverCopy{dst: r.dst, src: r.src, srcItem: it, size: it.Size, job: job.ID,
		done: make(chan struct{}), answered: got}
	fl := f.ensureFile(r.dst)
	fl.mu.Lock()
	fl.discardLocalLocked() // the empty placeholder is never sent
	fl.copyIn = c
	fl.setCopiedAttr(true, got)
	fl.mu.Unlock()
	f.mu.Lock()
	if old := r.dst.item.Load(); old != nil {
		// cp onto an existing file: the job replaces that item with a new
		// one; until then the destination is a local entry.
		if f.byID[old.ID] == r.dst {
			delete(f.byID, old.ID)
		}
		f.forgetChildFSLocked(parent, r.dst)
		r.dst.item.Store(nil)
		f.placeFSLocked(r.dst, parent, name)
	}
	r.dst.mtime = f.now()
	if f.pendingCopies == nil {
		f.pendingCopies = make(map[string]*serverCopy)
	}
	f.pendingCopies[job.ID] = c
	f.mu.Unlock()
	return got, false, nil
}

// settleServerCopy is the binder of cp jobs (the tracker's OnDone): it
// applies the recorded changes and binds the new item to the destination,
// or completes a failed copy through the byte path. It runs on the
// tracker's goroutine.
func (f *FS) settleServerCopy(j copyjob.Job) {
	ctx := f.bg.ctx
	f.startMu.Lock() // a copy being registered is registered
	f.mu.Lock()
	c := f.pendingCopies[j.ID]
	delete(f.pendingCopies, j.ID)
	src := f.byID[j.SourceID]
	f.mu.Unlock()
	f.startMu.Unlock()
	if c != nil {
		src = c.src
		defer f.donePendingDest(destKey(j.DestParentID, j.DestName))
	}
	if src != nil {
		defer f.releaseSource(src)
	} else {
		defer f.kickWriteback() // held uploads and deletions of a source this mount does not know
	}
	if c == nil {
		f.settleResumedCopy(ctx, j)
		return
	}
	fl := f.ensureFile(c.dst)
	fl.mu.Lock()
	defer fl.mu.Unlock()
	settled := sync.OnceFunc(func() { close(c.done) })
	defer settled()
	then := c.then
	if j.State == copyjob.StateCompleted {
		it, err := f.copiedItem(ctx, j)
		if err == nil {
			it, err = f.applyThen(ctx, it, then)
		}
		if err != nil {
			f.log.Warn("reading the item a copy made failed; it shows up at the next listing",
				"job", j.ID, "destination", j.DestPath, "err", err)
			f.forgetDestination(j.DestParentID, j.DestName)
			f.mu.Lock()
			f.dropFSLocked(c.dst, false)
			f.mu.Unlock()
			c.err = err
			return
		}
		if it == nil { // deleted, as recorded
			return
		}
		f.mu.Lock()
		f.bindFSLocked(c.dst, it)
		if !then.ModTime.IsZero() {
			c.dst.mtime = then.ModTime
		}
		f.mu.Unlock()
		fl.baseCTag, fl.baseETag = it.CTag, it.ETag
		f.notes.content(c.dst)
		if c.answered < c.size && fl.handles.Load() == 0 {
			// The caller stopped early and is gone: cut the item to what it
			// was told it copied, before the copy counts as settled.
			err := fl.trimCopyLocked(ctx)
			if err == nil {
				err = fl.finishLocked(ctx)
			}
			if err != nil && ctx.Err() == nil {
				f.log.Warn("cutting a partly copied file to its copied bytes failed", "path", f.pathOf(c.dst), "err", err)
			}
		}
		return
	}
	f.log.Warn("the server-side copy failed; copying the bytes instead", "source", j.SourcePath,
		"destination", f.pathOf(c.dst), "reason", j.Error)
	if then.Delete {
		return
	}
	sf, err := f.stageSourceVersion(ctx, c.srcItem, j)
	if err != nil {
		c.err = err
		return
	}
	fl.discardLocalLocked()
	fl.copyIn = c // the answered bytes still rule continuations
	fl.staged, fl.dirty = sf, true
	fl.setLocalAttr(true, c.size, f.copyMtime(c.srcItem, then))
	if err := fl.commitLocked(); err != nil {
		f.log.Error("journaling the bytes of a failed copy failed", "destination", f.pathOf(c.dst), "err", err)
	}
	// Sent now, before the copy counts as settled (`sync DIR` then means
	// the bytes are on the service); a failure leaves them journaled.
	err = fl.trimCopyLocked(ctx)
	if err == nil {
		err = fl.syncLocked(ctx)
	}
	if !fl.dirty && fl.handles.Load() == 0 {
		fl.discardLocalLocked()
	}
	if err != nil && ctx.Err() == nil {
		f.log.Warn("sending the bytes of a failed copy failed; they stay in the journal", "destination", f.pathOf(c.dst), "err", err)
	}
}

// settleResumedCopy settles a cp job no entry of this mount waits for (an
// earlier mount started it): changes recorded in the job are applied and
// the item revealed, or a failed job's bytes are journaled for sending.
func (f *FS) settleResumedCopy(ctx context.Context, j copyjob.Job) {
	if j.State == copyjob.StateCompleted {
		it, err := f.copiedItem(ctx, j)
		if err == nil {
			it, err = f.applyThen(ctx, it, j.Then)
		}
		if err != nil {
			if ctx.Err() == nil {
				f.log.Warn("reading the item a copy made failed; it shows up at the next listing",
					"job", j.ID, "destination", j.DestPath, "err", err)
			}
			f.forgetDestination(j.DestParentID, j.DestName)
			return
		}
		if it != nil {
			f.revealItem(it)
		}
		return
	}
	if j.Then.Delete {
		return
	}
	f.log.Warn("a server-side copy started by an earlier mount failed; copying the bytes instead",
		"source", j.SourcePath, "destination", j.DestPath, "reason", j.Error)
	sf, err := f.stageSourceVersion(ctx, nil, j)
	if err != nil {
		return
	}
	_ = sf.Close()
	rec := cache.Record{ID: sf.ID(), ParentID: j.DestParentID, Name: j.DestName,
		ModTime: f.copyMtime(nil, j.Then)}
	if j.Then.ParentID != "" {
		rec.ParentID = j.Then.ParentID
	}
	if j.Then.Name != "" {
		rec.Name = j.Then.Name
	}
	f.mu.Lock()
	if p := f.byID[rec.ParentID]; p != nil {
		if names, ok := f.pathNamesFSLocked(p); ok {
			rec.DirPath = strings.Join(names, "/")
		}
	}
	f.mu.Unlock()
	if _, err := f.staging.Commit(rec); err != nil {
		f.log.Error("journaling the bytes of a failed copy failed", "destination", j.DestPath, "err", err)
		return
	}
	f.kickWriteback()
}

// stageSourceVersion stages the bytes of the source version a failed copy
// was taken from (verified against its hash). If they cannot be had, the
// error is logged with both paths and errCopyLost returned.
func (f *FS) stageSourceVersion(ctx context.Context, it *remote.Item, j copyjob.Job) (*cache.StagedFile, error) {
	if it == nil {
		it = &remote.Item{ID: j.SourceID, CTag: j.SourceCTag, ETag: j.SourceETag, Size: j.Size, QuickXorHash: j.SourceHash}
	}
	sf, err := f.staging.Stage(cache.NewRecordID())
	if err != nil {
		return nil, err
	}
	err = f.copyServerContent(ctx, it, it.Size, sf)
	if err == nil && it.QuickXorHash != "" {
		var got string
		if got, err = quickXorHashOf(io.NewSectionReader(sf.File(), 0, it.Size)); err == nil && got != it.QuickXorHash {
			err = fmt.Errorf("the source changed on OneDrive: %w", remote.ErrHashMismatch)
		}
	}
	if err != nil {
		f.abandonStaged(sf)
		f.log.Error("a server-side copy failed and the source version it copied is no longer available; the destination has no content",
			"source", j.SourcePath, "destination", j.DestPath, "err", err)
		return nil, fmt.Errorf("%w: %w", errCopyLost, err)
	}
	return sf, nil
}

// copyMtime is the mtime of a copy made by bytes: the recorded one, else the
// source's.
func (f *FS) copyMtime(src *remote.Item, then copyjob.Then) time.Time {
	switch {
	case !then.ModTime.IsZero():
		return then.ModTime
	case src != nil && !itemMtime(src).IsZero():
		return itemMtime(src)
	}
	return f.now()
}

// applyThen applies the changes recorded while the job ran to the item it
// made: a move, a rename, times (one PATCH), or a deletion (nil item).
func (f *FS) applyThen(ctx context.Context, it *remote.Item, then copyjob.Then) (*remote.Item, error) {
	rc := f.driveClient(f.itemDrive(it))
	if then.Delete {
		err := rc.Delete(ctx, it.ID, "")
		if err != nil && !errors.Is(err, remote.ErrNotFound) {
			return nil, err
		}
		return nil, nil
	}
	var u remote.ItemUpdate
	if then.Name != "" && then.Name != it.Name {
		u.Name = then.Name
	}
	if then.ParentID != "" {
		if _, pid := f.folderRef(then.ParentID); pid != it.ParentID {
			u.ParentID = pid
		}
	}
	u.FSModified = then.ModTime
	if u.Name == "" && u.ParentID == "" && u.FSModified.IsZero() {
		return it, nil
	}
	return rc.Update(ctx, it.ID, u)
}

// recordThenLocked records a change to a pending copy's destination in its
// job, durably. Requires the destination's file.mu.
func (f *FS) recordThenLocked(c *serverCopy, fn func(*copyjob.Then)) {
	fn(&c.then)
	if _, err := f.copies.Amend(c.job, func(s *copyjob.Spec) { fn(&s.Then) }); err != nil {
		f.log.Warn("recording a change to a copy still being made failed; it is applied when the copy completes, unless the mount stops first",
			"job", c.job, "err", err)
	}
}

// pendingCopyLocked returns fl's pending copy, nil if none. Requires
// fl.mu.
func pendingCopyLocked(fl *file) *serverCopy {
	if c := fl.copyIn; c != nil && c.pending() {
		return c
	}
	return nil
}

// waitCopyLocked waits until no server-side copy into fl is pending,
// releasing fl.mu meanwhile, and returns the copy's error if it left the
// file without content. Requires fl.mu.
func (fl *file) waitCopyLocked(ctx context.Context) error {
	f := fl.fs
	for c := pendingCopyLocked(fl); c != nil; c = pendingCopyLocked(fl) {
		fl.mu.Unlock()
		_, err := f.copies.Wait(ctx, c.job)
		if err == nil || errors.Is(err, copyjob.ErrNotFound) {
			select {
			case <-c.done:
				err = nil
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		fl.mu.Lock()
		if err != nil {
			return err
		}
	}
	if c := fl.copyIn; c != nil && c.err != nil {
		return c.err
	}
	return nil
}

// waitCopiesUnder waits for the pending copies into dir and the folders
// beneath it, cp's and the copy attribute's (fsync of a folder: `sync DIR`).
func (f *FS) waitCopiesUnder(ctx context.Context, dir *entry) error {
	for {
		xattrJobs := f.copies.PendingWhere(func(j *copyjob.Job) bool { return j.Origin == originXattr })
		f.mu.Lock()
		var todo []*serverCopy
		for _, pc := range f.pendingCopies {
			if f.isUnderFSLocked(pc.dst, dir) { // unlinked ones too: their deletion is still to land
				todo = append(todo, pc)
			}
		}
		// Copies started through the attribute into a folder here too:
		// `setfattr -n user.onedrive.copy … && sync DIR` is a finished copy.
		var jobs []string
		for _, j := range xattrJobs {
			if p := f.byID[j.DestParentID]; p != nil && f.isUnderFSLocked(p, dir) {
				jobs = append(jobs, j.ID)
			}
		}
		f.mu.Unlock()
		if len(todo)+len(jobs) == 0 {
			return nil
		}
		// Wait for all of them at once: a job someone waits on is polled
		// promptly, and one after the other would hurry one at a time.
		errs := make([]error, len(todo)+len(jobs))
		var wg sync.WaitGroup
		for i, id := range jobs {
			wg.Go(func() {
				if _, err := f.copies.Wait(ctx, id); err != nil && !errors.Is(err, copyjob.ErrNotFound) {
					errs[len(todo)+i] = err
				}
			})
		}
		for i, c := range todo {
			wg.Go(func() {
				if _, err := f.copies.Wait(ctx, c.job); err != nil && !errors.Is(err, copyjob.ErrNotFound) {
					errs[i] = err
					return
				}
				select {
				case <-c.done:
				case <-ctx.Done():
					errs[i] = ctx.Err()
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
}

// isUnderFSLocked reports whether e is dir or beneath it. Requires FS.mu.
func (f *FS) isUnderFSLocked(e, dir *entry) bool {
	for p := e; p != nil; p = p.parent {
		if p == dir {
			return true
		}
	}
	return false
}

// pendingSummary is what is still to reach the service under a path: the
// value of the user.onedrive.pending attribute (`onedrivefs wait`).
type pendingSummary struct {
	Copies      int   `json:"copies"`      // server-side copies not completed
	CopyBytes   int64 `json:"copyBytes"`   // their sizes
	Uploads     int   `json:"uploads"`     // files with changes not on the service
	UploadBytes int64 `json:"uploadBytes"` // their sizes
}

// pendingUnder sums what is pending at e or beneath it.
func (f *FS) pendingUnder(e *entry) pendingSummary {
	var s pendingSummary
	f.mu.Lock()
	for _, c := range f.pendingCopies {
		if !c.dst.unlinked && f.isUnderFSLocked(c.dst, e) {
			s.Copies++
			s.CopyBytes += c.size
		}
	}
	var files []*file
	for _, je := range f.journaled {
		if !je.unlinked && je.file != nil && f.isUnderFSLocked(je, e) {
			files = append(files, je.file)
		}
	}
	f.mu.Unlock()
	for _, fl := range files {
		if size, _, ok := fl.localAttr(); ok {
			s.Uploads++
			s.UploadBytes += size
		}
	}
	return s
}

// waitPendingUnder waits for the copies pending at or beneath dir, then
// sends the journaled changes there at once; it fails if some could not be
// sent (`sync DIR`).
func (f *FS) waitPendingUnder(ctx context.Context, dir *entry) error {
	if err := f.waitCopiesUnder(ctx, dir); err != nil {
		return err
	}
	f.mu.Lock()
	var todo []*entry
	for _, je := range f.journaled {
		if !je.unlinked && f.isUnderFSLocked(je, dir) {
			todo = append(todo, je)
		}
	}
	f.mu.Unlock()
	var errs []error
	for _, e := range todo {
		fl := f.fileOf(e)
		if fl == nil {
			continue
		}
		fl.mu.Lock()
		var err error
		if fl.dirty && fl.holds == 0 {
			err = fl.syncLocked(ctx)
			if err == nil && fl.dirty {
				err = fmt.Errorf("%s: the change could not be sent yet; it is kept in the journal", f.pathOf(e))
			}
		}
		fl.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
