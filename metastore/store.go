package metastore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/onedrivefs/onedrivefs/remote"
)

// Buckets, and keys of the meta bucket. Items are clustered by parent: the
// tree bucket holds each item's record under parentID NUL foldedName NUL
// id, so the children of a folder are one contiguous run of keys in name
// order (a listing reads a few neighbouring pages, even right after a
// remount), and the ids bucket finds an item's key from its id. Item ids
// and names never contain a NUL byte, so the key splits without ambiguity.
var (
	bucketTree   = []byte("tree")   // treeKey → record (record.go)
	bucketIDs    = []byte("ids")    // id → treeKey
	bucketMeta   = []byte("meta")   // keyVersion, keyRoot, keyDeltaLink
	bucketValues = []byte("values") // the users' small key/values
)

var (
	keyVersion   = []byte("version")
	keyRoot      = []byte("root")
	keyDeltaLink = []byte("deltaLink")
)

// schemaVersion is the layout of the buckets; a store of another version is
// refused (ErrVersion) rather than misread.
const schemaVersion = "1"

// Errors.
var (
	// ErrNotFound: no item with that id (or no child of that name).
	ErrNotFound = errors.New("metastore: not found")
	// ErrLocked: another process has the store open.
	ErrLocked = errors.New("metastore: the store is in use by another process")
	// ErrVersion: the file was written by an incompatible version.
	ErrVersion = errors.New("metastore: unsupported store version")
)

// lockTimeout is how long Open waits for another process to release the
// file before answering ErrLocked.
const lockTimeout = time.Second

// Store is an open metadata store. Its methods are safe for concurrent use:
// any number of readers, one writer at a time (Update serialises).
type Store struct {
	db   *bolt.DB
	path string
}

// Open opens the store at path (a file; its directory must exist),
// creating it if needed.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("metastore: opening %s: %w", path, err)
	}
	err = db.View(func(tx *bolt.Tx) error { return checkVersion(tx, path) })
	if errors.Is(err, errNotInitialised) {
		err = db.Update(initialise)
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &Store{db: db, path: path}, nil
}

// errNotInitialised: a new file, without the buckets.
var errNotInitialised = errors.New("metastore: not initialised")

// checkVersion checks the schema version of an initialised store (a read
// transaction: opening an existing store writes nothing).
func checkVersion(tx *bolt.Tx, path string) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return errNotInitialised
	}
	if v := meta.Get(keyVersion); string(v) != schemaVersion {
		return fmt.Errorf("%w %q in %s", ErrVersion, v, path)
	}
	return nil
}

// initialise creates the buckets and records the schema version.
func initialise(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketTree, bucketIDs, bucketMeta, bucketValues} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keyVersion, []byte(schemaVersion))
}

