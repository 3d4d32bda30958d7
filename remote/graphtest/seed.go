package graphtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Seeding and inspection helpers for tests and for `fake-server --seed`.
// They work on the default drive (/me/drive); paths are slash-separated,
// relative to its root, with or without a leading slash ("" or "/" is the
// root). Names are matched case-insensitively and validated like the API
// does. Each helper takes s.mu itself; content is written to the blob store
// without holding it.

// ItemInfo describes an item of the fake drive.
type ItemInfo struct {
	ID           string
	Name         string
	Path         string // "/a/b"; "/" for the root
	ParentID     string // "" for the root
	Size         int64  // folders: total of their descendants
	IsFolder     bool
	ChildCount   int // folders
	ETag         string
	CTag         string
	QuickXorHash string // files, base64
	SHA256       string // files, upper-case hex; "" when not computed
	Created      time.Time
	Modified     time.Time
	FSCreated    time.Time
	FSModified   time.Time
}

func (s *Server) info(d *drive, it *item) ItemInfo {
	p := s.pathOf(d, it)
	if p == "" {
		p = "/"
	}
	return ItemInfo{
		ID: it.ID, Name: it.Name, Path: p, ParentID: it.ParentID, Size: it.Size,
		IsFolder: it.Folder, ChildCount: len(it.children), ETag: it.eTag(), CTag: it.cTag(),
		QuickXorHash: it.QuickXorHash, SHA256: it.SHA256,
		Created: it.Created, Modified: it.Modified, FSCreated: it.FSCreated, FSModified: it.FSModified,
	}
}

// splitPath turns "/a/b" into ["a", "b"].
func splitPath(p string) []string {
	var segs []string
	for _, seg := range strings.Split(p, "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	return segs
}

func (s *Server) defaultDrive() *drive { return s.drives[strings.ToLower(s.defaultID)] }

// DefaultDriveID is the id of the drive served as /me/drive.
func (s *Server) DefaultDriveID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.defaultDrive().ID
}

// mkdirAllLocked returns the folder at segs, creating missing folders.
func (s *Server) mkdirAllLocked(d *drive, segs []string) (*item, error) {
	cur := d.Items[d.RootID]
	for _, name := range segs {
		next := d.child(cur, name)
		if next == nil {
			if aerr := s.checkNewPath(d, cur, name); aerr != nil {
				return nil, fmt.Errorf("%s: %s", name, aerr.message)
			}
			next = &item{Name: name, Folder: true, VisibleAt: s.now()} // seeds are visible at once
			s.insert(d, cur, next)
		} else if !next.Folder {
			return nil, fmt.Errorf("%s: %w", s.pathOf(d, next), errNotDir)
		}
		cur = next
	}
	return cur, nil
}

var errNotDir = errors.New("not a folder")

// MkdirAll creates the folder at path and any missing parents, and returns
// its id.
func (s *Server) MkdirAll(path string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.mkdirAllLocked(s.defaultDrive(), splitPath(path))
	if err != nil {
		return "", err
	}
	return it.ID, nil
}

// PutFile stores content at path (creating missing parent folders; an
// existing file keeps its id and gets the new content) with mtime as its
// fileSystemInfo times (zero: now). It returns the item id.
func (s *Server) PutFile(path string, content []byte, mtime time.Time) (string, error) {
	return s.PutReader(path, bytes.NewReader(content), mtime)
}

// PutReader is PutFile with the content read from r.
func (s *Server) PutReader(path string, r io.Reader, mtime time.Time) (string, error) {
	blob, err := s.blobs.create(r)
	if err != nil {
		return "", err
	}
	return s.placeBlob(path, blob, mtime)
}

// SparseFile stores at path a file of size bytes, all zero except its last
// len(tail) bytes, kept sparse in the blob store: a 5 GiB file takes a
// moment and no space. Its SHA-256 is only computed up to 256 MiB.
func (s *Server) SparseFile(path string, size int64, tail []byte) (string, error) {
	blob, err := s.blobs.sparse(size, tail)
	if err != nil {
		return "", err
	}
	return s.placeBlob(path, blob, time.Time{})
}

