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
	"regexp"
)

// The jobs directory holds two files:
//
//   - jobs.json, the snapshot: every job at the time of the last compaction,
//     and the name of the log that continues it. It is only ever replaced
//     atomically (temporary file, fsync, rename, fsync of the directory).
//   - jobs-NNNNNN.log, the log: one JSON record per line, appended (and
//     fsynced) for every change written since that snapshot. A record holds
//     the whole job, so the last record of a job is its state.
//
// Writing a change costs one append and one fsync, whatever the number of
// jobs; Add used to rewrite every job (O(n) per Add, O(n²) for a `cp -r` of n
// files). When the log outgrows the snapshot (twice its size, and at least
// minCompactLog), compaction writes a new snapshot naming a new, empty log,
// then deletes the old log. A crash at any point leaves a snapshot and the log
// it names (a log it does not name is a leftover, deleted at open); a torn
// last line of the log (a crash during an append that had not returned) does
// not parse and is skipped. Opening a directory always compacts, so the log a
// tracker appends to starts clean.
const (
	jobsFile      = "jobs.json"
	jobsTempGlob  = "jobs-*.tmp"
	logGlob       = "jobs-*.log"
	storeVersion  = 2 // 1: snapshot only, no log (still read)
	corruptSuffix = ".corrupt"
	// minCompactLog is the log size below which it is never compacted
	// (except at open and Close).
	minCompactLog = 256 << 10
)

var logName = regexp.MustCompile(`^jobs-[0-9]{6,}\.log$`)

