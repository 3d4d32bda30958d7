package fs

import (
	"context"
	"hash/fnv"
	"strings"

	"github.com/onedrivefs/onedrivefs/copyjob"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// The tree in memory is a bounded cache over the store (store.go). An entry
// that holds nothing of its own — no open handle or content state, no local
// children or local times, not part of a pending copy, a journal or a pin,
// not of another drive, not known to the kernel — is dropped once the tree
// holds more than FS.maxEntries entries, together with the folder listings
// least recently used; the next lookup or readdir builds it again from the
// store without a request (a folder whose listing the store does not hold is
// listed again, as after the listing's TTL).
//
// The kernel keeps a node for every name it has looked up, and go-fuse an
// Inode for each, until the kernel sends FORGET. A sweep asks the kernel to
// drop the names under the listings it dropped (an entry invalidation per
// topmost name: the kernel drops the names beneath a folder with it); the
// FORGETs that follow clear entry.node (node.OnForget), and the next sweep
// drops those entries.
//
// Inode numbers stay stable across a drop: an item's is a 64-bit FNV-1a hash
// of its id with the top bit set (rootIno and the numbers given from
// FS.nextIno to local-only files stay below 2^63, so the two never meet). A
// hash already taken by a live entry of another item (a collision, about
// n²/2^64 for n items) or an entry that got its id after its number (a new
// file uploaded, a folder made offline bound) is recorded in FS.inoByID,
// which is never trimmed, so that the number holds for the mount's life. The
// same id gives the same number in every mount.

// DefaultMaxEntries is the number of entries the tree keeps in memory before
// it drops those it can. An entry with its item, its share of the listings
// and go-fuse's inode costs about 2.3 KiB of the daemon's RSS (Go's heap
// runs at about twice its live size), so this bounds the tree to about
// 70 MiB whatever the drive's size (measured: BenchmarkScaleMount), while a
// folder of tens of thousands of items still fits.
const DefaultMaxEntries = 30000

// hashIno is the inode number of the item whose id is id, unless taken.
func hashIno(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64() | 1<<63
}

// inoForFSLocked returns the inode number of the item whose id is id, for a
// new entry. Requires FS.mu.
func (f *FS) inoForFSLocked(id string) uint64 {
	if ino, ok := f.inoByID[id]; ok {
		return ino
	}
	ino := hashIno(id)
	if _, taken := f.byIno[ino]; !taken && ino != ^uint64(0) {
		return ino
	}
	ino = f.nextIno
	f.nextIno++
	f.inoByID[id] = ino
	return ino
}

// keepInoFSLocked records that the item id is now e's, which keeps its inode
// number (bindFSLocked). Requires FS.mu.
func (f *FS) keepInoFSLocked(e *entry, id string) {
	if e.ino != hashIno(id) {
		f.inoByID[id] = e.ino
	}
}

// liveFSLocked returns the entry that stands for e in the tree: e itself,
// unless a sweep dropped it; then the entry built for its item since, or e
// put back (with its folders) when there is none. A go-fuse node may hold a
// dropped entry when the kernel looked its name up again while go-fuse was
// forgetting it. Requires FS.mu.
func (f *FS) liveFSLocked(e *entry) *entry {
	if e == nil || !e.dropped.Load() {
		return e
	}
	it := e.item.Load() // never nil: local-only files are never dropped
	if c := f.byID[it.ID]; c != nil {
		return c
	}
	e.parent = f.liveFSLocked(e.parent)
	e.dropped.Store(false)
	f.byID[it.ID] = e
	if c := f.byIno[e.ino]; c == nil {
		f.byIno[e.ino] = e
	}
	return e
}

// noteEntryAdded wakes the sweeper when the tree has grown past its bound.
// Requires FS.mu.
func (f *FS) noteEntryAddedFSLocked() {
	if f.maxEntries > 0 && len(f.byIno) >= f.sweepAt {
		f.wakeSweeper()
	}
}

func (f *FS) wakeSweeper() {
	select {
	case f.sweepWake <- struct{}{}:
	default:
	}
}

// runSweeper sweeps the tree each time it is woken, until ctx ends.
func (f *FS) runSweeper(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.sweepWake:
		}
		f.sweep(f.heldIDs())
	}
}

