package graphtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Persistence: the metadata (drives, items, tombstones, sequence and id
// counters, delta floors, copy jobs, OAuth state) is one JSON file,
// DATADIR/state.json, replaced atomically (write to a temporary file, fsync,
// rename). Content lives in the blob store next to it (blobs.go).
//
// Saving is explicit, so that a burst of mutations does not rewrite the file
// for each: every mutation marks the store dirty (bumpSeq does it for the
// tree; auth and copy jobs set s.dirty themselves), and the file is written
// by Save, by Close (for a data directory the caller chose), and by the
// background saver that StartAutoSave starts (it saves a dirty store every
// interval; `onedrivefs fake-server` uses it). Constructors start no
// goroutine.
//
// Copy jobs are saved as json.Marshal(s.jobs): copyJob keeps what must
// survive a restart in exported fields with JSON tags. A job that pins blobs
// (the content of its source while it runs) reports them with a method
// `blobRefs() []string`, so that the load does not sweep them away.
// Upload sessions and download grants are not saved: after a restart an
// upload URL answers 404 (the client restarts the upload, as it must after an
// expired session) and download URLs are invalid.

const stateFile = "state.json"

const stateVersion = 1

type persistedState struct {
	Version   int              `json:"version"`
	Seq       int64            `json:"seq"`
	NextID    int64            `json:"nextId"`
	DefaultID string           `json:"defaultDrive"`
	Drives    []persistedDrive `json:"drives"`
	Jobs      json.RawMessage  `json:"jobs,omitempty"`
	Auth      json.RawMessage  `json:"auth,omitempty"`
	Sharing   json.RawMessage  `json:"sharing,omitempty"` // users, sites, shares (users.go)
}

type persistedDrive struct {
	ID         string       `json:"id"`
	RootID     string       `json:"rootId"`
	Deleted    int64        `json:"deleted"`
	DeltaFloor int64        `json:"deltaFloor"`
	Items      []*item      `json:"items"`
	Tombstones []*tombstone `json:"tombstones,omitempty"`
}

// blobPinner is implemented by copy jobs that hold blob references.
type blobPinner interface{ blobRefs() []string }

// load restores the state from the data directory, or sets up the drives of
// Options (each with an empty root) when there is none. Drives named in
// Options but missing on disk are added. Blob files no item names are
// removed.
func (s *Server) load() error {
	s.grantKey = []byte(randomToken(32))
	s.blobs.immediate = s.tempDir
	raw, err := os.ReadFile(filepath.Join(s.dataDir, stateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		raw = nil
	case err != nil:
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if raw != nil {
		var st persistedState
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("%s: %w", stateFile, err)
		}
		if st.Version != stateVersion {
			return fmt.Errorf("%s: unsupported version %d", stateFile, st.Version)
		}
		s.seq, s.nextID = st.Seq, st.NextID
		for _, pd := range st.Drives {
			d, err := restoreDrive(pd)
			if err != nil {
				return err
			}
			s.drives[strings.ToLower(d.ID)] = d
		}
		if len(st.Jobs) > 0 {
			if err := json.Unmarshal(st.Jobs, &s.jobs); err != nil {
				return fmt.Errorf("%s: jobs: %w", stateFile, err)
			}
		}
		if len(st.Auth) > 0 {
			if err := json.Unmarshal(st.Auth, &s.auth); err != nil {
				return fmt.Errorf("%s: auth: %w", stateFile, err)
			}
			s.auth.init()
		}
		if len(st.Sharing) > 0 {
			if err := json.Unmarshal(st.Sharing, &s.sharing); err != nil {
				return fmt.Errorf("%s: sharing: %w", stateFile, err)
			}
		}
	}
	for _, id := range append([]string{s.opts.DriveID}, s.opts.OtherDriveIDs...) {
		if s.drives[strings.ToLower(id)] == nil {
			s.drives[strings.ToLower(id)] = s.newDrive(id)
		}
	}
	s.defaultID = s.opts.DriveID
	s.ensureDefaultUserLocked()
	s.changes.rebuild(s.drives)
	refs := map[string]int{}
	for _, d := range s.drives {
		for _, it := range d.Items {
			if it.Blob != "" {
				refs[it.Blob]++
			}
		}
	}
	for _, j := range s.jobs {
		if p, ok := any(j).(blobPinner); ok {
			for _, b := range p.blobRefs() {
				refs[b]++
			}
		}
	}
	s.dirty = raw == nil && !s.tempDir
	return s.blobs.reset(refs)
}

// restoreDrive rebuilds a drive and its children indexes.
func restoreDrive(pd persistedDrive) (*drive, error) {
	d := &drive{ID: pd.ID, RootID: pd.RootID, Deleted: pd.Deleted, DeltaFloor: pd.DeltaFloor,
		Items: make(map[string]*item, len(pd.Items)), Tombstones: map[string]*tombstone{}}
	for _, it := range pd.Items {
		if it.Folder {
			it.children = map[string]string{}
		}
		d.Items[it.ID] = it
	}
	for _, it := range pd.Items {
		if it.ParentID == "" {
			continue
		}
		p := d.Items[it.ParentID]
		if p == nil || !p.Folder {
			return nil, fmt.Errorf("drive %s: item %s has no parent folder %s", d.ID, it.ID, it.ParentID)
		}
		p.children[foldName(it.Name)] = it.ID
	}
	if d.Items[d.RootID] == nil {
		return nil, fmt.Errorf("drive %s: root %s missing", d.ID, d.RootID)
	}
	for _, t := range pd.Tombstones {
		d.Tombstones[t.ID] = t
	}
	return d, nil
}

// Save writes the metadata to the data directory now, then removes the
// blobs that became unreferenced before the snapshot. Safe to call at any
// time and concurrently with requests; saves are serialised.
func (s *Server) Save() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	raw, err := s.snapshotLocked()
	garbage := s.blobs.takeGarbage()
	if err == nil {
		s.dirty = false
	}
	s.mu.Unlock()
	if err != nil {
		s.blobs.returnGarbage(garbage)
		return err
	}
	if err := writeFileAtomic(filepath.Join(s.dataDir, stateFile), raw); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		s.blobs.returnGarbage(garbage)
		return err
	}
	s.blobs.removeIfUnreferenced(garbage)
	return nil
}