// Close closes the store. Transactions in progress finish first.
func (s *Store) Close() error { return s.db.Close() }

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// Size is the size of the store's file in bytes.
func (s *Store) Size() (int64, error) {
	fi, err := os.Stat(s.path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// View runs fn in a read-only transaction: a consistent snapshot, which
// concurrent updates do not change. Items returned by fn's reads remain
// valid after it returns.
func (s *Store) View(fn func(tx *ReadTx) error) error {
	return s.db.View(func(btx *bolt.Tx) error { return fn(&ReadTx{tx: btx}) })
}

// Update runs fn in a read-write transaction, committed when fn returns nil
// and rolled back (nothing changes) when it returns an error or panics.
// Once Update returns nil the change is on disk (fsync).
func (s *Store) Update(fn func(tx *Tx) error) error {
	return s.db.Update(func(btx *bolt.Tx) error {
		// Pages split when this full: bbolt's default (half) suits
		// random inserts; tree keys and ids mostly arrive in order (a
		// folder's children together, ids counting up), where fuller
		// pages make the file much smaller.
		btx.Bucket(bucketTree).FillPercent = fillPercent
		btx.Bucket(bucketIDs).FillPercent = fillPercent
		return fn(&Tx{ReadTx{tx: btx}})
	})
}

// fillPercent: see Update.
const fillPercent = 0.9

// Item returns the item with the given id, or ErrNotFound.
func (s *Store) Item(id string) (it *remote.Item, err error) {
	err = s.View(func(tx *ReadTx) error { it, err = tx.Item(id); return err })
	return it, err
}

// Child returns the child of parentID called name (compared
// case-insensitively), or ErrNotFound.
func (s *Store) Child(parentID, name string) (it *remote.Item, err error) {
	err = s.View(func(tx *ReadTx) error { it, err = tx.Child(parentID, name); return err })
	return it, err
}

// Children returns the children of parentID ordered by folded name.
func (s *Store) Children(parentID string) (items []*remote.Item, err error) {
	err = s.View(func(tx *ReadTx) error {
		return tx.EachChild(parentID, func(it *remote.Item) error {
			items = append(items, it)
			return nil
		})
	})
	return items, err
}

// DeltaLink returns the saved delta link ("" for none).
func (s *Store) DeltaLink() (link string, err error) {
	err = s.View(func(tx *ReadTx) error { link = tx.DeltaLink(); return nil })
	return link, err
}

// ApplyDelta applies a page of delta items in one transaction: deleted
// items are removed with everything below them, the others put; then, when
// link is not "", it becomes the saved delta link. Either all of it is
// applied or none.
func (s *Store) ApplyDelta(items []*remote.Item, link string) error {
	return s.Update(func(tx *Tx) error {
		for _, it := range items {
			var err error
			if it.Deleted {
				err = tx.Delete(it.ID)
				if errors.Is(err, ErrNotFound) {
					err = nil
				}
			} else {
				err = tx.Put(it)
			}
			if err != nil {
				return err
			}
		}
		if link == "" {
			return nil
		}
		return tx.SetDeltaLink(link)
	})
}

// foldName is the key under which names are compared: OneDrive names are
// case-insensitive and case-preserving. The same folding as the fs
// package's.
func foldName(name string) string { return strings.ToLower(name) }

// treeKey is the tree-bucket key of an item: parentID NUL foldedName NUL
// id.
func treeKey(parentID, name, id string) []byte {
	k := make([]byte, 0, len(parentID)+len(name)+len(id)+2)
	k = append(k, parentID...)
	k = append(k, 0)
	k = append(k, foldName(name)...)
	k = append(k, 0)
	return append(k, id...)
}

// childPrefix starts the keys of every child of parentID.
func childPrefix(parentID string) []byte { return append([]byte(parentID), 0) }

// splitTreeKey returns the parent id and the id of a tree key.
func splitTreeKey(k []byte) (parentID, id string, err error) {
	first, last := bytes.IndexByte(k, 0), bytes.LastIndexByte(k, 0)
	if first < 0 || first == last {
		return "", "", fmt.Errorf("%w: tree key %q", ErrCorrupt, k)
	}
	return string(k[:first]), string(k[last+1:]), nil
}

// decodeEntry decodes a tree entry.
func decodeEntry(k, v []byte) (*remote.Item, error) {
	parentID, id, err := splitTreeKey(k)
	if err != nil {
		return nil, err
	}
	return decode(id, parentID, v)
}

// ReadTx is a read-only transaction (View). Do not use it after the
// function it was given to returns.
type ReadTx struct {
	tx *bolt.Tx
}

// key returns the tree key of the item id (a copy), or nil.
func (t *ReadTx) key(id string) []byte {
	k := t.tx.Bucket(bucketIDs).Get([]byte(id))
	if k == nil {
		return nil
	}
	return bytes.Clone(k)
}

// Item returns the item with the given id, or ErrNotFound.
func (t *ReadTx) Item(id string) (*remote.Item, error) {
	k := t.key(id)
	if k == nil {
		return nil, fmt.Errorf("%w: item %s", ErrNotFound, id)
	}
	v := t.tx.Bucket(bucketTree).Get(k)
	if v == nil {
		return nil, fmt.Errorf("%w: item %s has no record", ErrCorrupt, id)
	}
	return decodeEntry(k, v)
}

// Child returns the child of parentID called name (case-insensitively), or
// ErrNotFound. (While two children share a folded name, which happens only
// between the changes of one delta round, it returns one of them.)
func (t *ReadTx) Child(parentID, name string) (*remote.Item, error) {
	prefix := treeKey(parentID, name, "")
	k, v := t.tx.Bucket(bucketTree).Cursor().Seek(prefix)
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil, fmt.Errorf("%w: %q in %s", ErrNotFound, name, parentID)
	}
	return decodeEntry(k, v)
}

// EachChild calls fn with every child of parentID, ordered by folded name
// (byte order), until fn returns an error, which EachChild returns.
func (t *ReadTx) EachChild(parentID string, fn func(it *remote.Item) error) error {
	prefix := childPrefix(parentID)
	c := t.tx.Bucket(bucketTree).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		it, err := decodeEntry(k, v)
		if err != nil {
			return err
		}
		if err := fn(it); err != nil {
			return err
		}
	}
	return nil
}

