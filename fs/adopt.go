package fs

import (
	"context"
	"errors"
	"path"

	"github.com/onedrivefs/onedrivefs/cache"
)

// adoptJournal puts the content journal's records back into the tree, for
// a mount that starts offline: a file changed before the last mount ended
// (killed, or unmounted while offline) shows its journaled content, and a
// file created then shows at all, until the service is back and the
// background sender sends them through their files (writeback.go), as it
// does for this mount's own failed uploads. A record whose folder cannot be
// found stays in the journal for the sender, which replays it by path.
func (f *FS) adoptJournal(ctx context.Context) {
	for _, rec := range f.staging.Pending() {
		if err := f.adoptRecord(ctx, rec); err != nil {
			f.log.Info("a journaled change is not shown offline; it is sent when OneDrive is back",
				"name", rec.Name, "err", err)
		}
	}
}

// adoptRecord makes rec the staged, journaled content of its file's entry.
func (f *FS) adoptRecord(ctx context.Context, rec cache.Record) error {
	dir, err := f.walkPath(ctx, path.Join("/", rec.DirPath))
	if err != nil {
		return err
	}
	if !dir.isDir {
		return errNotDir
	}
	e, err := f.lookup(ctx, dir, rec.Name)
	switch {
	case errors.Is(err, errNoEntry) && rec.RemoteItemID == "":
		f.mu.Lock()
		e = f.newLocalEntryFSLocked(dir, rec.Name)
		f.mu.Unlock()
	case err != nil:
		return err
	case e.isDir:
		return errIsDir
	case rec.RemoteItemID != "" && e.item.Load() != nil && e.item.Load().ID != rec.RemoteItemID:
		return errors.New("another item holds its name now")
	}
	sf, err := f.staging.Stage(rec.ID) // the staged file exists: opened as is
	if err != nil {
		return err
	}
	fl := f.ensureFile(e)
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.staged != nil {
		_ = sf.Close()
		return nil
	}
	fl.staged, fl.dirty, fl.committed, fl.failed = sf, true, true, true
	fl.baseETag, fl.baseCTag = rec.BaseETag, rec.BaseCTag
	fl.base = baseFillOfRecord(rec) // basefill.go: filled before it is sent
	fl.setLocalAttr(true, rec.Size, rec.ModTime)
	f.mu.Lock()
	if f.journaled == nil {
		f.journaled = make(map[string]*entry)
	}
	f.journaled[rec.ID] = e
	f.mu.Unlock()
	return nil
}
