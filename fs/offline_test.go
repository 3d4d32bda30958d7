package fs

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/metastore"
	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// newStoreFS returns a started FS over env's server with offline detection
// and a store in env's cache dir, as the mount command builds it.
func (env *testEnv) newStoreFS(poll time.Duration) *FS {
	t := env.t
	t.Helper()
	rc, err := remote.New(remote.Config{
		GraphURL:      env.srv.GraphURL(),
		Tokens:        oauth2.StaticTokenSource(&oauth2.Token{AccessToken: env.srv.IssueToken(), Expiry: time.Now().Add(time.Hour)}),
		Retry:         remote.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
		DetectOffline: true,
	})
	require.NoError(t, err)
	content, err := cache.OpenContent(cache.ContentOptions{Dir: filepath.Join(env.cache, "content"), MaxBytes: 1 << 30})
	require.NoError(t, err)
	staging, err := cache.OpenStaging(cache.StagingOptions{Dir: env.cache})
	require.NoError(t, err)
	state, err := cache.OpenState(env.cache, nil)
	require.NoError(t, err)
	store, err := metastore.Open(filepath.Join(env.cache, "tree.db"))
	require.NoError(t, err)
	f, err := New(Config{Remote: rc, Content: content, Staging: staging, State: state, Store: store,
		Logger: testLogger(t), PollInterval: poll})
	require.NoError(t, err)
	require.NoError(t, f.start(context.Background()))
	require.NoError(t, f.initDelta(context.Background()))
	t.Cleanup(func() {
		f.bg.stop()
		_ = store.Close()
		_ = content.Close()
	})
	return f
}

// Offline: mkdir, a file written into the new folder, a rename into it and
// an unlink are applied locally and journaled; back online they reach the
// service in order, and the folder's local id is bound to the service's.
func TestOfflineJournalReplay(t *testing.T) {
	env := &testEnv{t: t, srv: graphtest.NewServer(graphtest.Options{}), cache: t.TempDir()}
	t.Cleanup(func() { _ = env.srv.Close() })
	for p, c := range map[string]string{"/d/f.txt": "eff", "/d/g.txt": "gee"} {
		_, err := env.srv.PutFile(p, []byte(c), time.Time{})
		require.NoError(t, err)
	}
	f := env.newStoreFS(-1)
	env.fs = f
	ctx := context.Background()
	d := env.mustWalk("/d")
	env.mustWalk("/d/g.txt")

	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkRefuse))
	n, err := f.mkdir(ctx, d, "n")
	require.NoError(t, err)
	assert.True(t, isLocalID(n.item.Load().ID))
	assert.True(t, f.isOffline())
	env.writeFile(n, "x.txt", []byte("written offline"))
	require.NoError(t, f.rename(ctx, d, "g.txt", n, "g2.txt", 0))
	require.NoError(t, f.unlink(ctx, d, "f.txt"))
	assert.Equal(t, int64(3), f.metaRecords.Load())
	names, err := f.readdir(ctx, n)
	require.NoError(t, err)
	assert.Len(t, names, 2, "x.txt and g2.txt in the folder made offline")

	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkUp))
	require.NoError(t, f.remote.Probe(ctx))
	f.backOnline(ctx)
	assert.Zero(t, f.metaRecords.Load())
	assert.Empty(t, f.staging.Pending())
	it, ok := env.srv.ItemByPath("/d/n")
	require.True(t, ok)
	assert.True(t, it.IsFolder)
	assert.Equal(t, it.ID, n.item.Load().ID, "the entry is bound to the service's folder")
	got, err := env.srv.ReadFile("/d/n/x.txt")
	require.NoError(t, err)
	assert.Equal(t, "written offline", string(got))
	got, err = env.srv.ReadFile("/d/n/g2.txt")
	require.NoError(t, err)
	assert.Equal(t, "gee", string(got))
	for _, p := range []string{"/d/f.txt", "/d/g.txt"} {
		_, ok := env.srv.ItemByPath(p)
		assert.False(t, ok, p)
	}
}

// A listing is read from the store, without a request, once the delta poll
// keeps it current; and from the store while offline.
func TestStoreServesListings(t *testing.T) {
	env := &testEnv{t: t, srv: graphtest.NewServer(graphtest.Options{}), cache: t.TempDir()}
	t.Cleanup(func() { _ = env.srv.Close() })
	_, err := env.srv.PutFile("/d/f.txt", []byte("eff"), time.Time{})
	require.NoError(t, err)
	f := env.newStoreFS(time.Hour)
	env.fs = f
	env.mustWalk("/d/f.txt")
	f.bg.stop() // writes what is queued
	require.NoError(t, f.store.Close())

	env2 := &testEnv{t: t, srv: env.srv, cache: env.cache}
	env.srv.ResetStats()
	env2.fs = env2.newStoreFS(time.Hour)
	env2.mustWalk("/d/f.txt")
	assert.Zero(t, env.srv.Stats().Requests["children.list"], "listed from the store")

	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkRefuse))
	env2.fs.listings.InvalidateAll()
	env2.mustWalk("/d/f.txt")
}

// The full sync stores the whole drive with delta pages, no folder listed
// one by one; then every folder reads from the store, even offline.
func TestFullSyncStoresTree(t *testing.T) {
	env := &testEnv{t: t, srv: graphtest.NewServer(graphtest.Options{}), cache: t.TempDir()}
	t.Cleanup(func() { _ = env.srv.Close() })
	require.NoError(t, env.srv.Generate(graphtest.GenerateSpec{Folders: 20, FilesPerFolder: 30}))
	f := env.newStoreFS(time.Hour)
	env.fs = f
	env.srv.ResetStats()
	f.fullSync(context.Background())
	st := env.srv.Stats()
	assert.Zero(t, st.Requests["children.list"])
	assert.Positive(t, st.Requests["delta"])
	t.Logf("full sync of %d items: %v", 20*31, st.Requests)

	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkRefuse))
	f.remote.Link().MarkOffline(time.Now(), nil)
	files := 0
	root, err := f.readdir(context.Background(), f.root)
	require.NoError(t, err)
	for _, d := range root {
		dir := env.mustWalk("/" + d.name)
		names, err := f.readdir(context.Background(), dir)
		require.NoError(t, err, "%s offline", d.name)
		files += len(names)
	}
	assert.Len(t, root, 20)
	assert.Equal(t, 20*30, files, "every file, offline, from the store")
}

func TestRetryLater(t *testing.T) {
	assert.True(t, retryLater(remote.ErrOffline))
	assert.True(t, retryLater(&remote.Error{StatusCode: 503}))
	assert.True(t, retryLater(context.Canceled))
	assert.False(t, retryLater(&remote.Error{StatusCode: 400, Code: "invalidRequest"}))
	assert.False(t, retryLater(remote.ErrConflict), "a name taken for good does not block the journal")
}
