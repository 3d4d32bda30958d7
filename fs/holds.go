package fs

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/onedrivefs/onedrivefs/copyjob"
	"github.com/onedrivefs/onedrivefs/remote"
)

// Holds on the source of a pending copy (pending.go): while a copy taken
// from a file runs, the file's own uploads wait in the journal and its
// deletion is deferred (durably, in cache.State), so that the service copies
// the version the caller saw.

// holdSource holds src's own uploads and deletion while a copy taken from
// it runs.
func (f *FS) holdSource(src *entry) {
	fl := f.ensureFile(src)
	fl.mu.Lock()
	fl.holds++
	fl.mu.Unlock()
}

// releaseSource ends a hold of holdSource; the last one lets the held
// upload and deletion go.
func (f *FS) releaseSource(src *entry) {
	fl := f.ensureFile(src)
	fl.mu.Lock()
	fl.holds--
	held := fl.holds == 0 && fl.dirty
	fl.mu.Unlock()
	if held {
		f.kickWriteback()
	}
	f.mu.Lock()
	id := ""
	if src.item.Load() != nil && f.deferredDeletes[src.item.Load().ID] {
		id = src.item.Load().ID
	}
	f.mu.Unlock()
	if id != "" {
		f.kickWriteback()
	}
}

// deferredDeletesKey is where the deletions held for running copies are
// kept in cache.State (a JSON array of item ids).
const deferredDeletesKey = "deferredDeletes"

// deferDelete records that item id is to be deleted once the copies taken
// from it have completed (durably: a restart still deletes it).
func (f *FS) deferDelete(id string) {
	f.mu.Lock()
	if f.deferredDeletes == nil {
		f.deferredDeletes = make(map[string]bool)
	}
	f.deferredDeletes[id] = true
	f.mu.Unlock()
	f.saveDeferredDeletes()
}

func (f *FS) saveDeferredDeletes() {
	f.mu.Lock()
	ids := make([]string, 0, len(f.deferredDeletes))
	for id := range f.deferredDeletes {
		ids = append(ids, id)
	}
	f.mu.Unlock()
	b, _ := json.Marshal(ids)
	if err := f.state.Save(deferredDeletesKey, string(b)); err != nil {
		f.log.Warn("saving the deletions held for running copies failed", "err", err)
	}
}

// loadDeferredDeletes reads the deletions an earlier mount held.
func (f *FS) loadDeferredDeletes() {
	v, ok := f.state.Load(deferredDeletesKey)
	if !ok {
		return
	}
	var ids []string
	if json.Unmarshal([]byte(v), &ids) != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if f.deferredDeletes == nil {
			f.deferredDeletes = make(map[string]bool)
		}
		f.deferredDeletes[id] = true
	}
}

// copiedFrom reports whether a copy job not yet settled was taken from item
// id (its uploads and deletion are then held).
func (f *FS) copiedFrom(id string) bool {
	if f.copies == nil || id == "" {
		return false
	}
	if len(f.copies.PendingWhere(func(j *copyjob.Job) bool { return j.SourceID == id && j.Origin == originCP })) > 0 {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.pendingCopies {
		if c.srcItem.ID == id {
			return true
		}
	}
	return false
}

// sendDeferredDeletes deletes the held items no copy needs any more, and
// reports how many still wait.
func (f *FS) sendDeferredDeletes(ctx context.Context) (left int) {
	f.mu.Lock()
	var ids []string
	for id := range f.deferredDeletes {
		ids = append(ids, id)
	}
	f.mu.Unlock()
	changed := false
	for _, id := range ids {
		if f.copiedFrom(id) {
			left++
			continue
		}
		if err := f.itemClient(id).Delete(ctx, id, ""); err != nil && !errors.Is(err, remote.ErrNotFound) {
			left++
			continue
		}
		f.mu.Lock()
		delete(f.deferredDeletes, id)
		f.mu.Unlock()
		changed = true
	}
	if changed {
		f.saveDeferredDeletes()
	}
	return left
}
