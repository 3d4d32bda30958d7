package copyjob

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests run inside testing/synctest bubbles: package time (and so the tracker,
// context deadlines and the fake poller's records) runs on a virtual clock that
// advances only when every goroutine of the test is blocked. Schedules are
// therefore exact and nothing waits for real; synctest.Test also fails a test
// that leaves a goroutine running.

// step is one scripted answer of a monitor.
type step struct {
	st    remote.JobStatus
	err   error
	block <-chan struct{} // if set, the poll waits for it (or for ctx) first
}

func running(raw string, pct float64) step {
	return step{st: remote.JobStatus{State: remote.JobRunning, Status: raw, Percent: pct}}
}
func completed(id string) step {
	return step{st: remote.JobStatus{State: remote.JobCompleted, Status: "completed", Percent: 100, ResourceID: id}}
}
func errs(err error) step { return step{err: err} }

// fakePoller answers each monitor URL from its script (the last step repeats)
// or its timed job (time-dependent answers); other URLs answer inProgress
// forever. It records when each URL was polled.
type fakePoller struct {
	mu      sync.Mutex
	scripts map[string][]step      // GUARDED_BY(mu)
	timed   map[string]timedJob    // GUARDED_BY(mu)
	calls   map[string][]time.Time // GUARDED_BY(mu)
	all     []time.Time            // GUARDED_BY(mu)
}

// timedJob is a copy running from start for total, as the service reports
// it: inProgress with percentageComplete rising linearly from 0 (or staying
// 0 when flat, as a service that reports no progress), then completed at
// every poll from start+total on.
type timedJob struct {
	start time.Time
	total time.Duration
	flat  bool
}

func (j timedJob) end() time.Time { return j.start.Add(j.total) }

func (j timedJob) status(now time.Time) *remote.JobStatus {
	if !now.Before(j.end()) {
		return &remote.JobStatus{State: remote.JobCompleted, Status: "completed", Percent: 100, ResourceID: "NEW"}
	}
	st := &remote.JobStatus{State: remote.JobRunning, Status: "inProgress"}
	if !j.flat {
		// 100*elapsed first: exact for the durations tests use.
		st.Percent = float64(100*now.Sub(j.start)) / float64(j.total)
	}
	return st
}

func newFakePoller() *fakePoller {
	return &fakePoller{scripts: map[string][]step{}, timed: map[string]timedJob{}, calls: map[string][]time.Time{}}
}

// time makes url answer as job j.
func (p *fakePoller) time(url string, j timedJob) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timed[url] = j
}

func (p *fakePoller) script(url string, steps ...step) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.scripts[url] = steps
}

func (p *fakePoller) Monitor(ctx context.Context, url string) (*remote.JobStatus, error) {
	now := time.Now()
	p.mu.Lock()
	n := len(p.calls[url])
	p.calls[url] = append(p.calls[url], now)
	p.all = append(p.all, now)
	steps := p.scripts[url]
	tj, timed := p.timed[url]
	p.mu.Unlock()
	if timed {
		return tj.status(now), nil
	}
	if len(steps) == 0 {
		return &remote.JobStatus{State: remote.JobRunning, Status: "inProgress"}, nil
	}
	s := steps[min(n, len(steps)-1)]
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	st := s.st
	return &st, nil
}

func (p *fakePoller) times(url string) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.calls[url]...)
}

func (p *fakePoller) allTimes() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.all...)
}

// gaps returns the delays between consecutive times, the first from start.
func gaps(start time.Time, ts []time.Time) []time.Duration {
	out := make([]time.Duration, len(ts))
	prev := start
	for i, ts := range ts {
		out[i], prev = ts.Sub(prev), ts
	}
	return out
}

// Monitor URLs in tests carry recognisable secrets in the path (as OneDrive
// Personal does) and in the query (as SharePoint does); the harness checks
// that neither ever reaches a log.
const (
	pathSecret  = "PATHTOKEN"
	querySecret = "QUERYSECRET"
)

