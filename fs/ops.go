package fs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/copyjob"
	"github.com/onedrivefs/onedrivefs/remote"
)

// Changes to the tree: mkdir, create, unlink, rmdir, rename, utimens. Each
// checks names locally first (names.go), asks the service, then updates the
// cached listings so that the next lookup needs no request.

// mkdir creates folder name in dir.
func (f *FS) mkdir(ctx context.Context, dir *entry, name string) (*entry, error) {
	if err := f.checkWritable(); err != nil {
		return nil, err
	}
	if err := f.checkNewPath(ctx, dir, name); err != nil {
		return nil, err
	}
	l, err := f.heldListing(ctx, dir, false)
	if err != nil {
		return nil, err
	}
	if childFSLocked(dir, l, name) != nil {
		f.mu.Unlock()
		return nil, errExists
	}
	drive, parentID := f.contentDrive(dir), f.serviceFolderID(dir)
	f.mu.Unlock()

	it, err := f.driveClient(drive).CreateFolder(ctx, parentID, name, remote.ConflictFail)
	if errors.Is(err, remote.ErrOffline) {
		// Journaled offline in the mounted drive only: the store keeps no
		// other drive's folders.
		if drive == "" {
			it, err = f.mkdirOffline(dir, parentID, name) // offline.go
		} else {
			err = notKeptOffline(err) // offline_attr.go
		}
	}
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.setItemFSLocked(it)
	f.placeFSLocked(e, dir, it.Name)
	// A new folder is empty: cache that, so that entering it costs nothing.
	f.listings.Put(it.ID, &dirListing{children: map[string]*entry{}})
	return e, nil
}

// create makes a new file name in dir, locally: it reaches the server on its
// first flush with content, or on release (lazy creation, so that a file
// filled by a server-side copy is never uploaded empty first). If a file of
// that name exists (in any case), it is returned with created == false, or
// errExists when excl is set.
func (f *FS) create(ctx context.Context, dir *entry, name string, excl bool) (e *entry, created bool, err error) {
	if err := f.checkWritable(); err != nil {
		return nil, false, err
	}
	if err := checkNameLen(name); err != nil {
		return nil, false, err
	}
	l, err := f.heldListing(ctx, dir, false)
	if err != nil {
		return nil, false, err
	}
	if c := childFSLocked(dir, l, name); c != nil {
		f.mu.Unlock()
		switch {
		case excl:
			return nil, false, errExists
		case c.isDir:
			return nil, false, errIsDir
		}
		return c, false, nil
	}
	f.mu.Unlock()
	if err := f.checkNewPath(ctx, dir, name); err != nil {
		return nil, false, err
	}
	sf, err := f.staging.Stage(cache.NewRecordID())
	if err != nil {
		return nil, false, err
	}
	f.mu.Lock()
	if dir.removed {
		f.mu.Unlock()
		f.abandonStaged(sf)
		return nil, false, errRemoved
	}
	e = f.newLocalEntryFSLocked(dir, name)
	f.touchDirFSLocked(dir)
	fl := f.newFile(e)
	fl.staged, fl.dirty = sf, true
	fl.setLocalAttr(true, 0, f.now())
	e.file = fl
	f.mu.Unlock()
	return e, true, nil
}

// unlink removes file name from dir.
func (f *FS) unlink(ctx context.Context, dir *entry, name string) error {
	if err := f.checkWritable(); err != nil {
		return err
	}
	c, err := f.lookup(ctx, dir, name)
	if err != nil {
		return err
	}
	if c.isDir {
		return errIsDir
	}
	return f.remove(ctx, dir, c)
}

// rmdir removes folder name from dir if it is empty on the server.
func (f *FS) rmdir(ctx context.Context, dir *entry, name string) error {
	if err := f.checkWritable(); err != nil {
		return err
	}
	c, err := f.lookup(ctx, dir, name)
	if err != nil {
		return err
	}
	if !c.isDir {
		return errNotDir
	}
	if err := f.checkEmpty(ctx, c); err != nil {
		return err
	}
	return f.remove(ctx, dir, c)
}

// checkEmpty fails with errNotEmpty unless folder d has no children. It asks
// the service, not the cache: deleting a folder on OneDrive deletes
// everything in it, so a stale "empty" must never be believed.
func (f *FS) checkEmpty(ctx context.Context, d *entry) error {
	l, err := f.heldListing(ctx, d, true)
	if err != nil {
		return err
	}
	defer f.mu.Unlock()
	for _, c := range l.children {
		if !c.removed {
			return errNotEmpty
		}
	}
	for _, c := range d.local {
		if !c.removed {
			return errNotEmpty
		}
	}
	return nil
}

