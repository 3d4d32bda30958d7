package fs

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/onedrivefs/onedrivefs/remote"
)

// Items of other drives (docs/architecture.md, "Other drives"). A shortcut
// in the user's drive ("Add shortcut to My files") shows as a folder whose
// children live in the drive that owns the shared folder; the virtual
// "Shared with me" folder (shared.go) shows items of other drives too.
// Everything in fs addresses an item by its entry's item id, as before;
// which drive a request goes to is decided at the boundary, here:
//
//   - an item's drive is its parentReference.driveId (remote.Item.DriveID),
//     which the service sends with every driveItem; "" stands for the
//     mounted drive. Items listed from another drive get it filled in when
//     the service left it out (listChildren).
//   - a folder's children live in the folder's own drive, under its id,
//     except for a shortcut, whose children are those of its target
//     (RemoteDriveID, RemoteID): contentDrive and serviceFolderID.
//   - the client of a drive is f.remote.OnDrive(id), made once per drive
//     (driveClient); they share connections, tokens and throttling.
//
// Item ids are taken as unique across drives (the service's ids embed the
// drive, on Personal accounts literally): the entry maps stay keyed by id.

// driveClients caches one *remote.Client per drive other than the mounted
// one.
type driveClients struct {
	mu      sync.Mutex
	clients map[string]*remote.Client // by lower-cased drive id; GUARDED_BY(mu)
}

// driveClient returns the client of drive id ("" is the mounted drive).
func (f *FS) driveClient(id string) *remote.Client {
	if id == "" {
		return f.remote
	}
	k := strings.ToLower(id)
	f.drives.mu.Lock()
	defer f.drives.mu.Unlock()
	if c := f.drives.clients[k]; c != nil {
		return c
	}
	if f.drives.clients == nil {
		f.drives.clients = make(map[string]*remote.Client)
	}
	c := f.remote.OnDrive(id)
	f.drives.clients[k] = c
	return c
}

// foreignDrive returns id when it names a drive other than the mounted
// one, "" otherwise (the mounted drive, or a drive the service did not
// name). ownDrive is set by start, before anything is served.
func (f *FS) foreignDrive(id string) string {
	if id == "" || f.ownDrive == "" || strings.EqualFold(id, f.ownDrive) {
		return ""
	}
	return id
}

// itemDrive is the drive it lives in ("" for the mounted drive).
func (f *FS) itemDrive(it *remote.Item) string {
	if it == nil {
		return ""
	}
	return f.foreignDrive(it.DriveID)
}

// serviceItem returns the drive and id under which the service knows the
// content of it: a shortcut's target, else the item itself. Copies, links
// and downloads address this; a rename or a deletion of a shortcut
// addresses the shortcut (itemDrive, it.ID).
func (f *FS) serviceItem(it *remote.Item) (drive, id string) {
	if it.Shortcut && it.RemoteDriveID != "" && it.RemoteID != "" {
		return f.foreignDrive(it.RemoteDriveID), it.RemoteID
	}
	return f.itemDrive(it), it.ID
}

// contentDrive is the drive that holds folder dir's children (or, for a
// file, its content).
func (f *FS) contentDrive(dir *entry) string {
	it := dir.item.Load()
	if it == nil {
		return ""
	}
	d, _ := f.serviceItem(it)
	return d
}

// serviceFolderID is the id under which the service knows folder dir as a
// parent (a shortcut's target id; the folder's own id otherwise); "" for a
// folder not on the service.
func (f *FS) serviceFolderID(dir *entry) string {
	it := dir.item.Load()
	if it == nil {
		return ""
	}
	_, id := f.serviceItem(it)
	return id
}

// folderRef returns the client of the drive that holds the children of the
// folder whose entry's item id is id, and the id to name it by there. A
// folder this mount does not know is taken as one of the mounted drive.
func (f *FS) folderRef(id string) (*remote.Client, string) {
	f.mu.Lock()
	e := f.byID[id]
	f.mu.Unlock()
	if e == nil {
		return f.remote, id
	}
	return f.driveClient(f.contentDrive(e)), f.serviceFolderID(e)
}

// itemClient returns the client of the drive holding the item whose id is
// id, as far as this mount knows it (the mounted drive's otherwise).
func (f *FS) itemClient(id string) *remote.Client {
	f.mu.Lock()
	e := f.byID[id]
	f.mu.Unlock()
	if e == nil {
		return f.remote
	}
	return f.driveClient(f.itemDrive(e.item.Load()))
}

// driveIDOf returns the full id of drive d ("" is the mounted drive's).
func (f *FS) driveIDOf(d string) string {
	if d == "" {
		return f.ownDrive
	}
	return d
}

// folderByServiceIDFSLocked finds the folder the service calls id: an
// entry's item id, or a watched shortcut's target id. Requires FS.mu.
func (f *FS) folderByServiceIDFSLocked(id string) *entry {
	if e := f.byID[id]; e != nil {
		return e
	}
	for _, s := range f.shares.byShortcut {
		if s.remoteID == id && s.entry != nil {
			return s.entry
		}
	}
	return nil
}

// listChildren fetches the children of folder dir (whose entry's item id is
// id) from the drive that holds them: the mounted drive's folders, a
// shortcut's target, a folder of another drive, or the virtual "Shared with
// me" folder.
func (f *FS) listChildren(ctx context.Context, dir *entry, force bool) ([]*remote.Item, error) {
	if f.isSharedDir(dir) {
		return f.sharedWithMe(ctx)
	}
	it := dir.item.Load()
	drive, folderID := f.serviceItem(it)
	if drive == "" {
		items, _, err := f.children(ctx, folderID, force) // the mounted drive's, through the store (store.go)
		return items, err
	}
	if it.Shortcut {
		f.watchShare(ctx, dir)
	}
	items, err := f.driveClient(drive).Children(ctx, folderID)
	if err != nil {
		return nil, err
	}
	for i, c := range items {
		if c.DriveID == "" {
			cp := *c
			cp.DriveID = drive
			items[i] = &cp
		}
	}
	return items, nil
}

// moveDrive is the drive a rename or move of src (a child of dir) happens
// in: its item's, or for a file that exists only locally, its folder's.
func (f *FS) moveDrive(src, dir *entry) string {
	if it := src.item.Load(); it != nil {
		return f.itemDrive(it)
	}
	return f.contentDrive(dir)
}

// refusedCrossDrive reports whether err is the service refusing a copy of
// src into folder dest because the two are in different drives it will not
// copy between (a Personal and a Business drive: 400).
func (f *FS) refusedCrossDrive(src *remote.Item, dest *entry, err error) bool {
	srcDrive, _ := f.serviceItem(src)
	var re *remote.Error
	return srcDrive != f.contentDrive(dest) && errors.As(err, &re) && re.StatusCode == http.StatusBadRequest
}
