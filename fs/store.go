package fs

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onedrivefs/onedrivefs/metastore"
	"github.com/onedrivefs/onedrivefs/remote"
)

// The persisted tree (Config.Store, a metastore.Store under the cache dir).
// The entries in memory stay the working set; the store is the drive's tree
// as this mount last knew it, on disk:
//
//   - written by every folder listing fetched from the service (the
//     folder is then marked listed: its children in the store are complete),
//     by every delta page (items and the delta link in one transaction, so
//     they never disagree), by the items this mount changes, and by the
//     changes made offline (offline.go) together with their journal records;
//   - read at mount (the root, when the service is unreachable) and by
//     listings: a listed folder is read from the store, without a request,
//     while offline, and while the store is kept current by the delta poll
//     (a positive poll interval and a saved delta link: then a remount shows
//     the tree at once, and its first poll, made at once, catches up).
//
// Writes go through one writer goroutine (runStoreWriter) in the order they
// were queued, several per transaction, so that no FS.mu holder waits for
// the disk; the offline journal's callers wait for their write (it must be
// on disk before the operation returns).

// Keys of the store's values.
const (
	listedPrefix = "listed/" // listedPrefix + folder id: the folder's children are complete
)

// storeOp is one queued change of the store.
type storeOp struct {
	put []*remote.Item
	del []string
	// listing: the children of listDir as fetched when the delta
	// generation was listGen; dropped if a delta page was written since
	// (it could undo the page's newer news).
	listDir  string
	listing  []*remote.Item
	listGen  uint64
	listAt   time.Time
	isListed bool
	// delta: a page of changes and (when not "") the delta link after it.
	delta     []*remote.Item
	deltaLink string
	isDelta   bool
	// reset empties the store (the service asked for a resync).
	reset bool
	// fn runs in the transaction (the offline journal's records).
	fn func(tx *metastore.Tx) error
	// done, when not nil, receives the outcome of the transaction.
	done chan error
}

// storeWriter is the queue of store writes.
type storeWriter struct {
	// flushMu is held while a batch is taken from the queue and written.
	flushMu sync.Mutex
	mu      sync.Mutex
	queue   []*storeOp // GUARDED_BY(mu)
	wake    chan struct{}
	// gen counts delta pages written (see storeOp.listGen).
	gen atomic.Uint64
	// deltaLink is the delta link as last queued: the poll loop reads the
	// next page from it (the store's copy may lag behind the queue).
	deltaLink atomic.Pointer[string]
	// trusted: listings may be read from the store while online (the
	// delta poll keeps it current).
	trusted atomic.Bool
	// released is when the store's mapped pages were last released (unix
	// nanoseconds; releaseStorePages); reads counts the folders read from
	// the store since, weighted (releaseAfterRead).
	released atomic.Int64
	reads    atomic.Int64
}

// enqueue adds op to the store's queue. It never blocks, and may be called
// under FS.mu.
func (f *FS) enqueue(op *storeOp) {
	if f.store == nil {
		if op.done != nil {
			op.done <- nil
		}
		return
	}
	w := &f.sw
	w.mu.Lock()
	w.queue = append(w.queue, op)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// storeWrite queues op and waits until it is on disk.
func (f *FS) storeWrite(op *storeOp) error {
	op.done = make(chan error, 1)
	f.enqueue(op)
	select {
	case err := <-op.done:
		return err
	case <-f.bg.ctx.Done():
		// The writer is stopping (unmount): write the queue here.
		f.flushStore()
		return <-op.done
	}
}

// runStoreWriter writes queued ops until ctx ends, then writes what is
// still queued.
func (f *FS) runStoreWriter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			f.flushStore()
			return
		case <-f.sw.wake:
		}
		f.flushStore()
	}
}

// flushStore writes every queued op, in one transaction. Flushes are
// serialised (flushMu), so ops reach the disk in the order they were
// queued whoever flushes them.
func (f *FS) flushStore() {
	w := &f.sw
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	for {
		w.mu.Lock()
		// At most maxBatchItems items per transaction: bbolt keeps a
		// transaction's dirty pages in memory until it commits.
		n, items := 0, 0
		for n < len(w.queue) && (n == 0 || items < maxBatchItems) {
			op := w.queue[n]
			items += len(op.put) + len(op.del) + len(op.listing) + len(op.delta)
			n++
		}
		ops := append([]*storeOp(nil), w.queue[:n]...)
		clear(w.queue[:n]) // the queue's array must not keep written ops alive
		w.queue = w.queue[n:]
		if len(w.queue) == 0 {
			w.queue = nil
		}
		w.mu.Unlock()
		if len(ops) == 0 {
			return
		}
		f.writeStoreOps(ops)
	}
}

// maxBatchItems bounds the items written in one store transaction.
const maxBatchItems = 20000

