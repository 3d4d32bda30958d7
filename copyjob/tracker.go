package copyjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Tracker tracks copy jobs: Add registers one the service accepted, Run polls
// them all until they finish, and Wait, Get, Jobs, Changed and OnDone report
// the outcome. Create one with New.
type Tracker struct {
	cfg   Config // immutable after New, defaults applied
	log   *slog.Logger
	store *store // nil when Config.Dir is ""

	// saveMu serialises writes of the jobs file. Lock order: saveMu, then mu.
	saveMu sync.Mutex

	mu sync.Mutex
	// jobs holds every job known: unfinished, awaiting OnDone, and history.
	jobs map[string]*tracked // GUARDED_BY(mu)
	// history holds finished, notified jobs, oldest first.
	// INVARIANT: len(history) <= cfg.MaxHistory; each is also in jobs.
	history []*tracked // GUARDED_BY(mu)
	// incoming holds jobs added since the Run goroutine last looked; it moves
	// them into its schedule.
	incoming []*tracked // GUARDED_BY(mu)
	// hurried holds jobs that a Wait began on since the Run goroutine last
	// looked; it pulls their next poll in (takeIncoming).
	hurried []*tracked // GUARDED_BY(mu)
	// pending holds jobs whose terminal state is on disk and whose OnDone has
	// not returned, in finishing order. The notifier takes them from the front.
	pending []*tracked // GUARDED_BY(mu)
	// changed is closed and replaced whenever a job changes visibly.
	changed chan struct{} // GUARDED_BY(mu)
	ids     idGen         // GUARDED_BY(mu)
	// gen counts changes worth persisting; savedGen is the gen last written.
	// dirtySince is when gen first moved past savedGen (zero when equal).
	gen        uint64    // GUARDED_BY(mu)
	savedGen   uint64    // GUARDED_BY(mu)
	dirtySince time.Time // GUARDED_BY(mu)
	// dirty holds the jobs changed since the last write, each once
	// (INVARIANT: e.dirty iff e is in dirty).
	dirty []*tracked // GUARDED_BY(mu)
	// pausedUntil: no poll and no start slot before this (a Retry-After).
	pausedUntil time.Time // GUARDED_BY(mu)
	// starts bounds the rate of WaitStartSlot.
	starts  startLimiter // GUARDED_BY(mu)
	running bool         // GUARDED_BY(mu)
	closed  bool         // GUARDED_BY(mu)
	// runDone is closed when the latest Run returns (nil before any Run).
	runDone chan struct{} // GUARDED_BY(mu)

	wake       chan struct{} // cap 1: nudges the Run loop (a new job, something to save)
	notifyWake chan struct{} // cap 1: nudges the notifier (a job finished)
	closing    chan struct{} // closed by Close
}

// tracked is one job the tracker follows.
type tracked struct {
	// Immutable after creation.
	id         string
	monitorURL string

	// job is what Get, Jobs and Wait report.
	job Job // GUARDED_BY(Tracker.mu)
	// final is the terminal state, set once it is decided and kept until
	// OnDone has returned; job then becomes final. Nil otherwise.
	final *Job // GUARDED_BY(Tracker.mu)
	// done is closed when job becomes terminal (after OnDone).
	done chan struct{} // closing GUARDED_BY(Tracker.mu)
	// waiters counts the Waits in progress on the job; while it is above
	// zero the job is polled by the waited rule (schedule.due).
	waiters int // GUARDED_BY(Tracker.mu)
	// dirty: the job changed since it was last written (Tracker.dirty).
	dirty bool // GUARDED_BY(Tracker.mu)

	// sched is owned by the Run goroutine: Add sets it before the job is
	// published through Tracker.incoming; only Run reads or writes it after.
	sched schedule
}

// New returns a Tracker with the jobs stored in cfg.Dir loaded: unfinished ones
// are polled again once Run starts, finished ones whose OnDone never returned
// are handed to OnDone again. New starts no goroutine.
func New(cfg Config) (*Tracker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Tracker{
		cfg:        cfg,
		log:        cfg.Logger,
		jobs:       make(map[string]*tracked),
		changed:    make(chan struct{}),
		wake:       make(chan struct{}, 1),
		notifyWake: make(chan struct{}, 1),
		closing:    make(chan struct{}),
		starts:     startLimiter{rate: cfg.MaxStartsPerSecond, burst: float64(cfg.StartBurst)},
	}
	if cfg.Dir == "" {
		return t, nil
	}
	if t.store, err = openStore(cfg.Dir, t.log); err != nil {
		return nil, err
	}
	recs, err := t.store.load()
	if err != nil {
		return nil, err
	}
	t.restore(recs)
	// Start from a clean log: the loaded state becomes the snapshot. If that
	// cannot be written, the loaded jobs are still tracked; every save tries
	// the snapshot again (and Add reports ErrNotPersisted until one succeeds).
	if err := t.store.compact(t.snapshotLocked()); err != nil {
		t.log.Error("copy jobs cannot be written; changes will not survive a restart until they can", "dir", cfg.Dir, "err", err)
	}
	return t, nil
}

