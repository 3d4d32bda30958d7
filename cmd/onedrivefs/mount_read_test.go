package main

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// Mount-level tests of the read path: streamed sequential reads, seeks,
// readers beside writers, files changed on the service mid-read, the
// content cache's budget, and written files after a remount.

// seededBytes returns n pseudo-random bytes, the same for a seed.
func seededBytes(seed uint64, n int) []byte {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// readAtFull reads len(p) bytes at off, failing the test on a short read.
func readAtFull(t *testing.T, f *os.File, p []byte, off int64) {
	t.Helper()
	n, err := f.ReadAt(p, off)
	if errors.Is(err, io.EOF) && n == len(p) {
		err = nil
	}
	require.NoError(t, err)
	require.Equal(t, len(p), n)
}

// A sequential read streams; seeks away and back in the middle of it, and a
// second sequential run, all return the file's bytes, with one download
// per run rather than one per window.
func TestMountStreamedReadInterruptedBySeek(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	data := seededBytes(1, 64<<20)
	_, err := env.srv.PutFile("/stream.bin", data, time.Time{})
	require.NoError(t, err)
	env.mount()
	_, err = os.Stat(env.path("stream.bin"))
	require.NoError(t, err)
	env.srv.ResetStats()

	f, err := os.Open(env.path("stream.bin"))
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < 8<<20; off += int64(len(buf)) {
		readAtFull(t, f, buf, off)
		require.True(t, bytes.Equal(data[off:off+int64(len(buf))], buf), "sequential read at %d", off)
	}
	// Seek far ahead, then back before the run, then read the tail.
	small := make([]byte, 4096)
	for _, off := range []int64{40 << 20, 5<<20 + 123, 63<<20 + 7} {
		readAtFull(t, f, small[:min(4096, int64(len(data))-off)], off)
		n := min(4096, int64(len(data))-off)
		require.True(t, bytes.Equal(data[off:off+n], small[:n]), "read after a seek to %d", off)
	}
	for off := int64(48 << 20); off < int64(len(data)); off += int64(len(buf)) {
		readAtFull(t, f, buf, off)
		require.True(t, bytes.Equal(data[off:off+int64(len(buf))], buf), "second run at %d", off)
	}
	st := env.srv.Stats()
	t.Logf("downloaded %d MiB in %v", st.BytesDownloaded>>20, st.Requests)
	assert.LessOrEqual(t, st.Requests["download"], int64(10), "one download per run, per seek, per restart after a cached island: %v", st.Requests)
	assert.LessOrEqual(t, st.BytesDownloaded, int64(len(data)), "nothing fetched twice: %v", st.Requests)
}

// A reader and a writer of the same file at once: every read returns, block
// by block, either the old or the new content of that block, never anything
// else; once the writer wrote, the reader sees its bytes, before and after
// the close that uploads them.
func TestMountReaderAndWriterSeeConsistentBytes(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	const size, block = 8 << 20, 64 << 10
	old := seededBytes(2, size)
	_, err := env.srv.PutFile("/rw.bin", old, time.Time{})
	require.NoError(t, err)
	env.mount()

	r, err := os.Open(env.path("rw.bin"))
	require.NoError(t, err)
	defer r.Close()
	got := make([]byte, size)
	readAtFull(t, r, got, 0)
	require.True(t, bytes.Equal(old, got))

	w, err := os.OpenFile(env.path("rw.bin"), os.O_WRONLY, 0)
	require.NoError(t, err)
	want := bytes.Clone(old)
	patch := bytes.Repeat([]byte("new!"), block/4)
	stop := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, size)
		for {
			select {
			case <-stop:
				readErr <- nil
				return
			default:
			}
			if _, err := r.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
				readErr <- err
				return
			}
			for b := 0; b < size/block; b++ {
				blk := buf[b*block : (b+1)*block]
				if !bytes.Equal(blk, old[b*block:(b+1)*block]) && !bytes.Equal(blk, patch) {
					readErr <- errors.New("a block is neither the old nor the new content")
					return
				}
			}
		}
	}()
	for _, b := range []int{3, 17, 64, 100, 127} {
		_, err := w.WriteAt(patch, int64(b*block))
		require.NoError(t, err)
		copy(want[b*block:], patch)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	require.NoError(t, <-readErr)

	readAtFull(t, r, got, 0)
	assert.True(t, bytes.Equal(want, got), "the reader sees the writer's bytes before the close")
	require.NoError(t, w.Close())
	readAtFull(t, r, got, 0)
	assert.True(t, bytes.Equal(want, got), "and after it")
	onServer, err := env.srv.ReadFile("/rw.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, onServer), "the service has the new content")
	require.NoError(t, r.Close())

	again, err := os.ReadFile(env.path("rw.bin"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, again), "a new open reads the new content")
}

// A file replaced on the service (new cTag) while it is being read
// sequentially is never served as a mix of two versions: the reader gets
// the old version's bytes or an error (ESTALE), never bytes of the new
// version after the old one's.
func TestMountFileChangedWhileReadIsNotMixed(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	const size = 64 << 20
	v1, v2 := seededBytes(3, size), seededBytes(4, size)
	_, err := env.srv.PutFile("/changing.bin", v1, time.Time{})
	require.NoError(t, err)
	env.mount()

	f, err := os.Open(env.path("changing.bin"))
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 1<<20)
	off := int64(0)
	for ; off < 4<<20; off += int64(len(buf)) {
		readAtFull(t, f, buf, off)
		require.True(t, bytes.Equal(v1[off:off+int64(len(buf))], buf))
	}
	_, err = env.srv.PutFile("/changing.bin", v2, time.Time{})
	require.NoError(t, err)
	time.Sleep(1500 * time.Millisecond) // the mount's poll (1 s) sees the change

	var stale error
	for ; off < size; off += int64(len(buf)) {
		n, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			stale = err
			break
		}
		require.Equal(t, len(buf), n)
		require.True(t, bytes.Equal(v1[off:off+int64(n)], buf[:n]),
			"bytes at %d are not the version the read started on (v2: %v)", off, bytes.Equal(v2[off:off+int64(n)], buf[:n]))
	}
	if stale != nil {
		assert.ErrorIs(t, stale, syscall.ESTALE)
		t.Logf("the read stopped at %d MiB with %v", off>>20, stale)
	}
	require.NoError(t, f.Close())

	var again []byte
	eventually(t, 10*time.Second, func() bool {
		again, err = os.ReadFile(env.path("changing.bin"))
		return err == nil && bytes.Equal(v2, again)
	}, "a new open reads the new version")
}

