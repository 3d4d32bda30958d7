package fs

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/metastore"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// newBoundedEnv returns an env whose FS has a store and keeps at most
// maxEntries entries, over a fake seeded with folders d0..d(folders-1) of
// files f0..f(files-1).txt. The poll is off (the tests poll by hand), so a
// listing is read back from the store within the listing TTL only.
func newBoundedEnv(t *testing.T, maxEntries, folders, files int) *testEnv {
	t.Helper()
	env := &testEnv{t: t, srv: graphtest.NewServer(graphtest.Options{}), cache: t.TempDir()}
	t.Cleanup(func() { _ = env.srv.Close() })
	for d := range folders {
		for i := range files {
			_, err := env.srv.PutFile(fmt.Sprintf("/d%d/f%d.txt", d, i), fmt.Appendf(nil, "content of d%d/f%d", d, i), time.Time{})
			require.NoError(t, err)
		}
	}
	store, err := metastore.Open(filepath.Join(env.cache, "tree.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	env.fs = env.newFS(Config{Store: store, MaxEntries: maxEntries, ListingTTL: time.Hour})
	// These tests sweep when they choose (f.sweep): the background sweeper,
	// woken past the bound, would sweep between their steps (its wake
	// channel left nil never fires; TestMountBoundedTree runs it).
	env.fs.sweepWake = nil
	require.NoError(t, env.fs.start(context.Background()))
	require.NoError(t, env.fs.initDelta(context.Background()))
	return env
}

// walkAll looks up every seeded item and returns each path's entry.
func (env *testEnv) walkAll(folders, files int) map[string]*entry {
	out := map[string]*entry{}
	for d := range folders {
		for i := range files {
			p := fmt.Sprintf("/d%d/f%d.txt", d, i)
			out[p] = env.mustWalk(p)
		}
	}
	return out
}

// Entries dropped from memory are built again from the store: the same
// inode numbers and items, and not one request to the service.
func TestEvictedEntriesRebuiltFromStore(t *testing.T) {
	env := newBoundedEnv(t, 20, 4, 10)
	f := env.fs
	before := env.walkAll(4, 10) // 44 entries with the root and folders: over the bound

	// The background sweeper (woken past the bound) may have swept
	// already; this sweep brings the tree under its bound either way.
	f.sweep(nil)
	f.mu.Lock()
	assert.LessOrEqual(t, len(f.byIno), 20, "the tree is back under its bound")
	f.mu.Unlock()
	assert.True(t, before["/d0/f0.txt"].dropped.Load(), "the least recently listed folder's files were dropped")

	listings, gets := env.requests("children.list"), env.requests("item.get")
	after := env.walkAll(4, 10)
	for p, e := range before {
		c := after[p]
		assert.Equal(t, e.ino, c.ino, "inode number of %s", p)
		assert.Equal(t, e.item.Load().ID, c.item.Load().ID, p)
		assert.Equal(t, e.item.Load().ETag, c.item.Load().ETag, p)
		f.mu.Lock()
		assert.Equal(t, p, f.pathOfFSLocked(c))
		f.mu.Unlock()
	}
	assert.Equal(t, listings, env.requests("children.list"), "listings read back from the store")
	assert.Equal(t, gets, env.requests("item.get"))
	assert.Equal(t, []byte("content of d0/f3"), env.readAll(after["/d0/f3.txt"]))
}

// A file with an open handle, or with local content not yet sent, is never
// dropped; nor are the folders above it.
func TestEvictKeepsEntriesWithState(t *testing.T) {
	env := newBoundedEnv(t, 5, 3, 10)
	f := env.fs
	ctx := context.Background()
	env.walkAll(3, 10)
	open := env.mustWalk("/d0/f1.txt")
	h, err := f.open(ctx, open, false)
	require.NoError(t, err)
	defer func() { require.NoError(t, h.release(ctx)) }()

	staged := env.mustWalk("/d1/f2.txt")
	h2, err := f.open(ctx, staged, false)
	require.NoError(t, err)
	_, err = h2.write(ctx, []byte("local"), 0)
	require.NoError(t, err)
	defer func() { require.NoError(t, h2.release(ctx)) }()

	d2 := env.mustWalk("/d2")
	local, _, err := f.create(ctx, d2, "new.txt", true)
	require.NoError(t, err)

	f.mu.Lock()
	f.journaled = nil
	f.mu.Unlock()
	f.sweep(nil)
	for _, e := range []*entry{open, staged, local, open.parent, staged.parent, d2} {
		assert.False(t, e.dropped.Load(), "%s kept", e.name)
	}
	assert.True(t, env.mustWalk("/d0").parent == f.root)
	c, err := f.lookup(ctx, d2, "new.txt")
	require.NoError(t, err)
	assert.Same(t, local, c, "the local-only file is still its folder's")
}

// A change reported by the delta poll for an item with no entry in memory
// reaches the store only, and shows when the item is looked up again.
func TestEvictedEntrySeesDeltaChange(t *testing.T) {
	env := newBoundedEnv(t, 10, 3, 10)
	f := env.fs
	ctx := context.Background()
	old := env.mustWalk("/d0/f4.txt")
	oldItem := old.item.Load()
	env.walkAll(3, 10)
	f.sweep(nil)
	require.True(t, old.dropped.Load())

	_, err := env.srv.PutFile("/d0/f4.txt", []byte("changed on the service"), time.Time{})
	require.NoError(t, err)
	require.NoError(t, f.pollOnce(ctx))
	f.mu.Lock()
	assert.Nil(t, f.byID[oldItem.ID], "no entry made for the change")
	f.mu.Unlock()

	listings := env.requests("children.list")
	e := env.mustWalk("/d0/f4.txt")
	assert.Equal(t, old.ino, e.ino)
	assert.NotEqual(t, oldItem.CTag, e.item.Load().CTag, "the new version")
	assert.Equal(t, int64(len("changed on the service")), e.item.Load().Size)
	assert.Equal(t, listings, env.requests("children.list"))
	assert.Equal(t, []byte("changed on the service"), env.readAll(e))
}

// An entry the kernel knows is kept, and the kernel is asked to forget the
// names under the listings dropped (the topmost of each subtree); once it
// has (OnForget) the entry goes with the next sweep.
func TestEvictAsksKernelToForget(t *testing.T) {
	env := newBoundedEnv(t, 10, 3, 10)
	f := env.fs
	env.walkAll(3, 10)
	d0 := env.mustWalk("/d0")
	file := env.mustWalk("/d0/f0.txt")
	f.mu.Lock()
	f.root.node = &node{fsys: f, e: f.root}
	d0.node = &node{fsys: f, e: d0}
	file.node = &node{fsys: f, e: file}
	f.mu.Unlock()
	for _, p := range []string{"/d1/f0.txt", "/d2/f0.txt"} {
		env.mustWalk(p) // d0's listing is now the least recently used
	}
	f.notes.take()

	f.sweep(nil)
	assert.False(t, d0.dropped.Load())
	assert.False(t, file.dropped.Load())
	var asked []*noteForgetView
	for _, n := range f.notes.take() {
		if n.kind == noteForget {
			for _, in := range n.inodes {
				asked = append(asked, &noteForgetView{in == &d0.node.Inode, in == &file.node.Inode})
			}
		}
	}
	// Only the newest listing (d2's) fits the budget: the root's and d0's
	// are dropped, and the folder's invalidation covers its file.
	require.Len(t, asked, 1, "one invalidation, the topmost")
	assert.True(t, asked[0].folder)

	file.node.OnForget()
	d0.node.OnForget()
	f.mu.Lock()
	f.listings.InvalidateAll()
	f.mu.Unlock()
	env.mustWalk("/d1/f0.txt") // something else in use
	f.sweep(nil)
	assert.True(t, file.dropped.Load(), "forgotten by the kernel, dropped")
	assert.Equal(t, file.ino, env.mustWalk("/d0/f0.txt").ino)
}

type noteForgetView struct{ folder, file bool }

// Inode numbers come from item ids: the same in every mount, and a hash
// taken by a live entry of another item gives a number of its own, kept
// for the item while the mount lives.
func TestInodeNumbersFromIDs(t *testing.T) {
	env := newBoundedEnv(t, 10, 1, 1)
	f := env.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.inoForFSLocked("A")
	assert.Equal(t, hashIno("A"), a)
	assert.NotZero(t, a&(1<<63))
	f.byIno[hashIno("B")] = &entry{ino: hashIno("B")} // B's number taken
	b := f.inoForFSLocked("B")
	assert.NotEqual(t, hashIno("B"), b)
	assert.Less(t, b, uint64(1)<<63)
	assert.Equal(t, b, f.inoForFSLocked("B"), "kept")
}