// restore puts loaded records in place. Called by New only, before any other
// goroutine can see t, so it takes no lock.
func (t *Tracker) restore(recs []record) {
	slices.SortFunc(recs, func(a, b record) int { return strings.Compare(a.ID, b.ID) })
	var finished []*tracked
	resumed := 0
	for _, r := range recs {
		if r.ID == "" {
			continue
		}
		j := r.job()
		e := &tracked{id: j.ID, monitorURL: j.MonitorURL, done: make(chan struct{})}
		e.sched.delay = t.cfg.FirstInterval
		switch {
		case !j.State.Terminal():
			if e.monitorURL == "" { // cannot be polled: fail it rather than wait forever
				failed := j
				failed.State, failed.Finished = StateFailed, time.Now()
				failed.Error = &JobError{Code: CodeMonitorGone, Message: "the stored job has no monitor URL"}
				e.job, e.final = j, &failed
				t.pending = append(t.pending, e)
				break
			}
			e.job = j
			resumed++
		case r.Notified:
			e.job = j
			close(e.done)
			finished = append(finished, e)
		default: // terminal on disk, OnDone never returned: withhold the outcome until it has
			running := j
			running.State, running.Raw, running.Finished, running.Error = StateRunning, "inProgress", time.Time{}, nil
			running.MonitorURL = ""
			e.job, e.final = running, &j
			t.pending = append(t.pending, e)
		}
		t.jobs[e.id] = e
		t.ids.observe(e.id)
	}
	slices.SortStableFunc(finished, func(a, b *tracked) int { return a.job.Finished.Compare(b.job.Finished) })
	t.history = finished
	t.trimHistoryLocked()
	slices.SortStableFunc(t.pending, func(a, b *tracked) int { return a.final.Finished.Compare(b.final.Finished) })
	if len(recs) > 0 {
		t.log.Info("copy jobs loaded", "resumed", resumed, "awaiting_notification", len(t.pending), "history", len(t.history))
	}
}

// Add registers a copy the service has accepted. The job is on disk before
// Add returns, and Run polls it from then on (or from when Run starts).
//
// On a write failure the job is still tracked and returned, with an error
// wrapping ErrNotPersisted: only its survival across a restart is lost.
func (t *Tracker) Add(spec Spec) (Job, error) {
	if err := validateMonitorURL(spec.MonitorURL); err != nil {
		return Job{}, err
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return Job{}, ErrClosed
	}
	now := time.Now()
	e := &tracked{monitorURL: spec.MonitorURL, done: make(chan struct{})}
	e.id = t.ids.next(now)
	e.job = Job{ID: e.id, Spec: spec, State: StateQueued, Created: now, Updated: now}
	e.sched = schedule{next: now.Add(t.cfg.FirstInterval), delay: t.cfg.FirstInterval, index: -1}
	t.jobs[e.id] = e
	t.incoming = append(t.incoming, e)
	t.changedLocked(e, now)
	j := e.job
	t.mu.Unlock()
	nudge(t.wake)

	t.log.Info("copy job accepted", jobAttrs(j)...)
	if err := t.save(false); err != nil {
		t.log.Error("copy job not persisted; it will be lost on restart", "job", j.ID, "err", err)
		return j, fmt.Errorf("%w: %w", ErrNotPersisted, err)
	}
	return j, nil
}

func validateMonitorURL(raw string) error {
	if raw == "" {
		return errors.New("copyjob: Spec.MonitorURL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		// Never echo the URL: it is a credential.
		return errors.New("copyjob: Spec.MonitorURL is not an absolute http(s) URL")
	}
	return nil
}

// Amend changes a job's Spec (typically its Then: what the caller did to the
// pending destination meanwhile) and returns the job as amended, once the
// change is on disk. fn gets a copy of the Spec to change; it runs with the
// tracker's lock held and must not call the tracker. The MonitorURL cannot be
// changed (fn's change to it is ignored).
//
// Amend works until the job's OnDone has returned: OnDone is given the Spec
// as amended so far, and the OnDone a restart repeats (after a crash before
// it returned) is given every amendment made before the crash. An Amend made
// while OnDone runs is stored but cannot reach that OnDone's argument: the
// caller hands such a change over itself (e.g. through its own state, under a
// lock OnDone takes too). Once OnDone has returned, Amend returns the job and
// ErrNotified without calling fn, and the caller applies the change to the new
// item itself. It returns ErrNotFound for an unknown id and ErrClosed after
// Close. A failed write leaves the change in memory and returns an error
// wrapping ErrNotPersisted.
func (t *Tracker) Amend(id string, fn func(*Spec)) (Job, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return Job{}, ErrClosed
	}
	e, ok := t.jobs[id]
	if !ok {
		t.mu.Unlock()
		return Job{}, ErrNotFound
	}
	if e.final == nil && e.job.State.Terminal() {
		j := e.job
		t.mu.Unlock()
		return j, ErrNotified
	}
	spec := e.job.Spec
	fn(&spec)
	spec.MonitorURL = e.job.MonitorURL
	e.job.Spec = spec
	if e.final != nil {
		spec.MonitorURL = e.final.MonitorURL
		e.final.Spec = spec
	}
	t.changedLocked(e, time.Now())
	j := e.job
	t.mu.Unlock()

	if err := t.save(false); err != nil {
		t.log.Error("copy job change not persisted; it will be lost on restart", "job", j.ID, "err", err)
		return j, fmt.Errorf("%w: %w", ErrNotPersisted, err)
	}
	return j, nil
}

