package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/copyjob"
	"github.com/onedrivefs/onedrivefs/metastore"
	"github.com/onedrivefs/onedrivefs/remote"
)

// maxPrefetches bounds the folder listings prefetched at once (tree.go).
const maxPrefetches = 4

// Defaults of Config.
const (
	DefaultListingTTL   = time.Minute
	DefaultPollInterval = 30 * time.Second
	// quotaRefreshEvery: the quota is refetched every this many poll rounds
	// (every round: df follows the drive within one poll).
	quotaRefreshEvery = 1
)

// Config configures a filesystem. Remote, Content, Staging and State are
// required.
type Config struct {
	// Remote is the service. Its errors match remote's sentinels with
	// errors.Is, and it retries transient failures itself, so an error is
	// final for the request that got it.
	Remote *remote.Client
	// Content caches downloaded file bytes, keyed by item id and cTag.
	Content *cache.Content
	// Staging holds the content of files with local changes, and the
	// journal of those not yet on the server.
	Staging *cache.Staging
	// State persists small values across mounts (the delta link).
	State *cache.State
	// Logger receives the filesystem's log lines; nil discards them.
	Logger *slog.Logger
	// UID and GID own every file and folder (the mounting user).
	UID, GID uint32
	// ReadOnly refuses every change with EROFS.
	ReadOnly bool
	// ListingTTL is how long a folder listing is served without asking the
	// service again; 0 → DefaultListingTTL. Remote changes also reach the
	// listings through the delta poll.
	ListingTTL time.Duration
	// PollInterval between two delta polls; 0 → DefaultPollInterval,
	// negative → no polling.
	PollInterval time.Duration
	// Clock tells the time; nil → time.Now.
	Clock func() time.Time
	// CopyJobsDir is where the copy-job tracker keeps its jobs (under the
	// cache dir), so that a job still running at unmount is resumed by the
	// next mount, which reveals its result; "" keeps them in memory.
	CopyJobsDir string
	// SharedWithMe names the virtual, read-only folder at the root that
	// lists what others shared with the user and they did not add as a
	// shortcut (shared.go); "" leaves it out.
	SharedWithMe string
	// Store is the persisted copy of the drive's tree (store.go): listings
	// and delta pages are written to it, a remount and an offline mount
	// read from it, and changes made offline are journaled in it
	// (offline.go); nil keeps the tree in memory only.
	Store *metastore.Store
	// MaxEntries bounds the entries the tree keeps in memory when a Store
	// is set (evict.go): past it, entries that hold nothing of their own
	// are dropped and built again from the store when next needed. 0 →
	// DefaultMaxEntries; negative → no bound. Without a Store nothing is
	// dropped.
	MaxEntries int
	// SyncTree fills an empty store with the whole drive in the background,
	// by one paged delta enumeration (fullsync.go); otherwise folders are
	// stored as they are listed.
	SyncTree bool
	// LazyBaseMin is the size from which a write into an existing file
	// does not wait for its content (basefill.go); 0 → DefaultLazyBaseMin.
	// Tests lower it so that small files take that path.
	LazyBaseMin int64
}

