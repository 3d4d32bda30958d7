package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Persistence of the content cache: each entry's range set lives in a JSON
// sidecar beside its data file, written atomically after the data file is
// fsynced, and read back (and checked) when the cache is opened.

// persistLocked writes e's range set to its sidecar if it changed since the
// last write. The data file is fsynced first, so that a sidecar never claims
// bytes a power loss could have lost. The caller holds e.persistMu.
func (c *Content) persistLocked(e *cachedVersion) error {
	e.mu.Lock()
	if e.gone != nil || e.f == nil || e.gen == e.savedGen {
		e.mu.Unlock()
		return nil
	}
	sc := sidecar{
		Version:  sidecarVersion,
		ID:       e.key.ID,
		CTag:     e.key.CTag,
		Size:     e.size,
		Verified: e.verified,
		Ranges:   e.present.Clone(),
	}
	gen, f := e.gen, e.f
	e.mu.Unlock()

	if err := f.Sync(); err != nil {
		return fmt.Errorf("cache: fsync data file: %w", err)
	}
	data, err := json.Marshal(sc)
	if err != nil {
		return fmt.Errorf("cache: encode sidecar: %w", err)
	}
	if err := writeFileAtomic(c.dir, filepath.Base(e.sidecarPath()), data, false); err != nil {
		return err
	}
	e.mu.Lock()
	e.savedGen = max(e.savedGen, gen)
	e.mu.Unlock()
	return nil
}

const (
	sidecarVersion = 1
	dataExt        = ".data"
	sidecarExt     = ".ranges"
)

// sidecar is the persisted description of an entry, stored as JSON in
// <base>.ranges beside the data file <base>.data.
type sidecar struct {
	Version  int      `json:"version"`
	ID       string   `json:"id"`
	CTag     string   `json:"ctag"`
	Size     int64    `json:"size"`
	Verified bool     `json:"verified,omitempty"`
	Ranges   RangeSet `json:"ranges"`
}

// fileBase names an entry's files: item ids and cTags hold characters that do
// not belong in file names ('!', '{', '"', ','), so the name is a hash of the
// key and the key itself lives in the sidecar.
func fileBase(k Key) string {
	sum := sha256.Sum256([]byte(k.ID + "\x00" + k.CTag))
	return hex.EncodeToString(sum[:16])
}

// load indexes the entries persisted in c.dir. Anything that cannot be
// trusted is deleted with a log line; only I/O errors on the directory itself
// fail the open.
func (c *Content) load() error {
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("cache: read content dir: %w", err)
	}
	type loaded struct {
		e     *cachedVersion
		mtime time.Time
	}
	var found []loaded
	keep := make(map[string]bool) // data file names backed by a valid sidecar
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(c.dir, name)
		switch {
		case isTemp(name):
			c.log.Debug("cache: removing torn temporary file", "file", name)
			_ = os.Remove(path)
		case strings.HasSuffix(name, sidecarExt):
			e, mtime, err := c.loadSidecar(path)
			if err != nil {
				c.log.Warn("cache: discarding cached entry", "file", name, "err", err)
				_ = os.Remove(path)
				continue
			}
			found = append(found, loaded{e, mtime})
		}
	}
	// Oldest first, so that each push to the front leaves the newest in front;
	// of two versions of one item, the newer wins.
	sort.Slice(found, func(i, j int) bool { return found[i].mtime.Before(found[j].mtime) })
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range found {
		e := l.e
		if old := c.byID[e.key.ID]; old != nil {
			c.dropLocked(old, ErrDropped)
		}
		e.indexed = true
		e.accounted = e.present.Covered()
		c.used += e.accounted
		c.byID[e.key.ID] = e
		e.idleElem = c.idle.PushFront(e)
	}
	for _, e := range c.byID {
		keep[filepath.Base(e.dataPath())] = true
	}
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, dataExt) && !keep[name] {
			c.log.Debug("cache: removing data file without sidecar", "file", name)
			_ = os.Remove(filepath.Join(c.dir, name))
		}
	}
	return nil
}

// loadSidecar reads and validates one sidecar against its data file.
func (c *Content) loadSidecar(path string) (*cachedVersion, time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	var sc sidecar
	if err := json.Unmarshal(data, &sc); err != nil {
		return nil, time.Time{}, fmt.Errorf("corrupt sidecar: %w", err)
	}
	key := Key{ID: sc.ID, CTag: sc.CTag}
	switch {
	case sc.Version != sidecarVersion:
		return nil, time.Time{}, fmt.Errorf("sidecar version %d", sc.Version)
	case sc.ID == "" || sc.Size < 0:
		return nil, time.Time{}, errors.New("sidecar without id or with negative size")
	case fileBase(key)+sidecarExt != filepath.Base(path):
		return nil, time.Time{}, errors.New("sidecar name does not match its key")
	}
	if rs := sc.Ranges.Ranges(); len(rs) > 0 && rs[len(rs)-1].End > sc.Size {
		return nil, time.Time{}, fmt.Errorf("range %v beyond size %d", rs[len(rs)-1], sc.Size)
	}
	if sc.Verified && sc.Ranges.Covered() != sc.Size {
		return nil, time.Time{}, errors.New("verified but incomplete")
	}
	e := &cachedVersion{c: c, key: key, size: sc.Size, base: strings.TrimSuffix(path, sidecarExt)}
	dfi, err := os.Stat(e.dataPath())
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("data file: %w", err)
	}
	if dfi.Size() != sc.Size {
		return nil, time.Time{}, fmt.Errorf("data file is %d bytes, sidecar says %d", dfi.Size(), sc.Size)
	}
	e.present = sc.Ranges
	e.verified = sc.Verified
	return e, fi.ModTime(), nil
}