// Pending returns the jobs whose outcome has not been handed over yet: the
// unfinished ones, and the finished ones whose OnDone has not returned
// (reported as running until it has), oldest first. A caller uses it to find
// the copies still pending from a source or into a folder.
func (t *Tracker) Pending() []Job { return t.PendingWhere(nil) }

// PendingWhere is Pending restricted to the jobs keep accepts (all when keep
// is nil), e.g. those taken from one source id. keep runs with the tracker's
// lock held, once per pending job; it must not keep or change the job it is
// shown, nor call the tracker. Nothing is copied for jobs it refuses.
func (t *Tracker) PendingWhere(keep func(*Job) bool) []Job {
	t.mu.Lock()
	var out []Job
	for _, e := range t.jobs {
		if (e.final != nil || !e.job.State.Terminal()) && (keep == nil || keep(&e.job)) {
			out = append(out, e.job)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Job) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Get returns the job with that id.
func (t *Tracker) Get(id string) (Job, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.jobs[id]
	if !ok {
		return Job{}, false
	}
	return e.job, true
}

// Jobs returns every job known, unfinished and history, newest first.
func (t *Tracker) Jobs() []Job {
	t.mu.Lock()
	out := make([]Job, 0, len(t.jobs))
	for _, e := range t.jobs {
		out = append(out, e.job)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Job) int { return strings.Compare(b.ID, a.ID) })
	return out
}

// LatestForSource returns the newest job whose SourceID or SourcePath is key.
func (t *Tracker) LatestForSource(key string) (Job, bool) {
	if key == "" {
		return Job{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var best *tracked
	for _, e := range t.jobs {
		if (e.job.SourceID == key || e.job.SourcePath == key) && (best == nil || e.id > best.id) {
			best = e
		}
	}
	if best == nil {
		return Job{}, false
	}
	return best.job, true
}

// Wait blocks until the job is terminal and OnDone has returned for it, and
// returns it; a failed job is returned with a nil error (check Job.State and
// Job.Error). When ctx is done first, Wait returns the job as it stands and
// ctx.Err(); the job goes on being tracked. It returns ErrNotFound for an
// unknown id and ErrClosed when the tracker is closed before the job ends.
//
// While a Wait is in progress the job is polled promptly rather than with
// the back-off (see the package doc, "What it owns"), so Wait returns soon after
// the service reports the end. Use it for a caller that is blocked on the
// job; a background observer should prefer Changed.
func (t *Tracker) Wait(ctx context.Context, id string) (Job, error) {
	t.mu.Lock()
	e, ok := t.jobs[id]
	if !ok {
		t.mu.Unlock()
		return Job{}, ErrNotFound
	}
	e.waiters++
	hurry := e.waiters == 1 && e.final == nil && !e.job.State.Terminal()
	if hurry {
		t.hurried = append(t.hurried, e)
	}
	t.mu.Unlock()
	if hurry {
		nudge(t.wake)
	}

	var err error
	select {
	case <-e.done:
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.closing:
		err = ErrClosed
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e.waiters--
	select {
	case <-e.done: // finished is finished, even if ctx ended at the same time
		return e.job, nil
	default:
		return e.job, err
	}
}

// Changed returns a channel that is closed at the next visible change of any
// job (new job, status word, percentage, end). Take the channel before
// reading the jobs, then wait on it:
//
//	ch := t.Changed(); show(t.Jobs()); <-ch
func (t *Tracker) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

// Close stops Run (waiting for it to return, including an OnDone in
// progress), makes pending Waits return ErrClosed, and writes unsaved
// progress. Jobs not finished stay on disk for the next Tracker. Close is
// idempotent.
func (t *Tracker) Close() error {
	t.mu.Lock()
	first := !t.closed
	t.closed = true
	done := t.runDone
	t.mu.Unlock()
	if first {
		close(t.closing)
	}
	if done != nil {
		<-done
	}
	// A final compaction also drops the monitor URLs of finished jobs that
	// earlier log records still hold.
	err := t.save(true)
	if t.store != nil {
		t.saveMu.Lock()
		t.store.close()
		t.saveMu.Unlock()
	}
	return err
}

// changedLocked records a visible, persist-worthy change of e at now.
// REQUIRES(mu)
func (t *Tracker) changedLocked(e *tracked, now time.Time) {
	if t.gen == t.savedGen {
		t.dirtySince = now
	}
	t.gen++
	if !e.dirty {
		e.dirty = true
		t.dirty = append(t.dirty, e)
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

// save writes the changes made since the last write (one record per changed
// job, appended to the log), or a whole snapshot when the store asks for a
// compaction, or when final and the log is not empty. Callers that need their
// change durable call it after making the change: if another save got there
// first (concurrent Adds share one write and one fsync), there is nothing
// left to do.
func (t *Tracker) save(final bool) error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	st := t.store // its fields are guarded by saveMu, held
	compact := st != nil && (st.wantsCompaction() || (final && st.logSize > 0))
	t.mu.Lock()
	if t.gen == t.savedGen && (!compact || st.closed) {
		t.mu.Unlock()
		return nil
	}
	gen := t.gen
	dirty := t.takeDirtyLocked()
	var recs []record
	switch {
	case st == nil:
	case compact:
		recs = t.snapshotLocked()
	default:
		recs = make([]record, 0, len(dirty))
		for _, e := range dirty {
			if t.jobs[e.id] == e { // not dropped from history meanwhile
				recs = append(recs, e.recordLocked())
			}
		}
	}
	t.mu.Unlock()

	var err error
	switch {
	case st == nil:
	case compact:
		err = st.compact(recs)
	default:
		if err = st.appendRecords(recs); err != nil {
			t.log.Warn("appending to the copy jobs log failed; writing a snapshot instead", "err", err)
			t.mu.Lock()
			recs = t.snapshotLocked()
			t.mu.Unlock()
			err = st.compact(recs)
		}
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		for _, e := range dirty {
			if !e.dirty {
				e.dirty = true
				t.dirty = append(t.dirty, e)
			}
		}
		t.dirtySince = time.Now() // the loop retries after SaveDelay, not at once
		return err
	}
	t.savedGen = gen
	if t.gen == gen {
		t.dirtySince = time.Time{}
	} else {
		t.dirtySince = time.Now()
	}
	return nil
}

// takeDirtyLocked returns the changed jobs and marks them clean.
// REQUIRES(mu)
func (t *Tracker) takeDirtyLocked() []*tracked {
	dirty := t.dirty
	t.dirty = nil
	for _, e := range dirty {
		e.dirty = false
	}
	return dirty
}

// recordLocked is e as stored: its terminal state as soon as that is decided
// (not yet notified), else what it reports.
// REQUIRES(Tracker.mu)
func (e *tracked) recordLocked() record {
	if e.final != nil {
		return toRecord(*e.final, false)
	}
	return toRecord(e.job, e.job.State.Terminal())
}

// snapshotLocked returns the records of every job, ordered by id.
// REQUIRES(mu)
func (t *Tracker) snapshotLocked() []record {
	recs := make([]record, 0, len(t.jobs))
	for _, e := range t.jobs {
		recs = append(recs, e.recordLocked())
	}
	slices.SortFunc(recs, func(a, b record) int { return strings.Compare(a.ID, b.ID) })
	return recs
}

// saveDue returns when debounced progress should be written, if anything
// waits to be written.
func (t *Tracker) saveDue() (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen == t.savedGen {
		return time.Time{}, false
	}
	return t.dirtySince.Add(t.cfg.SaveDelay), true
}

// trimHistoryLocked drops the oldest finished jobs beyond MaxHistory.
// REQUIRES(mu)
func (t *Tracker) trimHistoryLocked() {
	for len(t.history) > t.cfg.MaxHistory {
		delete(t.jobs, t.history[0].id)
		t.history[0] = nil
		t.history = t.history[1:]
	}
}

// nudge wakes a goroutine waiting on ch (cap 1) without blocking.
func nudge(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// jobAttrs are the log attributes that identify a job. Never the monitor URL.
func jobAttrs(j Job) []any {
	attrs := []any{
		"job", j.ID,
		"source", firstNonEmpty(j.SourcePath, j.SourceID),
		"destination", firstNonEmpty(j.DestPath, j.DestName),
	}
	if j.MonitorURL != "" {
		attrs = append(attrs, "monitor_host", monitorHost(j.MonitorURL))
	}
	return attrs
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
