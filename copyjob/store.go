package copyjob

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

const (
	jobsFile      = "jobs.json"
	jobsTempGlob  = "jobs-*.tmp"
	storeVersion  = 1
	corruptSuffix = ".corrupt"
)

// fileFormat is the jobs file. Changing it means bumping storeVersion and
// reading the old version too: a user's jobs file outlives the binary.
type fileFormat struct {
	Version int      `json:"version"`
	Jobs    []record `json:"jobs"`
}

// record is a job as stored: the Job's own JSON plus what the Job keeps out of
// its JSON (the URLs, which may be pre-authenticated) and whether OnDone has
// returned for it.
type record struct {
	Job
	MonitorURL  string `json:"monitorURL,omitempty"`  // unfinished jobs only
	ResourceURL string `json:"resourceURL,omitempty"` // as the service gave it
	Notified    bool   `json:"notified,omitempty"`    // terminal and OnDone returned
}

func toRecord(j Job, notified bool) record {
	return record{Job: j, MonitorURL: j.MonitorURL, ResourceURL: j.ResourceURL, Notified: notified}
}

func (r record) job() Job {
	j := r.Job
	j.MonitorURL, j.ResourceURL = r.MonitorURL, r.ResourceURL
	return j
}

// store reads and writes the jobs file. It holds no state but the directory;
// callers serialise writes (Tracker.saveMu).
type store struct {
	dir string
	log *slog.Logger
}

// openStore creates dir (0700) if needed and removes temporary files a crash
// may have left.
func openStore(dir string, log *slog.Logger) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("copyjob: jobs dir: %w", err)
	}
	if leftovers, err := filepath.Glob(filepath.Join(dir, jobsTempGlob)); err == nil {
		for _, p := range leftovers {
			_ = os.Remove(p)
		}
	}
	return &store{dir: dir, log: log}, nil
}

func (s *store) path() string { return filepath.Join(s.dir, jobsFile) }

// load returns the stored records; none when there is no file yet. A file
// that does not parse is moved aside (jobs.json.corrupt) and reported in the
// log, so a damaged file costs the job list but never the mount. A file from
// a newer version is an error: overwriting it would lose its jobs.
func (s *store) load() ([]record, error) {
	data, err := os.ReadFile(s.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("copyjob: read jobs file: %w", err)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		aside := s.path() + corruptSuffix
		if rerr := os.Rename(s.path(), aside); rerr != nil {
			return nil, fmt.Errorf("copyjob: jobs file %s is corrupt (%v) and could not be moved aside: %w", s.path(), err, rerr)
		}
		s.log.Warn("copy jobs file is corrupt; starting with no jobs", "file", s.path(), "moved_to", aside, "err", err)
		return nil, nil
	}
	if f.Version != storeVersion {
		return nil, fmt.Errorf("copyjob: jobs file %s has version %d, this program reads version %d", s.path(), f.Version, storeVersion)
	}
	return f.Jobs, nil
}

// write replaces the jobs file atomically: a temporary file in the same
// directory (created 0600), fsync, rename over the old file, fsync the
// directory. A crash leaves either the old file or the new one.
func (s *store) write(recs []record) (err error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // URLs stay readable: & not \u0026
	enc.SetIndent("", "\t")
	if err := enc.Encode(fileFormat{Version: storeVersion, Jobs: recs}); err != nil {
		return fmt.Errorf("copyjob: encode jobs: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, jobsTempGlob)
	if err != nil {
		return fmt.Errorf("copyjob: write jobs file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("copyjob: write jobs file: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("copyjob: sync jobs file: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("copyjob: close jobs file: %w", err)
	}
	if err = os.Rename(tmp.Name(), s.path()); err != nil {
		return fmt.Errorf("copyjob: replace jobs file: %w", err)
	}
	// The rename is durable only once the directory is.
	if d, derr := os.Open(s.dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
