package cache

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixedPace is a Pace whose limit the test moves.
type fixedPace struct {
	mu      sync.Mutex
	limit   int64
	changed chan struct{}
}

func newPace(limit int64) *fixedPace { return &fixedPace{limit: limit, changed: make(chan struct{})} }

func (p *fixedPace) Limit() (int64, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit, p.changed
}

func (p *fixedPace) set(limit int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit = limit
	close(p.changed)
	p.changed = make(chan struct{})
}

// runStream starts s.Run on a goroutine and returns its result channel.
func runStream(s *Stream, fetch FetchFunc) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.Run(fetch) }()
	return done
}

// A stream is one fetch call from its start to the end of the file, which
// fetches no further than its pace allows and goes on when the pace moves.
func TestStreamIsOneFetchPacedByItsLimit(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<30)
	h := mustOpen(t, c, "a", "c1", 64<<10)
	defer h.Release()
	src := newSource()
	pace := newPace(4 << 10)
	s, err := h.StartStream(context.Background(), 0, pace)
	require.NoError(t, err)
	require.NotNil(t, s)
	done := runStream(s, src.fetch)

	require.Eventually(t, func() bool { return h.Covered() == 4<<10 }, 5*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	assert.Equal(t, int64(4<<10), h.Covered(), "the stream waits at its limit")

	// A reader inside the stream's reach (once the pace moved) waits for it
	// rather than fetching.
	pace.set(64 << 10)
	other := newSource()
	require.NoError(t, h.Fetch(context.Background(), 60<<10, 1<<10, other.fetch))
	require.NoError(t, <-done)
	assert.Empty(t, other.Calls(), "bytes in the stream's reach are not fetched twice")
	assert.Equal(t, []Range{{0, 64 << 10}}, src.Calls(), "one fetch to the end of the file")
	assert.True(t, h.Complete())
	assert.Equal(t, pattern(0, 64<<10), readRange(t, h, 0, 64<<10))
}

// A stream starts only where bytes are missing and unclaimed; it reads past
// a short run of bytes already present (discarding them) and stops at a
// long one.
func TestStreamSkipsShortRunsStopsAtLongOnes(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<30)
	const size = 8 << 20
	h := mustOpen(t, c, "a", "c1", size)
	defer h.Release()
	src := newSource()
	src.chunk = 32 << 10
	ctx := context.Background()
	require.NoError(t, h.Fetch(ctx, 1<<20, 4<<10, src.fetch))           // short island
	require.NoError(t, h.Fetch(ctx, 4<<20, maxStreamSkip+1, src.fetch)) // long island

	s, err := h.StartStream(ctx, 1<<20+100, newPace(1<<40))
	require.NoError(t, err)
	assert.Nil(t, s, "nothing to stream where bytes are present")

	s, err = h.StartStream(ctx, 0, newPace(1<<40))
	require.NoError(t, err)
	require.NotNil(t, s)
	require.NoError(t, s.Run(src.fetch))
	assert.Equal(t, []Range{{4<<20 + maxStreamSkip + 1, size}}, h.e.present.Missing(0, size),
		"past the short island, stopped at the long one")
	assert.Equal(t, pattern(0, 4<<20), readRange(t, h, 0, 4<<20))
	calls := src.Calls()
	assert.Equal(t, Range{0, size}, calls[0], "one request to the end of the file")
}

// Stopping a stream (its context ends) leaves the bytes it wrote, and a
// reader that was waiting on it fetches the rest itself.
func TestStoppedStreamIsTakenOverByWaiter(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<30)
	h := mustOpen(t, c, "a", "c1", 64<<10)
	defer h.Release()
	g := newGated(8 << 10)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := h.StartStream(ctx, 0, newPace(1<<30))
	require.NoError(t, err)
	done := runStream(s, g.fetch)
	require.Eventually(t, func() bool { return h.Covered() == 8<<10 }, 5*time.Second, time.Millisecond)

	other := newSource()
	got := make(chan error, 1)
	go func() { got <- h.Fetch(context.Background(), 16<<10, 4<<10, other.fetch) }()
	waitForWaiters(t, h, 1)
	cancel()
	require.NoError(t, <-got)
	assert.ErrorIs(t, <-done, context.Canceled)
	assert.Equal(t, []Range{{16 << 10, 20 << 10}}, other.Calls())
	assert.Equal(t, pattern(16<<10, 4<<10), readRange(t, h, 16<<10, 4<<10))
	assert.Equal(t, pattern(0, 8<<10), readRange(t, h, 0, 8<<10))
}

// A stream abandoned before it ran withdraws its claim.
func TestAbandonedStream(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<30)
	h := mustOpen(t, c, "a", "c1", 16<<10)
	defer h.Release()
	s, err := h.StartStream(context.Background(), 0, newPace(1<<30))
	require.NoError(t, err)
	s.Abandon()
	src := newSource()
	require.NoError(t, h.Fetch(context.Background(), 0, 16<<10, src.fetch))
	assert.Equal(t, []Range{{0, 16 << 10}}, src.Calls())
	assert.Equal(t, 1, c.Stats().InUse)
}

