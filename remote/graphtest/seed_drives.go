package graphtest

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"
)

// Seeding helpers for drives other than the default one (another user's
// drive, a site's library): the same as MkdirAll, PutFile, SparseFile and
// ItemByPath, with the drive named by id.

func (s *Server) driveByIDLocked(driveID string) (*drive, error) {
	d := s.drives[strings.ToLower(driveID)]
	if d == nil {
		return nil, fmt.Errorf("unknown drive %q", driveID)
	}
	return d, nil
}

// MkdirAllIn is MkdirAll in the drive driveID.
func (s *Server) MkdirAllIn(driveID, path string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.driveByIDLocked(driveID)
	if err != nil {
		return "", err
	}
	it, err := s.mkdirAllLocked(d, splitPath(path))
	if err != nil {
		return "", err
	}
	return it.ID, nil
}

// PutFileIn is PutFile in the drive driveID.
func (s *Server) PutFileIn(driveID, path string, content []byte, mtime time.Time) (string, error) {
	return s.PutReaderIn(driveID, path, bytes.NewReader(content), mtime)
}

// PutReaderIn is PutReader in the drive driveID.
func (s *Server) PutReaderIn(driveID, path string, r io.Reader, mtime time.Time) (string, error) {
	blob, err := s.blobs.create(r)
	if err != nil {
		return "", err
	}
	return s.placeBlobIn(driveID, path, blob, mtime)
}

// SparseFileIn is SparseFile in the drive driveID.
func (s *Server) SparseFileIn(driveID, path string, size int64, tail []byte) (string, error) {
	blob, err := s.blobs.sparse(size, tail)
	if err != nil {
		return "", err
	}
	return s.placeBlobIn(driveID, path, blob, time.Time{})
}

func (s *Server) placeBlobIn(driveID, path string, blob blobInfo, mtime time.Time) (string, error) {
	segs := splitPath(path)
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.driveByIDLocked(driveID)
	if err == nil && len(segs) == 0 {
		err = fmt.Errorf("%q: not a file path", path)
	}
	var id string
	if err == nil {
		id, err = s.placeBlobLocked(d, segs, blob, mtime)
	}
	if err != nil {
		s.blobs.discard(blob.Name)
	}
	return id, err
}

// ItemByPathIn is ItemByPath in the drive driveID.
func (s *Server) ItemByPathIn(driveID, path string) (ItemInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.drives[strings.ToLower(driveID)]
	if d == nil {
		return ItemInfo{}, false
	}
	it, aerr := d.walk(d.Items[d.RootID], splitPath(path))
	if aerr != nil {
		return ItemInfo{}, false
	}
	return s.info(d, it), true
}

// ListIn is List in the drive driveID.
func (s *Server) ListIn(driveID, path string) ([]ItemInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.driveByIDLocked(driveID)
	if err != nil {
		return nil, err
	}
	return s.listLocked(d, path)
}