// CountChildFolders counts the children of parentID that are folders,
// reading only each record's flags (no decoding): a folder's st_nlink.
func (t *ReadTx) CountChildFolders(parentID string) (int, error) {
	prefix := childPrefix(parentID)
	c := t.tx.Bucket(bucketTree).Cursor()
	n := 0
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		folder, err := recordIsFolder(v)
		if err != nil {
			return 0, err
		}
		if folder {
			n++
		}
	}
	return n, nil
}

// RootID is the id of the drive's root ("" until a root item was put).
func (t *ReadTx) RootID() string { return string(t.tx.Bucket(bucketMeta).Get(keyRoot)) }

// DeltaLink is the saved delta link ("" for none).
func (t *ReadTx) DeltaLink() string { return string(t.tx.Bucket(bucketMeta).Get(keyDeltaLink)) }

// Value returns a copy of the value saved under key, or nil.
func (t *ReadTx) Value(key string) []byte {
	v := t.tx.Bucket(bucketValues).Get([]byte(key))
	if v == nil {
		return nil
	}
	return bytes.Clone(v)
}

// EachValue calls fn with every value whose key starts with prefix, in key
// order, until fn returns an error, which EachValue returns. The key and
// value are copies.
func (t *ReadTx) EachValue(prefix string, fn func(key string, v []byte) error) error {
	p := []byte(prefix)
	c := t.tx.Bucket(bucketValues).Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if err := fn(string(k), bytes.Clone(v)); err != nil {
			return err
		}
	}
	return nil
}

// Count is the number of items in the store. It reads every page of the
// ids bucket, so its cost grows with the store: not for hot paths.
func (t *ReadTx) Count() int { return t.tx.Bucket(bucketIDs).Stats().KeyN }

// Walk visits the tree from the root, depth first, parents before their
// children and children in name order, calling fn with each item and its
// path below the root ("" for the root, "/a/b" below it). When fn returns
// ErrSkipChildren for a folder its children are not visited; any other error
// stops the walk and is returned. Items not reachable from the root (a
// parent not yet received) are not visited.
func (t *ReadTx) Walk(fn func(path string, it *remote.Item) error) error {
	root := t.RootID()
	if root == "" {
		return nil
	}
	it, err := t.Item(root)
	if err != nil {
		return err
	}
	return t.walk("", it, fn)
}

// ErrSkipChildren, returned by a Walk function for a folder, skips its
// children (as fs.SkipDir does for fs.WalkDir).
var ErrSkipChildren = errors.New("metastore: skip children")

func (t *ReadTx) walk(path string, it *remote.Item, fn func(string, *remote.Item) error) error {
	switch err := fn(path, it); {
	case errors.Is(err, ErrSkipChildren):
		return nil
	case err != nil:
		return err
	}
	if !it.IsFolder {
		return nil
	}
	return t.EachChild(it.ID, func(c *remote.Item) error {
		return t.walk(path+"/"+c.Name, c, fn)
	})
}

// Tx is a read-write transaction (Update). Do not use it after the
// function it was given to returns.
type Tx struct {
	ReadTx
}

