package fs

import (
	"context"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rootNode returns the root node wired into go-fuse's node tree, without a
// mount, so that node methods can be called directly.
func rootNode(t *testing.T, env *testEnv) *dirNode {
	t.Helper()
	root := &dirNode{node{fsys: env.fs, e: env.fs.root}}
	gofs.NewNodeFS(root, &gofs.Options{RootStableAttr: &gofs.StableAttr{Ino: rootIno}})
	return root
}

func TestNodesAnswerErrnos(t *testing.T) {
	env := newTestEnv(t)
	_, err := env.srv.PutFile("/dir/file.txt", []byte("data"), time.Time{})
	require.NoError(t, err)
	root := rootNode(t, env)
	ctx := context.Background()
	var out fuse.EntryOut

	ch, errno := root.Lookup(ctx, "DIR", &out)
	require.Zero(t, errno)
	assert.Equal(t, uint32(syscall.S_IFDIR|0o755), out.Mode)
	dir := ch.Operations().(*dirNode)

	_, errno = dir.Lookup(ctx, "missing", &out)
	assert.Equal(t, syscall.ENOENT, errno)

	fileInode, errno := dir.Lookup(ctx, "file.TXT", &out)
	require.Zero(t, errno)
	assert.Equal(t, uint64(4), out.Size)
	assert.Equal(t, uint64(1), out.Blocks)

	stream, errno := dir.Readdir(ctx)
	require.Zero(t, errno)
	var names []string
	for stream.HasNext() {
		de, errno := stream.Next()
		require.Zero(t, errno)
		names = append(names, de.Name)
	}
	assert.Equal(t, []string{".", "..", "file.txt"}, names)

	assert.Equal(t, syscall.ENOTEMPTY, root.Rmdir(ctx, "dir"))
	assert.Equal(t, syscall.ENOTDIR, dir.Rmdir(ctx, "file.txt"))
	assert.Equal(t, syscall.EISDIR, root.Unlink(ctx, "dir"))
	_, errno = root.Mkdir(ctx, "dir", 0o755, &out)
	assert.Equal(t, syscall.EEXIST, errno)
	_, errno = root.Mkdir(ctx, "bad|name", 0o755, &out)
	assert.Equal(t, syscall.EINVAL, errno)
	_, _, _, errno = root.Create(ctx, "x?y", syscall.O_CREAT|syscall.O_WRONLY, 0o644, &out)
	assert.Equal(t, syscall.EINVAL, errno)
	_, errno = root.Symlink(ctx, "target", "link", &out)
	assert.Equal(t, syscall.EPERM, errno)
	_, errno = root.Link(ctx, fileInode.Operations(), "hard", &out)
	assert.Equal(t, syscall.EPERM, errno)

	_, errno = root.Mkdir(ctx, "other", 0o755, &out)
	require.Zero(t, errno)
	assert.Equal(t, syscall.EEXIST, dir.Rename(ctx, "file.txt", root, "DIR", renameNoReplace))
	assert.Equal(t, syscall.EISDIR, dir.Rename(ctx, "file.txt", root, "other", 0))
	assert.Equal(t, syscall.EINVAL, root.Rename(ctx, "dir", dir, "sub", 0), "a folder into itself")

	var st fuse.StatfsOut
	require.Zero(t, root.Statfs(ctx, &st))
	assert.Equal(t, uint64(1<<40)/statfsSize, st.Blocks)
	assert.NotZero(t, st.Bavail)
}

func TestReadOnlyRefusesChanges(t *testing.T) {
	env := newTestEnv(t, func(_ *graphOptions, c *Config) { c.ReadOnly = true })
	_, err := env.srv.PutFile("/f.txt", []byte("x"), time.Time{})
	require.NoError(t, err)
	root := rootNode(t, env)
	ctx := context.Background()
	var out fuse.EntryOut
	_, errno := root.Mkdir(ctx, "d", 0o755, &out)
	assert.Equal(t, syscall.EROFS, errno)
	assert.Equal(t, syscall.EROFS, root.Unlink(ctx, "f.txt"))
	ch, errno := root.Lookup(ctx, "f.txt", &out)
	require.Zero(t, errno)
	_, _, errno = ch.Operations().(*fileNode).Open(ctx, syscall.O_WRONLY)
	assert.Equal(t, syscall.EROFS, errno)
	h, _, errno := ch.Operations().(*fileNode).Open(ctx, syscall.O_RDONLY)
	require.Zero(t, errno)
	buf := make([]byte, 10)
	res, errno := h.(*handle).Read(ctx, buf, 0)
	require.Zero(t, errno)
	data, _ := res.Bytes(buf)
	assert.Equal(t, "x", string(data))
	assert.Zero(t, h.(*handle).Release(ctx))
}