// snapshotLocked marshals the state. Called with s.mu held.
func (s *Server) snapshotLocked() ([]byte, error) {
	st := persistedState{Version: stateVersion, Seq: s.seq, NextID: s.nextID, DefaultID: s.defaultID}
	ids := make([]string, 0, len(s.drives))
	for k := range s.drives {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	for _, k := range ids {
		d := s.drives[k]
		pd := persistedDrive{ID: d.ID, RootID: d.RootID, Deleted: d.Deleted, DeltaFloor: d.DeltaFloor,
			Items: make([]*item, 0, len(d.Items))}
		for _, it := range d.Items {
			pd.Items = append(pd.Items, it)
		}
		sort.Slice(pd.Items, func(i, j int) bool { return pd.Items[i].Seq < pd.Items[j].Seq })
		for _, t := range d.Tombstones {
			pd.Tombstones = append(pd.Tombstones, t)
		}
		sort.Slice(pd.Tombstones, func(i, j int) bool { return pd.Tombstones[i].Seq < pd.Tombstones[j].Seq })
		st.Drives = append(st.Drives, pd)
	}
	var err error
	if len(s.jobs) > 0 {
		if st.Jobs, err = json.Marshal(s.jobs); err != nil {
			return nil, fmt.Errorf("saving copy jobs: %w", err)
		}
	}
	if st.Auth, err = json.Marshal(&s.auth); err != nil {
		return nil, fmt.Errorf("saving auth state: %w", err)
	}
	if st.Sharing, err = json.Marshal(&s.sharing); err != nil {
		return nil, fmt.Errorf("saving users and shares: %w", err)
	}
	return json.Marshal(&st)
}

// writeFileAtomic replaces path with data: temporary file, fsync, rename.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// StartAutoSave starts a background saver that writes the state every
// interval when it has changed (interval ≤ 0: every 2 s). Close stops it and
// saves one last time. Calling it again while it runs does nothing.
func (s *Server) StartAutoSave(interval time.Duration) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	s.mu.Lock()
	if s.saveStop != nil || s.closed {
		s.mu.Unlock()
		return
	}
	stop, done := make(chan struct{}), make(chan struct{})
	s.saveStop, s.saveStopped = stop, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			s.mu.Lock()
			dirty := s.dirty
			s.mu.Unlock()
			if !dirty {
				continue
			}
			if err := s.Save(); err != nil {
				s.log.Error("saving the fake drive", "dir", s.dataDir, "err", err)
			}
		}
	}()
}

// stopAutoSave stops the background saver, if any, and waits for it.
func (s *Server) stopAutoSave() {
	s.mu.Lock()
	stop, done := s.saveStop, s.saveStopped
	s.saveStop, s.saveStopped = nil, nil
	s.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}