// FS is a mounted (or mountable) OneDrive drive: the drive's items as this
// mount knows them, with stable inode numbers, cached listings, staged writes
// and the background work (delta poll, upload retries, kernel notifications).
//
// Lock order: file.mu, then FS.mu, then cache.Listings' own lock. FS.mu
// is never held across a request to the service, a disk read or write of
// content, or a call into go-fuse that may block (kernel notifications run
// on the notifier goroutine with no lock held; NewInode, which only
// initialises a node, is called under it).
type FS struct {
	remote   *remote.Client
	content  *cache.Content
	staging  *cache.Staging
	state    *cache.State
	log      *slog.Logger
	now      func() time.Time
	uid, gid uint32
	readOnly bool
	ttl      time.Duration
	poll     time.Duration

	// listings caches folder listings (folder id → *dirListing); a listing is
	// read and changed only under mu (changes through listings.Update).
	listings *cache.Listings[*dirListing]

	notes *notifier
	bg    *background
	// lazyBaseMin: see Config.LazyBaseMin. Immutable.
	lazyBaseMin int64
	// wbWake wakes the journal's background sender (writeback.go).
	wbWake chan struct{}
	// prefetchSlots bounds the listing prefetches running at once.
	prefetchSlots chan struct{}
	// sweepWake wakes the sweeper (evict.go).
	sweepWake chan struct{}

	// copyJobsDir is Config.CopyJobsDir. copies, the tracker, is set once
	// by start (it reads the jobs a previous mount left) and never changed;
	// nil before.
	copyJobsDir string
	copies      *copyjob.Tracker
	// mountDir is the absolute path of the mount point, set by Mount
	// before serving (absolute copy destinations are resolved against it);
	// "" when not mounted.
	mountDir string

	// startMu is held while a cp copy is started and registered, so that its
	// binder cannot run before (pending.go).
	startMu sync.Mutex

	mu sync.Mutex
	// The fields below are guarded by mu.
	byIno   map[uint64]*entry
	byID    map[string]*entry
	nextIno uint64
	// inoByID holds the inode numbers that are not their item id's hash
	// (evict.go); never trimmed.
	inoByID map[string]uint64
	// maxEntries bounds len(byIno) (0: no bound); a sweep runs once it
	// reaches sweepAt, or once forgets FORGETs arrived since the last one.
	// fetching counts the listings and delta pages in flight by their
	// "since" (evict.go).
	maxEntries int
	sweepAt    int
	forgets    int
	fetching   map[uint64]int
	root       *entry
	quota      *remote.Quota // last known; nil before the first fetch
	started    bool
	// seq counts the changes this mount made to items (entry.seq; stale
	// service reports are recognised by it: staleItem).
	seq uint64
	// journaled maps the journal records of files this mount has staged to
	// their entries (writeback.go).
	journaled map[string]*entry
	// pendingDests counts, by destination (destKey), the cp copies pending
	// there: the delta poll and listings leave those names to the copy's
	// binder (pending.go).
	pendingDests map[string]int
	// pendingCopies are the cp copies whose jobs have not ended, by job id
	// (pending.go); deferredDeletes the items whose deletion waits for
	// copies taken from them.
	pendingCopies   map[string]*serverCopy
	deferredDeletes map[string]bool
	// listingsInFlight: folders being listed (by item id), closed when done,
	// so that a lookup joins a prefetch instead of repeating it.
	listingsInFlight map[string]chan struct{}
	// copyDests holds the destinations (destKey) of xattr copies
	// whose jobs have not ended (reserveDest).
	copyDests map[string]struct{}

	// shares are the watched shortcuts to other drives' folders
	// (shared.go). sharedDir is the virtual "Shared with me" folder, nil
	// when off; set by start.
	shares    shareState
	sharedDir *entry
	// store is Config.Store; sw queues its writes (store.go).
	store    *metastore.Store
	syncTree bool
	sw       storeWriter
	// metaRecords counts the offline journal's records; offlineSeq is the
	// last record's number (used by the store's writer only).
	metaRecords atomic.Int64
	offlineSeq  uint64
	// replayMu serialises replays of the offline journal; sendMu the
	// content journal's senders (the background sender, backOnline).
	replayMu sync.Mutex
	sendMu   sync.Mutex
	// pins are the items kept available offline (pin.go).
	pinMu sync.Mutex
	pins  pinState

	// storedLinks are folders' st_nlink counted in the store (store.go),
	// by inode number. GUARDED_BY(mu)
	storedLinks map[uint64]linkCount

	// polls records the poll loop's outcomes for Status (status.go); it
	// has its own lock.
	polls pollLog

	// ownDrive is the mounted drive's id, set by start before anything is
	// served and not changed afterwards; drives caches the clients of the
	// other drives (drives.go); sharedName is Config.SharedWithMe.
	ownDrive   string
	drives     driveClients
	sharedName string
}

