package metastore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/onedrivefs/onedrivefs/remote"
)

// Buckets, and keys of the meta bucket.
var (
	bucketItems    = []byte("items")    // id → record (record.go)
	bucketChildren = []byte("children") // parentID 0x00 foldedName → child id
	bucketMeta     = []byte("meta")     // keyVersion, keyRoot, keyDeltaLink
	bucketValues   = []byte("values")   // the users' small key/values
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
		if errors.Is(err, bolt.ErrTimeout) {
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
	for _, name := range [][]byte{bucketItems, bucketChildren, bucketMeta, bucketValues} {
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
		// random inserts; item ids and children keys mostly arrive in
		// order (a folder's children together, ids counting up), where
		// fuller pages make the file half the size.
		btx.Bucket(bucketItems).FillPercent = fillPercent
		btx.Bucket(bucketChildren).FillPercent = fillPercent
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

// childKey is the children-index key of name under parentID. Item ids and
// names never contain a NUL byte, so the NUL separates them without
// ambiguity, and every child of a parent shares the prefix parentID+NUL.
func childKey(parentID, name string) []byte {
	k := make([]byte, 0, len(parentID)+1+len(name))
	k = append(k, parentID...)
	k = append(k, 0)
	return append(k, foldName(name)...)
}

func childPrefix(parentID string) []byte {
	return append([]byte(parentID), 0)
}

// ReadTx is a read-only transaction (View). Do not use it after the
// function it was given to returns.
type ReadTx struct {
	tx *bolt.Tx
}

// Item returns the item with the given id, or ErrNotFound.
func (t *ReadTx) Item(id string) (*remote.Item, error) {
	v := t.tx.Bucket(bucketItems).Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("%w: item %s", ErrNotFound, id)
	}
	return decode(id, v)
}

// Child returns the child of parentID called name (case-insensitively), or
// ErrNotFound.
func (t *ReadTx) Child(parentID, name string) (*remote.Item, error) {
	id := t.tx.Bucket(bucketChildren).Get(childKey(parentID, name))
	if id == nil {
		return nil, fmt.Errorf("%w: %q in %s", ErrNotFound, name, parentID)
	}
	return t.Item(string(id))
}

// EachChild calls fn with every child of parentID, ordered by folded name
// (byte order), until fn returns an error, which EachChild returns.
func (t *ReadTx) EachChild(parentID string, fn func(it *remote.Item) error) error {
	return t.eachChildID(parentID, func(id []byte) error {
		it, err := t.Item(string(id))
		if err != nil {
			return err
		}
		return fn(it)
	})
}

// eachChildID calls fn with the id of every child of parentID. The slice is
// only valid during the call.
func (t *ReadTx) eachChildID(parentID string, fn func(id []byte) error) error {
	prefix := childPrefix(parentID)
	c := t.tx.Bucket(bucketChildren).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
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

// Count is the number of items in the store.
func (t *ReadTx) Count() int { return t.tx.Bucket(bucketItems).Stats().KeyN }

// Walk visits the tree from the root, depth first, parents before their
// children and children in name order, calling fn with each item and its
// path below the root ("" for the root, "/a/b" below it). When fn returns
// SkipChildren for a folder its children are not visited; any other error
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

// SkipChildren, returned by a Walk function for a folder, skips its
// children.
var SkipChildren = errors.New("metastore: skip children")

func (t *ReadTx) walk(path string, it *remote.Item, fn func(string, *remote.Item) error) error {
	switch err := fn(path, it); {
	case errors.Is(err, SkipChildren):
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
// stored item of the same id, and keeps the children index in step: a
// renamed or moved item leaves its old place. Its DownloadURL and Deleted
// flag are not stored. An item of the root also records the root's id.
//
// When another item holds the same folded name under the same parent (the
// service renamed one and reused the name, and the other's change has not
// arrived yet), the index points to it, the latest put; the other remains
// by id, and its own change will put it where it belongs.
func (t *Tx) Put(it *remote.Item) error {
	if it.ID == "" {
		return errors.New("metastore: an item without an id")
	}
	id := []byte(it.ID)
	items := t.tx.Bucket(bucketItems)
	children := t.tx.Bucket(bucketChildren)
	if old := items.Get(id); old != nil {
		prev, err := decode(it.ID, old)
		if err != nil {
			return err
		}
		if prev.ParentID != "" && (prev.ParentID != it.ParentID || foldName(prev.Name) != foldName(it.Name)) {
			if err := t.unindex(prev); err != nil {
				return err
			}
		}
	}
	if it.ParentID != "" && !it.IsRoot {
		if err := children.Put(childKey(it.ParentID, it.Name), id); err != nil {
			return err
		}
	}
	if it.IsRoot {
		if err := t.tx.Bucket(bucketMeta).Put(keyRoot, id); err != nil {
			return err
		}
	}
	return items.Put(id, encode(nil, it))
}

// unindex removes it's children-index entry, if the entry is still its.
func (t *Tx) unindex(it *remote.Item) error {
	children := t.tx.Bucket(bucketChildren)
	k := childKey(it.ParentID, it.Name)
	if v := children.Get(k); v != nil && string(v) == it.ID {
		return children.Delete(k)
	}
	return nil
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
		var kids []string
		if err := t.eachChildID(it.ID, func(id []byte) error {
			kids = append(kids, string(id))
			return nil
		}); err != nil {
			return err
		}
		for _, kid := range kids {
			c, err := t.Item(kid)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if c.ParentID != it.ID {
				continue // an index entry left by a move not yet seen
			}
			if err := t.deleteTree(c); err != nil {
				return err
			}
		}
	}
	if it.ParentID != "" {
		if err := t.unindex(it); err != nil {
			return err
		}
	}
	if it.IsRoot {
		if err := t.tx.Bucket(bucketMeta).Delete(keyRoot); err != nil {
			return err
		}
	}
	return t.tx.Bucket(bucketItems).Delete([]byte(it.ID))
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
	for _, name := range [][]byte{bucketItems, bucketChildren} {
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
