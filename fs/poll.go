package fs

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/remote"
)

// deltaLinkKey is where the delta link is kept in cache.State.
const deltaLinkKey = "deltaLink"

// initDelta makes sure a delta link exists, so that changes made from now
// on are seen by the first poll. A link saved by an earlier mount is kept:
// the first poll then catches up with what changed while unmounted.
func (f *FS) initDelta(ctx context.Context) error {
	if _, ok := f.state.Load(deltaLinkKey); ok {
		return nil
	}
	page, err := f.remote.Delta(ctx, "latest")
	if err != nil {
		return err
	}
	return f.state.Save(deltaLinkKey, page.DeltaLink)
}

// pollLoop polls the delta link every poll interval, retries journaled
// uploads and refreshes the quota, until ctx ends.
func (f *FS) pollLoop(ctx context.Context) {
	if f.poll < 0 {
		return
	}
	t := time.NewTicker(f.poll)
	defer t.Stop()
	for round := 1; ; round++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := f.pollOnce(ctx); err != nil && ctx.Err() == nil {
			f.log.Warn("polling for remote changes failed", "err", err)
		}
		f.retryPending(ctx)
		if round%quotaRefreshEvery == 0 {
			if err := f.refreshQuota(ctx); err != nil && ctx.Err() == nil {
				f.log.Debug("refreshing the quota failed", "err", err)
			}
		}
	}
}

// pollOnce fetches the changes since the saved delta link and applies them.
func (f *FS) pollOnce(ctx context.Context) error {
	link, ok := f.state.Load(deltaLinkKey)
	if !ok {
		link = "latest"
	}
	page, err := f.remote.Delta(ctx, link)
	if errors.Is(err, remote.ErrResyncRequired) {
		// The link expired: forget every listing (they are read again on
		// demand) and start from now.
		f.log.Info("the service asked for a resync; cached listings dropped")
		f.listings.InvalidateAll()
		f.invalidateAllContent()
		page, err = f.remote.Delta(ctx, "latest")
	}
	if err != nil {
		return err
	}
	f.applyDelta(page.Items)
	return f.state.Save(deltaLinkKey, page.DeltaLink)
}

// applyDelta brings the entries and cached listings up to date with changed
// items and queues the kernel notifications they need.
func (f *FS) applyDelta(items []*remote.Item) {
	var gone []string // deleted items whose cached content is dropped once FS.mu is released (disk I/O)
	f.mu.Lock()
	for _, it := range items {
		e := f.byID[it.ID]
		if it.IsRoot {
			if e != nil && !it.Deleted {
				e.item = it
			}
			continue
		}
		if hiddenItem(it) { // deleted, or a package
			if e != nil && e.parent != nil {
				if f.copyWaitedFSLocked(e.parent.itemIDFSLocked(), e.name) {
					continue // replaced by a server copy whose waiter binds the name
				}
				dir, name := e.parent, e.name
				f.forgetChildFSLocked(dir, e)
				e.removed, e.parent = true, nil
				f.notes.aliases(dir, name)
			}
			if it.Deleted {
				gone = append(gone, it.ID)
			}
			continue
		}
		parent := f.byID[it.ParentID]
		if e == nil {
			// New to this mount: worth recording only where a listing is
			// cached (elsewhere the next listing finds it), and not when a
			// copy_file_range waits to bind it to its destination.
			if parent == nil || f.listingFSLocked(parent) == nil || f.copyWaitedFSLocked(it.ParentID, it.Name) {
				continue
			}
			e = f.entryForItemFSLocked(it)
			e.parent, e.name = parent, it.Name
			f.updateListingFSLocked(parent, func(l *dirListing) { l.children[foldName(it.Name)] = e })
			f.notes.aliases(parent, it.Name)
			continue
		}
		old := e.item
		oldParent, oldName := e.parent, e.name
		f.entryForItemFSLocked(it)
		if oldParent != parent || oldName != it.Name || e.removed {
			if oldParent != nil {
				f.forgetChildFSLocked(oldParent, e)
				f.notes.aliases(oldParent, oldName)
			}
			e.parent, e.name, e.removed = parent, it.Name, false
			if parent != nil {
				f.updateListingFSLocked(parent, func(l *dirListing) { l.children[foldName(it.Name)] = e })
				f.notes.aliases(parent, it.Name)
			}
		}
		if !e.isDir && old != nil && old.CTag != it.CTag {
			f.notes.content(e)
		}
	}
	f.mu.Unlock()
	for _, id := range gone {
		f.content.Remove(id)
	}
}

// invalidateAllContent queues a content invalidation of every file the
// mount knows.
func (f *FS) invalidateAllContent() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.byIno {
		if !e.isDir {
			f.notes.content(e)
		}
	}
}

