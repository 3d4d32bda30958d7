package fs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/onedrivefs/onedrivefs/copyjob"
	"github.com/onedrivefs/onedrivefs/remote"
)

// The mount's copy jobs: the copyjob.Tracker that polls the monitors of the
// server-side copies started by copy_file_range (copy.go) and by the
// user.onedrive.copy attribute (copyxattr.go), polling their monitors
// through the remote client, and what a finished job does to the tree.
//
// The tracker runs on the filesystem's background context (a FUSE interrupt
// never stops a job) and keeps its jobs under the cache dir, so a job still
// running at unmount is resumed by the next mount, which reveals its result.
//
// A completed job's new item is made visible by exactly one binder, the
// tracker's OnDone (copyJobDone): a cp job's by settleServerCopy
// (pending.go), which applies the changes recorded while it ran and binds
// the item to the pending copy's entry (or reveals it, for a job an earlier
// mount started); an xattr job's by revealItem, which puts the new item in
// its folder's cached listing and queues the kernel notification (from the
// notifier goroutine, never from here). While a cp job runs, its
// destination is a pending destination (pendingDests): the delta poll and
// listings leave that name to the binder.

// Origins of copy jobs (copyjob.Spec.Origin).
const (
	originCP    = "cp"
	originXattr = "xattr"
)

// openCopyJobs opens the copy-job tracker, loading the jobs an earlier mount
// left in its directory. A jobs file it cannot use costs those jobs, not the
// mount: the tracker then keeps its jobs in memory.
func (f *FS) openCopyJobs() error {
	cfg := copyjob.Config{Dir: f.copyJobsDir, Logger: f.log, OnDone: f.copyJobDone, Poller: f.remote,
		Lister: func(ctx context.Context, folderID string) ([]*remote.Item, error) {
			rc, id := f.folderRef(folderID) // the folder's own drive (drives.go)
			return rc.Children(ctx, id)
		},
		Budget: func() (int, time.Time, bool) {
			b, ok := f.remote.Budget()
			return b.Remaining, b.Reset, ok
		}}
	t, err := copyjob.New(cfg)
	if err != nil && cfg.Dir != "" {
		f.log.Error("the copy jobs of an earlier mount cannot be read; copy jobs are kept in memory only",
			"dir", cfg.Dir, "err", err)
		cfg.Dir = ""
		t, err = copyjob.New(cfg)
	}
	if err != nil {
		return fmt.Errorf("copy-job tracker: %w", err)
	}
	f.copies = t
	return nil
}

// runCopyJobs polls the copy jobs until ctx ends (the background work's
// context: unmount).
func (f *FS) runCopyJobs(ctx context.Context) {
	if err := f.copies.Run(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, copyjob.ErrClosed) {
		f.log.Error("the copy-job tracker stopped", "err", err)
	}
}

// closeCopyJobs writes the jobs' last state; unfinished jobs stay on disk
// for the next mount.
func (f *FS) closeCopyJobs() {
	if f.copies == nil {
		return
	}
	if err := f.copies.Close(); err != nil {
		f.log.Warn("saving the copy jobs failed", "err", err)
	}
}

// destKey names a copy destination: its folder and folded name.
func destKey(parentID, name string) string {
	return parentID + "\x00" + foldName(name)
}

// reserveDest claims a copy destination (folder and name) for an xattr copy
// until its job ends, so that two copies started at once into one name
// cannot both be accepted: the second gets EEXIST. It reports whether the
// name was free.
func (f *FS) reserveDest(parentID, name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := destKey(parentID, name)
	if _, taken := f.copyDests[k]; taken {
		return false
	}
	if f.copyDests == nil {
		f.copyDests = make(map[string]struct{})
	}
	f.copyDests[k] = struct{}{}
	return true
}

// releaseDest undoes reserveDest.
func (f *FS) releaseDest(parentID, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.copyDests, destKey(parentID, name))
}

// addPendingDest records a cp copy pending into key (a folder and name).
func (f *FS) addPendingDest(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pendingDests == nil {
		f.pendingDests = make(map[string]int)
	}
	f.pendingDests[key]++
}

// donePendingDest undoes addPendingDest.
func (f *FS) donePendingDest(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pendingDests[key] <= 1 {
		delete(f.pendingDests, key)
		return
	}
	f.pendingDests[key]--
}

// pendingDestFSLocked reports whether a cp copy is pending into name in the
// folder parentID. Requires FS.mu.
func (f *FS) pendingDestFSLocked(parentID, name string) bool {
	return f.pendingDests[destKey(parentID, name)] > 0
}