// Put stores it (the item as the service describes it now), replacing the
// stored item of the same id; a renamed or moved item leaves its old place.
// Its DownloadURL and Deleted flag are not stored. An item of the root also
// records the root's id.
//
// Another item may hold the same folded name under the same parent for a
// while (the service renamed one and reused its name, and the other's
// change has not arrived yet): both are kept, and its own change will put
// the other where it belongs.
func (t *Tx) Put(it *remote.Item) error {
	if it.ID == "" {
		return errors.New("metastore: an item without an id")
	}
	tree, ids := t.tx.Bucket(bucketTree), t.tx.Bucket(bucketIDs)
	k := treeKey(it.ParentID, it.Name, it.ID)
	if old := t.key(it.ID); old != nil && !bytes.Equal(old, k) {
		if err := tree.Delete(old); err != nil {
			return err
		}
	}
	if it.IsRoot {
		if err := t.tx.Bucket(bucketMeta).Put(keyRoot, []byte(it.ID)); err != nil {
			return err
		}
	}
	if err := tree.Put(k, encode(nil, it)); err != nil {
		return err
	}
	return ids.Put([]byte(it.ID), k)
}

// Delete removes the item id and, for a folder, everything below it.
// ErrNotFound when there is no such item.
func (t *Tx) Delete(id string) error {
	it, err := t.Item(id)
	if err != nil {
		return err
	}
	return t.deleteTree(it)
}

func (t *Tx) deleteTree(it *remote.Item) error {
	if it.IsFolder {
		var kids []*remote.Item
		if err := t.EachChild(it.ID, func(c *remote.Item) error {
			kids = append(kids, c)
			return nil
		}); err != nil {
			return err
		}
		for _, c := range kids {
			if err := t.deleteTree(c); err != nil {
				return err
			}
		}
	}
	if it.IsRoot {
		if err := t.tx.Bucket(bucketMeta).Delete(keyRoot); err != nil {
			return err
		}
	}
	if err := t.tx.Bucket(bucketTree).Delete(treeKey(it.ParentID, it.Name, it.ID)); err != nil {
		return err
	}
	return t.tx.Bucket(bucketIDs).Delete([]byte(it.ID))
}

// SetDeltaLink saves the delta link ("" forgets it: the next sync
// enumerates everything).
func (t *Tx) SetDeltaLink(link string) error {
	meta := t.tx.Bucket(bucketMeta)
	if link == "" {
		return meta.Delete(keyDeltaLink)
	}
	return meta.Put(keyDeltaLink, []byte(link))
}

// SetValue saves a small value under key (nil deletes it). Values are for
// the store's users (say, the time of the last full sync); keep them
// small: they are read whole.
func (t *Tx) SetValue(key string, v []byte) error {
	if key == "" {
		return errors.New("metastore: an empty key")
	}
	b := t.tx.Bucket(bucketValues)
	if v == nil {
		return b.Delete([]byte(key))
	}
	return b.Put([]byte(key), v)
}

// Reset removes every item, the root and the delta link (a resync from
// scratch, after the service answered resyncRequired). Values stay.
func (t *Tx) Reset() error {
	for _, name := range [][]byte{bucketTree, bucketIDs} {
		if err := t.tx.DeleteBucket(name); err != nil {
			return err
		}
		if _, err := t.tx.CreateBucket(name); err != nil {
			return err
		}
	}
	meta := t.tx.Bucket(bucketMeta)
	if err := meta.Delete(keyRoot); err != nil {
		return err
	}
	return meta.Delete(keyDeltaLink)
}

// ReleaseMapped drops the store's pages from this process's page tables.
// bbolt reads through a shared, read-only mapping of the file, and every
// page a transaction has touched counts in the process's resident memory
// until the kernel reclaims it; the pages stay in the page cache, so a
// later read finds them again at the cost of a minor fault. It runs inside
// a read transaction, during which bbolt never remaps the file, so the
// range is the live mapping.
func (s *Store) ReleaseMapped() error {
	return s.db.View(func(tx *bolt.Tx) error {
		data, size := s.db.Info().Data, tx.Size()
		if data == 0 || size <= 0 {
			return nil
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, data, uintptr(size), syscall.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("metastore: releasing mapped pages: %w", errno)
		}
		return nil
	})
}
