package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
)

// stateFile is the name of State's file in its directory.
const stateFile = "state.json"

// State is a small persisted key-value store for mount state (the delta
// link, for instance), kept as one JSON object in dir/state.json. Every Save
// rewrites the file atomically and durably, so a crash leaves the previous or
// the new content. It is meant for a handful of small values, not for data.
type State struct {
	dir string

	mu sync.Mutex
	m  map[string]string // guarded by mu; mirrors the file
}

// OpenState loads dir/state.json, creating dir if needed. A missing file is an
// empty state; an unreadable or corrupt one is logged and treated as empty
// (the values are hints such as a delta link, and losing them only costs a
// full resync).
func OpenState(dir string, logger *slog.Logger) (*State, error) {
	if dir == "" {
		return nil, errors.New("cache: state dir is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: create state dir: %w", err)
	}
	s := &State{dir: dir, m: make(map[string]string)}
	torn, _ := filepath.Glob(filepath.Join(dir, stateFile+tempInfix+"*"))
	for _, t := range torn { // left by a crash during Save
		_ = os.Remove(t)
	}
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		orDiscard(logger).Warn("cache: unreadable state file, starting empty", "err", err)
	default:
		if err := json.Unmarshal(data, &s.m); err != nil || s.m == nil {
			orDiscard(logger).Warn("cache: corrupt state file, starting empty", "err", err)
			s.m = make(map[string]string)
		}
	}
	return s, nil
}

// Load returns the value saved under key.
func (s *State) Load(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return v, ok
}

// Save stores value under key; once it returns nil the value is on disk.
// On error the stored state is unchanged.
func (s *State) Save(key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[key]; ok && old == value {
		return nil
	}
	next := maps.Clone(s.m)
	next[key] = value
	return s.writeLocked(next)
}

// Delete removes key; once it returns nil the removal is on disk.
func (s *State) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; !ok {
		return nil
	}
	next := maps.Clone(s.m)
	delete(next, key)
	return s.writeLocked(next)
}

func (s *State) writeLocked(next map[string]string) error {
	data, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return fmt.Errorf("cache: encode state: %w", err)
	}
	if err := writeFileAtomic(s.dir, stateFile, data, true); err != nil {
		return err
	}
	s.m = next
	return nil
}