// copyJobDone is the tracker's OnDone: it reveals the item a completed job
// created, unless a copy_file_range of this process waits for the job and
// binds the item itself. It runs on the tracker's goroutine, holding no
// lock; it may do I/O (on the background context) but must not notify the
// kernel directly.
func (f *FS) copyJobDone(j copyjob.Job) {
	if j.Origin == originCP {
		f.settleServerCopy(j)
		return
	}
	if j.Origin == originXattr {
		defer f.releaseDest(j.DestParentID, j.DestName)
	}
	if j.State != copyjob.StateCompleted {
		return // the tracker logs the failure; the status attribute shows it
	}
	it, err := f.copiedItem(f.bg.ctx, j)
	if err != nil {
		if f.bg.ctx.Err() == nil {
			f.log.Warn("reading the item a copy created failed; it shows up at the next listing",
				"job", j.ID, "destination", j.DestPath, "err", err)
		}
		f.forgetDestination(j.DestParentID, j.DestName)
		return
	}
	f.revealItem(it)
}

// copiedItem fetches the item job j created: by the id the monitor gave, or
// else by name in the destination folder.
func (f *FS) copiedItem(ctx context.Context, j copyjob.Job) (*remote.Item, error) {
	rc, folderID := f.folderRef(j.DestParentID) // the destination's drive (drives.go)
	if j.ResourceID != "" {
		it, err := rc.Item(ctx, j.ResourceID)
		if err == nil || !errors.Is(err, remote.ErrNotFound) {
			return it, err
		}
	}
	items, err := rc.Children(ctx, folderID)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if foldName(it.Name) == foldName(j.DestName) {
			return it, nil
		}
	}
	return nil, fmt.Errorf("the copy %s completed but %q is not in its folder: %w", j.ID, j.DestName, remote.ErrNotFound)
}

// revealItem puts an item created behind the mount's back (by a copy job)
// into its folder's cached listing, replacing what held its name there, and
// queues the kernel notification for the name. A file with unsent changes
// that holds the name is left alone: its upload finds the new item and
// saves the local version beside it (saveConflictLocked).
func (f *FS) revealItem(it *remote.Item) {
	if hiddenItem(it) {
		return
	}
	for attempt := 0; attempt < 3; attempt++ {
		f.mu.Lock()
		parent := f.folderByServiceIDFSLocked(it.ParentID)
		if parent == nil || parent.removed {
			f.mu.Unlock()
			// A folder not in memory: the next listing finds the item,
			// from the service or from the store (a folder dropped from
			// memory, evict.go), which must hold it then.
			f.storePut(it)
			return
		}
		cur := f.cachedChildFSLocked(parent, it.Name)
		replaces := cur != nil && (cur.item.Load() == nil || cur.item.Load().ID != it.ID)
		var st *file
		if replaces {
			st = cur.file
		}
		f.mu.Unlock()
		if st != nil {
			// Lock order: the file's lock before FS.mu.
			st.mu.Lock()
		}
		f.mu.Lock()
		again := f.cachedChildFSLocked(parent, it.Name) != cur
		if cur != nil {
			replaces = cur.item.Load() == nil || cur.item.Load().ID != it.ID
			again = again || (replaces && cur.file != st)
		}
		if again {
			f.mu.Unlock()
			if st != nil {
				st.mu.Unlock()
			}
			continue // the name changed hands meanwhile: look again
		}
		if st != nil && st.dirty {
			f.mu.Unlock()
			st.mu.Unlock()
			f.log.Warn("a copy created an item where a file has unsent changes; the changes will be saved beside it",
				"name", it.Name)
			return
		}
		if replaces {
			f.dropFSLocked(cur, false)
		}
		e := f.setItemFSLocked(it)
		f.placeFSLocked(e, parent, it.Name)
		f.mu.Unlock()
		if st != nil {
			if st.handles.Load() == 0 {
				st.discardLocalLocked() // the replaced file's clean staged copy
			}
			st.mu.Unlock()
		}
		if !e.isDir {
			f.notes.content(e)
		}
		return
	}
	f.forgetDestination(it.ParentID, it.Name)
}

// cachedChildFSLocked returns what holds name in dir as far as the mount knows
// without asking the service: a local new file, or the cached listing's
// child; nil if neither. Requires FS.mu.
func (f *FS) cachedChildFSLocked(dir *entry, name string) *entry {
	k := foldName(name)
	if c := dir.local[k]; c != nil && !c.removed {
		return c
	}
	if l := f.listingFSLocked(dir); l != nil {
		if c := l.children[k]; c != nil && !c.removed {
			return c
		}
	}
	return nil
}

// forgetDestination drops the cached listing of a copy's destination folder
// and the kernel's idea of the name, so that the next lookup asks the
// service.
func (f *FS) forgetDestination(parentID, name string) {
	f.listings.Invalidate(parentID)
	f.mu.Lock()
	parent := f.byID[parentID]
	f.mu.Unlock()
	f.notes.aliases(parent, name)
}