// New returns a filesystem for cfg. It does no I/O and starts no goroutine:
// Mount does both.
func New(cfg Config) (*FS, error) {
	switch {
	case cfg.Remote == nil:
		return nil, errors.New("fs: Config.Remote is required")
	case cfg.Content == nil:
		return nil, errors.New("fs: Config.Content is required")
	case cfg.Staging == nil:
		return nil, errors.New("fs: Config.Staging is required")
	case cfg.State == nil:
		return nil, errors.New("fs: Config.State is required")
	}
	f := &FS{
		remote:      cfg.Remote,
		content:     cfg.Content,
		staging:     cfg.Staging,
		state:       cfg.State,
		log:         cfg.Logger,
		now:         cfg.Clock,
		uid:         cfg.UID,
		gid:         cfg.GID,
		readOnly:    cfg.ReadOnly,
		ttl:         cfg.ListingTTL,
		poll:        cfg.PollInterval,
		byIno:       make(map[uint64]*entry),
		byID:        make(map[string]*entry),
		inoByID:     make(map[string]uint64),
		nextIno:     rootIno + 1,
		maxEntries:  cfg.MaxEntries,
		copyJobsDir: cfg.CopyJobsDir,
		sharedName:  cfg.SharedWithMe,
		store:       cfg.Store,
		syncTree:    cfg.SyncTree,
		lazyBaseMin: cfg.LazyBaseMin,
	}
	if f.lazyBaseMin <= 0 {
		f.lazyBaseMin = DefaultLazyBaseMin
	}
	f.sw.wake = make(chan struct{}, 1)
	f.sweepWake = make(chan struct{}, 1)
	switch {
	case f.store == nil || f.maxEntries < 0:
		f.maxEntries = 0
	case f.maxEntries == 0:
		f.maxEntries = DefaultMaxEntries
	}
	f.sweepAt = f.maxEntries
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.ttl <= 0 {
		f.ttl = DefaultListingTTL
	}
	if f.poll == 0 {
		f.poll = DefaultPollInterval
	}
	f.listings = cache.NewListings[*dirListing](cache.ListingsOptions{TTL: f.ttl, Clock: f.now})
	f.notes = newNotifier()
	f.bg = newBackground()
	f.wbWake = make(chan struct{}, 1)
	f.prefetchSlots = make(chan struct{}, maxPrefetches)
	return f, nil
}

// start fetches the root folder and the quota, and replays the journal of a
// previous mount. Mount calls it before serving; unit tests call it
// directly.
func (f *FS) start(ctx context.Context) error {
	if err := f.openStore(); err != nil {
		return fmt.Errorf("reading the local copy of the tree: %w", err)
	}
	if f.store != nil {
		f.bg.Go(f.runStoreWriter)
	}

	root, err := f.remote.Root(ctx)
	if errors.Is(err, remote.ErrOffline) {
		// Start offline from the local copy of the tree, if there is one.
		stored, serr := f.storedRoot()
		if serr != nil {
			return fmt.Errorf("reading the drive's root folder (and no local copy of the tree to start offline from): %w", err)
		}
		f.log.Warn("starting offline from the local copy of the tree", "err", err)
		root, err = stored, nil
	}
	if err != nil {
		return fmt.Errorf("reading the drive's root folder: %w", err)
	}
	f.storePut(root)
	f.mu.Lock()
	if f.started {
		f.mu.Unlock()
		return errors.New("fs: already started")
	}
	f.started = true
	f.root = &entry{ino: rootIno, isDir: true}
	f.root.item.Store(slimItem(root))
	f.byIno[rootIno] = f.root
	f.byID[root.ID] = f.root
	f.ownDrive = root.DriveID
	f.initSharedDirFSLocked()
	f.mu.Unlock()

	if err := f.refreshQuota(ctx); err != nil {
		f.log.Warn("reading the drive quota failed; df shows nothing until it succeeds", "err", err)
	}
	if f.ownDrive == "" {
		// The root came without its drive id: items of other drives are
		// told apart by it (drives.go).
		if d, err := f.remote.Drive(ctx); err == nil {
			f.ownDrive = d.ID
		}
	}
	if err := f.openCopyJobs(); err != nil {
		return err
	}
	f.loadDeferredDeletes()
	if _, err := f.replayOffline(ctx); err != nil && !errors.Is(err, remote.ErrOffline) {
		f.log.Warn("replaying the changes made offline failed; tried again later", "err", err)
	}
	if !f.isOffline() && !f.offlinePending() {
		f.replayJournal(ctx)
	}
	if f.isOffline() {
		f.adoptJournal(ctx) // adopt.go
	}
	if f.maxEntries > 0 {
		f.bg.Go(f.runSweeper) // evict.go
	}
	return nil
}

// refreshQuota fetches the drive's quota for statfs.
func (f *FS) refreshQuota(ctx context.Context) error {
	d, err := f.remote.Drive(ctx)
	f.noteContact(ctx, err) // status.go
	if err != nil {
		return err
	}
	q := d.Quota
	f.mu.Lock()
	f.quota = &q
	f.mu.Unlock()
	return nil
}

// checkWritable returns errReadOnly on a read-only mount.
func (f *FS) checkWritable() error {
	if f.readOnly {
		return errReadOnly
	}
	return nil
}
