package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/copyjob"
	"github.com/onedrivefs/onedrivefs/metastore"
	"github.com/onedrivefs/onedrivefs/remote"
)

// Offline mode. The remote client detects that the service is unreachable
// (a connection that cannot be opened, or a service that answers nothing:
// remote.Link, remote/unanswered.go) and from then on fails every request
// at once with remote.ErrOffline. While offline:
//
//   - the tree is read from memory and the store (store.go), cached files
//     from the content cache; an uncached read fails at once (EIO) and the
//     log says the file is not available offline;
//   - new files and writes go to the staging journal as any failed upload
//     does (file.go);
//   - mkdir, rename, unlink and utimens (touch, offline_attr.go) are
//     applied to the tree and recorded in the offline journal: records in
//     the store, written in the same transaction as the tree's change, so
//     a kill -9 loses neither. A folder made offline gets a local id
//     (localIDPrefix) until the replay creates it and binds its entry, its
//     stored children and the journal records that name it to the
//     service's id;
//   - in folders shared from other drives only new content is journaled;
//     other changes fail at once (offline_attr.go).
//
// The prober (runProber) asks the service every few seconds, with back-off;
// once it answers, the offline journal is replayed in order, then the
// content journal is sent (the sender waits while offline records remain,
// sendJournal), then a delta poll catches up; the log says "back online,
// N changes sent".

// Keys of the offline journal in the store's values.
const (
	offlinePrefix = "offline/"    // offlinePrefix + %020d seq → offlineRecord (JSON)
	boundPrefix   = "offline-id/" // boundPrefix + local id → the service's id
)

// Prober back-off bounds. How long a request may wait for its reply
// before the service is checked is remote's (remote/unanswered.go).
const (
	probeMin = time.Second
	probeMax = 10 * time.Second
)

// offlineRecord is one metadata change made offline.
type offlineRecord struct {
	Seq uint64 `json:"seq"`
	// Op is "mkdir", "move", "delete", "copy" or "times".
	Op string `json:"op"`
	// ID is the item (for mkdir, the folder's local id).
	ID string `json:"id"`
	// ParentID and Name: mkdir's place; a move's new place ("" keeps).
	ParentID string `json:"parentId,omitempty"`
	Name     string `json:"name,omitempty"`
	// ETag is the version deleted (a delete does not remove a version
	// changed on the service since).
	ETag string `json:"eTag,omitempty"`
	// Path names the item in log lines.
	Path string `json:"path,omitempty"`
	// A copy's destination path, and the source's size and kind.
	DestPath string `json:"destPath,omitempty"`
	Size     int64  `json:"size,omitempty"`
	Folder   bool   `json:"folder,omitempty"`
	// Times: the modification time set, and the content version (cTag)
	// it was set on (offline_attr.go).
	Mtime time.Time `json:"mtime,omitzero"`
	CTag  string    `json:"cTag,omitempty"`
	Time  time.Time `json:"time"`
}

// isOffline reports whether the service is known to be unreachable.
func (f *FS) isOffline() bool { return f.remote.Link().State().Offline }

// journalOffline records rec and the tree's change (put, del) in one
// transaction, and waits until it is on disk.
func (f *FS) journalOffline(rec offlineRecord, put []*remote.Item, del []string, listed string) error {
	if f.store == nil {
		return fmt.Errorf("no local copy of the tree to journal changes in: %w", remote.ErrOffline)
	}
	rec.Time = f.now()
	err := f.storeWrite(&storeOp{put: put, del: del, fn: func(tx *metastore.Tx) error {
		// The writer runs one transaction at a time, in queue order:
		// records are numbered in the order the changes were made.
		rec.Seq = max(uint64(time.Now().UnixNano()), f.offlineSeq+1)
		f.offlineSeq = rec.Seq
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if listed != "" {
			if err := tx.SetValue(listedPrefix+listed, []byte{1}); err != nil {
				return err
			}
		}
		return tx.SetValue(fmt.Sprintf("%s%020d", offlinePrefix, rec.Seq), b)
	}})
	if err != nil {
		return fmt.Errorf("journaling an offline change: %w", err)
	}
	f.metaRecords.Add(1)
	f.log.Info("offline: change journaled, sent when OneDrive is back", "op", rec.Op, "path", rec.Path)
	return nil
}

