package fs

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func seeded(seed byte, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// A handle that read a version keeps it: after the file changed on the
// service, its cached bytes are still served, a read that would need a
// download of the old version fails with errStale (never bytes of the new
// one), and a read from offset 0 starts over on the new version.
func TestReadKeepsItsVersion(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	v1, v2 := seeded(1, 32<<20), seeded(2, 32<<20)
	_, err := env.srv.PutFile("/v.bin", v1, time.Time{})
	require.NoError(t, err)
	require.NoError(t, env.fs.initDelta(ctx))
	e := env.mustWalk("/v.bin")
	h, err := env.fs.open(ctx, e, false)
	require.NoError(t, err)
	defer func() { require.NoError(t, h.release(ctx)) }()

	buf := make([]byte, 1<<20)
	n, err := h.read(ctx, buf, 0)
	require.NoError(t, err)
	require.True(t, bytes.Equal(v1[:n], buf[:n]))
	h.ra.Stop() // no stream fetching on behind the test's back

	_, err = env.srv.PutFile("/v.bin", v2, time.Time{})
	require.NoError(t, err)
	require.NoError(t, env.fs.pollOnce(ctx))
	require.NotEqual(t, keyOf(e.item.Load()), h.ce.Key(), "the poll saw the new version")

	n, err = h.read(ctx, buf[:4096], 100)
	require.NoError(t, err, "cached bytes of the old version are still served")
	assert.True(t, bytes.Equal(v1[100:100+n], buf[:n]))

	_, err = h.read(ctx, buf[:4096], 30<<20)
	assert.True(t, errors.Is(err, errStale), "the old version is gone from the service: %v", err)

	n, err = h.read(ctx, buf, 0)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(v2[:n], buf[:n]), "a read from 0 starts over on the new version")
}

// Random small reads fetch what they ask for, not a read-ahead window.
func TestRandomReadsFetchWhatTheyRead(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	data := seeded(3, 64<<20)
	_, err := env.srv.PutFile("/r.bin", data, time.Time{})
	require.NoError(t, err)
	e := env.mustWalk("/r.bin")
	h, err := env.fs.open(ctx, e, false)
	require.NoError(t, err)
	env.srv.ResetStats()
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4096)
	const reads = 50
	for range reads {
		off := rng.Int64N(int64(len(data))/4096) * 4096
		n, err := h.read(ctx, buf, off)
		require.NoError(t, err)
		require.True(t, bytes.Equal(data[off:off+int64(n)], buf[:n]))
	}
	require.NoError(t, h.release(ctx))
	env.fs.bg.stop()
	st := env.srv.Stats()
	assert.LessOrEqual(t, st.BytesDownloaded, int64(2*reads*4096), "%v", st.Requests)
}

// A sequential read of a whole file in 128 KiB reads is at most two
// downloads (the first read alone is not yet a run worth a stream; from the
// second on, one stream to the end), and the version read whole is
// verified.
func TestSequentialReadIsOneStream(t *testing.T) {
	env := newTestEnv(t)
	data := seeded(4, 24<<20+5)
	_, err := env.srv.PutFile("/s.bin", data, time.Time{})
	require.NoError(t, err)
	e := env.mustWalk("/s.bin")
	env.srv.ResetStats()
	got := env.readAll(e)
	require.True(t, bytes.Equal(data, got))
	env.fs.bg.stop()
	st := env.srv.Stats()
	assert.LessOrEqual(t, st.Requests["download"], int64(2), "%v", st.Requests)
	assert.Equal(t, int64(len(data)), st.BytesDownloaded)
	ce, err := env.fs.content.Open(keyOf(e.item.Load()), e.item.Load().Size)
	require.NoError(t, err)
	defer ce.Release()
	assert.True(t, ce.Verified())
}
