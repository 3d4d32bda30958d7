package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// patternByte is the content of every test file at offset i.
func patternByte(i int64) byte { return byte(i*31 + i>>9) }

func pattern(off, n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = patternByte(off + int64(i))
	}
	return b
}

// source is a FetchFunc backend serving the pattern in chunks and recording
// every call.
type source struct {
	chunk int64

	mu    sync.Mutex
	calls []Range // guarded by mu
	bytes int64   // guarded by mu
}

func newSource() *source { return &source{chunk: 64} }

func (s *source) fetch(ctx context.Context, off, n int64, w io.Writer) error {
	s.mu.Lock()
	s.calls = append(s.calls, Range{off, off + n})
	s.mu.Unlock()
	for pos := off; pos < off+n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(s.chunk, off+n-pos)
		m, err := w.Write(pattern(pos, k))
		s.mu.Lock()
		s.bytes += int64(m)
		s.mu.Unlock()
		if err != nil {
			return err
		}
		pos += k
	}
	return nil
}

func (s *source) Calls() []Range {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]Range(nil), s.calls...)
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

func (s *source) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

func openTestContent(t *testing.T, dir string, maxBytes int64) *Content {
	t.Helper()
	c, err := OpenContent(ContentOptions{Dir: dir, MaxBytes: maxBytes})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func mustOpen(t *testing.T, c *Content, id, ctag string, size int64) *Entry {
	t.Helper()
	h, err := c.Open(Key{ID: id, CTag: ctag}, size)
	require.NoError(t, err)
	return h
}

// readRange reads [off, off+n) of a handle, failing the test on any error.
func readRange(t *testing.T, h *Entry, off, n int64) []byte {
	t.Helper()
	buf := make([]byte, n)
	got, err := h.ReadAt(buf, off)
	if off+n == h.Size() && errors.Is(err, io.EOF) {
		err = nil
	}
	require.NoError(t, err)
	require.Equal(t, int(n), got)
	return buf
}

// waitForWaiters blocks until n Fetch calls are waiting on e's flights.
func waitForWaiters(t *testing.T, h *Entry, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		h.e.mu.Lock()
		defer h.e.mu.Unlock()
		return h.e.waiters >= n
	}, 10*time.Second, time.Millisecond)
}

func TestFetchOnlyMissing(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<20)
	h := mustOpen(t, c, "item!1", `"c:{X},1"`, 1000)
	defer h.Release()
	src := newSource()
	ctx := context.Background()

	require.NoError(t, h.Fetch(ctx, 100, 100, src.fetch))
	assert.Equal(t, []Range{{100, 200}}, src.Calls())

	require.NoError(t, h.Fetch(ctx, 0, 300, src.fetch))
	assert.Equal(t, []Range{{0, 100}, {100, 200}, {200, 300}}, src.Calls(), "only the two gaps are fetched")
	assert.Equal(t, int64(300), src.Bytes())

	require.NoError(t, h.Fetch(ctx, 50, 250, src.fetch))
	assert.Len(t, src.Calls(), 3, "present bytes are not fetched again")

	// Past the end is clamped to the size.
	require.NoError(t, h.Fetch(ctx, 900, 1<<40, src.fetch))
	assert.Contains(t, src.Calls(), Range{900, 1000})
	require.NoError(t, h.Fetch(ctx, 2000, 10, src.fetch))
	assert.Len(t, src.Calls(), 4)

	assert.Equal(t, pattern(0, 300), readRange(t, h, 0, 300))
	assert.Equal(t, pattern(900, 100), readRange(t, h, 900, 100))
	assert.Equal(t, int64(400), h.Covered())
	assert.Equal(t, int64(400), c.Stats().Used)
}