func monitorURL(n int) string {
	return fmt.Sprintf("https://api.onedrive.com/v1.0/monitor/%s%d?c=x&tempauth=%s%d", pathSecret, n, querySecret, n)
}

func specFor(n int) Spec {
	return Spec{
		SourceID:   fmt.Sprintf("SRC%d", n),
		SourcePath: fmt.Sprintf("/src/file%d.bin", n),
		DestName:   fmt.Sprintf("file%d.bin", n),
		DestPath:   fmt.Sprintf("/dst/file%d.bin", n),
		MonitorURL: monitorURL(n),
		Size:       int64(n) * 1000,
		Origin:     "xattr",
	}
}

// harness is a Tracker running on a fake poller, with its OnDone calls and
// its logs recorded. Cleanup closes it and checks that Run returned and that
// the logs hold no secret.
type harness struct {
	tr     *Tracker
	poller *fakePoller
	runErr chan error

	mu   sync.Mutex
	done []Job // GUARDED_BY(mu) OnDone calls, in order
	logs *syncBuffer
}

// syncBuffer is a bytes.Buffer safe to read while the tracker logs into it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // GUARDED_BY(mu)
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newHarness builds a Tracker on cfg (Poller defaults to a fresh fakePoller)
// without starting it.
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{runErr: make(chan error, 1), logs: &syncBuffer{}}
	if cfg.Poller == nil {
		h.poller = newFakePoller()
		cfg.Poller = h.poller
	}
	cfg.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	user := cfg.OnDone
	cfg.OnDone = func(j Job) {
		h.mu.Lock()
		h.done = append(h.done, j)
		h.mu.Unlock()
		if user != nil {
			user(j)
		}
	}
	tr, err := New(cfg)
	require.NoError(t, err)
	h.tr = tr
	t.Cleanup(func() {
		assert.NoError(t, tr.Close())
		assert.NotContains(t, h.logs.String(), pathSecret, "a monitor URL reached the log")
		assert.NotContains(t, h.logs.String(), querySecret, "a monitor URL reached the log")
	})
	return h
}

// start builds a harness and runs its Tracker; cleanup checks Run returned nil.
func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := newHarness(t, cfg)
	h.run(t)
	return h
}

// run starts Run and returns once its loop is idle, so that what the test
// does next happens while Run is active.
func (h *harness) run(t *testing.T) {
	go func() { h.runErr <- h.tr.Run(context.Background()) }()
	synctest.Wait()
	t.Cleanup(func() {
		// Registered after newHarness's cleanup, so it runs first: Close here
		// and check that Run has returned — no goroutine is left behind.
		// If Run never returned, this receive would block forever and
		// synctest would fail the test as deadlocked.
		assert.NoError(t, h.tr.Close())
		assert.NoError(t, <-h.runErr)
	})
}

func (h *harness) doneJobs() []Job {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Job(nil), h.done...)
}

func (h *harness) add(t *testing.T, n int) Job {
	t.Helper()
	j, err := h.tr.Add(specFor(n))
	require.NoError(t, err)
	return j
}

// readStore returns the stored records by id, as a new Tracker would load
// them (the snapshot with the log applied), without changing the directory.
func readStore(t *testing.T, dir string) map[string]record {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, jobsFile))
	require.NoError(t, err)
	var f fileFormat
	require.NoError(t, json.Unmarshal(data, &f))
	require.Equal(t, storeVersion, f.Version)
	s := &store{dir: dir, log: slog.New(slog.DiscardHandler)}
	recs, err := s.load()
	require.NoError(t, err)
	out := map[string]record{}
	for _, r := range recs {
		out[r.ID] = r
	}
	return out
}

// copyStore copies the jobs directory's files from dir to dst: what a crash
// at this moment would leave on disk.
func copyStore(t *testing.T, dir, dst string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600))
	}
}