// remove deletes c (a child of dir) on the service and takes it out of the
// tree. A file still open keeps its content for its handles (POSIX): a
// clean one is staged first (its bytes fetched while the item exists), and
// its content goes with the last close; nothing of it is sent again. A file
// that exists only locally is just dropped.
func (f *FS) remove(ctx context.Context, dir, c *entry) error {
	fl := f.fileOf(c)
	if fl != nil {
		fl.mu.Lock() // no upload of c may run while it is removed
		defer fl.mu.Unlock()
		if fl.handles.Load() > 0 && fl.staged == nil && pendingCopyLocked(fl) == nil {
			if err := fl.stageLocked(ctx, true); err != nil {
				return fmt.Errorf("keeping the content of an open file being deleted: %w", err)
			}
		}
		if fl.base != nil {
			// Its base version goes with the item: fetch the rest first.
			if err := fl.fillLocked(ctx, 0, fl.base.limit); err != nil {
				return fmt.Errorf("keeping the content of a file being deleted: %w", err)
			}
		}
	}
	f.mu.Lock()
	id := c.itemIDFSLocked()
	rc := f.driveClient(f.itemDrive(c.item.Load()))
	f.mu.Unlock()
	switch {
	case fl != nil && pendingCopyLocked(fl) != nil:
		// A copy still being made: deleted when it completes.
		f.recordThenLocked(fl.copyIn, func(t *copyjob.Then) { t.Delete = true })
	case id != "" && fl != nil && fl.holds > 0:
		// A copy is being taken from it: deleted once that is done.
		f.deferDelete(id)
		id = "" // its cached content stays for the copy's readers
	case id != "":
		err := rc.Delete(ctx, id, "")
		ownDrive := rc == f.remote
		if errors.Is(err, remote.ErrOffline) && ownDrive {
			err = f.deleteOffline(c, id, c.item.Load().ETag) // offline.go
		} else if errors.Is(err, remote.ErrOffline) {
			err = notKeptOffline(err)
		} else if err == nil || errors.Is(err, remote.ErrNotFound) {
			err = nil
			if ownDrive {
				f.storeDelete(id)
			}
		}
		if err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.dropFSLocked(c, true)
	f.mu.Unlock()
	if fl != nil && fl.handles.Load() == 0 {
		fl.discardLocalLocked()
	}
	if id != "" {
		f.content.Remove(id)
	}
	return nil
}

// Rename flags (renameat2).
const (
	renameNoReplace = 1 << 0
	renameExchange  = 1 << 1
)

// rename moves name in dir to newName in newDir, replacing an existing
// target as POSIX rename does (the target is deleted first, then the item
// moved: OneDrive has no atomic replace).
func (f *FS) rename(ctx context.Context, dir *entry, name string, newDir *entry, newName string, flags uint32) error {
	if err := f.checkWritable(); err != nil {
		return err
	}
	if flags&renameExchange != 0 {
		return fmt.Errorf("RENAME_EXCHANGE: %w", errInvalid)
	}
	if err := checkNameLen(newName); err != nil {
		return err
	}
	src, err := f.lookup(ctx, dir, name)
	if err != nil {
		return err
	}
	if newDir != dir && f.moveDrive(src, dir) != f.contentDrive(newDir) {
		// The service moves items within a drive only: mv copies instead.
		return fmt.Errorf("moving %q to another drive: %w", name, errCrossMount)
	}
	if err := f.checkNewPath(ctx, newDir, newName); err != nil {
		return err
	}
	if src.isDir && f.isAncestor(src, newDir) {
		return fmt.Errorf("moving a folder into itself: %w", errInvalid)
	}
	dst, err := f.lookup(ctx, newDir, newName)
	switch {
	case errors.Is(err, errNoEntry):
		dst = nil
	case err != nil:
		return err
	}
	if dst != nil && dst != src {
		if flags&renameNoReplace != 0 {
			return errExists
		}
		switch {
		case dst.isDir && !src.isDir:
			return errIsDir
		case !dst.isDir && src.isDir:
			return errNotDir
		case dst.isDir:
			if err := f.checkEmpty(ctx, dst); err != nil {
				return err
			}
		}
		if err := f.remove(ctx, newDir, dst); err != nil {
			return err
		}
	}
	st := f.fileOf(src)
	if st != nil {
		st.mu.Lock() // an upload in progress must finish before the move
		defer st.mu.Unlock()
	}

	f.mu.Lock()
	if src.removed || newDir.removed || newDir.item.Load() == nil {
		f.mu.Unlock()
		return errRemoved
	}
	id := src.itemIDFSLocked()
	oldName := src.name
	srcDrive := f.moveDrive(src, dir)
	var upd remote.ItemUpdate
	if newDir != dir {
		upd.ParentID = f.serviceFolderID(newDir)
	}
	if newName != src.name {
		upd.Name = newName
	}
	f.mu.Unlock()

	if id != "" && (upd.Name != "" || upd.ParentID != "") {
		it, err := f.driveClient(srcDrive).Update(ctx, id, upd)
		if errors.Is(err, remote.ErrOffline) {
			if srcDrive == "" {
				it, err = f.moveOffline(src, upd) // offline.go
			} else {
				err = notKeptOffline(err)
			}
		}
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.setItemFSLocked(it)
		f.mu.Unlock()
	}
	f.mu.Lock()
	f.placeFSLocked(src, newDir, newName)
	newParentID := newDir.item.Load().ID
	names, _ := f.pathNamesFSLocked(newDir)
	f.mu.Unlock()
	if st != nil {
		if c := pendingCopyLocked(st); c != nil {
			f.recordThenLocked(c, func(t *copyjob.Then) { t.Name, t.ParentID = newName, newParentID })
		}
	}
	if st != nil && st.committed {
		// A journaled change follows the file to its new name.
		if _, err := f.staging.Modify(st.staged.ID(), func(r *cache.Record) {
			r.ParentID, r.Name, r.DirPath = newParentID, newName, strings.Join(names, "/")
		}); err != nil {
			f.log.Warn("updating the journal after a rename failed", "name", newName, "err", err)
		}
	}
	f.notes.aliases(dir, oldName)
	return nil
}

// isAncestor reports whether a is d or one of d's ancestors.
func (f *FS) isAncestor(a, d *entry) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p := d; p != nil; p = p.parent {
		if p == a {
			return true
		}
	}
	return false
}