func TestReadAtBoundaries(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<20)
	h := mustOpen(t, c, "a", "c1", 100)
	defer h.Release()
	src := newSource()
	require.NoError(t, h.Fetch(context.Background(), 0, 40, src.fetch))
	require.NoError(t, h.Fetch(context.Background(), 60, 40, src.fetch))

	buf := make([]byte, 50)
	n, err := h.ReadAt(buf, 20)
	assert.ErrorIs(t, err, ErrNotPresent, "stops at the first missing byte")
	assert.Equal(t, 20, n)
	assert.Equal(t, pattern(20, 20), buf[:n])

	n, err = h.ReadAt(buf, 45)
	assert.ErrorIs(t, err, ErrNotPresent)
	assert.Zero(t, n)

	n, err = h.ReadAt(buf, 80)
	assert.ErrorIs(t, err, io.EOF, "short read at the end of the file")
	assert.Equal(t, 20, n)
	assert.Equal(t, pattern(80, 20), buf[:n])

	n, err = h.ReadAt(buf, 100)
	assert.ErrorIs(t, err, io.EOF)
	assert.Zero(t, n)
}

func TestZeroSizeFile(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<20)
	h := mustOpen(t, c, "empty", "c", 0)
	src := newSource()
	require.NoError(t, h.Fetch(context.Background(), 0, 4096, src.fetch))
	assert.Empty(t, src.Calls())
	assert.True(t, h.Complete())
	n, err := h.ReadAt(make([]byte, 10), 0)
	assert.Zero(t, n)
	assert.ErrorIs(t, err, io.EOF)
	require.NoError(t, h.Release())
}

// gatedSource writes the first `first` bytes of its range, then blocks until
// the gate opens (or its ctx ends), then writes the rest or fails with failErr.
type gatedSource struct {
	first   int64
	gate    chan struct{}
	failErr error
	wrote   chan struct{} // closed once the first part is written

	mu    sync.Mutex
	calls []Range
}

func newGated(first int64) *gatedSource {
	return &gatedSource{first: first, gate: make(chan struct{}), wrote: make(chan struct{})}
}

func (g *gatedSource) fetch(ctx context.Context, off, n int64, w io.Writer) error {
	g.mu.Lock()
	g.calls = append(g.calls, Range{off, off + n})
	g.mu.Unlock()
	k := min(g.first, n)
	if _, err := w.Write(pattern(off, k)); err != nil {
		return err
	}
	close(g.wrote)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-g.gate:
	}
	if g.failErr != nil {
		return g.failErr
	}
	_, err := w.Write(pattern(off+k, n-k))
	return err
}

func (g *gatedSource) Calls() []Range {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Range(nil), g.calls...)
}

func TestConcurrentFetchesShareOneFetch(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<20)
	h1 := mustOpen(t, c, "shared", "c1", 1000)
	defer h1.Release()
	h2 := mustOpen(t, c, "shared", "c1", 1000) // a second open file, same entry
	defer h2.Release()
	ctx := context.Background()
	g := newGated(500)

	errA := make(chan error, 1)
	go func() { errA <- h1.Fetch(ctx, 0, 1000, g.fetch) }()
	<-g.wrote

	// Bytes already streamed by A's fetch are usable at once, without a
	// fetch of B's own.
	other := newSource()
	require.NoError(t, h2.Fetch(ctx, 100, 300, other.fetch))
	assert.Equal(t, pattern(100, 300), readRange(t, h2, 100, 300))

	// C needs bytes A has not written yet: it waits for A instead of fetching.
	errC := make(chan error, 1)
	go func() { errC <- h2.Fetch(ctx, 400, 500, other.fetch) }()
	waitForWaiters(t, h1, 1)
	close(g.gate)

	require.NoError(t, <-errA)
	require.NoError(t, <-errC)
	assert.Equal(t, []Range{{0, 1000}}, g.Calls(), "one fetch for everyone")
	assert.Empty(t, other.Calls(), "waiters never fetched")
	assert.Equal(t, pattern(0, 1000), readRange(t, h2, 0, 1000))
}

