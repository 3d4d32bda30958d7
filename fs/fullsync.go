package fs

import (
	"context"
	"time"

	"github.com/onedrivefs/onedrivefs/metastore"
	"github.com/onedrivefs/onedrivefs/remote"
)

// The full sync (Config.SyncTree): on a drive whose store was never filled,
// one delta enumeration from no token, paged, writes every item to the
// store in the background, then marks every folder listed, so that the
// whole tree is browsable offline and no folder is ever listed one by one.
// At 10,000 folders of 100 files it costs one request per delta page
// (BENCHMARKS.md) instead of one per folder. Listings keep coming from the
// service (and the store) as usual while it runs.

// syncBatchPages: the full sync waits for the store every this many delta
// pages (a few thousand items).
const syncBatchPages = 20

// fullSyncKey marks a store filled by a full sync (its time).
const fullSyncKey = "fullSync"

// fullSync fills the store with the whole drive, once.
func (f *FS) fullSync(ctx context.Context) {
	if f.store == nil || f.isOffline() {
		return
	}
	done := false
	_ = f.store.View(func(tx *metastore.ReadTx) error {
		done = tx.Value(fullSyncKey) != nil
		return nil
	})
	if done {
		return
	}
	start := f.now()
	gen := f.sw.gen.Load()
	var folders []string
	items, pages := 0, 0
	_, err := f.remote.DeltaPages(ctx, "", func(page []*remote.Item) error {
		put := make([]*remote.Item, 0, len(page))
		for _, it := range page {
			if it.Deleted {
				continue
			}
			put = append(put, slimItem(it))
			if it.IsFolder || it.IsRoot {
				folders = append(folders, it.ID)
			}
		}
		op := &storeOp{put: put}
		items += len(put)
		pages++
		if pages%syncBatchPages != 0 {
			f.enqueue(op)
			return nil
		}
		// Wait for the writer now and then: the pages must not pile up
		// in memory faster than they reach the disk.
		return f.storeWrite(op)
	})
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("the full sync of the tree stopped; folders are listed as they are visited", "err", err)
		}
		return
	}
	complete := false
	err = f.storeWrite(&storeOp{fn: func(tx *metastore.Tx) error {
		if f.sw.gen.Load() != gen {
			// Changes arrived while it ran: the pages may be older than
			// them, so no folder is taken as complete (each is listed when
			// visited); the next mount syncs again.
			return nil
		}
		for _, id := range folders {
			if err := tx.SetValue(listedPrefix+id, []byte{1}); err != nil {
				return err
			}
		}
		complete = true
		return tx.SetValue(fullSyncKey, []byte(f.now().UTC().Format(time.RFC3339)))
	}})
	if err != nil {
		f.log.Error("recording the full sync failed", "err", err)
		return
	}
	f.log.Info("the whole tree is stored", "items", items, "folders", len(folders), "delta_pages", pages,
		"took", f.now().Sub(start).Round(time.Millisecond), "complete", complete)
}