// mkdirOffline makes folder name in the folder parentID while offline: a
// local item, journaled.
func (f *FS) mkdirOffline(dir *entry, parentID, name string) (*remote.Item, error) {
	id := newLocalID()
	now := f.now()
	it := &remote.Item{ID: id, Name: name, ParentID: parentID, IsFolder: true,
		Created: now, Modified: now, FSCreated: now, FSModified: now}
	f.mu.Lock()
	path := f.pathOfFSLocked(dir) + "/" + name
	f.mu.Unlock()
	rec := offlineRecord{Op: "mkdir", ID: id, ParentID: parentID, Name: name, Path: path}
	if err := f.journalOffline(rec, []*remote.Item{it}, nil, id); err != nil {
		return nil, err
	}
	return it, nil
}

// moveOffline renames or moves e (item id) while offline.
func (f *FS) moveOffline(e *entry, upd remote.ItemUpdate) (*remote.Item, error) {
	f.mu.Lock()
	cur := e.item.Load()
	path := f.pathOfFSLocked(e)
	f.mu.Unlock()
	if cur == nil {
		return nil, errRemoved
	}
	it := *cur
	if upd.Name != "" {
		it.Name = upd.Name
	}
	if upd.ParentID != "" {
		it.ParentID = upd.ParentID
	}
	it.Modified = f.now()
	rec := offlineRecord{Op: "move", ID: cur.ID, ParentID: upd.ParentID, Name: upd.Name, Path: path}
	if err := f.journalOffline(rec, []*remote.Item{&it}, nil, ""); err != nil {
		return nil, err
	}
	return &it, nil
}

// deleteOffline deletes e (item id, version etag) while offline.
func (f *FS) deleteOffline(e *entry, id, etag string) error {
	f.mu.Lock()
	path := f.pathOfFSLocked(e)
	f.mu.Unlock()
	return f.journalOffline(offlineRecord{Op: "delete", ID: id, ETag: etag, Path: path}, nil, []string{id}, "")
}

// copyOffline journals a server-side copy (the xattr trigger) asked for
// while offline: it is started when the service is back, in order with the
// other offline changes, from the version the source had then.
func (f *FS) copyOffline(src *remote.Item, srcPath, parentID, name, dstPath string) error {
	rec := offlineRecord{Op: "copy", ID: src.ID, ParentID: parentID, Name: name, Path: srcPath,
		DestPath: dstPath, Size: src.Size, Folder: src.IsFolder || src.IsRoot}
	return f.journalOffline(rec, nil, nil, "")
}

// newLocalID returns a fresh local id for a folder made offline.
func newLocalID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return localIDPrefix + hex.EncodeToString(b[:])
}

// offlinePending reports whether offline records wait to be replayed.
func (f *FS) offlinePending() bool { return f.metaRecords.Load() > 0 }

// holdJournal reports whether the content journal must wait: offline, or
// metadata changes made offline not yet replayed (a file journaled into a
// folder made offline goes there once the folder exists).
func (f *FS) holdJournal(ctx context.Context) bool {
	if f.isOffline() {
		return true
	}
	if !f.offlinePending() {
		return false
	}
	_, err := f.replayOffline(ctx)
	return err != nil || f.offlinePending()
}