func TestConcurrentFetchesPartialOverlap(t *testing.T) {
	// B wants [300,800) while A fetches [0,500): B fetches only [500,800)
	// itself, then waits for A's part.
	c := openTestContent(t, t.TempDir(), 1<<20)
	h := mustOpen(t, c, "p", "c1", 1000)
	defer h.Release()
	ctx := context.Background()
	g := newGated(100)
	errA := make(chan error, 1)
	go func() { errA <- h.Fetch(ctx, 0, 500, g.fetch) }()
	<-g.wrote

	src := newSource()
	errB := make(chan error, 1)
	go func() { errB <- h.Fetch(ctx, 300, 500, src.fetch) }()
	waitForWaiters(t, h, 1)
	assert.Equal(t, []Range{{500, 800}}, src.Calls())
	close(g.gate)
	require.NoError(t, <-errA)
	require.NoError(t, <-errB)
	assert.Equal(t, pattern(0, 800), readRange(t, h, 0, 800))
}

func TestWaiterContextCancelled(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<20)
	h := mustOpen(t, c, "w", "c1", 1000)
	defer h.Release()
	g := newGated(10)
	errA := make(chan error, 1)
	go func() { errA <- h.Fetch(context.Background(), 0, 1000, g.fetch) }()
	<-g.wrote

	wctx, cancel := context.WithCancel(context.Background())
	errB := make(chan error, 1)
	go func() { errB <- h.Fetch(wctx, 500, 10, newSource().fetch) }()
	waitForWaiters(t, h, 1)
	cancel()
	assert.ErrorIs(t, <-errB, context.Canceled)

	// The fetch B was waiting for is unaffected.
	close(g.gate)
	require.NoError(t, <-errA)
	assert.True(t, h.Complete())
}

func TestFailedFetchKeepsPrefixAndReportsToWaiters(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<20)
	h := mustOpen(t, c, "f", "c1", 1000)
	defer h.Release()
	boom := errors.New("connection reset")
	g := newGated(300)
	g.failErr = boom
	errA := make(chan error, 1)
	go func() { errA <- h.Fetch(context.Background(), 0, 1000, g.fetch) }()
	<-g.wrote
	errB := make(chan error, 1)
	go func() { errB <- h.Fetch(context.Background(), 500, 100, newSource().fetch) }()
	waitForWaiters(t, h, 1)
	close(g.gate)

	assert.ErrorIs(t, <-errA, boom)
	assert.ErrorIs(t, <-errB, boom, "the waiter gets the fetch's error")
	assert.True(t, h.Present(0, 300), "bytes written before the failure stay")
	assert.False(t, h.Present(300, 1))
	assert.Equal(t, int64(300), h.Covered())
	assert.Equal(t, pattern(0, 300), readRange(t, h, 0, 300))

	src := newSource()
	require.NoError(t, h.Fetch(context.Background(), 0, 1000, src.fetch))
	assert.Equal(t, []Range{{300, 1000}}, src.Calls(), "a retry fetches only the rest")
}

func TestAbandonedFetchIsTakenOverByWaiter(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<20)
	h := mustOpen(t, c, "t", "c1", 1000)
	defer h.Release()
	actx, cancelA := context.WithCancel(context.Background())
	g := newGated(200)
	errA := make(chan error, 1)
	go func() { errA <- h.Fetch(actx, 0, 1000, g.fetch) }()
	<-g.wrote
	src := newSource()
	errB := make(chan error, 1)
	go func() { errB <- h.Fetch(context.Background(), 0, 1000, src.fetch) }()
	waitForWaiters(t, h, 1)

	cancelA() // A's caller gave up (e.g. FUSE interrupt); B still wants the bytes
	assert.ErrorIs(t, <-errA, context.Canceled)
	require.NoError(t, <-errB)
	assert.Equal(t, []Range{{200, 1000}}, src.Calls())
	assert.Equal(t, pattern(0, 1000), readRange(t, h, 0, 1000))
}

