package fs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
)

// Offline changes of attributes, and what cannot be kept offline.
//
//   - utimens (touch, touch -d, cp -p, rsync -t) of an item on the service
//     is applied to the tree and journaled as a "times" record; at replay
//     the time is sent unless the file's content changed on OneDrive
//     meanwhile (its cTag moved): the service's time belongs to that newer
//     content, so it stays, as a newer version wins over an older one in
//     the other offline conflicts. A folder's time is sent whatever
//     changed in it. A file with local changes carries its time with its
//     content (file.go), as online.
//   - chmod and chown change nothing (OneDrive has no modes), offline too;
//     truncate of a cached file is a write (journaled as any), of a file
//     not cached it fails at once (its content is not here).
//   - pinning while offline is recorded: the files that are cached are
//     held at once, the others are downloaded when the service is back
//     (backOnline).
//   - in folders shared from other drives (shortcuts, "Shared with me")
//     nothing but new file content is kept offline: the store and the
//     offline journal hold the mounted drive's items only. mkdir, rename,
//     unlink, utimens and copies there fail at once with EIO, and the log
//     says why (errNotKeptOffline).

// errNotKeptOffline marks a change refused offline because it is in a
// folder shared from another drive. It wraps remote.ErrOffline (EIO).
var errNotKeptOffline = errors.New("changes in folders shared from other drives are not kept while offline")

// notKeptOffline wraps err, a remote.ErrOffline of a change in another
// drive.
func notKeptOffline(err error) error { return fmt.Errorf("%w: %w", errNotKeptOffline, err) }

// setTimesOffline sets e's modification time while offline: applied to
// the tree and the store, and journaled.
func (f *FS) setTimesOffline(e *entry, mtime time.Time) (*remote.Item, error) {
	f.mu.Lock()
	cur := e.item.Load()
	path := f.pathOfFSLocked(e)
	f.mu.Unlock()
	if cur == nil {
		return nil, errRemoved
	}
	it := *cur
	it.FSModified = mtime
	it.Modified = f.now()
	rec := offlineRecord{Op: "times", ID: cur.ID, Mtime: mtime, CTag: cur.CTag,
		Folder: cur.IsFolder || cur.IsRoot, Path: path}
	if err := f.journalOffline(rec, []*remote.Item{&it}, nil, ""); err != nil {
		return nil, err
	}
	return &it, nil
}

// replayTimesOffline sends a time set offline (see the top of this file
// for when it is not).
func (f *FS) replayTimesOffline(ctx context.Context, r offlineRecord, resolve func(string) string) error {
	id := resolve(r.ID)
	if isLocalID(id) {
		return nil // its mkdir was dropped
	}
	cur, err := f.remote.Item(ctx, id)
	if errors.Is(err, remote.ErrNotFound) {
		f.log.Warn("an item whose time was set offline was deleted on OneDrive meanwhile", "path", r.Path)
		return nil
	}
	if err != nil {
		return err
	}
	if !r.Folder && r.CTag != "" && cur.CTag != r.CTag {
		f.log.Warn("a file whose time was set offline was changed on OneDrive meanwhile; the time of that newer version is kept", "path", r.Path)
		return nil
	}
	it, err := f.remote.Update(ctx, id, remote.ItemUpdate{FSModified: r.Mtime, IfMatch: cur.ETag})
	if errors.Is(err, remote.ErrPreconditionFailed) {
		f.log.Warn("a file whose time was set offline changed on OneDrive as it was sent; its time there is kept", "path", r.Path)
		return nil
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	if f.byID[it.ID] != nil {
		f.setItemFSLocked(it)
	} else {
		f.storePut(it)
	}
	f.mu.Unlock()
	f.log.Info("sent a time set offline", "path", r.Path)
	return nil
}