// retryPending sends again the journaled changes of files no handle has
// open.
func (f *FS) retryPending(ctx context.Context) {
	f.mu.Lock()
	var todo []*entry
	for e := range f.pending {
		todo = append(todo, e)
	}
	f.mu.Unlock()
	for _, e := range todo {
		st := f.fileOf(e)
		if st == nil {
			continue
		}
		st.mu.Lock()
		if st.handles.Load() == 0 {
			if err := f.finishLocked(ctx, e, st); err != nil && ctx.Err() == nil {
				f.log.Warn("sending a journaled change failed again", "name", e.name, "err", err)
			}
		}
		if !st.dirty {
			f.mu.Lock()
			delete(f.pending, e)
			f.mu.Unlock()
		}
		st.mu.Unlock()
	}
}

// replayJournal sends the changes a previous mount journaled but did not
// send (it was killed, or the service was unreachable). A record that fails
// for a transient reason stays for the next mount; one the service refuses
// is logged and kept too, so that nothing is lost silently.
func (f *FS) replayJournal(ctx context.Context) {
	for _, rec := range f.staging.Pending() {
		if err := f.replayRecord(ctx, rec); err != nil {
			f.log.Error("replaying a journaled change failed; it stays in the journal", "name", rec.Name, "err", err)
			continue
		}
		if err := f.staging.Done(rec.ID); err != nil {
			f.log.Warn("removing a replayed journal record failed", "name", rec.Name, "err", err)
		}
	}
}

// replayRecord uploads one journaled file. A file changed on the server
// since the change was made is kept, and the journaled content saved beside
// it under a conflict name. Two cases are not conflicts: an eTag that moved
// while the content (cTag) did not (a rename or new times on the server),
// and a server item that already holds exactly the journaled bytes (an
// earlier mount sent them and was killed before it could say so).
func (f *FS) replayRecord(ctx context.Context, rec cache.Record) error {
	file, err := os.Open(rec.StagedPath)
	if err != nil {
		return err
	}
	defer file.Close()
	req := remote.UploadRequest{Content: file, Size: rec.Size, FSModified: rec.ModTime}
	if rec.RemoteItemID != "" {
		req.ItemID, req.IfMatch = rec.RemoteItemID, rec.BaseETag
	} else {
		req.ParentID, req.Name, req.Conflict = rec.ParentID, rec.Name, remote.ConflictFail
	}
	it, err := f.remote.Upload(ctx, req)
	conflict := errors.Is(err, remote.ErrPreconditionFailed) || errors.Is(err, remote.ErrConflict) ||
		(rec.RemoteItemID != "" && errors.Is(err, remote.ErrNotFound))
	if conflict {
		cur, cerr := f.replayTarget(ctx, rec)
		switch {
		case cerr != nil && !errors.Is(cerr, remote.ErrNotFound):
			return cerr
		case cur == nil:
			// Gone from the server: the conflict copy below brings it back.
		case sameContent(file, rec.Size, cur):
			f.log.Info("a journaled change was already on OneDrive", "name", rec.Name, "size", rec.Size)
			return nil
		case rec.RemoteItemID != "" && rec.BaseCTag != "" && cur.CTag == rec.BaseCTag:
			req.IfMatch = cur.ETag
			it, err = f.remote.Upload(ctx, req)
			conflict = errors.Is(err, remote.ErrPreconditionFailed)
		}
	}
	if conflict && rec.ParentID != "" {
		cname := conflictName(rec.Name, f.now())
		it, err = f.remote.Upload(ctx, remote.UploadRequest{
			ParentID: rec.ParentID, Name: cname, Content: file, Size: rec.Size,
			FSModified: rec.ModTime, Conflict: remote.ConflictRename,
		})
		if err == nil {
			f.log.Warn("a journaled file changed on OneDrive meanwhile: kept the OneDrive version, saved the journaled one beside it",
				"name", rec.Name, "saved_as", it.Name)
		}
	}
	if err != nil {
		return err
	}
	f.log.Info("sent a change journaled by an earlier mount", "name", it.Name, "size", rec.Size)
	return nil
}

// replayTarget is the server item a journal record would replace: by id
// when the record knows it, else by parent and name. A missing item is
// (nil, ErrNotFound).
func (f *FS) replayTarget(ctx context.Context, rec cache.Record) (*remote.Item, error) {
	if rec.RemoteItemID != "" {
		return f.remote.Item(ctx, rec.RemoteItemID)
	}
	if rec.ParentID == "" {
		return nil, remote.ErrNotFound
	}
	return f.remote.Child(ctx, rec.ParentID, rec.Name)
}

// sameContent reports whether item holds exactly the size bytes of r,
// compared by quickXorHash (an item without a hash never matches).
func sameContent(r io.ReaderAt, size int64, item *remote.Item) bool {
	if item.IsFolder || item.Size != size || item.QuickXorHash == "" {
		return false
	}
	got, err := quickXorHashOf(io.NewSectionReader(r, 0, size))
	return err == nil && got == item.QuickXorHash
}
