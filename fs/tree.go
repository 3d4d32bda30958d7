package fs

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/remote"
)

// rootIno is the inode number of the mount's root (FUSE_ROOT_ID).
const rootIno = 1

// entry is one item of the drive as this mount knows it. Entries are never
// dropped while the mount lives, so an item id keeps its inode number (and
// its entry) for the life of the mount, even across moves and listings.
type entry struct {
	ino   uint64 // immutable
	isDir bool   // immutable

	// The fields below are guarded by FS.mu.

	// item is the last known server state; nil for a new file that exists
	// only locally until its first upload (lazy creation). Treated as
	// immutable: replaced, never modified.
	item *remote.Item
	// parent and name place the entry in the tree; parent is nil for the
	// root, for removed entries and for items moved where this mount does
	// not look.
	parent *entry
	name   string
	// removed: deleted locally or on the server; no listing holds it.
	removed bool
	// local holds, for a folder, its children that exist only locally (new
	// files not uploaded yet), by folded name. They survive relisting.
	local map[string]*entry

	// file is the content state of a file; set once, under FS.mu, on first
	// need, and never cleared.
	file *file
}

// itemID returns the entry's item id, "" for a local-only file.
// Requires FS.mu.
func (e *entry) itemIDFSLocked() string {
	if e.item == nil {
		return ""
	}
	return e.item.ID
}

// dirListing is the cached listing of one folder: its children on the
// server, by folded name. It lives in FS.listings and is read and changed
// only under FS.mu.
type dirListing struct {
	children map[string]*entry
}

// hiddenItem reports items the mount does not show: packages (OneNote
// notebooks) are opaque bundles that no file program can read or write, so
// they are hidden everywhere, consistently (listing, lookup, delta).
func hiddenItem(it *remote.Item) bool {
	return it.Package != "" || it.Deleted
}

// entryForItemFSLocked returns the entry of it, creating it (with a new inode
// number) the first time the item is seen, and records it as the latest
// server state. Requires FS.mu.
func (f *FS) entryForItemFSLocked(it *remote.Item) *entry {
	e := f.byID[it.ID]
	if e == nil {
		e = &entry{ino: f.nextIno, isDir: it.IsFolder || it.IsRoot}
		f.nextIno++
		f.byIno[e.ino] = e
		f.byID[it.ID] = e
	}
	e.item = it
	return e
}

// newLocalEntryFSLocked registers a file that exists only locally (lazy
// creation). Requires FS.mu.
func (f *FS) newLocalEntryFSLocked(parent *entry, name string) *entry {
	e := &entry{ino: f.nextIno, parent: parent, name: name}
	f.nextIno++
	f.byIno[e.ino] = e
	if parent.local == nil {
		parent.local = make(map[string]*entry)
	}
	parent.local[foldName(name)] = e
	return e
}

// bindFSLocked records that local entry e was created on the server as it.
// Requires FS.mu.
func (f *FS) bindFSLocked(e *entry, it *remote.Item) {
	if e.item == nil || e.item.ID != it.ID {
		if e.item != nil && f.byID[e.item.ID] == e {
			delete(f.byID, e.item.ID)
		}
		f.byID[it.ID] = e
	}
	e.item = it
	if p := e.parent; p != nil && !e.removed {
		k := foldName(e.name)
		if p.local[k] == e {
			delete(p.local, k)
		}
		f.updateListingFSLocked(p, func(l *dirListing) { l.children[k] = e })
	}
}

// listingFSLocked returns the fresh cached listing of dir, or nil. Caller
// holds FS.mu.
func (f *FS) listingFSLocked(dir *entry) *dirListing {
	if dir.item == nil {
		return nil
	}
	l, ok := f.listings.Get(dir.item.ID)
	if !ok {
		return nil
	}
	return l
}

// updateListingFSLocked changes dir's cached listing in place, if one is
// fresh; if none is, there is nothing to keep consistent (the next reader
// lists the folder again). Requires FS.mu.
func (f *FS) updateListingFSLocked(dir *entry, fn func(*dirListing)) {
	if dir.item == nil {
		return
	}
	f.listings.Update(dir.item.ID, func(l *dirListing) *dirListing {
		fn(l)
		return l
	})
}

// listing returns dir's listing, from the cache when fresh, otherwise from
// the service. force skips the cache (rmdir must see the server's truth).
// The returned listing must only be read under FS.mu.
func (f *FS) listing(ctx context.Context, dir *entry, force bool) (*dirListing, error) {
	f.mu.Lock()
	if !dir.isDir {
		f.mu.Unlock()
		return nil, errNotDir
	}
	if dir.removed || dir.item == nil {
		f.mu.Unlock()
		return nil, errRemoved
	}
	if !force {
		if l := f.listingFSLocked(dir); l != nil {
			f.mu.Unlock()
			return l, nil
		}
	}
	id := dir.item.ID
	f.mu.Unlock()

	for attempt := 0; ; attempt++ {
		gen := f.listings.Generation()
		items, err := f.remote.Children(ctx, id)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		l := f.applyListingFSLocked(dir, items)
		stored := f.listings.PutIfFresh(gen, id, l)
		f.mu.Unlock()
		if stored || attempt == 2 {
			// A listing invalidated while it was read is still the best
			// answer for this call; the next call reads it again.
			return l, nil
		}
	}
}

