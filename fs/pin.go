package fs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/metastore"
	"github.com/onedrivefs/onedrivefs/remote"
)

// Pinning: files kept available offline. `setfattr -n user.onedrive.pin -v 1
// PATH` (a file, or a folder and everything in it) downloads every file
// whole into the content cache before it returns, and keeps a handle open
// on each version, so the cache's LRU never evicts it; `-v 0` lets them go.
// `getfattr -n user.onedrive.pin` answers 1 for a pinned item or one inside
// a pinned folder. Pins are kept in the store (by item id, with the path for
// status) and restored at mount.

// xattrPin names the pin attribute. It is read by name only, not listed
// (cp -a would copy it).
const xattrPin = "user.onedrive.pin"

// pinPrefix: pinPrefix + item id → the path pinned (store values).
const pinPrefix = "pin/"

// pinState is the mount's pins. GUARDED_BY(FS.pinMu)
type pinState struct {
	// paths: pinned item id → its path when pinned.
	paths map[string]string
	// held: the cache versions kept, by file item id.
	held map[string]*cache.Entry
}

// isPinned reports whether e or one of its folders is pinned.
func (f *FS) isPinned(e *entry) bool {
	f.mu.Lock()
	var ids []string
	for p := e; p != nil; p = p.parent {
		if it := p.item.Load(); it != nil {
			ids = append(ids, it.ID)
		}
	}
	f.mu.Unlock()
	f.pinMu.Lock()
	defer f.pinMu.Unlock()
	for _, id := range ids {
		if _, ok := f.pins.paths[id]; ok {
			return true
		}
	}
	return false
}

