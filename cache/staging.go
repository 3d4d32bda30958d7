package cache

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrNoRecord: Modify named a record that is not in the journal.
var ErrNoRecord = errors.New("cache: no such journal record")

// Record describes one file whose content must reach the server.
type Record struct {
	// ID is the local id of the record and of its staged file (NewRecordID).
	ID string `json:"id"`
	// RemoteItemID is the item being replaced; "" for a file not yet created
	// on the server.
	RemoteItemID string `json:"remoteItemId,omitempty"`
	// ParentID and Name say where the file goes; the fs changes them when the
	// file is renamed while pending.
	ParentID string `json:"parentId"`
	Name     string `json:"name"`
	// DriveID is the drive of the item and the folder when it is not the
	// mounted drive (a folder shared from another drive); "" otherwise.
	DriveID string `json:"driveId,omitempty"`
	// DirPath is the folder's path from the drive's root ("a/b"; "" for the
	// root) when the record was written: where the folder is created again
	// if it is gone from the server.
	DirPath string `json:"dirPath,omitempty"`
	// BaseETag is the eTag the write was based on, to detect a remote change.
	BaseETag string `json:"baseETag,omitempty"`
	// BaseCTag is the cTag of the content the write was based on: a changed
	// eTag with the same cTag is a metadata change (rename, times), not a
	// conflicting edit.
	BaseCTag string `json:"baseCTag,omitempty"`
	// Unconfirmed names content that upload attempts may have stored
	// without their answer arriving (newest last): an item found holding
	// one of them is the mount's own version, not a conflicting change.
	Unconfirmed []ContentRef `json:"unconfirmed,omitempty"`
	// BaseMissing lists the ranges of the staged file that do not hold
	// their bytes yet: they are the base version's (BaseItemID at
	// BaseCTag, BaseSize bytes), fetched before the content is sent, so a
	// write into a large file need not wait for all of it and no hole is
	// ever sent as zeros.
	BaseMissing []Range `json:"baseMissing,omitempty"`
	BaseItemID  string  `json:"baseItemId,omitempty"`
	BaseSize    int64   `json:"baseSize,omitempty"`
	// Size is the staged file's size at the last Commit (set by Commit).
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modTime"`
	// StagedPath is where the content is; set by Staging, not stored (it
	// follows the cache dir if that moves).
	StagedPath string `json:"-"`
	// CreatedAt orders replay (oldest first); set at the first Commit if zero.
	CreatedAt time.Time `json:"createdAt"`
}

// ContentRef names a file's content by its size and quickXorHash (base64,
// as the service reports it).
type ContentRef struct {
	Size         int64  `json:"size"`
	QuickXorHash string `json:"quickXorHash"`
}

// journalFile is the on-disk form of a record.
type journalFile struct {
	Version int `json:"version"`
	Record
}

const (
	journalVersion = 1
	journalExt     = ".json"
	corruptExt     = ".corrupt"
)

// StagingOptions configure OpenStaging.
type StagingOptions struct {
	// Dir is the cache dir: staged files live in Dir/staging, journal
	// records in Dir/journal.
	Dir    string
	Logger *slog.Logger
	// Clock stamps CreatedAt; nil means time.Now.
	Clock func() time.Time
}

// Staging holds the write-back state of the mount: staged files (the full
// new content of files being written) and a journal of the ones that must
// still reach the server.
//
// The journal is one JSON file per record in Dir/journal, replaced by
// write-temp, fsync, rename, fsync-directory. That gives per-record atomic,
// durable updates with nothing but the standard library, and a crash can only
// leave a stray temporary file, which load recognises and deletes. Records
// are few (files with unsent writes) and small, so an embedded database would
// add a dependency and recovery rules for no gain.
//
// Durability promise: once Commit returns, the record and the staged file's
// content as of the Commit are on disk; a process killed at any point after
// that loses neither. OpenStaging skips (with a log line) records whose staged
// file is gone and torn temporary files, and deletes staged files no record
// refers to (content never committed).
//
// Lock order: slot.mu, then Staging.mu.
type Staging struct {
	stagedDir  string
	journalDir string
	log        *slog.Logger
	clock      func() time.Time

	mu    sync.Mutex
	slots map[string]*slot // guarded by mu; one per record id being committed or committed
}

// slot is the in-memory state of one record.
type slot struct {
	// mu serialises the disk writes of the record, so the file on disk
	// always matches the last write in memory.
	mu        sync.Mutex
	gone      bool // guarded by slot.mu; removed by Done or a failed first Commit
	dirSynced bool // guarded by slot.mu; the staged file's directory entry is durable

	rec Record // guarded by Staging.mu
	has bool   // guarded by Staging.mu; rec was committed
}

// NewRecordID returns a fresh random id for a record and its staged file.
func NewRecordID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// validID keeps ids usable as file names: 1 to 64 of [A-Za-z0-9_-].
func validID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("cache: invalid record id %q", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("cache: invalid record id %q", id)
		}
	}
	return nil
}