func TestFetchMisbehaving(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<20)
	ctx := context.Background()

	t.Run("short", func(t *testing.T) {
		h := mustOpen(t, c, "short", "c1", 100)
		defer h.Release()
		err := h.Fetch(ctx, 0, 100, func(_ context.Context, off, _ int64, w io.Writer) error {
			_, err := w.Write(pattern(off, 40))
			return err
		})
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
		assert.Equal(t, int64(40), h.Covered())
	})
	t.Run("error after the last byte", func(t *testing.T) {
		h := mustOpen(t, c, "late", "c1", 100)
		defer h.Release()
		err := h.Fetch(ctx, 0, 100, func(_ context.Context, off, n int64, w io.Writer) error {
			_, _ = w.Write(pattern(off, n))
			return errors.New("close failed")
		})
		assert.NoError(t, err, "every byte arrived")
		assert.True(t, h.Complete())
	})
	t.Run("overrun discards the entry", func(t *testing.T) {
		h := mustOpen(t, c, "over", "c1", 100)
		defer h.Release()
		err := h.Fetch(ctx, 50, 10, func(_ context.Context, _, _ int64, w io.Writer) error {
			_, err := w.Write(pattern(0, 100)) // a server that ignored Range
			return err
		})
		assert.ErrorIs(t, err, errOverrun)
		_, err = h.ReadAt(make([]byte, 10), 50)
		assert.ErrorIs(t, err, ErrDropped)
		h2 := mustOpen(t, c, "over", "c1", 100)
		defer h2.Release()
		assert.Zero(t, h2.Covered())
	})
}

func TestCTagChangeDropsOldBytes(t *testing.T) {
	dir := t.TempDir()
	c := openTestContent(t, dir, 1<<20)
	ctx := context.Background()
	old := mustOpen(t, c, "doc", "v1", 500)
	require.NoError(t, old.Fetch(ctx, 0, 500, newSource().fetch))
	oldFiles, _ := filepath.Glob(filepath.Join(dir, fileBase(Key{"doc", "v1"})+".*"))
	require.Len(t, oldFiles, 1, "data file exists while open (sidecar comes on release)")

	// The item changed while a handle on the old version is open.
	cur := mustOpen(t, c, "doc", "v2", 600)
	defer cur.Release()
	assert.Zero(t, cur.Covered(), "new version starts empty")
	assert.Equal(t, int64(0), c.Stats().Used, "old bytes no longer counted")
	assert.Equal(t, 1, c.Stats().Entries)

	_, err := old.ReadAt(make([]byte, 10), 0)
	assert.ErrorIs(t, err, ErrDropped, "stale bytes are never served")
	assert.ErrorIs(t, old.Fetch(ctx, 0, 10, newSource().fetch), ErrDropped)
	require.NoError(t, old.Release())
	for _, f := range oldFiles {
		assert.NoFileExists(t, f)
	}

	// Reopening the old cTag (an out-of-date caller) starts from nothing too.
	require.NoError(t, cur.Fetch(ctx, 0, 600, newSource().fetch))
	require.NoError(t, cur.Release())
	again := mustOpen(t, c, "doc", "v1", 500)
	defer again.Release()
	assert.Zero(t, again.Covered())
	assert.Equal(t, 1, c.Stats().Entries, "v2 was dropped by opening v1")
}

func TestRemove(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<20)
	h := mustOpen(t, c, "gone", "c1", 100)
	require.NoError(t, h.Fetch(context.Background(), 0, 100, newSource().fetch))
	c.Remove("gone")
	_, err := h.ReadAt(make([]byte, 1), 0)
	assert.ErrorIs(t, err, ErrDropped)
	require.NoError(t, h.Release())
	assert.Equal(t, ContentStats{MaxBytes: 1 << 20}, c.Stats())
}

func fill(t *testing.T, c *Content, id string, size int64) *Entry {
	t.Helper()
	h := mustOpen(t, c, id, "c", size)
	require.NoError(t, h.Fetch(context.Background(), 0, size, newSource().fetch))
	return h
}