// heldIDs returns the ids of the items whose entries must stay for reasons
// kept outside FS.mu: the pinned items and the files whose versions pins
// hold (pin.go), and the destination folders of the copy jobs not ended
// (their `sync DIR` finds them by entry: pending.go).
func (f *FS) heldIDs() map[string]bool {
	ids := make(map[string]bool)
	if f.copies != nil {
		for _, j := range f.copies.PendingWhere(func(*copyjob.Job) bool { return true }) {
			ids[j.DestParentID] = true
		}
	}
	f.pinMu.Lock()
	defer f.pinMu.Unlock()
	for id := range f.pins.paths {
		ids[id] = true
	}
	for id := range f.pins.held {
		ids[id] = true
	}
	return ids
}

// OnForget is called by go-fuse when the kernel has forgotten n's inode:
// its entry may be dropped by the next sweep.
func (n *node) OnForget() {
	f := n.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	if n.e.node == n {
		n.e.node = nil
		f.forgets++
		if f.maxEntries > 0 && f.forgets >= f.maxEntries/4 && len(f.byIno) > f.maxEntries {
			f.wakeSweeper()
		}
	}
}

// sweep drops listings and entries until the tree holds at most
// FS.maxEntries entries (as far as the kernel has let go of them), and asks
// the kernel to forget the names under the listings it dropped. held are
// ids whose entries must stay (heldIDs). It returns the number of entries
// dropped.
func (f *FS) sweep(held map[string]bool) int {
	var forget []*gofs.Inode
	f.mu.Lock()
	if f.maxEntries <= 0 || len(f.byIno) <= f.maxEntries {
		f.mu.Unlock()
		return 0
	}
	f.forgets = 0

	// Entries that hold state, and their folders: they stay, and the
	// kernel is not asked to forget them.
	stateful := make(map[*entry]bool)
	markIn := func(set map[*entry]bool, e *entry) {
		for p := e; p != nil && !set[p]; p = p.parent {
			set[p] = true
		}
	}
	hold := func(e *entry) { markIn(stateful, e) }
	for id := range f.listingsInFlight {
		hold(f.byID[id])
	}
	for id := range held {
		hold(f.byID[id])
	}
	for k := range f.copyDests {
		parentID, _, _ := strings.Cut(k, "\x00") // destKey
		hold(f.byID[parentID])
	}
	for k := range f.pendingDests {
		parentID, _, _ := strings.Cut(k, "\x00")
		hold(f.byID[parentID])
	}
	for id := range f.deferredDeletes {
		hold(f.byID[id])
	}
	for _, e := range f.journaled {
		hold(e)
	}
	for _, c := range f.pendingCopies {
		hold(c.src)
		hold(c.dst)
	}
	for _, s := range f.shares.byShortcut {
		hold(s.entry)
	}
	settled := f.settledSeqFSLocked()
	for _, e := range f.byIno {
		if f.holdsStateFSLocked(e, settled) {
			hold(e)
		}
	}

	// Listings: the most recently used ones are kept while their children
	// fit in half the bound; those of other drives always (they cost a
	// request to read again). Their folders and children stay.
	keep := make(map[*entry]bool, len(stateful))
	for e := range stateful {
		keep[e] = true
	}
	mark := func(e *entry) { markIn(keep, e) }
	listedDirs := make(map[*entry]bool)
	budget, listed := f.maxEntries/2, 0
	var kept []*dirListing
	f.listings.Trim(func(id string, l *dirListing) bool {
		dir := f.byID[id]
		if dir == nil {
			return false
		}
		if !f.foreignFSLocked(dir) && listed > 0 && listed+len(l.children) > budget {
			return false
		}
		listed += len(l.children)
		kept = append(kept, l)
		listedDirs[dir] = true
		mark(dir)
		return true
	})
	for _, l := range kept {
		for _, c := range l.children {
			mark(c)
		}
	}

	// Names the kernel knows stay until it forgets them. It is asked to
	// forget those of folders whose listing was dropped (go-fuse keeps a
	// table of a folder's children as long as the folder's inode lives)
	// and of files out of the listings kept, the topmost of each subtree
	// (the kernel drops the names beneath a folder with it).
	known := make(map[*entry]bool)
	for _, e := range f.byIno {
		if e.node == nil || stateful[e] || listedDirs[e] || (!e.isDir && keep[e]) {
			continue
		}
		known[e] = true
	}
	for e := range known {
		if p := e.parent; p != nil && !known[p] && p.node != nil {
			forget = append(forget, &e.node.Inode)
		}
		mark(e)
	}

	dropped := 0
	for ino, e := range f.byIno {
		if keep[e] {
			continue
		}
		delete(f.byIno, ino)
		if it := e.item.Load(); it != nil && f.byID[it.ID] == e {
			delete(f.byID, it.ID)
		}
		delete(f.storedLinks, ino)
		e.dropped.Store(true)
		dropped++
	}
	for ino, c := range f.storedLinks {
		if f.now().Sub(c.at) >= f.ttl {
			delete(f.storedLinks, ino)
		}
	}
	f.sweepAt = max(f.maxEntries, len(f.byIno)+f.maxEntries/4)
	f.mu.Unlock()

	if len(forget) > 0 {
		f.notes.forget(forget)
	}
	if dropped > 0 {
		f.log.Debug("dropped entries from memory", "dropped", dropped, "kept", len(keep), "kernel_forget", len(forget))
	}
	return dropped
}