// replayOffline sends the offline journal's records in order and returns
// how many it applied. It stops at the first that cannot be sent for now
// (offline again, a transient failure); a record the service refuses for
// good is logged and dropped (its content, if any, is in the content
// journal, which recreates what it needs by path).
func (f *FS) replayOffline(ctx context.Context) (int, error) {
	if f.store == nil || !f.offlinePending() {
		return 0, nil
	}
	f.replayMu.Lock()
	defer f.replayMu.Unlock()
	type stored struct {
		key string
		rec offlineRecord
	}
	var recs []stored
	bound := map[string]string{}
	err := f.store.View(func(tx *metastore.ReadTx) error {
		if err := tx.EachValue(boundPrefix, func(k string, v []byte) error {
			bound[k[len(boundPrefix):]] = string(v)
			return nil
		}); err != nil {
			return err
		}
		return tx.EachValue(offlinePrefix, func(k string, v []byte) error {
			var r offlineRecord
			if err := json.Unmarshal(v, &r); err != nil {
				f.log.Error("an unreadable offline journal record is skipped", "key", k, "err", err)
				return nil
			}
			recs = append(recs, stored{k, r})
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	f.metaRecords.Store(int64(len(recs)))
	resolve := func(id string) string {
		if s, ok := bound[id]; ok {
			return s
		}
		return id
	}
	n := 0
	for _, s := range recs {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		var extra func(tx *metastore.Tx) error
		err := f.replayRecordOffline(ctx, s.rec, resolve, bound, &extra)
		if err != nil && retryLater(err) {
			return n, err
		}
		if err != nil {
			f.log.Error("a change made offline was refused by OneDrive; dropped", "op", s.rec.Op, "path", s.rec.Path, "err", err)
		} else {
			n++
		}
		key := s.key
		if werr := f.storeWrite(&storeOp{fn: func(tx *metastore.Tx) error {
			if extra != nil {
				if err := extra(tx); err != nil {
					return err
				}
			}
			return tx.SetValue(key, nil)
		}}); werr != nil {
			return n, werr
		}
		f.metaRecords.Add(-1)
	}
	return n, nil
}

// retryLater reports whether an offline record that failed with err is
// tried again later (the replay stops there, keeping the order): the
// service unreachable, throttling, a 5xx, a cancelled call. Anything else
// is the service's final answer about the record.
func retryLater(err error) bool {
	var re *remote.Error
	switch {
	case errors.Is(err, remote.ErrOffline), errors.Is(err, remote.ErrThrottled),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &re):
		return re.StatusCode >= 500
	case errors.Is(err, remote.ErrOutcomeUnknown):
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// replayRecordOffline sends one offline record. extra is set to what the
// store must do with the record's removal (a folder's binding).
func (f *FS) replayRecordOffline(ctx context.Context, r offlineRecord, resolve func(string) string,
	bound map[string]string, extra *func(tx *metastore.Tx) error) error {
	switch r.Op {
	case "mkdir":
		parent := resolve(r.ParentID)
		it, err := f.remote.CreateFolder(ctx, parent, r.Name, remote.ConflictFail)
		if errors.Is(err, remote.ErrConflict) {
			// Made meanwhile (or by an earlier replay that died before
			// recording it): the folder of that name is the one.
			it, err = f.remote.Child(ctx, parent, r.Name)
			if err == nil && !it.IsFolder {
				err = fmt.Errorf("a file now holds the name of a folder made offline: %w", remote.ErrConflict)
			}
		}
		if err != nil {
			return err
		}
		bound[r.ID] = it.ID
		*extra = func(tx *metastore.Tx) error { return bindStored(tx, r.ID, it) }
		f.bindLocalFolder(r.ID, it)
		f.log.Info("sent a folder made offline", "path", r.Path)
		return nil
	case "move":
		id := resolve(r.ID)
		if isLocalID(id) {
			return nil // its mkdir was dropped
		}
		upd := remote.ItemUpdate{Name: r.Name, ParentID: resolve(r.ParentID)}
		it, err := f.remote.Update(ctx, id, upd)
		if errors.Is(err, remote.ErrConflict) && r.Name != "" {
			upd.Name = conflictName(r.Name, f.now())
			f.log.Warn("a name given offline is taken on OneDrive; the item is renamed beside it", "path", r.Path, "name", upd.Name)
			it, err = f.remote.Update(ctx, id, upd)
		}
		if errors.Is(err, remote.ErrNotFound) {
			f.log.Warn("an item moved offline was deleted on OneDrive meanwhile", "path", r.Path)
			return nil
		}
		if err != nil {
			return err
		}
		f.mu.Lock()
		if e := f.byID[it.ID]; e != nil {
			f.setItemFSLocked(it)
		}
		f.mu.Unlock()
		f.storePut(it)
		f.log.Info("sent a move made offline", "path", r.Path)
		return nil
	case "delete":
		id := resolve(r.ID)
		if isLocalID(id) {
			return nil
		}
		err := f.remote.Delete(ctx, id, r.ETag)
		switch {
		case errors.Is(err, remote.ErrNotFound):
			return nil
		case errors.Is(err, remote.ErrPreconditionFailed):
			f.log.Warn("an item deleted offline was changed on OneDrive meanwhile; it is kept", "path", r.Path)
			return nil
		case err != nil:
			return err
		}
		f.log.Info("sent a deletion made offline", "path", r.Path)
		return nil
	case "copy":
		src, parent := resolve(r.ID), resolve(r.ParentID)
		if isLocalID(src) || isLocalID(parent) || f.copies == nil {
			return nil
		}
		monitor, err := f.postCopy(ctx, f.remote, src, remote.CopyRequest{DestParentID: parent, Name: r.Name, Conflict: remote.ConflictFail})
		if err != nil {
			return err
		}
		j, err := f.copies.Add(copyjob.Spec{SourceID: src, SourcePath: r.Path, DestParentID: parent, DestName: r.Name,
			DestPath: r.DestPath, MonitorURL: monitor, Size: r.Size, IsFolder: r.Folder, Origin: originXattr})
		if err != nil && !errors.Is(err, copyjob.ErrNotPersisted) {
			return err
		}
		f.log.Info("started a server-side copy asked for offline", "job", j.ID, "source", r.Path, "destination", r.DestPath)
		return nil
	case "times":
		return f.replayTimesOffline(ctx, r, resolve) // offline_attr.go
	}
	return fmt.Errorf("unknown offline record %q", r.Op)
}

// bindStored replaces, in the store, the local folder localID by the
// service's folder it: its children move under it, it is listed, and the
// binding is recorded for the records still to replay.
func bindStored(tx *metastore.Tx, localID string, it *remote.Item) error {
	var kids []*remote.Item
	if err := tx.EachChild(localID, func(c *remote.Item) error {
		kids = append(kids, c)
		return nil
	}); err != nil {
		return err
	}
	for _, c := range kids {
		c.ParentID = it.ID
		if err := tx.Put(c); err != nil {
			return err
		}
	}
	if err := tx.Delete(localID); err != nil && !errors.Is(err, metastore.ErrNotFound) {
		return err
	}
	if err := tx.Put(it); err != nil {
		return err
	}
	if err := tx.SetValue(listedPrefix+localID, nil); err != nil {
		return err
	}
	if err := tx.SetValue(listedPrefix+it.ID, []byte{1}); err != nil {
		return err
	}
	return tx.SetValue(boundPrefix+localID, []byte(it.ID))
}

// bindLocalFolder binds the entry of the folder made offline as localID to
// the service's folder it, and points the content journal's records that
// go into it at its id.
func (f *FS) bindLocalFolder(localID string, it *remote.Item) {
	f.mu.Lock()
	if e := f.byID[localID]; e != nil {
		f.bindFSLocked(e, it)
		for _, c := range e.local {
			if ci := c.item.Load(); ci != nil && ci.ParentID == localID {
				cp := *ci
				cp.ParentID = it.ID
				c.item.Store(&cp)
			}
		}
	}
	f.mu.Unlock()
	f.listings.Invalidate(localID)
	for _, rec := range f.staging.Pending() {
		if rec.ParentID != localID {
			continue
		}
		if _, err := f.staging.Modify(rec.ID, func(r *cache.Record) { r.ParentID = it.ID }); err != nil {
			f.log.Warn("updating the journal after binding a folder made offline failed", "name", rec.Name, "err", err)
		}
	}
}

// runProber watches the link: while it is up, the client's watcher
// (remote.Client.WatchUnanswered) checks that the service answers whenever
// a request waits suspiciously long; when the link goes down the prober
// logs so and asks the service every few seconds (with back-off) until it
// answers; then it replays the offline journal, sends the content journal
// and polls.
func (f *FS) runProber(ctx context.Context) {
	link := f.remote.Link()
	f.bg.Go(f.remote.WatchUnanswered)
	for {
		changed := link.Changed()
		st := link.State()
		if !st.Offline {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			continue
		}
		f.log.Warn(fmt.Sprintf("offline since %s: OneDrive is unreachable; the tree and cached files stay readable, changes are journaled",
			st.Since.Format(time.RFC3339)), "cause", st.Cause)
		for delay := probeMin; ; delay = min(delay*2, probeMax) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			if err := f.remote.Probe(ctx); err == nil {
				break
			}
		}
		f.backOnline(ctx)
	}
}

// backOnline sends what was journaled while offline and catches up.
func (f *FS) backOnline(ctx context.Context) {
	before := len(f.staging.Pending())
	n, err := f.replayOffline(ctx)
	if err != nil && ctx.Err() == nil {
		f.log.Warn("sending the changes made offline stopped; tried again later", "err", err)
	}
	left := f.sendJournal(ctx)
	if sent := before - left; sent > 0 {
		n += sent
	}
	err = f.pollOnce(ctx)
	f.notePoll(ctx, err) // status.go: the status says online again
	if err != nil && ctx.Err() == nil {
		f.log.Warn("catching up with remote changes failed", "err", err)
	}
	f.log.Info(fmt.Sprintf("back online, %d changes sent", n), "left", left+int(f.metaRecords.Load()))
	f.kickWriteback()
	// Files pinned, or changed, while offline are downloaded now.
	f.bg.Go(f.restorePins) // pin.go
}
