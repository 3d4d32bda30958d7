package fs

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/remote"
)

// rootIno is the inode number of the mount's root (FUSE_ROOT_ID).
const rootIno = 1

// entry is one item of the drive as this mount knows it. The tree in memory
// is a bounded cache over the store (evict.go): an entry that holds nothing
// of its own (no open handle or content state, no local children or times,
// no pending copy, journal record or pin, not known to the kernel) may be
// dropped from byID and byIno, with the listings holding it, and built again
// from the store when next looked up. An item keeps its inode number across
// that (hashIno), and while an entry is in the tree it is its item's only
// one: a dropped entry is never placed in a listing again (liveFSLocked
// gives the live one). Everything that must survive a drop is what makes an
// entry undroppable (holdsStateFSLocked).
type entry struct {
	ino   uint64 // immutable
	isDir bool   // immutable

	// node is the go-fuse node the kernel knows this entry by; nil when
	// the kernel does not know it (never looked up, or forgotten:
	// node.OnForget). GUARDED_BY(FS.mu)
	node *node
	// dropped: a sweep took the entry out of the tree's maps (evict.go).
	// Set under FS.mu; read without it by nodes (node.ent).
	dropped atomic.Bool

	// item is the last known service state; nil for a new file that exists
	// only locally until its first upload (lazy creation). The item is an
	// immutable snapshot: replaced (under FS.mu, with the entry's place),
	// never modified, so it may be read without FS.mu where a consistent
	// view of the entry's other fields is not needed.
	item atomic.Pointer[remote.Item]
	// seq is FS.seq when a change made by this mount last set item (0: set
	// by what the service reported). A service report fetched before that
	// may be older than item (staleItem). GUARDED_BY(FS.mu)
	seq uint64
	// parent and name place the entry in the tree. parent is nil for the
	// root and for items moved where this mount does not look; a removed
	// entry keeps its last place (where its unsent content goes back to).
	// GUARDED_BY(FS.mu)
	parent *entry
	name   string
	// removed: no longer in the tree (deleted here or on the service, or
	// replaced); no listing holds it. GUARDED_BY(FS.mu)
	removed bool
	// unlinked: deleted by this mount (unlink, rmdir, rename over it). Its
	// open handles keep reading and writing its content until the last
	// close, and nothing of it is sent again. GUARDED_BY(FS.mu)
	unlinked bool
	// local holds, for a folder, its children that exist only locally (new
	// files not uploaded yet), by folded name. They survive relisting.
	// GUARDED_BY(FS.mu)
	local map[string]*entry

	// Times this mount set, shown in place of the service's (attr.go): for
	// a folder, when an entry was last added or removed; for a file, the
	// last utimens or write (mtime, kept while the service holds it at its
	// own precision) and the last utimens' access time. Zero: none.
	// GUARDED_BY(FS.mu)
	mtime, ctime, atime time.Time

	// file is the content state of a file; set once, under FS.mu, on first
	// need, and never cleared.
	file *file
}