// placeBlob puts a new blob at path (see PutFile).
func (s *Server) placeBlob(path string, blob blobInfo, mtime time.Time) (string, error) {
	segs := splitPath(path)
	if len(segs) == 0 {
		s.blobs.discard(blob.Name)
		return "", fmt.Errorf("%q: not a file path", path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.defaultDrive()
	id, err := s.placeBlobLocked(d, segs, blob, mtime)
	if err != nil {
		s.blobs.discard(blob.Name)
	}
	return id, err
}

func (s *Server) placeBlobLocked(d *drive, segs []string, blob blobInfo, mtime time.Time) (string, error) {
	parent, err := s.mkdirAllLocked(d, segs[:len(segs)-1])
	if err != nil {
		return "", err
	}
	name := segs[len(segs)-1]
	var fsTime *time.Time
	if !mtime.IsZero() {
		fsTime = &mtime
	}
	if existing := d.child(parent, name); existing != nil {
		if existing.Folder {
			return "", fmt.Errorf("%s: is a folder", s.pathOf(d, existing))
		}
		existing.MimeType = mimeType(existing.Name)
		s.touchContent(d, existing, contentUpdate{blob: blob, fsModified: fsTime})
		return existing.ID, nil
	}
	if aerr := s.checkNewPath(d, parent, name); aerr != nil {
		return "", fmt.Errorf("%s: %s", name, aerr.message)
	}
	it := &item{Name: name, Blob: blob.Name, Size: blob.Size, QuickXorHash: blob.QuickXorHash,
		SHA256: blob.SHA256, MimeType: mimeType(name), VisibleAt: s.now()}
	if fsTime != nil {
		it.FSCreated, it.FSModified = mtime.UTC(), mtime.UTC()
	}
	s.insert(d, parent, it)
	return it.ID, nil
}

// SeedFromDir imports the local tree dir into the root of the default
// drive: folders, and regular files with their modification times as
// fileSystemInfo; sparse files stay sparse (only their data extents are
// copied). Existing folders are merged, existing files replaced. Entries the
// service would refuse (forbidden names, paths over 400 characters) and
// entries that are neither files nor folders (symlinks, devices) are
// skipped; the import carries on, and the returned error lists them.
func (s *Server) SeedFromDir(dir string) error {
	return s.SeedFromDirIn(s.DefaultDriveID(), dir)
}

// SeedFromDirIn is SeedFromDir into the root of the drive driveID.
func (s *Server) SeedFromDirIn(driveID, dir string) error {
	s.mu.Lock()
	d, err := s.driveByIDLocked(driveID)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	var skipped []string
	err = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		segs := splitPath(rel)
		if aerr := validateName(de.Name()); aerr != nil {
			skipped = append(skipped, fmt.Sprintf("%s (%s)", rel, aerr.message))
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case de.IsDir():
			s.mu.Lock()
			_, err := s.mkdirAllLocked(d, segs)
			s.mu.Unlock()
			if err != nil {
				skipped = append(skipped, fmt.Sprintf("%s (%v)", rel, err))
				return filepath.SkipDir
			}
			return nil
		case de.Type().IsRegular():
			fi, err := de.Info()
			if err != nil {
				return err
			}
			blob, err := s.blobs.importFile(p)
			if err != nil {
				return err
			}
			s.mu.Lock()
			_, perr := s.placeBlobLocked(d, segs, blob, fi.ModTime())
			s.mu.Unlock()
			if perr != nil {
				s.blobs.discard(blob.Name)
				skipped = append(skipped, fmt.Sprintf("%s (%v)", rel, perr))
			}
			return nil
		default:
			skipped = append(skipped, fmt.Sprintf("%s (not a regular file or folder)", rel))
			return nil
		}
	})
	if err != nil {
		return err
	}
	if len(skipped) > 0 {
		return fmt.Errorf("seeding from %s: skipped %d entries: %s", dir, len(skipped), strings.Join(skipped, "; "))
	}
	return nil
}

// ItemByPath describes the item at path in the default drive.
func (s *Server) ItemByPath(path string) (ItemInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.defaultDrive()
	it, aerr := d.walk(d.Items[d.RootID], splitPath(path))
	if aerr != nil {
		return ItemInfo{}, false
	}
	return s.info(d, it), true
}

// ItemByID describes the item with the given id in any drive.
func (s *Server) ItemByID(id string) (ItemInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.drives {
		if it := d.lookupID(id); it != nil {
			return s.info(d, it), true
		}
	}
	return ItemInfo{}, false
}

// ReadFile returns the content of the file at path in the default drive,
// whole in memory (mind sparse giants: read those through BlobPath).
func (s *Server) ReadFile(path string) ([]byte, error) {
	s.mu.Lock()
	d := s.defaultDrive()
	it, aerr := d.walk(d.Items[d.RootID], splitPath(path))
	var blob string
	switch {
	case aerr != nil:
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", path, os.ErrNotExist)
	case it.Folder:
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: is a folder", path)
	}
	blob = it.Blob
	s.mu.Unlock()
	if blob == "" {
		return []byte{}, nil
	}
	return os.ReadFile(s.blobs.path(blob))
}

// BlobPath returns the file holding the content of the file at path (for
// tests that inspect storage, e.g. sparseness); "" for an empty file.
func (s *Server) BlobPath(path string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.defaultDrive()
	it, aerr := d.walk(d.Items[d.RootID], splitPath(path))
	if aerr != nil || it.Folder {
		return "", fmt.Errorf("%s: %w", path, os.ErrNotExist)
	}
	if it.Blob == "" {
		return "", nil
	}
	return s.blobs.path(it.Blob), nil
}

// List describes the children of the folder at path, ordered by name
// (case-insensitively).
func (s *Server) List(path string) ([]ItemInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked(s.defaultDrive(), path)
}

// listLocked describes the children of the folder at path in drive d.
// Caller holds s.mu.
func (s *Server) listLocked(d *drive, path string) ([]ItemInfo, error) {
	it, aerr := d.walk(d.Items[d.RootID], splitPath(path))
	if aerr != nil {
		return nil, fmt.Errorf("%s: %w", path, os.ErrNotExist)
	}
	if !it.Folder {
		return nil, fmt.Errorf("%s: %w", path, errNotDir)
	}
	var out []ItemInfo
	for _, c := range d.sortedChildren(it) {
		out = append(out, s.info(d, c))
	}
	return out, nil
}

// EmptyRecycleBin forgets the deleted bytes of every drive (quota.deleted
// back to 0), as emptying the recycle bin would.
func (s *Server) EmptyRecycleBin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.drives {
		if d.Deleted != 0 {
			d.Deleted = 0
			s.dirty = true
		}
	}
}