// cachedBytes is the disk space the content cache's data files take.
func cachedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	var total int64
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".data") {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, de.Name()), &st); err == nil {
			total += st.Blocks * 512
		}
	}
	return total
}

// The content cache's budget (--cache-size) holds with streamed reads: the
// bytes cached after each file is read stay within it, and every file reads
// back right.
func TestMountCacheBudgetHoldsWithStreamedReads(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	const budget, size = 24 << 20, 10 << 20
	files := map[string][]byte{}
	for i := range 5 {
		name := "budget-" + string(rune('a'+i)) + ".bin"
		files[name] = seededBytes(uint64(10+i), size)
		_, err := env.srv.PutFile("/"+name, files[name], time.Time{})
		require.NoError(t, err)
	}
	env.mount("--cache-size", "24M")
	content := filepath.Join(env.cache, "content")
	for round := range 2 {
		for i := range 5 {
			name := "budget-" + string(rune('a'+i)) + ".bin"
			got, err := os.ReadFile(env.path(name))
			require.NoError(t, err)
			require.True(t, bytes.Equal(files[name], got), "%s, round %d", name, round)
			used := cachedBytes(t, content)
			assert.LessOrEqual(t, used, int64(budget+1<<20), "after reading %s: %d bytes cached", name, used)
		}
	}
	// Each read downloads its file once; a stream may also receive and
	// discard a short run (at most 2 MiB) that a concurrent read of the
	// kernel's read-ahead fetched first.
	st := env.srv.Stats()
	assert.LessOrEqual(t, st.BytesDownloaded, int64(10*(size+2<<20)), "each read downloads its file about once")
}

// A file written through the mount reads back after a remount: with the old
// cache (from the cache: nothing downloaded) and with an empty cache (from
// the service).
func TestMountWrittenFileReadableAfterRemount(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	data := seededBytes(5, 6<<20+123)
	env.mount()
	require.NoError(t, os.WriteFile(env.path("written.bin"), data, 0o644))
	got, err := os.ReadFile(env.path("written.bin"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got))
	env.unmount()

	env.mount()
	_, err = os.Stat(env.path("written.bin"))
	require.NoError(t, err)
	env.srv.ResetStats()
	got, err = os.ReadFile(env.path("written.bin"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got), "with the old cache")
	assert.Zero(t, env.srv.Stats().BytesDownloaded, "served from the cache")
	env.unmount()

	require.NoError(t, os.RemoveAll(env.cache))
	env.mount()
	_, err = os.Stat(env.path("written.bin"))
	require.NoError(t, err)
	env.srv.ResetStats()
	got, err = os.ReadFile(env.path("written.bin"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got), "with an empty cache")
	st := env.srv.Stats()
	assert.GreaterOrEqual(t, st.BytesDownloaded, int64(len(data)), "downloaded from the service: %v", st.Requests)
	assert.LessOrEqual(t, st.BytesDownloaded, int64(len(data)+2<<20), "once (a stream may discard a short run): %v", st.Requests)
}
