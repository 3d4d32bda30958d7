package fs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLookupIsCaseInsensitiveAndCasePreserving(t *testing.T) {
	env := newTestEnv(t)
	_, err := env.srv.PutFile("/Docs/README.md", []byte("hello"), time.Time{})
	require.NoError(t, err)

	e := env.mustWalk("docs/readme.MD")
	assert.Equal(t, "README.md", e.name)
	assert.Same(t, e, env.mustWalk("/Docs/README.md"), "one entry per item")

	_, err = env.walk("/Docs/nope")
	assert.ErrorIs(t, err, errNoEntry)

	list, err := env.fs.readdir(context.Background(), env.mustWalk("DOCS"))
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "README.md", list[0].name)
	assert.Equal(t, e.ino, list[0].ino)
}

func TestStableInodeNumbers(t *testing.T) {
	env := newTestEnv(t)
	_, err := env.srv.PutFile("/a/f.txt", []byte("x"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.MkdirAll("/b")
	require.NoError(t, err)
	f := env.mustWalk("/a/f.txt")
	ino := f.ino
	require.NoError(t, env.fs.rename(context.Background(), env.mustWalk("/a"), "f.txt", env.mustWalk("/b"), "g.txt", 0))
	env.fs.invalidateListing(env.mustWalk("/b").item.Load().ID)
	assert.Equal(t, ino, env.mustWalk("/b/g.txt").ino, "an item keeps its inode number across a move and a relisting")
}

// A folder of 5,000 children is listed in a handful of requests, and a
// repeated listing (and the lookups readdirplus makes) within the TTL costs
// none.
func TestListingCostsAHandfulOfRequests(t *testing.T) {
	env := newTestEnv(t)
	for i := range 5000 {
		_, err := env.srv.PutFile(fmt.Sprintf("/big/file-%05d.txt", i), nil, time.Time{})
		require.NoError(t, err)
	}
	big := env.mustWalk("/big")
	env.srv.ResetStats()

	list, err := env.fs.readdir(context.Background(), big)
	require.NoError(t, err)
	assert.Len(t, list, 5000)
	first := env.srv.Stats().RequestsTotal
	assert.LessOrEqual(t, first, int64(10), "requests for 5,000 children: %v", env.srv.Stats().Requests)

	for _, c := range list {
		_, err := env.fs.lookup(context.Background(), big, c.name)
		require.NoError(t, err)
	}
	_, err = env.fs.readdir(context.Background(), big)
	require.NoError(t, err)
	assert.Equal(t, first, env.srv.Stats().RequestsTotal, "a repeated listing within the TTL costs no request")
}

func TestListingExpiresAfterTTL(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	env := newTestEnv(t, func(_ *graphOptions, c *Config) { c.Clock = clock; c.ListingTTL = time.Minute })
	_, err := env.srv.MkdirAll("/d")
	require.NoError(t, err)
	d := env.mustWalk("/d")
	_, err = env.fs.readdir(context.Background(), d)
	require.NoError(t, err)
	_, err = env.srv.PutFile("/d/new.txt", []byte("n"), time.Time{})
	require.NoError(t, err)

	_, err = env.walk("/d/new.txt")
	assert.ErrorIs(t, err, errNoEntry, "within the TTL the cached listing answers")
	now = now.Add(2 * time.Minute)
	env.mustWalk("/d/new.txt")
}

func TestAttributes(t *testing.T) {
	env := newTestEnv(t)
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	_, err := env.srv.PutFile("/f.bin", make([]byte, 1000), mtime)
	require.NoError(t, err)
	env.fs.uid, env.fs.gid = 1234, 5678

	var out fuse.Attr
	env.fs.fillAttr(&out, env.fs.attrOf(env.mustWalk("/f.bin")))
	assert.Equal(t, uint64(1000), out.Size)
	assert.Equal(t, uint64(2), out.Blocks, "ceil(1000/512)")
	assert.Equal(t, uint32(0o100644), out.Mode)
	assert.Equal(t, uint32(1234), out.Uid)
	assert.Equal(t, uint32(5678), out.Gid)
	assert.Equal(t, uint64(mtime.Unix()), out.Mtime)

	env.fs.fillAttr(&out, env.fs.attrOf(env.fs.root))
	assert.Equal(t, uint32(0o40755), out.Mode)
}

func TestHiddenPackagesAreHiddenEverywhere(t *testing.T) {
	// Packages cannot be seeded through the helpers; the rule is checked on
	// the listing code path directly.
	env := newTestEnv(t)
	env.fs.mu.Lock()
	l := env.fs.applyListingFSLocked(env.fs.root, []*remoteItem{
		{ID: "n1", Name: "Notebook", Package: "oneNote", IsFolder: true},
		{ID: "f1", Name: "plain.txt"},
	}, 0)
	env.fs.mu.Unlock()
	assert.Len(t, l.children, 1)
	assert.Contains(t, l.children, "plain.txt")
}
