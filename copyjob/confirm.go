package copyjob

import (
	"container/heap"
	"context"
	"strings"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
)

// Confirming copies by listing their folder.
//
// A `cp -r` of a folder of hundreds of small files makes hundreds of file
// copies into a few folders, all ending at about the same time; one monitor
// poll each is hundreds of requests at the poll rate bound (seconds of
// waiting at 50 a second). A listing of the destination folder answers for
// all of them at once: a file copy whose destination name held nothing when
// it started (Spec.DestIsNew) is complete when the folder holds, under that
// name, a file of the source's size and quickXorHash (Spec.SourceHash) — the
// bytes are there, which is all the copy promised. When several such jobs
// into one folder are due together (at least minListBatch), the scheduler
// lists the folder once instead of polling each monitor (Config.Lister). A
// job the listing does not confirm is scheduled again as if polled (its
// back-off grows); once monitorEvery has passed since its monitor was last
// asked (or since the job began), its next check is a poll of its monitor,
// which remains the authority: a failure is only ever learnt from it, at
// most about monitorEvery late.

const (
	// minListBatch is the fewest jobs due together into one folder that a
	// listing answers for; below it, monitor polls cost no more.
	minListBatch = 3
	// monitorEvery bounds how long listings alone may check on a job.
	monitorEvery = 10 * time.Second
)

// listResult is the outcome of one listing made for jobs.
type listResult struct {
	jobs  []*tracked
	items []*remote.Item
	err   error
}

// listable reports whether a listing can confirm job e at now. Caller holds
// Tracker.mu and is the Run goroutine.
func listable(e *tracked, now time.Time) bool {
	sp := &e.job.Spec
	return !sp.IsFolder && sp.DestIsNew && sp.SourceHash != "" && sp.DestParentID != "" && sp.DestName != "" &&
		now.Sub(e.sched.monitorAsked(e.job.Created)) < monitorEvery
}

// takeListBatch returns the jobs to confirm with one listing of e's folder,
// taken out of the queue with e (already popped), or nil when e is better
// polled: no Lister, e not listable, or fewer than minListBatch jobs into
// its folder due within soon. Called by the Run goroutine (it owns sched).
func (t *Tracker) takeListBatch(q *queue, e *tracked, now time.Time, soon time.Duration) []*tracked {
	if t.cfg.Lister == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !listable(e, now) {
		return nil
	}
	parent := e.job.DestParentID
	batch := []*tracked{e}
	for _, o := range *q {
		if o.job.DestParentID == parent && !o.sched.next.After(now.Add(soon)) && listable(o, now) {
			batch = append(batch, o)
		}
	}
	if len(batch) < minListBatch {
		return nil
	}
	for _, o := range batch[1:] {
		heap.Remove(q, o.sched.index)
	}
	return batch
}

// listOnce lists the folder of the batch's jobs.
func (t *Tracker) listOnce(ctx context.Context, batch []*tracked) listResult {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.PollTimeout)
	defer cancel()
	t.mu.Lock()
	parent := batch[0].job.DestParentID
	t.mu.Unlock()
	items, err := t.cfg.Lister(ctx, parent)
	return listResult{jobs: batch, items: items, err: err}
}

// applyListing completes the jobs the listing confirms, as a monitor
// answering "completed" with the item's id would, and gives the others back
// to their monitors. It returns how long all polling must pause (a
// throttled listing), or 0.
func (t *Tracker) applyListing(r listResult, q *queue) (pause time.Duration) {
	now := time.Now()
	if r.err != nil {
		if f := classifyPollError(r.err); f.throttle > 0 {
			pause = f.throttle
		}
		t.log.Debug("listing a copy destination folder failed; polling the monitors", "jobs", len(r.jobs), "err", r.err)
	}
	byName := make(map[string]*remote.Item, len(r.items))
	for _, it := range r.items {
		if !it.IsFolder {
			byName[strings.ToLower(it.Name)] = it
		}
	}
	confirmed := 0
	for _, e := range r.jobs {
		t.mu.Lock()
		sp := e.job.Spec
		t.mu.Unlock()
		it := byName[strings.ToLower(sp.DestName)]
		if r.err == nil && it != nil && it.Size == sp.Size && it.QuickXorHash == sp.SourceHash {
			confirmed++
			t.apply(pollResult{e: e, st: &remote.JobStatus{State: remote.JobCompleted, Status: "completed",
				Percent: 100, ResourceID: it.ID}}, q)
			continue
		}
		t.mu.Lock()
		waited := e.waiters > 0
		t.mu.Unlock()
		s := &e.sched
		s.delay = min(time.Duration(float64(s.delay)*t.cfg.BackoffFactor), t.cfg.MaxInterval)
		s.polled = now
		s.next = s.due(t.cfg.FirstInterval, waited)
		heap.Push(q, e)
	}
	t.log.Debug("copy destination folder listed", "jobs", len(r.jobs), "confirmed", confirmed)
	return pause
}

// monitorAsked is when the job's monitor last answered, or created if never.
func (s *schedule) monitorAsked(created time.Time) time.Time {
	if s.monitorAt.IsZero() {
		return created
	}
	return s.monitorAt
}
