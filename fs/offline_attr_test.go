package fs

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// Offline, utimens is applied and journaled; back online the time is sent,
// except on a file whose content changed on the service meanwhile (that
// newer version keeps its own time).
func TestOfflineTimesReplay(t *testing.T) {
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
	fe, ge := env.mustWalk("/d/f.txt"), env.mustWalk("/d/g.txt")

	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkRefuse))
	set := time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, e := range []*entry{fe, ge, d} {
		require.NoError(t, f.setTimes(ctx, e, set, time.Time{}))
		assert.True(t, f.attrOf(e).mtime.Equal(set), "%s shows the time set offline", e.name)
	}
	assert.True(t, f.isOffline())
	assert.Equal(t, int64(3), f.metaRecords.Load())
	theirs := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := env.srv.PutFile("/d/g.txt", []byte("changed on the service"), theirs)
	require.NoError(t, err)

	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkUp))
	require.NoError(t, f.remote.Probe(ctx))
	f.backOnline(ctx)
	assert.Zero(t, f.metaRecords.Load())
	for p, want := range map[string]time.Time{"/d/f.txt": set, "/d": set, "/d/g.txt": theirs} {
		it, ok := env.srv.ItemByPath(p)
		require.True(t, ok, p)
		assert.True(t, it.FSModified.Equal(want), "%s: %v, want %v", p, it.FSModified, want)
	}
}
