package fs

import (
	"context"
	"errors"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
)

// deltaLinkKey is where the delta link is kept in cache.State.
const deltaLinkKey = "deltaLink"

// initDelta makes sure a delta link exists, so that changes made from now
// on are seen by the first poll. A link saved by an earlier mount is kept:
// the first poll then catches up with what changed while unmounted.
func (f *FS) initDelta(ctx context.Context) error {
	if _, ok := f.loadDeltaLink(); ok {
		return nil
	}
	page, err := f.remote.Delta(ctx, "latest")
	if err != nil {
		return err
	}
	return f.saveDeltaPage(nil, page.DeltaLink, false)
}

// pollLoop polls the delta link every poll interval and refreshes the
// quota, until ctx ends.
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
		if f.isOffline() {
			continue // the prober polls once the service is back (offline.go)
		}
		err := f.pollOnce(ctx)
		f.notePoll(ctx, err) // status.go
		if err != nil && ctx.Err() == nil {
			f.log.Warn("polling for remote changes failed", "err", err)
		}
		f.pollShares(ctx) // shared folders of other drives (shared.go)
		if round%quotaRefreshEvery == 0 {
			if err := f.refreshQuota(ctx); err != nil && ctx.Err() == nil {
				f.log.Debug("refreshing the quota failed", "err", err)
			}
		}
	}
}

// pollOnce fetches the changes since the saved delta link and applies them.
func (f *FS) pollOnce(ctx context.Context) error {
	link, ok := f.loadDeltaLink() // store.go
	if !ok {
		link = "latest"
	}
	f.mu.Lock()
	since := f.beginFetchFSLocked() // evict.go
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.endFetchFSLocked(since)
		f.mu.Unlock()
	}()
	page, err := f.remote.Delta(ctx, link)
	resync := false
	if errors.Is(err, remote.ErrResyncRequired) {
		// The link expired: forget every listing (they are read again on
		// demand) and start from now.
		f.log.Info("the service asked for a resync; cached listings dropped")
		f.listings.InvalidateAll()
		f.invalidateAllContent()
		page, err = f.remote.Delta(ctx, "latest")
		resync = true
	}
	if err != nil {
		return err
	}
	kept := f.applyDelta(page.Items, since)
	err = f.saveDeltaPage(page.Items, page.DeltaLink, resync)
	// The store took the page's older reports of these: give it back the
	// entries' newer ones (queued after the page), for when they are
	// dropped (evict.go).
	f.storePut(kept...)
	return err
}

// applyDelta brings the entries and cached listings up to date with changed
// items, as a delta page fetched when FS.seq was since reported them, and
// queues the kernel notifications they need. A report older than what an
// entry holds is skipped (staleItem). A deleted item's entry keeps its last
// place, so that unsent local content of it is sent there again (upload.go).
// It returns the entries' items that were kept over older reports.
func (f *FS) applyDelta(items []*remote.Item, since uint64) (kept []*remote.Item) {
	var gone []string // deleted items whose cached content is dropped once FS.mu is released (disk I/O)
	f.mu.Lock()
	for _, it := range items {
		e := f.byID[it.ID]
		if it.IsRoot {
			if e != nil && !it.Deleted {
				f.observeItemFSLocked(it, since)
			}
			continue
		}
		if hiddenItem(it) { // deleted, or a package
			if e != nil && !e.removed && e.parent != nil {
				if f.pendingDestFSLocked(e.parent.itemIDFSLocked(), e.name) {
					continue // replaced by a server copy whose waiter binds the name
				}
				f.dropFSLocked(e, false)
			}
			if it.Deleted && (e == nil || e.file == nil || e.file.handles.Load() == 0) {
				gone = append(gone, it.ID)
			}
			continue
		}
		parent := f.byID[it.ParentID]
		if e == nil {
			// New to this mount: worth recording only where a listing is
			// cached (elsewhere the next listing finds it), and not when a
			// copy_file_range waits to bind it to its destination.
			if parent == nil || f.listingFSLocked(parent) == nil || f.pendingDestFSLocked(it.ParentID, it.Name) {
				continue
			}
			e, _ = f.observeItemFSLocked(it, since)
			f.placeFSLocked(e, parent, it.Name)
			continue
		}
		old := e.item.Load()
		if _, took := f.observeItemFSLocked(it, since); !took {
			kept = append(kept, old)
			continue
		}
		if e.parent != parent || e.name != it.Name || e.removed {
			if parent != nil {
				f.placeFSLocked(e, parent, it.Name)
			} else {
				// Moved where this mount does not look.
				f.dropFSLocked(e, false)
				e.parent, e.removed = nil, false
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
	return kept
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
