package cache

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// manualClock is a clock that only moves when told.
type manualClock struct {
	mu  sync.Mutex
	now time.Time // guarded by mu
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestListings(maxEntries int) (*Listings[[]string], *manualClock) {
	clk := &manualClock{now: time.Unix(1_700_000_000, 0)}
	return NewListings[[]string](ListingsOptions{TTL: time.Minute, MaxEntries: maxEntries, Clock: clk.Now}), clk
}

func TestListingsTTL(t *testing.T) {
	l, clk := newTestListings(10)
	_, ok := l.Get("root")
	assert.False(t, ok)
	l.Put("root", []string{"a", "b"})
	v, ok := l.Get("root")
	assert.True(t, ok)
	assert.Equal(t, []string{"a", "b"}, v)

	clk.Advance(59 * time.Second)
	_, ok = l.Get("root")
	assert.True(t, ok, "still fresh")
	clk.Advance(time.Second)
	_, ok = l.Get("root")
	assert.False(t, ok, "expired at the TTL")
	assert.False(t, l.Update("root", func(v []string) []string { return v }), "no update of an expired listing")

	l.Put("root", []string{"c"})
	v, _ = l.Get("root")
	assert.Equal(t, []string{"c"}, v, "a new Put starts a new TTL")
}

func TestListingsInvalidate(t *testing.T) {
	l, _ := newTestListings(10)
	l.Put("a", []string{"1"})
	l.Put("b", []string{"2"})
	l.Invalidate("a")
	_, ok := l.Get("a")
	assert.False(t, ok)
	_, ok = l.Get("b")
	assert.True(t, ok)
	l.Invalidate("never-cached") // harmless
	l.InvalidateAll()
	_, ok = l.Get("b")
	assert.False(t, ok)
	assert.Zero(t, l.Len())
}

func TestListingsUpdate(t *testing.T) {
	l, clk := newTestListings(10)
	assert.False(t, l.Update("dir", func(v []string) []string { return append(v, "x") }))
	l.Put("dir", []string{"a"})
	clk.Advance(30 * time.Second)
	assert.True(t, l.Update("dir", func(v []string) []string { return append(v, "copied") }))
	v, _ := l.Get("dir")
	assert.Equal(t, []string{"a", "copied"}, v)
	clk.Advance(30 * time.Second)
	_, ok := l.Get("dir")
	assert.False(t, ok, "Update keeps the original expiry")
}

func TestListingsLRUBound(t *testing.T) {
	l, _ := newTestListings(2)
	l.Put("a", nil)
	l.Put("b", nil)
	l.Get("a") // a is now more recent than b
	l.Put("c", nil)
	_, okA := l.Get("a")
	_, okB := l.Get("b")
	_, okC := l.Get("c")
	assert.True(t, okA)
	assert.False(t, okB, "least recently used goes first")
	assert.True(t, okC)
}

func TestListingsPutIfFresh(t *testing.T) {
	l, _ := newTestListings(3)

	g := l.Generation()
	assert.True(t, l.PutIfFresh(g, "a", []string{"ok"}), "nothing happened since")

	// A listing read while the folder was invalidated is refused.
	g = l.Generation()
	l.Invalidate("a")
	assert.False(t, l.PutIfFresh(g, "a", []string{"stale"}))
	_, ok := l.Get("a")
	assert.False(t, ok)
	assert.True(t, l.PutIfFresh(g, "b", []string{"other folder"}), "other folders are unaffected")
	assert.True(t, l.PutIfFresh(l.Generation(), "a", []string{"fresh"}))

	// InvalidateAll refuses everything read before it.
	g = l.Generation()
	l.InvalidateAll()
	assert.False(t, l.PutIfFresh(g, "b", nil))

	// When the invalidation marker itself was pushed out of the LRU, the
	// cache cannot tell which folder it was for and refuses conservatively.
	g = l.Generation()
	l.Invalidate("x")
	l.Put("p", nil)
	l.Put("q", nil)
	l.Put("r", nil) // pushes out x's marker
	assert.False(t, l.PutIfFresh(g, "y", nil))
	assert.True(t, l.PutIfFresh(l.Generation(), "y", nil))
}

func TestListingsTrim(t *testing.T) {
	l, clk := newTestListings(10)
	l.Put("old", []string{"x"})
	clk.Advance(30 * time.Second)
	l.Put("a", []string{"1", "2"})
	l.Put("b", []string{"3"})
	l.Invalidate("gone")
	gen := l.Generation()
	clk.Advance(31 * time.Second) // "old" has expired, "a" and "b" have not

	var asked []string
	dropped := l.Trim(func(id string, v []string) bool {
		asked = append(asked, id)
		return id == "b"
	})
	assert.Equal(t, []string{"b", "a"}, asked, "fresh listings, most recent first")
	assert.Equal(t, 2, dropped, "a refused and old expired")
	_, ok := l.Get("a")
	assert.False(t, ok)
	v, ok := l.Get("b")
	assert.True(t, ok)
	assert.Equal(t, []string{"3"}, v)
	assert.Equal(t, 2, l.Len(), "b and the marker of gone stay")
	assert.False(t, l.PutIfFresh(gen-1, "gone", []string{"stale"}), "the marker still refuses older listings")
}
