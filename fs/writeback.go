package fs

import (
	"context"
	"fmt"
	"os"
	"path"
	"time"

	"github.com/onedrivefs/onedrivefs/cache"
)

// The journal's background sender. A change whose upload failed is
// committed to the journal (cache.Staging) and close() succeeds; the sender
// retries every journal record while the mount lives, on its own timer
// (never tied to the delta poll: --poll-interval -1 must not stop it), with
// a back-off from writebackMin to writebackMax while records keep failing.
// Records of files this mount has open or staged are sent through their
// file (file.go); records left by an earlier mount are replayed from the
// journal alone. At mount time the journal is replayed once before the
// mount appears; what fails then is left to the sender.

// Back-off bounds of the sender.
const (
	writebackMin = 2 * time.Second
	writebackMax = time.Minute
)

// kickWriteback tells the sender there is something to send (it retries
// after writebackMin).
func (f *FS) kickWriteback() {
	select {
	case f.wbWake <- struct{}{}:
	default:
	}
}

// runWriteback retries the journal until ctx ends.
func (f *FS) runWriteback(ctx context.Context) {
	delay := writebackMin
	timer := time.NewTimer(delay)
	defer timer.Stop()
	armed := len(f.staging.Pending()) > 0 || f.hasDeferredDeletes()
	if !armed {
		timer.Stop()
	}
	for {
		var tick <-chan time.Time
		if armed {
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-f.wbWake:
			// Something new to send (or a hold released): soon, whatever
			// the back-off had grown to.
			delay = writebackMin
			timer.Reset(delay)
			armed = true
			continue
		case <-tick:
			armed = false
		}
		if f.sendJournal(ctx) > 0 {
			delay = min(delay*2, writebackMax)
			timer.Reset(delay)
			armed = true
		} else {
			delay = writebackMin
		}
	}
}

// sendJournal sends every journal record it can and returns how many are
// still waiting.
func (f *FS) sendJournal(ctx context.Context) (left int) {
	f.sendMu.Lock()
	defer f.sendMu.Unlock()
	if f.holdJournal(ctx) { // offline.go
		return len(f.staging.Pending()) + 1
	}
	left = f.sendDeferredDeletes(ctx)
	for _, rec := range f.staging.Pending() {
		if ctx.Err() != nil {
			return left + 1
		}
		if f.copiedFrom(rec.RemoteItemID) {
			left++ // held until the copies taken from the item have completed
			continue
		}
		f.mu.Lock()
		e := f.journaled[rec.ID]
		f.mu.Unlock()
		if e != nil {
			if f.sendJournaledFile(ctx, e, rec.ID) {
				left++
			}
			continue
		}
		if err := f.replayRecord(ctx, rec); err != nil {
			if ctx.Err() == nil {
				f.log.Warn("sending a journaled change failed; it stays in the journal and is tried again",
					"name", rec.Name, "err", err)
			}
			left++
			continue
		}
		if err := f.staging.Done(rec.ID); err != nil {
			f.log.Warn("removing a sent journal record failed", "name", rec.Name, "err", err)
		}
	}
	return left
}

// sendJournaledFile sends the journaled content of e (record id) through its
// file, and reports whether it is still waiting.
func (f *FS) sendJournaledFile(ctx context.Context, e *entry, id string) bool {
	fl := f.fileOf(e)
	if fl == nil {
		return false
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.staged == nil || fl.staged.ID() != id {
		return false
	}
	var err error
	if fl.handles.Load() == 0 {
		err = fl.finishLocked(ctx)
	} else {
		err = fl.syncLocked(ctx)
	}
	if err != nil && ctx.Err() == nil {
		f.log.Warn("sending a journaled change failed again", "path", f.pathOf(e), "err", err)
	}
	return fl.staged != nil && fl.dirty
}

// replayJournal sends the changes a previous mount journaled but did not
// send (it was killed, or the service was unreachable). A record that fails
// stays in the journal for the background sender; nothing is dropped.
func (f *FS) replayJournal(ctx context.Context) {
	for _, rec := range f.staging.Pending() {
		if f.copiedFrom(rec.RemoteItemID) {
			continue // held until the copies taken from the item have completed
		}
		if err := f.replayRecord(ctx, rec); err != nil {
			f.log.Error("replaying a journaled change failed; it stays in the journal and is tried again", "name", rec.Name, "err", err)
			continue
		}
		if err := f.staging.Done(rec.ID); err != nil {
			f.log.Warn("removing a replayed journal record failed", "name", rec.Name, "err", err)
		}
	}
}

// replayRecord sends one journaled file of an earlier mount, by the same
// rule as a live upload (upload.go).
func (f *FS) replayRecord(ctx context.Context, rec cache.Record) error {
	if err := f.fillRecord(ctx, rec); err != nil { // basefill.go
		return fmt.Errorf("fetching the unwritten bytes: %w", err)
	}
	file, err := os.Open(rec.StagedPath)
	if err != nil {
		return err
	}
	defer file.Close()
	t := sendTarget{itemID: rec.RemoteItemID, baseETag: rec.BaseETag, baseCTag: rec.BaseCTag,
		parentID: rec.ParentID, name: rec.Name, dirPath: rec.DirPath,
		unconfirmed: rec.Unconfirmed, driveID: rec.DriveID}
	if rec.DirPath == "" && rec.ParentID != "" && !f.isRootID(rec.ParentID) {
		// A record of an older version, without its folder's path: if the
		// folder is gone, the content goes to the recovery folder.
		t.dirPath = path.Join(recoveredFolder, "unknown-folder")
	}
	res, err := f.send(ctx, file, rec.Size, rec.ModTime, t)
	if err != nil {
		if a := res.attempted; a.QuickXorHash != "" {
			if _, merr := f.staging.Modify(rec.ID, func(r *cache.Record) {
				r.Unconfirmed = withUnconfirmed(r.Unconfirmed, a)
			}); merr != nil {
				f.log.Warn("updating the journal after a failed upload failed", "name", rec.Name, "err", merr)
			}
		}
		return err
	}
	if !res.conflict {
		f.log.Info("sent a change journaled earlier", "name", res.sent.Name, "size", rec.Size, "recreated", res.recreated)
	}
	f.mu.Lock()
	if parent := f.folderByServiceIDFSLocked(res.sent.ParentID); parent != nil {
		f.placeFSLocked(f.setItemFSLocked(res.sent), parent, res.sent.Name)
	}
	f.mu.Unlock()
	return nil
}

// isRootID reports whether id is the drive's root folder.
func (f *FS) isRootID(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.root != nil && f.root.item.Load() != nil && f.root.item.Load().ID == id
}

// hasDeferredDeletes reports whether deletions wait for copies.
func (f *FS) hasDeferredDeletes() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.deferredDeletes) > 0
}
