package fs

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// baseContent returns n pseudo-random bytes (seeded: a failure repeats).
func baseContent(n int) []byte {
	r := rand.New(rand.NewPCG(7, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// withEdit returns base with p written at off (the file grows if needed).
func withEdit(base []byte, off int, p []byte) []byte {
	out := append([]byte(nil), base...)
	if need := off + len(p); need > len(out) {
		out = append(out, make([]byte, need-len(out))...)
	}
	copy(out[off:], p)
	return out
}

// seedLarge puts n pseudo-random bytes at /big.bin on the fake and returns
// them with the file's entry.
func (env *testEnv) seedLarge(n int) ([]byte, *entry) {
	env.t.Helper()
	base := baseContent(n)
	_, err := env.srv.PutFile("/big.bin", base, time.Time{})
	require.NoError(env.t, err)
	return base, env.mustWalk("/big.bin")
}

// writeAt opens e, writes p at off and returns the open handle.
func (env *testEnv) writeAt(e *entry, off int64, p []byte) *handle {
	env.t.Helper()
	ctx := context.Background()
	h, err := env.fs.open(ctx, e, false)
	require.NoError(env.t, err)
	n, err := h.write(ctx, p, off)
	require.NoError(env.t, err)
	require.Equal(env.t, len(p), n)
	return h
}

// A write into a large existing file does not wait for its content: it is
// accepted with the service unreachable (nothing of the file fetched), reads
// of the written bytes are answered from them, and the unwritten bytes are
// fetched before the content is sent — the file on the service is the base
// with the edit, never holes of zeros.
func TestWriteIntoLargeFileNeedsNotItsContentFirst(t *testing.T) {
	env := newTestEnv(t)
	base, e := env.seedLarge(3 * DefaultLazyBaseMin)
	ctx := context.Background()

	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkRefuse))
	edit := []byte("the edit")
	off := int64(DefaultLazyBaseMin + 123)
	h := env.writeAt(e, off, edit)
	got := make([]byte, len(edit))
	n, err := h.read(ctx, got, off)
	require.NoError(t, err, "the written bytes are read back without the service")
	assert.Equal(t, edit, got[:n])
	assert.Equal(t, int64(len(base)), env.fs.attrOf(e).size)
	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkUp))

	// A read of bytes not written fills them from the base version.
	got = make([]byte, 4096)
	n, err = h.read(ctx, got, 10)
	require.NoError(t, err)
	assert.Equal(t, base[10:10+4096], got[:n])

	require.NoError(t, h.flush(ctx))
	require.NoError(t, h.release(ctx))
	onService, err := env.srv.ReadFile("/big.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(withEdit(base, int(off), edit), onService), "the service holds the base with the edit")
	assert.Empty(t, env.fs.staging.Pending())
	assert.LessOrEqual(t, env.srv.Stats().BytesDownloaded, int64(len(base)), "each byte of the base fetched at most once")
}

// A write over a whole range of the base never fetches it.
func TestOverwrittenBaseRangeIsNotFetched(t *testing.T) {
	env := newTestEnv(t)
	base, e := env.seedLarge(2 * DefaultLazyBaseMin)
	ctx := context.Background()

	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkRefuse))
	edit := bytes.Repeat([]byte{0xA5}, len(base)) // the whole file, written before the network is back
	h := env.writeAt(e, 0, edit)
	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkUp))
	env.srv.ResetStats()
	require.NoError(t, h.flush(ctx))
	require.NoError(t, h.release(ctx))
	onService, err := env.srv.ReadFile("/big.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(edit, onService))
	assert.Zero(t, env.srv.Stats().BytesDownloaded, "nothing of the overwritten base is fetched")
}

// Journaled with parts of its base still missing (the service unreachable
// at close), the change is completed from the base version when it is
// replayed by a later mount — including bytes written into a missing range
// after the journal record was first written.
func TestJournaledWriteWithMissingBaseIsReplayedWhole(t *testing.T) {
	env := newTestEnv(t)
	base, e := env.seedLarge(2*DefaultLazyBaseMin + 777)
	ctx := context.Background()

	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkRefuse))
	first, second := []byte("first edit"), []byte("second edit, after the journal")
	h := env.writeAt(e, 100, first)
	require.NoError(t, h.flush(ctx), "close succeeds: the change is journaled")
	recs := env.fs.staging.Pending()
	require.Len(t, recs, 1)
	require.NotEmpty(t, recs[0].BaseMissing, "the record lists what the base still has to give")
	secondAt := DefaultLazyBaseMin + 5
	n, err := h.write(ctx, second, int64(secondAt))
	require.NoError(t, err)
	require.Equal(t, len(second), n)
	recs = env.fs.staging.Pending()
	require.Len(t, recs, 1)
	assert.False(t, overlaps(recs[0].BaseMissing, int64(secondAt), int64(secondAt+len(second))),
		"a write into a range the record lists as missing takes it off the record: %v", recs[0].BaseMissing)
	// The mount ends here without sending (as a kill would): a new one
	// over the same cache replays the record.
	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkUp))
	f2 := env.newFS(Config{})
	require.NoError(t, f2.start(ctx))
	f2.replayJournal(ctx)

	want := withEdit(withEdit(base, 100, first), secondAt, second)
	onService, err := env.srv.ReadFile("/big.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, onService), "the replay sent the base with both edits")
	assert.Empty(t, f2.staging.Pending())
	_ = h // the first mount's handle dies with it
}