// OpenStaging opens (creating if needed) the staging area under opts.Dir and
// loads the journal. It starts no goroutine.
func OpenStaging(opts StagingOptions) (*Staging, error) {
	if opts.Dir == "" {
		return nil, errors.New("cache: StagingOptions.Dir is empty")
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	s := &Staging{
		stagedDir:  filepath.Join(opts.Dir, "staging"),
		journalDir: filepath.Join(opts.Dir, "journal"),
		log:        orDiscard(opts.Logger),
		clock:      opts.Clock,
		slots:      make(map[string]*slot),
	}
	for _, d := range []string{s.stagedDir, s.journalDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cache: create %s: %w", d, err)
		}
	}
	if err := syncDir(opts.Dir); err != nil { // the two directories themselves
		return nil, err
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Staging) stagedPath(id string) string { return filepath.Join(s.stagedDir, id) }

// StagedFile is an open staged file. The content stays on disk after Close,
// until Done.
type StagedFile struct {
	id   string
	path string
	f    *os.File
}

// ID returns the record id the file is staged under.
func (sf *StagedFile) ID() string { return sf.id }

// Path returns the staged file's path.
func (sf *StagedFile) Path() string { return sf.path }

// File returns the open file, for ReadAt, WriteAt, Truncate and Stat.
func (sf *StagedFile) File() *os.File { return sf.f }

// Close closes the file; the content stays staged.
func (sf *StagedFile) Close() error { return sf.f.Close() }

// Stage opens the staged file of id read-write, creating it empty if it does
// not exist (the fs then copies the existing content into it when a write
// needs it). Nothing is durable before Commit.
func (s *Staging) Stage(id string) (*StagedFile, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	path := s.stagedPath(id)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache: stage %s: %w", id, err)
	}
	return &StagedFile{id: id, path: path, f: f}, nil
}

// lockSlot returns the slot of id with its mu held, creating it when create
// is set; nil when there is none.
func (s *Staging) lockSlot(id string, create bool) *slot {
	for {
		s.mu.Lock()
		sl := s.slots[id]
		if sl == nil && create {
			sl = &slot{}
			s.slots[id] = sl
		}
		s.mu.Unlock()
		if sl == nil {
			return nil
		}
		sl.mu.Lock()
		if !sl.gone {
			return sl
		}
		sl.mu.Unlock() // removed meanwhile; look again
	}
}

// Commit makes r and the current content of its staged file (staged under
// r.ID) durable, creating or replacing the record. Size and StagedPath are
// taken from the staged file; an empty State becomes RecordPending; a zero
// CreatedAt keeps the record's previous one or is set to now. It returns the
// record as stored.
func (s *Staging) Commit(r Record) (Record, error) {
	if err := validID(r.ID); err != nil {
		return Record{}, err
	}
	sl := s.lockSlot(r.ID, true)
	defer sl.mu.Unlock()
	out, err := s.commitLocked(sl, r)
	if err != nil {
		s.mu.Lock()
		if !sl.has { // nothing committed under this id: forget the slot
			sl.gone = true
			delete(s.slots, r.ID)
		}
		s.mu.Unlock()
	}
	return out, err
}

func (s *Staging) commitLocked(sl *slot, r Record) (Record, error) {
	path := s.stagedPath(r.ID)
	f, err := os.Open(path)
	if err != nil {
		return Record{}, fmt.Errorf("cache: commit %s: staged file: %w", r.ID, err)
	}
	fi, err := f.Stat()
	if err == nil {
		err = f.Sync() // fsync works on a read-only descriptor: it flushes the inode
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Record{}, fmt.Errorf("cache: commit %s: sync staged file: %w", r.ID, err)
	}
	if !sl.dirSynced {
		if err := syncDir(s.stagedDir); err != nil {
			return Record{}, err
		}
		sl.dirSynced = true
	}
	s.mu.Lock()
	prev, had := sl.rec, sl.has
	s.mu.Unlock()
	r.Size = fi.Size()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = prev.CreatedAt
		if !had {
			r.CreatedAt = s.clock()
		}
	}
	return s.writeLocked(sl, r)
}

// Modify applies fn to the current record of id and stores the result
// durably, without touching the staged content (Size and CreatedAt keep
// their committed values), as one step with respect to other Commit, Modify
// and Done calls on id (e.g. a rename racing an upload's update). fn must
// not call back into Staging. It fails with ErrNoRecord if id was never
// committed or is done.
func (s *Staging) Modify(id string, fn func(*Record)) (Record, error) {
	if err := validID(id); err != nil {
		return Record{}, err
	}
	sl := s.lockSlot(id, false)
	if sl == nil {
		return Record{}, fmt.Errorf("%w: %s", ErrNoRecord, id)
	}
	defer sl.mu.Unlock()
	s.mu.Lock()
	cur, had := sl.rec, sl.has
	s.mu.Unlock()
	if !had {
		return Record{}, fmt.Errorf("%w: %s", ErrNoRecord, id)
	}
	r := cur
	fn(&r)
	r.ID, r.Size, r.CreatedAt = cur.ID, cur.Size, cur.CreatedAt
	return s.writeLocked(sl, r)
}