// writeStoreOps writes ops in one transaction and tells their waiters.
func (f *FS) writeStoreOps(ops []*storeOp) {
	err := f.store.Update(func(tx *metastore.Tx) error {
		for _, op := range ops {
			if err := f.applyStoreOp(tx, op); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.log.Error("writing the local copy of the tree failed", "err", err)
	}
	for _, op := range ops {
		if op.done != nil {
			op.done <- err
		}
	}
	f.releaseStorePages()
}

// releaseStoreEvery spaces the releases of the store's mapped pages.
const releaseStoreEvery = 2 * time.Second

// releaseStorePages drops the store's mapped pages from the daemon's
// resident memory (metastore.Store.ReleaseMapped), at most every
// releaseStoreEvery: the pages a burst of writes touched would otherwise
// count against the daemon's memory until the kernel reclaims them.
func (f *FS) releaseStorePages() {
	w := &f.sw
	now := time.Now().UnixNano()
	last := w.released.Load()
	if now-last >= int64(releaseStoreEvery) && w.released.CompareAndSwap(last, now) {
		if err := f.store.ReleaseMapped(); err != nil {
			f.log.Debug("releasing the tree store's mapped pages failed", "err", err)
		}
	}
}

// The store's mapped pages are released after so many folders read from
// it: a walk of the tree served from the store, or an ls of a folder of
// thousands of folders, reads tens of KiB of pages per folder, hundreds of
// MiB a second, and releasing too often faults them in again. Measured on
// a store of a million items (577 MiB): the first ls of a root of 10,000
// folders after a remount, whose subfolders are counted
// (releaseCountsEvery) — never released 0.63 s and 520 MiB peak RSS,
// every 512 counts 0.76-0.87 s and 162-190 MiB, every 256 0.96-1.04 s and
// 111-116 MiB, every 128 1.0-1.5 s and 73 MiB; a walk from the store,
// whose children are decoded and become entries (releaseReadsEvery) —
// every 512 reads 241-260 MiB, every 256 160-196 MiB, every 128 187-189
// MiB (the rest is the heap of the entries). The choice meets both targets
// of each step (under 1 s; under 200 MiB).
const (
	releaseReadsEvery  = 128
	releaseCountsEvery = 512
)

// releaseAfterRead counts one folder read from the store (its children;
// with counted, its subfolders counted), and releases the store's mapped
// pages at the rates above.
func (f *FS) releaseAfterRead(counted bool) {
	weight := int64(releaseCountsEvery / releaseReadsEvery)
	if counted {
		weight = 1
	}
	n := f.sw.reads.Add(weight)
	if n/releaseCountsEvery == (n-weight)/releaseCountsEvery {
		return
	}
	f.sw.released.Store(time.Now().UnixNano())
	if err := f.store.ReleaseMapped(); err != nil {
		f.log.Debug("releasing the tree store's mapped pages failed", "err", err)
	}
}

// applyStoreOp applies one op in tx.
func (f *FS) applyStoreOp(tx *metastore.Tx, op *storeOp) error {
	if op.reset {
		if err := tx.Reset(); err != nil {
			return err
		}
		var marks []string
		if err := tx.EachValue(listedPrefix, func(k string, _ []byte) error {
			marks = append(marks, k)
			return nil
		}); err != nil {
			return err
		}
		for _, k := range marks {
			if err := tx.SetValue(k, nil); err != nil {
				return err
			}
		}
	}
	if op.isDelta {
		if len(op.delta) > 0 || op.reset {
			f.sw.gen.Add(1)
		}
		for _, it := range op.delta {
			var err error
			if it.Deleted {
				err = tx.Delete(it.ID)
			} else if !storedNewer(tx, it) {
				err = tx.Put(it)
			}
			if err != nil && !errors.Is(err, metastore.ErrNotFound) {
				return err
			}
		}
		if op.deltaLink != "" {
			if err := tx.SetDeltaLink(op.deltaLink); err != nil {
				return err
			}
		}
	}
	if op.isListed && op.listGen == f.sw.gen.Load() {
		if err := replaceChildren(tx, op.listDir, op.listing, op.listAt); err != nil {
			return err
		}
	}
	for _, it := range op.put {
		if storedNewer(tx, it) {
			continue // a delta page already stored a newer version
		}
		if err := tx.Put(it); err != nil {
			return err
		}
	}
	for _, id := range op.del {
		if err := tx.Delete(id); err != nil && !errors.Is(err, metastore.ErrNotFound) {
			return err
		}
	}
	if op.fn != nil {
		return op.fn(tx)
	}
	return nil
}

// storedNewer reports whether tx holds a newer version of it than it (the
// service's lastModifiedDateTime rises with every change, as staleItem
// reads it): a report fetched before a change this mount stored must not
// roll the store back, since a dropped entry is built again from it
// (evict.go).
func storedNewer(tx *metastore.Tx, it *remote.Item) bool {
	cur, err := tx.Item(it.ID)
	return err == nil && cur.Modified.After(it.Modified)
}

// listedMark is the value of a folder's listed mark: when the listing was
// fetched (unix nanoseconds, big-endian), so that a listing dropped from
// memory within its TTL is read back from the store (children). Marks
// written without a time (a full sync, offline) hold one byte.
func listedMark(at time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano()))
}