// applyListingFSLocked turns a folder's children, as the service listed them,
// into a listing, updating the entries. Requires FS.mu.
func (f *FS) applyListingFSLocked(dir *entry, items []*remote.Item) *dirListing {
	l := &dirListing{children: make(map[string]*entry, len(items))}
	for _, it := range items {
		if hiddenItem(it) {
			continue
		}
		e := f.entryForItemFSLocked(it)
		if e.parent != nil && e.parent != dir {
			// Moved here from a folder whose listing still holds it.
			f.forgetChildFSLocked(e.parent, e)
		}
		e.parent, e.name, e.removed = dir, it.Name, false
		l.children[foldName(it.Name)] = e
	}
	return l
}

// forgetChildFSLocked removes e from dir's cached listing and local children.
// Requires FS.mu.
func (f *FS) forgetChildFSLocked(dir, e *entry) {
	k := foldName(e.name)
	if dir.local[k] == e {
		delete(dir.local, k)
	}
	f.updateListingFSLocked(dir, func(l *dirListing) {
		if l.children[k] == e {
			delete(l.children, k)
		}
	})
}

// childFSLocked finds name in dir: local children first, then the listing l.
// Requires FS.mu.
func childFSLocked(dir *entry, l *dirListing, name string) *entry {
	k := foldName(name)
	if c := dir.local[k]; c != nil && !c.removed {
		return c
	}
	if c := l.children[k]; c != nil && !c.removed {
		return c
	}
	return nil
}

// lookup finds name in dir, case-insensitively.
func (f *FS) lookup(ctx context.Context, dir *entry, name string) (*entry, error) {
	l, err := f.listing(ctx, dir, false)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := childFSLocked(dir, l, name); c != nil {
		return c, nil
	}
	return nil, errNoEntry
}

// dirEntry is one line of a directory listing.
type dirEntry struct {
	name  string
	ino   uint64
	isDir bool
}

// readdir lists dir: the server's children and the local new files, sorted
// by name.
func (f *FS) readdir(ctx context.Context, dir *entry) ([]dirEntry, error) {
	l, err := f.listing(ctx, dir, false)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	out := make([]dirEntry, 0, len(l.children)+len(dir.local))
	for _, c := range l.children {
		if !c.removed {
			out = append(out, dirEntry{name: c.name, ino: c.ino, isDir: c.isDir})
		}
	}
	for k, c := range dir.local {
		if _, dup := l.children[k]; !dup && !c.removed {
			out = append(out, dirEntry{name: c.name, ino: c.ino, isDir: c.isDir})
		}
	}
	f.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// attr is what stat shows of an entry.
type attr struct {
	ino   uint64
	isDir bool
	size  int64
	mtime time.Time
	ctime time.Time
}

// attrOf returns e's attributes: the staged content's size and time while
// the file has local changes, else the server's (mtime from fileSystemInfo
// when set).
func (f *FS) attrOf(e *entry) attr {
	f.mu.Lock()
	a := attr{ino: e.ino, isDir: e.isDir}
	if it := e.item; it != nil {
		if !e.isDir {
			a.size = it.Size
		}
		a.mtime = itemMtime(it)
		a.ctime = it.Modified
	}
	st := e.file
	f.mu.Unlock()
	if st != nil {
		if size, mtime, ok := st.localAttr(); ok {
			a.size, a.mtime = size, mtime
			if mtime.After(a.ctime) {
				a.ctime = mtime
			}
		} else if size, ok := st.copiedAttr(); ok {
			a.size = size
		}
	}
	if a.ctime.IsZero() || a.ctime.Before(a.mtime) {
		a.ctime = a.mtime
	}
	return a
}

// parentIno returns the inode number of e's parent (the root's for the
// root).
func (f *FS) parentIno(e *entry) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e.parent == nil {
		return rootIno
	}
	return e.parent.ino
}

// pathNamesFSLocked returns the names on the way from the root down to e (none
// for the root); false when e is not in the tree. Requires FS.mu.
func (f *FS) pathNamesFSLocked(e *entry) ([]string, bool) {
	var names []string
	for p := e; p != f.root; p = p.parent {
		if p == nil {
			return nil, false
		}
		names = append(names, p.name)
	}
	slices.Reverse(names)
	return names, true
}

// pathOfFSLocked returns e's path in the drive ("/a/b"; "/" for the root), ""
// when e is not in the tree. Requires FS.mu.
func (f *FS) pathOfFSLocked(e *entry) string {
	names, ok := f.pathNamesFSLocked(e)
	if !ok {
		return ""
	}
	return "/" + strings.Join(names, "/")
}

// invalidateListing drops dir's cached listing (the next access lists it
// again).
func (f *FS) invalidateListing(id string) {
	f.listings.Invalidate(id)
}

// keyOf returns the content-cache key of a file's server version.
func keyOf(it *remote.Item) cache.Key {
	return cache.Key{ID: it.ID, CTag: it.CTag}
}