func cached(c *Content) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for id := range c.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func TestEvictionOrderAndBudget(t *testing.T) {
	dir := t.TempDir()
	c := openTestContent(t, dir, 250)
	for _, id := range []string{"a", "b", "c"} {
		require.NoError(t, fill(t, c, id, 100).Release())
	}
	// 300 > 250: the least recently released (a) went.
	assert.Equal(t, []string{"b", "c"}, cached(c))
	assert.Equal(t, int64(200), c.Stats().Used)
	assert.NoFileExists(t, filepath.Join(dir, fileBase(Key{"a", "c"})+dataExt))

	// Using b makes it the most recent; d then pushes out c, not b.
	hb := mustOpen(t, c, "b", "c", 100)
	require.NoError(t, hb.Release())
	require.NoError(t, fill(t, c, "d", 100).Release())
	assert.Equal(t, []string{"b", "d"}, cached(c))

	// An entry in use is never evicted, even when it is the oldest.
	hb = mustOpen(t, c, "b", "c", 100)
	require.NoError(t, fill(t, c, "e", 100).Release())
	assert.Equal(t, []string{"b", "e"}, cached(c))
	require.NoError(t, hb.Release())

	// A file bigger than the budget is served while open and evicted after.
	big := fill(t, c, "big", 400)
	assert.Equal(t, []string{"big"}, cached(c), "idle entries made room")
	assert.Equal(t, int64(400), c.Stats().Used, "over budget while in use is allowed")
	assert.Equal(t, pattern(0, 400), readRange(t, big, 0, 400))
	require.NoError(t, big.Release())
	assert.Empty(t, cached(c))
	assert.Zero(t, c.Stats().Used)
}

func TestInUseEntriesNeverEvicted(t *testing.T) {
	log, logs := logBuffer()
	c, err := OpenContent(ContentOptions{Dir: t.TempDir(), MaxBytes: 100, Logger: log})
	require.NoError(t, err)
	defer c.Close()
	a := fill(t, c, "a", 100)
	b := fill(t, c, "b", 100)
	s := c.Stats()
	assert.Equal(t, ContentStats{Entries: 2, InUse: 2, Used: 200, MaxBytes: 100}, s)
	assert.Equal(t, pattern(0, 100), readRange(t, a, 0, 100))
	assert.Equal(t, pattern(0, 100), readRange(t, b, 0, 100))
	assert.Contains(t, logs.String(), "over budget")
	require.NoError(t, a.Release())
	assert.Equal(t, []string{"b"}, cached(c))
	require.NoError(t, b.Release())
	assert.Equal(t, []string{"b"}, cached(c), "within budget again")
}

func TestZeroBudgetKeepsNothingIdle(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 0)
	h := fill(t, c, "a", 100)
	assert.Equal(t, pattern(0, 100), readRange(t, h, 0, 100))
	require.NoError(t, h.Release())
	assert.Empty(t, cached(c))
}

func TestRestartReusesPersistedRanges(t *testing.T) {
	dir := t.TempDir()
	key := Key{ID: "F00!12", CTag: `"c:{AB-CD},3"`}
	c1, err := OpenContent(ContentOptions{Dir: dir, MaxBytes: 1 << 20})
	require.NoError(t, err)
	h, err := c1.Open(key, 1000)
	require.NoError(t, err)
	src := newSource()
	require.NoError(t, h.Fetch(context.Background(), 0, 500, src.fetch))
	require.NoError(t, h.Fetch(context.Background(), 700, 100, src.fetch))
	require.NoError(t, h.Release())
	// No Close: a process killed after the release must still find the ranges.

	c2 := openTestContent(t, dir, 1<<20)
	assert.Equal(t, int64(600), c2.Stats().Used)
	h2, err := c2.Open(key, 1000)
	require.NoError(t, err)
	defer h2.Release()
	assert.True(t, h2.Present(0, 500))
	assert.True(t, h2.Present(700, 100))
	assert.Equal(t, pattern(700, 100), readRange(t, h2, 700, 100))
	src2 := newSource()
	require.NoError(t, h2.Fetch(context.Background(), 0, 1000, src2.fetch))
	assert.Equal(t, []Range{{500, 700}, {800, 1000}}, src2.Calls())
	assert.Equal(t, pattern(0, 1000), readRange(t, h2, 0, 1000))
	require.NoError(t, c1.Close())
}

