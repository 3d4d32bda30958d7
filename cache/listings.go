package cache

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// ListingsOptions configure NewListings.
type ListingsOptions struct {
	// TTL is how long a listing is served after Put; <= 0 means 30 s.
	TTL time.Duration
	// MaxEntries bounds the number of folders kept (least recently used
	// go first); <= 0 means 4096.
	MaxEntries int
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
}

// Generation is a point in a Listings' invalidation history; see PutIfFresh.
type Generation uint64

// Listings is a TTL cache of folder listings keyed by folder id. The listing
// type V is opaque to the cache; values are returned as stored, so a V that
// is a map or a slice must not be modified by the caller after Put (use
// Update to change a cached listing).
//
// It is built on golang-lru's simplelru under its own mutex, with expiry
// checked on read against an injected clock. (golang-lru's expirable package
// would fit the shape, but its constructor starts a goroutine that can never
// be stopped and it reads the wall clock directly.)
//
// Listing a folder takes time, and an invalidation (say, from a delta poll)
// may arrive meanwhile; storing the listing afterwards would bring back stale
// content. Callers that care take a Generation before listing and store with
// PutIfFresh, which refuses a listing invalidated since.
type Listings[V any] struct {
	ttl   time.Duration
	clock func() time.Time

	mu  sync.Mutex
	lru *simplelru.LRU[string, listing[V]] // guarded by mu
	// gen counts invalidations. guarded by mu.
	gen Generation
	// allGen is gen at the last InvalidateAll. guarded by mu.
	allGen Generation
	// lostGen is the newest invalidation generation of a tombstone pushed
	// out of the LRU: PutIfFresh cannot tell for which id it was, so it
	// conservatively refuses anything older. guarded by mu.
	lostGen Generation
}

// listing is a cached value, or a tombstone recording when its folder was
// last invalidated.
type listing[V any] struct {
	value      V
	expires    time.Time
	tombstone  bool
	invalidGen Generation // gen of the last Invalidate of this id
}

// NewListings returns an empty cache.
func NewListings[V any](opts ListingsOptions) *Listings[V] {
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Second
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 4096
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	l := &Listings[V]{ttl: opts.TTL, clock: opts.Clock}
	lru, err := simplelru.NewLRU[string, listing[V]](opts.MaxEntries, l.onEvict)
	if err != nil { // only for a non-positive size, excluded above
		panic(err)
	}
	l.lru = lru
	return l
}

// onEvict is called by the LRU (under mu) when capacity pushes an item out.
func (l *Listings[V]) onEvict(_ string, v listing[V]) {
	l.lostGen = max(l.lostGen, v.invalidGen)
}

// Get returns the listing of folderID if one was stored and has not expired
// or been invalidated.
func (l *Listings[V]) Get(folderID string) (V, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.lru.Get(folderID)
	if !ok || v.tombstone || !l.clock().Before(v.expires) {
		var zero V
		return zero, false
	}
	return v.value, true
}

// Put stores the listing of folderID for the TTL.
func (l *Listings[V]) Put(folderID string, v V) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.putLocked(folderID, v)
}

// Generation returns the current invalidation generation, to pass to
// PutIfFresh once the listing it guards has been read.
func (l *Listings[V]) Generation() Generation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen
}

// PutIfFresh stores the listing of folderID unless the folder (or every
// folder) was invalidated after since was taken; it reports whether it
// stored.
func (l *Listings[V]) PutIfFresh(since Generation, folderID string, v V) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.allGen > since || l.lostGen > since {
		return false
	}
	if old, ok := l.lru.Peek(folderID); ok && old.invalidGen > since {
		return false
	}
	l.putLocked(folderID, v)
	return true
}

func (l *Listings[V]) putLocked(folderID string, v V) {
	var invalidGen Generation
	if old, ok := l.lru.Peek(folderID); ok {
		invalidGen = old.invalidGen
	}
	l.lru.Add(folderID, listing[V]{value: v, expires: l.clock().Add(l.ttl), invalidGen: invalidGen})
}

// Update replaces the cached listing of folderID by fn(old), keeping its
// expiry, if a fresh one is cached; it reports whether it did. fn runs under
// the cache's lock and must not call back into it.
func (l *Listings[V]) Update(folderID string, fn func(V) V) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	old, ok := l.lru.Peek(folderID)
	if !ok || old.tombstone || !l.clock().Before(old.expires) {
		return false
	}
	old.value = fn(old.value)
	l.lru.Add(folderID, old)
	return true
}

// Invalidate forgets the listing of folderID.
func (l *Listings[V]) Invalidate(folderID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gen++
	// A tombstone, so that PutIfFresh can refuse listings read before now.
	l.lru.Add(folderID, listing[V]{tombstone: true, invalidGen: l.gen})
}

// InvalidateAll forgets every listing.
func (l *Listings[V]) InvalidateAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gen++
	l.allGen = l.gen
	l.lru.Purge() // calls onEvict, but allGen already covers all of them
}

// Len returns the number of folders held, including expired listings not yet
// pushed out and invalidation markers.
func (l *Listings[V]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// Trim drops cached listings to bound the memory their values hold: keep is
// called, under the cache's lock and most recently used first, for every
// listing that is still fresh, and those it refuses are dropped, as are the
// expired ones. Invalidation markers stay (they hold no value, and
// PutIfFresh needs them). A dropped listing counts as pushed out by
// capacity: PutIfFresh refuses listings read before its last invalidation.
// keep must not call back into the cache. It returns how many were dropped.
func (l *Listings[V]) Trim(keep func(folderID string, v V) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	keys := l.lru.Keys() // oldest first
	dropped := 0
	for i := len(keys) - 1; i >= 0; i-- {
		v, ok := l.lru.Peek(keys[i])
		if !ok || v.tombstone {
			continue
		}
		if now.Before(v.expires) && keep(keys[i], v.value) {
			continue
		}
		l.lru.Remove(keys[i]) // onEvict records its invalidation generation
		dropped++
	}
	return dropped
}