// pinnedPaths lists the pinned paths, sorted.
func (f *FS) pinnedPaths() []string {
	f.pinMu.Lock()
	defer f.pinMu.Unlock()
	out := make([]string, 0, len(f.pins.paths))
	for _, p := range f.pins.paths {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// setPin pins (value "1") or unpins ("0") e.
func (f *FS) setPin(ctx context.Context, e *entry, value []byte) error {
	v := strings.TrimSpace(string(value))
	if v != "1" && v != "0" {
		return fmt.Errorf("%s takes 1 (pin) or 0 (unpin), not %q: %w", xattrPin, truncateForLog(v), errInvalid)
	}
	it := e.item.Load()
	if it == nil {
		return fmt.Errorf("pinning a file not yet on OneDrive: %w", errInvalid)
	}
	f.mu.Lock()
	path := f.pathOfFSLocked(e)
	f.mu.Unlock()
	if v == "0" {
		f.pinMu.Lock()
		delete(f.pins.paths, it.ID)
		f.pinMu.Unlock()
		f.releaseUnpinned()
		return f.savePin(it.ID, "")
	}
	f.pinMu.Lock()
	if f.pins.paths == nil {
		f.pins.paths = map[string]string{}
	}
	f.pins.paths[it.ID] = path
	f.pinMu.Unlock()
	if err := f.savePin(it.ID, path); err != nil {
		return err
	}
	err := f.pinTree(ctx, e)
	if errors.Is(err, remote.ErrOffline) {
		// Recorded, and what is cached is held: the rest is downloaded
		// when the service is back (backOnline, offline.go).
		f.log.Info("pinned while offline: the files not cached yet are downloaded when OneDrive is back", "path", path)
		return nil
	}
	return err
}

// savePin records (path != "") or forgets a pin in the store.
func (f *FS) savePin(id, path string) error {
	if f.store == nil {
		return nil
	}
	var v []byte
	if path != "" {
		v = []byte(path)
	}
	return f.storeWrite(&storeOp{fn: func(tx *metastore.Tx) error { return tx.SetValue(pinPrefix+id, v) }})
}

// pinTree downloads every file at or below e whole and holds it in the
// cache. It goes on past a file that fails and returns the first error.
func (f *FS) pinTree(ctx context.Context, e *entry) error {
	if !e.isDir {
		return f.pinFile(ctx, e)
	}
	names, err := f.readdir(ctx, e)
	if err != nil {
		return err
	}
	var first error
	for _, d := range names {
		c, err := f.lookup(ctx, e, d.name)
		if err == nil {
			err = f.pinTree(ctx, c)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

// pinFile downloads file e whole and holds its version in the cache.
func (f *FS) pinFile(ctx context.Context, e *entry) error {
	it := e.item.Load()
	if it == nil {
		return nil // a new file: its content is local until sent
	}
	f.pinMu.Lock()
	if h := f.pins.held[it.ID]; h != nil && h.Key() == keyOf(it) {
		f.pinMu.Unlock()
		return nil
	}
	f.pinMu.Unlock()
	ce, err := f.content.Open(keyOf(it), it.Size)
	if err != nil {
		return err
	}
	if err := ce.Fetch(ctx, 0, it.Size, f.fetcherFor(it)); err != nil {
		_ = ce.Release()
		return fmt.Errorf("downloading %s to keep it offline: %w", it.Name, err)
	}
	if err := ce.Persist(); err != nil {
		f.log.Debug("saving a pinned file's cache state failed", "err", err)
	}
	f.pinMu.Lock()
	if f.pins.held == nil {
		f.pins.held = map[string]*cache.Entry{}
	}
	old := f.pins.held[it.ID]
	f.pins.held[it.ID] = ce
	f.pinMu.Unlock()
	if old != nil {
		_ = old.Release()
	}
	return nil
}

// releaseUnpinned lets go of the held versions of files no longer pinned.
func (f *FS) releaseUnpinned() {
	f.pinMu.Lock()
	held := f.pins.held
	f.pinMu.Unlock()
	for id, ce := range held {
		f.mu.Lock()
		e := f.byID[id]
		f.mu.Unlock()
		if e != nil && f.isPinned(e) {
			continue
		}
		f.pinMu.Lock()
		if f.pins.held[id] == ce {
			delete(f.pins.held, id)
		} else {
			ce = nil
		}
		f.pinMu.Unlock()
		if ce != nil {
			_ = ce.Release()
		}
	}
}

// releasePins lets go of every held version (unmount).
func (f *FS) releasePins() {
	f.pinMu.Lock()
	held := f.pins.held
	f.pins.held = nil
	f.pinMu.Unlock()
	for _, ce := range held {
		_ = ce.Release()
	}
}

// restorePins reads the pins of earlier mounts and holds their files again
// (downloading what changed, when online), in the background.
func (f *FS) restorePins(ctx context.Context) {
	if f.store == nil {
		return
	}
	paths := map[string]string{}
	err := f.store.View(func(tx *metastore.ReadTx) error {
		return tx.EachValue(pinPrefix, func(k string, v []byte) error {
			paths[k[len(pinPrefix):]] = string(v)
			return nil
		})
	})
	if err != nil {
		f.log.Warn("reading the pinned items failed", "err", err)
		return
	}
	f.pinMu.Lock()
	if f.pins.paths == nil {
		f.pins.paths = map[string]string{}
	}
	for id, p := range paths {
		f.pins.paths[id] = p
	}
	f.pinMu.Unlock()
	for _, p := range paths {
		e, err := f.walkPath(ctx, p)
		if err == nil {
			err = f.pinTree(ctx, e)
		}
		if err != nil && ctx.Err() == nil {
			f.log.Info("a pinned item is not fully available offline yet", "path", p, "err", err)
		}
	}
}

// walkPath finds the entry at path ("/a/b") from the root.
func (f *FS) walkPath(ctx context.Context, path string) (*entry, error) {
	e := f.root
	for _, name := range strings.Split(strings.Trim(path, "/"), "/") {
		if name == "" {
			continue
		}
		c, err := f.lookup(ctx, e, name)
		if err != nil {
			return nil, err
		}
		e = c
	}
	if e == nil {
		return nil, errors.New("no root")
	}
	return e, nil
}