func TestPersistWhileOpen(t *testing.T) {
	dir := t.TempDir()
	c1 := openTestContent(t, dir, 1<<20)
	h := mustOpen(t, c1, "long", "c", 100)
	defer h.Release()
	require.NoError(t, h.Fetch(context.Background(), 0, 30, newSource().fetch))
	require.NoError(t, h.Persist())
	// Another process (after a kill) sees the persisted ranges.
	c2 := openTestContent(t, dir, 1<<20)
	h2 := mustOpen(t, c2, "long", "c", 100)
	defer h2.Release()
	assert.Equal(t, int64(30), h2.Covered())
	assert.Equal(t, pattern(0, 30), readRange(t, h2, 0, 30))
}

func TestCloseWithOpenHandlePersists(t *testing.T) {
	dir := t.TempDir()
	c1, err := OpenContent(ContentOptions{Dir: dir, MaxBytes: 1 << 20})
	require.NoError(t, err)
	h := mustOpen(t, c1, "x", "c", 100)
	require.NoError(t, h.Fetch(context.Background(), 0, 60, newSource().fetch))
	require.NoError(t, c1.Close())
	_, err = h.ReadAt(make([]byte, 1), 0)
	assert.ErrorIs(t, err, ErrClosed)
	require.NoError(t, h.Release())
	_, err = c1.Open(Key{"x", "c"}, 100)
	assert.ErrorIs(t, err, ErrClosed)

	c2 := openTestContent(t, dir, 1<<20)
	h2 := mustOpen(t, c2, "x", "c", 100)
	defer h2.Release()
	assert.True(t, h2.Present(0, 60))
	assert.Equal(t, int64(60), h2.Covered())
}

func TestLoadDiscardsUntrustworthyEntries(t *testing.T) {
	dir := t.TempDir()
	c1, err := OpenContent(ContentOptions{Dir: dir, MaxBytes: 1 << 20})
	require.NoError(t, err)
	for _, id := range []string{"good", "corrupt", "nodata", "resized", "renamed"} {
		require.NoError(t, fill(t, c1, id, 100).Release())
	}
	open := mustOpen(t, c1, "neverreleased", "c", 100) // data file, no sidecar
	require.NoError(t, open.Fetch(context.Background(), 0, 10, newSource().fetch))
	base := func(id string) string { return filepath.Join(dir, fileBase(Key{id, "c"})) }

	require.NoError(t, os.WriteFile(base("corrupt")+sidecarExt, []byte(`{"version":1,"id":"corrupt","ranges":[[0,`), 0o600))
	require.NoError(t, os.Remove(base("nodata")+dataExt))
	require.NoError(t, os.Truncate(base("resized")+dataExt, 50))
	require.NoError(t, os.Rename(base("renamed")+sidecarExt, base("other")+sidecarExt))
	torn := base("good") + sidecarExt + tempInfix + "123"
	require.NoError(t, os.WriteFile(torn, []byte(`{"vers`), 0o600))

	c2 := openTestContent(t, dir, 1<<20)
	assert.Equal(t, []string{"good"}, cached(c2))
	assert.Equal(t, int64(100), c2.Stats().Used)
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, de := range left {
		names = append(names, de.Name())
	}
	assert.ElementsMatch(t, []string{
		filepath.Base(base("good")) + dataExt,
		filepath.Base(base("good")) + sidecarExt,
	}, names, "everything untrusted was deleted")
	h := mustOpen(t, c2, "good", "c", 100)
	defer h.Release()
	assert.Equal(t, pattern(0, 100), readRange(t, h, 0, 100))
}