// fileFormat is the snapshot. Changing it means bumping storeVersion and
// reading the old version too: a user's jobs file outlives the binary.
type fileFormat struct {
	Version int `json:"version"`
	// Log names the log that continues this snapshot ("" in version 1).
	Log  string   `json:"log,omitempty"`
	Jobs []record `json:"jobs"`
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

// store reads and writes the jobs directory. Callers serialise every method
// but load (Tracker.saveMu).
type store struct {
	dir string
	log *slog.Logger

	seq       int      // the current log's number
	logFile   *os.File // the current log, open for appending; nil before the first compaction
	logSize   int64    // bytes in the current log
	snapSize  int64    // bytes in the last snapshot written
	needsSnap bool     // an append failed: the log may end in a partial line, so compact next
	closed    bool     // Tracker.Close has run: a later write leaves no log open
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

// load returns the stored records, the snapshot's with the log's applied
// (one per job, in no particular order); none when there is no snapshot yet.
// A snapshot that does not parse is moved aside (jobs.json.corrupt) and
// reported in the log, so a damaged file costs the job list but never the
// mount. A snapshot from a newer version is an error: overwriting it would
// lose its jobs.
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
	if f.Version != 1 && f.Version != storeVersion {
		return nil, fmt.Errorf("copyjob: jobs file %s has version %d, this program reads versions 1 and %d", s.path(), f.Version, storeVersion)
	}
	if f.Log == "" {
		return f.Jobs, nil
	}
	if !logName.MatchString(f.Log) {
		return nil, fmt.Errorf("copyjob: jobs file %s names a log %q that is not one of its own", s.path(), f.Log)
	}
	if _, err := fmt.Sscanf(f.Log, "jobs-%d.log", &s.seq); err != nil {
		return nil, fmt.Errorf("copyjob: jobs file %s: log name %q: %w", s.path(), f.Log, err)
	}
	logged, err := s.readLog(filepath.Join(s.dir, f.Log))
	if err != nil {
		return nil, err
	}
	if len(logged) == 0 {
		return f.Jobs, nil
	}
	byID := make(map[string]int, len(f.Jobs))
	recs := f.Jobs
	for i, r := range recs {
		byID[r.ID] = i
	}
	for _, r := range logged {
		if i, ok := byID[r.ID]; ok {
			recs[i] = r
			continue
		}
		byID[r.ID] = len(recs)
		recs = append(recs, r)
	}
	return recs, nil
}

// readLog returns a log's records in order. A missing log is empty (a crash
// after the snapshot naming it was written, before anything was appended).
// Lines that do not parse are skipped: the last one may be torn by a crash;
// one elsewhere means damage, and is reported.
func (s *store) readLog(path string) ([]record, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("copyjob: read jobs log: %w", err)
	}
	lines := bytes.Split(data, []byte{'\n'})
	var recs []record
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r record
		if err := json.Unmarshal(line, &r); err != nil || r.ID == "" {
			if i < len(lines)-1 {
				s.log.Warn("copy jobs log has a damaged record; skipping it", "file", path, "line", i+1)
			}
			continue
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// appendRecords writes recs at the end of the log and syncs it: they are on
// disk when it returns nil.
func (s *store) appendRecords(recs []record) error {
	if s.logFile == nil || s.needsSnap {
		return errors.New("copyjob: jobs log not open") // the caller compacts instead
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // one line per record
	enc.SetEscapeHTML(false)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("copyjob: encode job: %w", err)
		}
	}
	n, err := s.logFile.Write(buf.Bytes())
	s.logSize += int64(n)
	if err == nil {
		err = s.logFile.Sync()
	}
	if err != nil {
		s.needsSnap = true // a partial line must not run into the next record
		return fmt.Errorf("copyjob: append to jobs log: %w", err)
	}
	return nil
}

// wantsCompaction reports whether the next write should be a snapshot.
func (s *store) wantsCompaction() bool {
	return s.logFile == nil || s.needsSnap || (s.logSize >= minCompactLog && s.logSize >= 2*s.snapSize)
}

// compact writes recs as a new snapshot continued by a new, empty log, and
// removes every other log.
func (s *store) compact(recs []record) (err error) {
	seq := s.seq + 1
	name := fmt.Sprintf("jobs-%06d.log", seq)
	lf, err := os.OpenFile(filepath.Join(s.dir, name), os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("copyjob: create jobs log: %w", err)
	}
	size, err := s.writeSnapshot(fileFormat{Version: storeVersion, Log: name, Jobs: recs})
	if err != nil {
		_ = lf.Close()
		_ = os.Remove(lf.Name())
		return err
	}
	if s.logFile != nil {
		_ = s.logFile.Close()
	}
	s.seq, s.logFile, s.logSize, s.snapSize, s.needsSnap = seq, lf, 0, size, false
	if s.closed {
		_ = lf.Close()
		s.logFile = nil
	}
	if old, err := filepath.Glob(filepath.Join(s.dir, logGlob)); err == nil {
		for _, p := range old {
			if filepath.Base(p) != name {
				_ = os.Remove(p)
			}
		}
	}
	return nil
}

// writeSnapshot replaces the snapshot atomically: a temporary file in the
// same directory (created 0600), fsync, rename over the old file, fsync the
// directory. A crash leaves either the old snapshot or the new one.
func (s *store) writeSnapshot(f fileFormat) (size int64, err error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // URLs stay readable: & not \u0026
	enc.SetIndent("", "\t")
	if err := enc.Encode(f); err != nil {
		return 0, fmt.Errorf("copyjob: encode jobs: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, jobsTempGlob)
	if err != nil {
		return 0, fmt.Errorf("copyjob: write jobs file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(buf.Bytes()); err != nil {
		return 0, fmt.Errorf("copyjob: write jobs file: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return 0, fmt.Errorf("copyjob: sync jobs file: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return 0, fmt.Errorf("copyjob: close jobs file: %w", err)
	}
	if err = os.Rename(tmp.Name(), s.path()); err != nil {
		return 0, fmt.Errorf("copyjob: replace jobs file: %w", err)
	}
	// The rename (and the new log's name) are durable only once the directory is.
	if d, derr := os.Open(s.dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return int64(buf.Len()), nil
}

// close closes the log file. Writes after it (a change that raced with
// Tracker.Close) are compactions, which leave no file open.
func (s *store) close() {
	s.closed = true
	if s.logFile != nil {
		_ = s.logFile.Close()
		s.logFile = nil
	}
}
