package fs

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Remote changes picked up by a delta poll update the cached listings and
// entries, without relisting, and queue kernel notifications.
func TestDeltaUpdatesCachedListings(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	_, err := env.srv.PutFile("/d/keep.txt", []byte("v1"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.PutFile("/d/gone.txt", []byte("x"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.PutFile("/d/moveme.txt", []byte("m"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.MkdirAll("/e")
	require.NoError(t, err)
	require.NoError(t, env.fs.initDelta(ctx))
	d := env.mustWalk("/d")
	keep := env.mustWalk("/d/keep.txt")
	moveme := env.mustWalk("/d/moveme.txt")
	env.mustWalk("/e/")
	_, err = env.fs.readdir(ctx, env.mustWalk("/e"))
	require.NoError(t, err)
	oldCTag := keep.item.Load().CTag
	env.fs.notes.take()

	// Changes made directly on the service.
	_, err = env.srv.PutFile("/d/keep.txt", []byte("v2 longer"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.PutFile("/d/new.txt", []byte("n"), time.Time{})
	require.NoError(t, err)
	deleteOnServer(t, env, "/d/gone.txt")
	moveOnServer(t, env, "/d/moveme.txt", "/e", "moved.txt")

	env.srv.ResetStats()
	require.NoError(t, env.fs.pollOnce(ctx))
	assert.Equal(t, int64(1), env.srv.Stats().RequestsTotal, "one delta request: %v", env.srv.Stats().Requests)

	list, err := env.fs.readdir(ctx, d)
	require.NoError(t, err)
	var names []string
	for _, c := range list {
		names = append(names, c.name)
	}
	assert.Equal(t, []string{"keep.txt", "new.txt"}, names)
	assert.NotEqual(t, oldCTag, keep.item.Load().CTag)
	assert.Equal(t, int64(9), env.fs.attrOf(keep).size)
	moved := env.mustWalk("/e/moved.txt")
	assert.Same(t, moveme, moved, "a moved item keeps its entry and inode number")
	assert.Equal(t, int64(1), env.srv.Stats().RequestsTotal, "no relisting needed")

	notes := env.fs.notes.take()
	var sawContent, sawGone bool
	for _, n := range notes {
		if n.kind == noteContent && n.e == keep {
			sawContent = true
		}
		if n.kind == noteAliases && n.dir == d && n.name == "gone.txt" {
			sawGone = true
		}
	}
	assert.True(t, sawContent, "content change notified")
	assert.True(t, sawGone, "deletion notified")
	assert.Equal(t, "v2 longer", string(env.readAll(keep)), "new content read, not the cached old one")
}

func TestDeltaLinkIsPersisted(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	require.NoError(t, env.fs.initDelta(ctx))
	link, ok := env.fs.state.Load(deltaLinkKey)
	require.True(t, ok)
	require.NotEmpty(t, link)
	require.NoError(t, env.fs.pollOnce(ctx))
	_, ok = env.fs.state.Load(deltaLinkKey)
	assert.True(t, ok)
}

func TestResyncDropsListings(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	_, err := env.srv.PutFile("/f.txt", nil, time.Time{})
	require.NoError(t, err)
	require.NoError(t, env.fs.initDelta(ctx))
	env.mustWalk("/f.txt")
	env.srv.ExpireDeltaTokens()
	require.NoError(t, env.fs.pollOnce(ctx))
	env.srv.ResetStats()
	env.mustWalk("/f.txt")
	assert.Equal(t, int64(1), env.requests("children.list"), "listing read again after a resync")
}

func TestXattrs(t *testing.T) {
	env := newTestEnv(t)
	_, err := env.srv.PutFile("/x.txt", []byte("abc"), time.Time{})
	require.NoError(t, err)
	e := env.mustWalk("/x.txt")
	n := &node{fsys: env.fs, e: e}
	ctx := context.Background()

	size, errno := n.Listxattr(ctx, nil)
	require.Zero(t, errno)
	buf := make([]byte, size)
	_, errno = n.Listxattr(ctx, buf)
	require.Zero(t, errno)
	assert.Contains(t, string(buf), "user.onedrive.id\x00")
	assert.Contains(t, string(buf), "user.onedrive.quickxorhash\x00")

	size, errno = n.Getxattr(ctx, "user.onedrive.quickxorhash", nil)
	require.Zero(t, errno)
	buf = make([]byte, size)
	_, errno = n.Getxattr(ctx, "user.onedrive.quickxorhash", buf)
	require.Zero(t, errno)
	assert.Equal(t, "YRDDGAAAAAAAAAAAAwAAAAAAAAA=", string(buf), "quickXorHash of abc")
	_, errno = n.Getxattr(ctx, "user.onedrive.id", make([]byte, 1))
	assert.Equal(t, "numerical result out of range", errno.Error())

	_, errno = n.Getxattr(ctx, "security.selinux", nil)
	assert.Equal(t, errnoOf(errNoXattr), errno)
	_, errno = n.Getxattr(ctx, "system.posix_acl_access", nil)
	assert.Equal(t, errnoOf(errNoXattr), errno)
	assert.Equal(t, errnoOf(errNotSupported), n.Setxattr(ctx, "user.mine", []byte("v"), 0))
	assert.Equal(t, errnoOf(errNotPermitted), n.Setxattr(ctx, "user.onedrive.id", []byte("v"), 0))

	dir := &node{fsys: env.fs, e: env.fs.root}
	size, _ = dir.Listxattr(ctx, nil)
	buf = make([]byte, size)
	_, _ = dir.Listxattr(ctx, buf)
	assert.NotContains(t, string(buf), "quickxorhash", "folders have no content hash")
}

func deleteOnServer(t *testing.T, env *testEnv, path string) {
	t.Helper()
	info, ok := env.srv.ItemByPath(path)
	require.True(t, ok)
	require.NoError(t, env.fs.remote.Delete(context.Background(), info.ID, ""))
}

func moveOnServer(t *testing.T, env *testEnv, path, toDir, name string) {
	t.Helper()
	info, ok := env.srv.ItemByPath(path)
	require.True(t, ok)
	dir, ok := env.srv.ItemByPath(toDir)
	require.True(t, ok)
	_, err := env.fs.remote.Update(context.Background(), info.ID, remoteUpdate{ParentID: dir.ID, Name: name})
	require.NoError(t, err)
}