// itemID returns the entry's item id, "" for a local-only file.
// Requires FS.mu.
func (e *entry) itemIDFSLocked() string {
	if e.item.Load() == nil {
		return ""
	}
	return e.item.Load().ID
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

// entryForItemFSLocked returns the entry of it, creating it (with its inode
// number, evict.go) when the tree holds none. It does not change an
// existing entry's item: see setItemFSLocked and observeItemFSLocked.
// Requires FS.mu.
func (f *FS) entryForItemFSLocked(it *remote.Item) *entry {
	e := f.byID[it.ID]
	if e == nil {
		e = &entry{ino: f.inoForFSLocked(it.ID), isDir: it.IsFolder || it.IsRoot}
		e.item.Store(slimItem(it))
		f.byIno[e.ino] = e
		f.byID[it.ID] = e
		f.noteEntryAddedFSLocked() // evict.go
	}
	return e
}

// slimItem returns the copy of it the tree keeps: what a listing or delta
// reports that the mount never reads again (the short-lived download URL,
// SHA-256, MIME type, the parent's path) is left out, so that a drive of
// many items costs less memory (a download URL alone is a few hundred
// bytes).
func slimItem(it *remote.Item) *remote.Item {
	if it == nil || (it.DownloadURL == "" && it.SHA256 == "" && it.MimeType == "" && it.ParentPath == "") {
		return it
	}
	s := *it
	s.DownloadURL, s.SHA256, s.MimeType, s.ParentPath = "", "", "", ""
	return &s
}

// setItemFSLocked records it, the answer to a change this mount made (or
// an item it just fetched), as its entry's service state, and returns the
// entry. Requires FS.mu.
func (f *FS) setItemFSLocked(it *remote.Item) *entry {
	e := f.entryForItemFSLocked(it)
	e.item.Store(slimItem(it))
	f.seq++
	e.seq = f.seq
	f.storePut(slimItem(it)) // store.go: queued, no I/O here
	return e
}

// observeItemFSLocked records it, as a listing or delta page fetched when
// FS.seq was since reported it, unless it is older than what the entry
// holds; it returns the entry and whether it took the item. Requires FS.mu.
func (f *FS) observeItemFSLocked(it *remote.Item, since uint64) (*entry, bool) {
	e := f.entryForItemFSLocked(it)
	if e.item.Load() != it && staleItem(e.item.Load(), it, e.seq > since) {
		return e, false
	}
	e.item.Store(slimItem(it))
	return e, true
}

// staleItem reports whether it, a report of cur's item, is older than cur.
// The service's lastModifiedDateTime rises with every change to an item
// (content, name, place or times), so a strictly earlier one is an older
// version. Equal times with a different eTag happen when two changes fall
// within the service's time precision: then a change this mount made after
// the report was fetched (changedSince) wins. A page fetched before a local
// upload and applied after it must never roll the entry back: the next
// upload would be based on the old version and end as a conflict copy.
func staleItem(cur, it *remote.Item, changedSince bool) bool {
	if cur == nil || cur.ID != it.ID {
		return false
	}
	if it.Modified.Before(cur.Modified) {
		return true
	}
	return it.Modified.Equal(cur.Modified) && it.ETag != cur.ETag && changedSince
}

// placeFSLocked puts e in the tree as name in dir (its cached listing, or its
// local children for a local-only file), out of where it was, and queues
// the kernel notifications. Requires FS.mu.
func (f *FS) placeFSLocked(e, dir *entry, name string) {
	if e.parent != nil && !e.removed && (e.parent != dir || foldName(e.name) != foldName(name)) {
		f.forgetChildFSLocked(e.parent, e)
		f.touchDirFSLocked(e.parent)
		f.notes.aliases(e.parent, e.name)
	}
	e.parent, e.name, e.removed, e.unlinked = dir, name, false, false
	k := foldName(name)
	if e.item.Load() == nil {
		if dir.local == nil {
			dir.local = make(map[string]*entry)
		}
		dir.local[k] = e
	} else {
		if dir.local[k] == e {
			delete(dir.local, k)
		}
		f.updateListingFSLocked(dir, func(l *dirListing) { l.children[k] = e })
	}
	f.touchDirFSLocked(dir)
	f.notes.aliases(dir, name)
}

// dropFSLocked takes e out of the tree: it is removed, keeping its last
// place. unlinked says this mount deleted it. Requires FS.mu.
func (f *FS) dropFSLocked(e *entry, unlinked bool) {
	if e.parent != nil && !e.removed {
		f.forgetChildFSLocked(e.parent, e)
		f.touchDirFSLocked(e.parent)
		f.notes.aliases(e.parent, e.name)
	}
	e.removed = true
	e.unlinked = e.unlinked || unlinked
}

// touchDirFSLocked records that dir's entries changed now (its mtime and
// ctime, and its st_nlink is no longer the one counted). Requires FS.mu.
func (f *FS) touchDirFSLocked(dir *entry) {
	if dir != nil {
		now := f.now()
		dir.mtime, dir.ctime = now, now
		delete(f.storedLinks, dir.ino) // counted again (store.go)
	}
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

// bindFSLocked records that e is now the service's item it (an upload
// created or replaced it, or a copy made it). Requires FS.mu.
func (f *FS) bindFSLocked(e *entry, it *remote.Item) {
	if e.item.Load() == nil || e.item.Load().ID != it.ID {
		if e.item.Load() != nil && f.byID[e.item.Load().ID] == e {
			delete(f.byID, e.item.Load().ID)
		}
		f.byID[it.ID] = e
		f.keepInoFSLocked(e, it.ID) // evict.go
	}
	e.item.Store(slimItem(it))
	f.seq++
	e.seq = f.seq
	f.storePut(slimItem(it)) // store.go: queued, no I/O here
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
	if dir.item.Load() == nil {
		return nil
	}
	l, ok := f.listings.Get(dir.item.Load().ID)
	if !ok {
		return nil
	}
	return l
}

// updateListingFSLocked changes dir's cached listing in place, if one is
// fresh; if none is, there is nothing to keep consistent (the next reader
// lists the folder again). Requires FS.mu.
func (f *FS) updateListingFSLocked(dir *entry, fn func(*dirListing)) {
	if dir.item.Load() == nil {
		return
	}
	f.listings.Update(dir.item.Load().ID, func(l *dirListing) *dirListing {
		fn(l)
		return l
	})
}

// listing returns dir's listing, from the cache when fresh, otherwise from
// the store or the service (store.go's children). force skips the cache
// (rmdir must see the server's truth). The returned listing must only be
// read under FS.mu, and may have been dropped since (heldListing).
func (f *FS) listing(ctx context.Context, dir *entry, force bool) (*dirListing, error) {
	l, err := f.heldListing(ctx, dir, force)
	if err == nil {
		f.mu.Unlock()
	}
	return l, err
}

// heldListing is listing, returning with FS.mu held when it succeeds: the
// caller reads the listing, and unlocks. No sweep can drop the listing's
// entries meanwhile (evict.go).
func (f *FS) heldListing(ctx context.Context, dir *entry, force bool) (*dirListing, error) {
	f.mu.Lock()
	dir = f.liveFSLocked(dir)
	if !dir.isDir {
		f.mu.Unlock()
		return nil, errNotDir
	}
	if dir.removed || dir.item.Load() == nil {
		f.mu.Unlock()
		return nil, errRemoved
	}
	if !force {
		if l := f.listingFSLocked(dir); l != nil {
			return l, nil
		}
		if wait := f.listingsInFlight[dir.item.Load().ID]; wait != nil {
			// Another caller (a prefetch, say) is listing it: share that.
			f.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return f.heldListing(ctx, dir, false)
		}
	}
	id := dir.item.Load().ID
	if f.listingsInFlight == nil {
		f.listingsInFlight = make(map[string]chan struct{})
	}
	var done chan struct{}
	if _, busy := f.listingsInFlight[id]; !busy {
		done = make(chan struct{})
		f.listingsInFlight[id] = done
	}
	// finish ends this call's registration. Requires FS.mu.
	finish := func() {
		if done != nil {
			delete(f.listingsInFlight, id)
			close(done)
		}
	}
	f.mu.Unlock()

	for attempt := 0; ; attempt++ {
		gen := f.listings.Generation()
		f.mu.Lock()
		since := f.beginFetchFSLocked() // evict.go
		f.mu.Unlock()
		items, err := f.listChildren(ctx, dir, force) // drives.go
		f.mu.Lock()
		f.endFetchFSLocked(since)
		if err != nil {
			finish()
			f.mu.Unlock()
			return nil, err
		}
		l := f.applyListingFSLocked(dir, items, since)
		f.addSharedDirFSLocked(dir, l) // shared.go
		stored := f.listings.PutIfFresh(gen, id, l)
		if stored || attempt == 2 {
			// A listing invalidated while it was read is still the best
			// answer for this call; the next call reads it again.
			finish()
			return l, nil
		}
		f.mu.Unlock()
	}
}

// applyListingFSLocked turns a folder's children, as the service listed them
// when FS.seq was since, into a listing, updating the entries. An entry this
// mount changed after the listing was fetched keeps its newer state (and
// stays out of this listing if it left the folder). Requires FS.mu.
func (f *FS) applyListingFSLocked(dir *entry, items []*remote.Item, since uint64) *dirListing {
	l := &dirListing{children: make(map[string]*entry, len(items))}
	for _, it := range items {
		if hiddenItem(it) {
			continue
		}
		if f.byID[it.ID] == nil && f.pendingDestFSLocked(dir.item.Load().ID, it.Name) {
			continue // a pending copy's destination: its binder places the item
		}
		e, took := f.observeItemFSLocked(it, since)
		if !took {
			if e.parent == dir && !e.removed {
				l.children[foldName(e.name)] = e
			}
			// The store took the listing's older report: give it back
			// the newer one (queued after it), for when e is dropped.
			f.storePut(e.item.Load())
			continue
		}
		if e.parent != nil && e.parent != dir && !e.removed {
			// Moved here from a folder whose listing still holds it.
			f.forgetChildFSLocked(e.parent, e)
		}
		e.parent, e.name, e.removed, e.unlinked = dir, it.Name, false, false
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
	if err := checkNameLen(name); err != nil {
		return nil, err
	}
	l, err := f.heldListing(ctx, dir, false)
	if err != nil {
		return nil, err
	}
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
	l, err := f.heldListing(ctx, dir, false)
	if err != nil {
		return nil, err
	}
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

// prefetchListings lists, in the background and a few at a time, the
// subfolders of dir whose listing is not cached: a folder's st_nlink needs
// its listing (attr.go), and `ls -l` looks up every subfolder right after
// listing their parent. The listings cost the requests a walk of the tree
// (ls -R, find, a file manager opening a subfolder) makes anyway.
func (f *FS) prefetchListings(dir *entry) {
	if f.storeAnswers() {
		return // the store answers listings and st_nlink without requests (store.go)
	}
	f.mu.Lock()
	l := f.listingFSLocked(dir)
	var todo []*entry
	if l != nil {
		for _, c := range l.children {
			if c.isDir && !c.removed && c != f.sharedDir && f.listingFSLocked(c) == nil && f.listingsInFlight[c.item.Load().ID] == nil {
				todo = append(todo, c)
			}
		}
	}
	f.mu.Unlock()
	for _, c := range todo {
		c := c
		f.bg.Go(func(ctx context.Context) {
			select {
			case f.prefetchSlots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-f.prefetchSlots }()
			if _, err := f.listing(ctx, c, false); err != nil && ctx.Err() == nil {
				f.log.Debug("prefetching a folder listing failed", "err", err)
			}
		})
	}
}

// dirLinks makes sure folder e's listing is known, so that its st_nlink is
// exact (2 + subfolders); without it (the service unreachable) stat shows
// 1, which Linux tools read as "unknown".
func (f *FS) dirLinks(ctx context.Context, e *entry) {
	// The "Shared with me" folder is listed when entered, not when stat'ed
	// (shared.go); with the store answering, it counts the subfolders
	// (store.go).
	if e.isDir && !f.isSharedDir(e) && !f.storedDirLinks(e) {
		_, _ = f.listing(ctx, e, false)
	}
}