// A file cut shorter than its base while the base is missing keeps only the
// base's bytes before the cut, and a file grown again holds zeros after it.
func TestTruncateWithMissingBase(t *testing.T) {
	env := newTestEnv(t)
	base, e := env.seedLarge(2 * DefaultLazyBaseMin)
	ctx := context.Background()

	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkRefuse))
	h := env.writeAt(e, 10, []byte("x"))
	cut := int64(DefaultLazyBaseMin + 1000)
	require.NoError(t, env.fs.truncate(ctx, e, cut))
	require.NoError(t, env.fs.truncate(ctx, e, cut+50))
	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkUp))
	require.NoError(t, h.flush(ctx))
	require.NoError(t, h.release(ctx))

	want := withEdit(base[:cut], 10, []byte("x"))
	want = append(want, make([]byte, 50)...)
	onService, err := env.srv.ReadFile("/big.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, onService))
}

// When the base version changes on the service before all of it was
// fetched, the service's new version is kept and the change is saved beside
// it; nothing of the new version is overwritten.
func TestMissingBaseChangedOnServiceKeepsTheServiceVersion(t *testing.T) {
	env := newTestEnv(t)
	base, e := env.seedLarge(2 * DefaultLazyBaseMin)
	ctx := context.Background()

	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkRefuse))
	h := env.writeAt(e, 0, []byte("local edit"))
	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkUp))
	theirs := []byte("changed elsewhere")
	_, err := env.srv.PutFile("/big.bin", theirs, time.Time{})
	require.NoError(t, err)
	require.NoError(t, h.flush(ctx))
	require.NoError(t, h.release(ctx))

	onService, err := env.srv.ReadFile("/big.bin")
	require.NoError(t, err)
	assert.Equal(t, theirs, onService, "the service's version stays")
	var conflict string
	list, err := env.srv.List("/")
	require.NoError(t, err)
	for _, it := range list {
		if strings.Contains(it.Name, "conflict") {
			conflict = it.Path
		}
	}
	require.NotEmpty(t, conflict, "the local change is saved beside it")
	saved, err := env.srv.ReadFile(conflict)
	require.NoError(t, err)
	assert.Equal(t, "local edit", string(saved[:10]))
	assert.Len(t, saved, len(base))
}

// A journal record written while ranges were missing stops listing them
// once they are filled (here by reads): a write into one of them after
// that is replayed as written, not filled over from the base.
func TestWriteAfterBaseFilledIsNotReplayedOver(t *testing.T) {
	env := newTestEnv(t)
	base, e := env.seedLarge(2 * DefaultLazyBaseMin)
	ctx := context.Background()

	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkRefuse))
	h := env.writeAt(e, 0, []byte("first"))
	require.NoError(t, h.flush(ctx), "journaled with the rest of the base missing")
	require.NotEmpty(t, env.fs.staging.Pending()[0].BaseMissing)
	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkUp))
	buf := make([]byte, 1<<20)
	for off := int64(0); off < int64(len(base)); off += int64(len(buf)) {
		_, err := h.read(ctx, buf, off) // fills the rest
		require.NoError(t, err)
	}
	later := []byte("written after the base came")
	at := DefaultLazyBaseMin + 99
	n, err := h.write(ctx, later, int64(at))
	require.NoError(t, err)
	require.Equal(t, len(later), n)

	// The mount ends here (as a kill would): a new one replays the record.
	f2 := env.newFS(Config{})
	require.NoError(t, f2.start(ctx))
	f2.replayJournal(ctx)
	want := withEdit(withEdit(base, 0, []byte("first")), at, later)
	onService, err := env.srv.ReadFile("/big.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, onService), "the later write survives the replay")
}