// setTimes sets e's modification time (a zero mtime leaves it) and
// access time (a zero atime leaves it). The mtime is recorded with the
// staged content when the file has unsent changes (it travels with the
// upload), otherwise sent to the service as fileSystemInfo; the access time
// is only remembered here (the service has none).
func (f *FS) setTimes(ctx context.Context, e *entry, mtime, atime time.Time) error {
	if err := f.checkWritable(); err != nil {
		return err
	}
	if !atime.IsZero() {
		f.mu.Lock()
		e.atime = atime
		f.mu.Unlock()
	}
	if mtime.IsZero() {
		return nil
	}
	if fl := f.fileOf(e); fl != nil {
		fl.mu.Lock()
		c := pendingCopyLocked(fl)
		if c != nil {
			f.recordThenLocked(c, func(t *copyjob.Then) { t.ModTime = mtime })
			f.mu.Lock()
			e.mtime = mtime
			f.mu.Unlock()
		}
		fl.mu.Unlock()
		if c != nil {
			return nil
		}
		if fl.setMtimeIfLocal(mtime) {
			return nil
		}
	}
	f.mu.Lock()
	id := e.itemIDFSLocked()
	f.mu.Unlock()
	if id == "" {
		return errRemoved
	}
	drive := f.itemDrive(e.item.Load())
	it, err := f.driveClient(drive).Update(ctx, id, remote.ItemUpdate{FSModified: mtime})
	if errors.Is(err, remote.ErrOffline) {
		if drive == "" {
			it, err = f.setTimesOffline(e, mtime) // offline_attr.go
		} else {
			err = notKeptOffline(err)
		}
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.setItemFSLocked(it)
	e.mtime = mtime
	f.mu.Unlock()
	if fl := f.fileOf(e); fl != nil {
		// Sent content still staged until its last handle is released:
		// its local attributes are what stat shows meanwhile.
		fl.setMtimeIfStaged(mtime)
	}
	return nil
}

// checkNewPath validates name for a new or renamed item in dir, and the
// length of the path it would have, logging the rule it breaks.
func (f *FS) checkNewPath(ctx context.Context, dir *entry, name string) error {
	err := checkName(name)
	if err == nil {
		f.mu.Lock()
		names, ok := f.pathNamesFSLocked(dir)
		f.mu.Unlock()
		if ok {
			err = checkPathLen(append(names, name))
		}
	}
	var ne *nameError
	if errors.As(err, &ne) {
		f.log.InfoContext(ctx, "refused a name OneDrive does not allow", "name", truncateForLog(name), "rule", ne.Rule)
	}
	return err
}

// fileOf returns e's file state, nil for folders and files never
// opened.
func (f *FS) fileOf(e *entry) *file {
	f.mu.Lock()
	defer f.mu.Unlock()
	return e.file
}

// ensureFile returns e's file state, creating it.
func (f *FS) ensureFile(e *entry) *file {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e.file == nil {
		e.file = f.newFile(e)
	}
	return e.file
}