// listedAt returns the time a listed mark holds; zero when it holds none.
func listedAt(mark []byte) time.Time {
	if len(mark) != 8 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(mark)))
}

// replaceChildren makes items the children of dir in tx, and marks dir
// listed at at.
func replaceChildren(tx *metastore.Tx, dir string, items []*remote.Item, at time.Time) error {
	keep := make(map[string]bool, len(items))
	for _, it := range items {
		keep[it.ID] = true
	}
	var gone []string
	if err := tx.EachChild(dir, func(it *remote.Item) error {
		if !keep[it.ID] {
			gone = append(gone, it.ID)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, id := range gone {
		if err := tx.Delete(id); err != nil && !errors.Is(err, metastore.ErrNotFound) {
			return err
		}
	}
	for _, it := range items {
		if storedNewer(tx, it) {
			continue
		}
		if err := tx.Put(it); err != nil {
			return err
		}
	}
	return tx.SetValue(listedPrefix+dir, listedMark(at))
}

// openStore reads what the mount needs of the store at start: the delta
// link (the store is trusted for listings when the poll keeps it current)
// and the offline journal's length.
func (f *FS) openStore() error {
	if f.store == nil {
		return nil
	}
	var link string
	var records int
	err := f.store.View(func(tx *metastore.ReadTx) error {
		link = tx.DeltaLink()
		return tx.EachValue(offlinePrefix, func(string, []byte) error { records++; return nil })
	})
	if err != nil {
		return err
	}
	if link != "" {
		f.sw.deltaLink.Store(&link)
	}
	f.sw.trusted.Store(link != "" && f.poll > 0)
	f.metaRecords.Store(int64(records))
	return nil
}

// storedRoot returns the root folder as the store holds it.
func (f *FS) storedRoot() (*remote.Item, error) {
	if f.store == nil {
		return nil, metastore.ErrNotFound
	}
	var it *remote.Item
	err := f.store.View(func(tx *metastore.ReadTx) error {
		id := tx.RootID()
		if id == "" {
			return metastore.ErrNotFound
		}
		var err error
		it, err = tx.Item(id)
		return err
	})
	return it, err
}

// storedChildren returns the children of folder id from the store, when it
// holds them all (the folder was listed), and when the listing was fetched
// (zero if the store does not say).
func (f *FS) storedChildren(id string) ([]*remote.Item, time.Time, bool) {
	if f.store == nil {
		return nil, time.Time{}, false
	}
	// Read this mount's own writes: what is queued, or being written by
	// the writer (flushStore waits for it), goes to disk first.
	f.flushStore()
	var items []*remote.Item
	var at time.Time
	listed := false
	err := f.store.View(func(tx *metastore.ReadTx) error {
		mark := tx.Value(listedPrefix + id)
		if mark == nil {
			return nil
		}
		listed, at = true, listedAt(mark)
		return tx.EachChild(id, func(it *remote.Item) error {
			items = append(items, it)
			return nil
		})
	})
	f.releaseAfterRead(false) // a walk reads the store's pages: they must not pile up
	if err != nil {
		f.log.Warn("reading a folder from the local copy of the tree failed", "err", err)
		return nil, time.Time{}, false
	}
	return items, at, listed
}

// children returns the children of folder id: from the store when it may
// answer (a folder made offline, the service unreachable, the store kept
// current by the poll, or a listing fetched within the listing TTL that was
// dropped from memory; never when force), else from the service (and
// stored). fromStore says where they came from.
func (f *FS) children(ctx context.Context, id string, force bool) (items []*remote.Item, fromStore bool, err error) {
	if isLocalID(id) || !force || f.isOffline() {
		items, at, ok := f.storedChildren(id)
		if ok && (isLocalID(id) || f.isOffline() || f.sw.trusted.Load() || (!at.IsZero() && f.now().Sub(at) < f.ttl)) {
			return items, true, nil
		}
	}
	gen := f.sw.gen.Load()
	at := f.now()
	items, err = f.remote.Children(ctx, id)
	if errors.Is(err, remote.ErrOffline) {
		if stored, _, ok := f.storedChildren(id); ok {
			return stored, true, nil
		}
		return nil, false, err
	}
	if err != nil {
		return nil, false, err
	}
	f.enqueue(&storeOp{isListed: true, listDir: id, listing: items, listGen: gen, listAt: at})
	return items, false, nil
}

// catchUp brings a tree served from the store up to date before the mount
// appears: one delta call from the saved link (nothing when offline, or
// when listings are not served from the store).
func (f *FS) catchUp(ctx context.Context) {
	if f.store == nil || !f.sw.trusted.Load() || f.isOffline() {
		return
	}
	err := f.pollOnce(ctx)
	f.notePoll(ctx, err)
	if err != nil {
		f.log.Warn("catching up with the changes made while unmounted failed; the next poll tries again", "err", err)
	}
}

// storeAnswers reports whether listed folders are read from the store
// (store.go's children).
func (f *FS) storeAnswers() bool {
	return f.store != nil && (f.sw.trusted.Load() || f.isOffline())
}

// linkCount is a folder's st_nlink as counted in the store.
type linkCount struct {
	n  uint32
	at time.Time
}

// storedDirLinks counts folder e's subfolders in the store, when it answers
// for e, so that stat shows an exact st_nlink without building e's listing
// (an ls of a folder of 10,000 folders would otherwise list every one of
// them, creating the entries of all their children). It reports whether it
// could.
func (f *FS) storedDirLinks(e *entry) bool {
	it := e.item.Load()
	if it == nil || !f.storeAnswers() {
		return false
	}
	f.mu.Lock()
	_, fresh := f.storedLinksFSLocked(e)
	listed := f.listingFSLocked(e) != nil
	f.mu.Unlock()
	if fresh || listed {
		return true
	}
	n, ok := uint32(2), false
	f.flushStore() // count this mount's own changes too
	err := f.store.View(func(tx *metastore.ReadTx) error {
		if tx.Value(listedPrefix+it.ID) == nil {
			return nil
		}
		ok = true
		folders, err := tx.CountChildFolders(it.ID)
		n += uint32(folders)
		return err
	})
	f.releaseAfterRead(true)
	if err != nil || !ok {
		return false
	}
	f.mu.Lock()
	if f.storedLinks == nil {
		f.storedLinks = make(map[uint64]linkCount)
	}
	f.storedLinks[e.ino] = linkCount{n: n, at: f.now()}
	f.mu.Unlock()
	return true
}

// storedLinksFSLocked returns e's st_nlink as counted in the store, when
// counted within the listing TTL (delta changes reach it no later than
// they reach a listing). Requires FS.mu.
func (f *FS) storedLinksFSLocked(e *entry) (uint32, bool) {
	c, ok := f.storedLinks[e.ino]
	if !ok || f.now().Sub(c.at) >= f.ttl {
		return 0, false
	}
	return c.n, true
}

// loadDeltaLink returns the delta link the next poll starts from.
func (f *FS) loadDeltaLink() (string, bool) {
	if f.store == nil {
		return f.state.Load(deltaLinkKey)
	}
	if p := f.sw.deltaLink.Load(); p != nil {
		return *p, true
	}
	return "", false
}

// saveDeltaPage records a delta page's items and the link after it. reset
// empties the store first (a resync).
func (f *FS) saveDeltaPage(items []*remote.Item, link string, reset bool) error {
	if f.store == nil {
		return f.state.Save(deltaLinkKey, link)
	}
	f.sw.deltaLink.Store(&link)
	op := &storeOp{isDelta: true, delta: items, deltaLink: link, reset: reset}
	if reset {
		// The root stays known, for a mount that starts offline.
		f.mu.Lock()
		if f.root != nil {
			if it := f.root.item.Load(); it != nil {
				op.put = append(op.put, it)
			}
		}
		f.mu.Unlock()
	}
	f.enqueue(op)
	f.sw.trusted.Store(f.poll > 0)
	return nil
}

// storePut queues items this mount changed (the service's answers). May be
// called under FS.mu.
func (f *FS) storePut(items ...*remote.Item) {
	if f.store == nil {
		return
	}
	// The store holds the mounted drive's tree only: items of other drives
	// (inside shortcuts, "Shared with me") are listed from their drive.
	own := items[:0:0]
	for _, it := range items {
		if f.itemDrive(it) == "" {
			own = append(own, it)
		}
	}
	if len(own) > 0 {
		f.enqueue(&storeOp{put: own})
	}
}

// storeDelete queues the removal of an item this mount deleted. May be
// called under FS.mu.
func (f *FS) storeDelete(id string) {
	if f.store != nil && id != "" {
		f.enqueue(&storeOp{del: []string{id}})
	}
}

// localIDPrefix starts the ids of folders made while offline, until the
// offline journal's replay creates them and binds them to the service's ids.
const localIDPrefix = "local-"

// isLocalID reports whether id is the id of a folder made offline.
func isLocalID(id string) bool { return strings.HasPrefix(id, localIDPrefix) }