// writeLocked stores r durably and in memory. The caller holds sl.mu.
func (s *Staging) writeLocked(sl *slot, r Record) (Record, error) {
	r.StagedPath = s.stagedPath(r.ID)
	data, err := json.MarshalIndent(journalFile{Version: journalVersion, Record: r}, "", "  ")
	if err != nil {
		return Record{}, fmt.Errorf("cache: encode record %s: %w", r.ID, err)
	}
	if err := writeFileAtomic(s.journalDir, r.ID+journalExt, data, true); err != nil {
		return Record{}, err
	}
	s.mu.Lock()
	sl.rec, sl.has = r, true
	s.mu.Unlock()
	return r, nil
}

// Done removes the record of id and its staged file: the upload succeeded,
// or the content is no longer wanted (file deleted before it was sent). It
// also removes a staged file that was never committed. Done of an unknown id
// is not an error.
func (s *Staging) Done(id string) error {
	if err := validID(id); err != nil {
		return err
	}
	if sl := s.lockSlot(id, false); sl != nil {
		err := os.Remove(filepath.Join(s.journalDir, id+journalExt))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			sl.mu.Unlock()
			return fmt.Errorf("cache: remove record %s: %w", id, err)
		}
		// Record first, durably: a crash before the staged file goes leaves an
		// orphan, which the next load deletes; never a record without content.
		if err := syncDir(s.journalDir); err != nil {
			sl.mu.Unlock()
			return err
		}
		s.mu.Lock()
		sl.gone = true
		delete(s.slots, id)
		s.mu.Unlock()
		sl.mu.Unlock()
	}
	if err := os.Remove(s.stagedPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cache: remove staged file %s: %w", id, err)
	}
	return nil
}

// Pending returns the committed records, oldest first (by CreatedAt, then
// ID): at mount time, the files to send again.
func (s *Staging) Pending() []Record {
	s.mu.Lock()
	out := make([]Record, 0, len(s.slots))
	for _, sl := range s.slots {
		if sl.has {
			out = append(out, sl.rec)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// load reads the journal and reconciles it with the staged files.
func (s *Staging) load() error {
	des, err := os.ReadDir(s.journalDir)
	if err != nil {
		return fmt.Errorf("cache: read journal: %w", err)
	}
	keep := make(map[string]bool) // staged files that a record (even a corrupt one) refers to
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(s.journalDir, name)
		switch {
		case isTemp(name):
			s.log.Warn("cache: journal: removing torn temporary record", "file", name)
			_ = os.Remove(path)
		case strings.HasSuffix(name, corruptExt):
			keep[strings.TrimSuffix(name, journalExt+corruptExt)] = true
		case strings.HasSuffix(name, journalExt):
			id := strings.TrimSuffix(name, journalExt)
			r, err := s.loadRecord(id, path)
			if err != nil {
				s.log.Error("cache: journal: unreadable record set aside", "file", name, "err", err)
				_ = os.Rename(path, path+corruptExt)
				keep[id] = true
				continue
			}
			fi, err := os.Stat(r.StagedPath)
			if err != nil {
				s.log.Warn("cache: journal: record without staged content skipped",
					"id", id, "name", r.Name, "err", err)
				_ = os.Remove(path)
				continue
			}
			if fi.Size() != r.Size {
				s.log.Warn("cache: journal: staged file written after its last commit",
					"id", id, "name", r.Name, "committed_size", r.Size, "size", fi.Size())
				r.Size = fi.Size()
			}
			keep[id] = true
			s.slots[id] = &slot{rec: r, has: true, dirSynced: true}
		}
	}
	staged, err := os.ReadDir(s.stagedDir)
	if err != nil {
		return fmt.Errorf("cache: read staging dir: %w", err)
	}
	for _, de := range staged {
		if !keep[de.Name()] {
			s.log.Warn("cache: staging: removing uncommitted staged file", "file", de.Name())
			_ = os.Remove(filepath.Join(s.stagedDir, de.Name()))
		}
	}
	return nil
}

func (s *Staging) loadRecord(id, path string) (Record, error) {
	if err := validID(id); err != nil {
		return Record{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Record{}, err
	}
	var jf journalFile
	if err := json.Unmarshal(data, &jf); err != nil {
		return Record{}, err
	}
	if jf.Version != journalVersion {
		return Record{}, fmt.Errorf("record version %d", jf.Version)
	}
	if jf.ID != id {
		return Record{}, fmt.Errorf("record id %q in file of %q", jf.ID, id)
	}
	r := jf.Record
	r.StagedPath = s.stagedPath(id)
	return r, nil
}