// foreignFSLocked reports entries the store cannot build again: the "Shared
// with me" folder and the items of other drives (shortcuts, shared items,
// what is under them), which are listed from their drive. Requires FS.mu.
func (f *FS) foreignFSLocked(e *entry) bool {
	it := e.item.Load()
	return e == f.sharedDir || it == nil || it.RemoteID != "" || it.Shortcut || f.itemDrive(it) != ""
}

// holdsStateFSLocked reports whether e holds something of its own that the
// store cannot give back, so that it must stay in memory (being known to the
// kernel aside: sweep asks the kernel to let go of those). settled is the
// oldest FS.seq a listing or delta page still in flight was fetched at: an
// entry changed by this mount after that keeps its version guard (staleItem)
// until no older report can arrive. Requires FS.mu.
func (f *FS) holdsStateFSLocked(e *entry, settled uint64) bool {
	switch {
	case e == f.root, f.foreignFSLocked(e), len(e.local) > 0,
		!e.mtime.IsZero(), !e.ctime.IsZero(), !e.atime.IsZero(), e.seq > settled:
		return true
	}
	if isLocalID(e.item.Load().ID) {
		return true
	}
	if st := e.file; st != nil {
		if st.handles.Load() > 0 {
			return true
		}
		// The file's lock comes before FS.mu: a file busy with it is in use.
		if !st.mu.TryLock() {
			return true
		}
		busy := st.staged != nil || st.base != nil || st.committed || st.dirty || st.failed || st.copyIn != nil ||
			st.holds > 0 || len(st.unconfirmed) > 0
		st.mu.Unlock()
		if _, _, local := st.localAttr(); local || busy {
			return true
		}
		if _, copied := st.copiedAttr(); copied {
			return true
		}
	}
	return false
}

// beginFetchFSLocked registers a listing or delta page about to be fetched
// and returns FS.seq, the "since" of its report. Requires FS.mu.
func (f *FS) beginFetchFSLocked() uint64 {
	if f.fetching == nil {
		f.fetching = make(map[uint64]int)
	}
	f.fetching[f.seq]++
	return f.seq
}

// endFetchFSLocked unregisters a fetch begun at since, once its report is
// applied. Requires FS.mu.
func (f *FS) endFetchFSLocked(since uint64) {
	if f.fetching[since]--; f.fetching[since] <= 0 {
		delete(f.fetching, since)
	}
}

// settledSeqFSLocked returns the oldest "since" of the fetches in flight,
// FS.seq when none is. Requires FS.mu.
func (f *FS) settledSeqFSLocked() uint64 {
	s := f.seq
	for since := range f.fetching {
		s = min(s, since)
	}
	return s
}