// A span pins the present run at an offset: its file descriptor reads the
// cached bytes even after the entry's last other handle is released.
func TestSpanPinsTheFile(t *testing.T) {
	c := openTestContent(t, t.TempDir(), 1<<30)
	h := mustOpen(t, c, "a", "c1", 64<<10)
	src := newSource()
	require.NoError(t, h.Fetch(context.Background(), 0, 10<<10, src.fetch))

	sp, err := h.Span(4<<10, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, int64(4<<10), sp.Off)
	assert.Equal(t, 6<<10, sp.Len, "cut at the end of the present run")
	_, err = h.Span(20<<10, 1)
	assert.ErrorIs(t, err, ErrNotPresent)
	_, err = h.Span(64<<10, 1)
	assert.ErrorIs(t, err, io.EOF)

	require.NoError(t, h.Release())
	assert.Equal(t, 1, c.Stats().InUse, "the span keeps the entry in use")
	f := os.NewFile(sp.Fd(), "span") // not closed: the cache owns the descriptor
	buf := make([]byte, sp.Len)
	n, err := f.ReadAt(buf, sp.Off)
	require.NoError(t, err)
	assert.Equal(t, pattern(4<<10, 6<<10), buf[:n])
	sp.Release()
	assert.Equal(t, 0, c.Stats().InUse)
}

// Adopt moves a complete file into the cache under its key: reads need no
// fetch, a restart keeps it, and the budget still applies.
func TestAdopt(t *testing.T) {
	dir := t.TempDir()
	c := openTestContent(t, filepath.Join(dir, "content"), 1<<30)
	staged := filepath.Join(dir, "staged")
	require.NoError(t, os.WriteFile(staged, pattern(0, 100<<10), 0o600))

	old := fill(t, c, "a", 10)
	require.NoError(t, c.Adopt(Key{"a", "new"}, 100<<10, staged))
	_, err := os.Stat(staged)
	assert.True(t, errors.Is(err, os.ErrNotExist), "the file moved into the cache")
	_, err = old.ReadAt(make([]byte, 1), 0)
	assert.ErrorIs(t, err, ErrDropped, "the old version is dropped")
	require.NoError(t, old.Release())

	h := mustOpen(t, c, "a", "new", 100<<10)
	assert.True(t, h.Complete())
	assert.Equal(t, pattern(0, 100<<10), readRange(t, h, 0, 100<<10))
	require.NoError(t, h.Release())
	require.NoError(t, c.Close())

	c2 := openTestContent(t, filepath.Join(dir, "content"), 1<<30)
	h2 := mustOpen(t, c2, "a", "new", 100<<10)
	assert.True(t, h2.Complete(), "persisted at once")
	require.NoError(t, h2.Release())

	// Bad input: wrong size or a missing file leave everything as it was.
	other := filepath.Join(dir, "other")
	require.NoError(t, os.WriteFile(other, []byte("abc"), 0o600))
	assert.Error(t, c2.Adopt(Key{"b", "x"}, 4, other))
	_, err = os.Stat(other)
	assert.NoError(t, err, "a refused file stays where it was")
	assert.Error(t, c2.Adopt(Key{"b", "x"}, 3, filepath.Join(dir, "missing")))
	assert.Equal(t, 1, c2.Stats().Entries)

	// Over budget, an adopted file is evicted like any idle entry.
	small := openTestContent(t, filepath.Join(dir, "small"), 10<<10)
	require.NoError(t, small.Adopt(Key{"c", "1"}, 3, other))
	assert.Equal(t, int64(3), small.Stats().Used)
	big := filepath.Join(dir, "big")
	require.NoError(t, os.WriteFile(big, pattern(0, 20<<10), 0o600))
	require.NoError(t, small.Adopt(Key{"d", "1"}, 20<<10, big))
	assert.LessOrEqual(t, small.Stats().Used, int64(10<<10))
}

// A stream whose reader stopped reading ends after StreamIdle at its limit,
// keeping what it fetched; the claim is gone, so a later read fetches on.
func TestIdleStreamEnds(t *testing.T) {
	c, err := OpenContent(ContentOptions{Dir: t.TempDir(), MaxBytes: 1 << 30, StreamIdle: 50 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	h := mustOpen(t, c, "a", "c1", 64<<10)
	defer h.Release()
	src := newSource()
	s, err := h.StartStream(context.Background(), 0, newPace(8<<10))
	require.NoError(t, err)
	select {
	case err := <-runStream(s, src.fetch):
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the idle stream did not end")
	}
	assert.Equal(t, int64(8<<10), h.Covered())
	require.NoError(t, h.Fetch(context.Background(), 8<<10, 8<<10, src.fetch))
	assert.Equal(t, Range{8 << 10, 16 << 10}, src.Calls()[1])
}