func TestLoadEvictsToBudget(t *testing.T) {
	dir := t.TempDir()
	c1, err := OpenContent(ContentOptions{Dir: dir, MaxBytes: 1 << 20})
	require.NoError(t, err)
	for i, id := range []string{"old", "mid", "new"} {
		require.NoError(t, fill(t, c1, id, 100).Release())
		// Sidecar mtimes give the order across restarts.
		ts := time.Now().Add(time.Duration(i-3) * time.Hour)
		require.NoError(t, os.Chtimes(filepath.Join(dir, fileBase(Key{id, "c"})+sidecarExt), ts, ts))
	}
	require.NoError(t, c1.Close())
	c2 := openTestContent(t, dir, 200) // the user lowered --cache-size
	assert.Equal(t, []string{"mid", "new"}, cached(c2))
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	c := openTestContent(t, dir, 1<<20)
	ctx := context.Background()
	h := mustOpen(t, c, "v", "c1", 300)

	assert.ErrorIs(t, h.Verify(func(io.Reader) error { return nil }), ErrIncomplete)
	assert.ErrorIs(t, h.MarkVerified(), ErrIncomplete)
	require.NoError(t, h.Fetch(ctx, 0, 300, newSource().fetch))

	var seen bytes.Buffer
	require.NoError(t, h.Verify(func(r io.Reader) error {
		_, err := io.Copy(&seen, r)
		return err
	}))
	assert.Equal(t, pattern(0, 300), seen.Bytes(), "check sees the whole content")
	assert.True(t, h.Verified())
	require.NoError(t, h.Release())

	c2 := openTestContent(t, dir, 1<<20)
	h2 := mustOpen(t, c2, "v", "c1", 300)
	assert.True(t, h2.Verified(), "verification is persisted")
	require.NoError(t, h2.Release())

	// A mismatch drops the entry.
	h3 := mustOpen(t, c, "w", "c1", 300)
	require.NoError(t, h3.Fetch(ctx, 0, 300, newSource().fetch))
	mismatch := errors.New("quickXorHash mismatch")
	err := h3.Verify(func(r io.Reader) error { return mismatch })
	assert.ErrorIs(t, err, mismatch)
	_, err = h3.ReadAt(make([]byte, 1), 0)
	assert.ErrorIs(t, err, ErrDropped)
	require.NoError(t, h3.Release())
	h4 := mustOpen(t, c, "w", "c1", 300)
	defer h4.Release()
	assert.Zero(t, h4.Covered(), "reopening starts from nothing")
	assert.False(t, h4.Verified())
}

func TestReleasedHandle(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<20)
	h := mustOpen(t, c, "r", "c", 10)
	h2 := mustOpen(t, c, "r", "c", 10)
	defer h2.Release()
	require.NoError(t, h.Release())
	require.NoError(t, h.Release(), "idempotent")
	assert.Equal(t, 1, c.Stats().InUse, "a second Release does not steal h2's reference")
	assert.ErrorIs(t, h.Fetch(context.Background(), 0, 10, newSource().fetch), ErrReleased)
	_, err := h.ReadAt(make([]byte, 1), 0)
	assert.ErrorIs(t, err, ErrReleased)
}

func TestManyConcurrentReaders(t *testing.T) {
	// Random overlapping fetches from many goroutines: every byte is fetched
	// exactly once and reads back right.
	c := openTestContent(t, t.TempDir(), 1<<30)
	const size = 64 << 10
	src := newSource()
	src.chunk = 512
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := c.Open(Key{"many", "c"}, size)
			if !assert.NoError(t, err) {
				return
			}
			defer h.Release()
			for i := 0; i < 50; i++ {
				off := int64((g*7919 + i*4093) % size)
				n := int64(1 + (g*31+i*17)%4096)
				if !assert.NoError(t, h.Fetch(context.Background(), off, n, src.fetch)) {
					return
				}
				buf := make([]byte, n)
				k, err := h.ReadAt(buf, off)
				if off+n >= size && errors.Is(err, io.EOF) {
					err = nil
				}
				assert.NoError(t, err)
				assert.Equal(t, pattern(off, int64(k)), buf[:k])
			}
		}()
	}
	wg.Wait()
	h := mustOpen(t, c, "many", "c", size)
	defer h.Release()
	assert.Equal(t, h.Covered(), src.Bytes(), "no byte was fetched twice")
}
