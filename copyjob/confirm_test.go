package copyjob

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote"
)

// fakeFolder answers listings of one folder from its items, counting them.
type fakeFolder struct {
	mu    sync.Mutex
	items []*remote.Item // GUARDED_BY(mu)
	lists int            // GUARDED_BY(mu)
}

func (f *fakeFolder) list(ctx context.Context, id string) ([]*remote.Item, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if id != "DST" {
		return nil, fmt.Errorf("no folder %q", id)
	}
	return append([]*remote.Item(nil), f.items...), nil
}

func (f *fakeFolder) put(it *remote.Item) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items = append(f.items, it)
}

func listedSpec(n int) Spec {
	sp := specFor(n)
	sp.DestParentID, sp.DestIsNew, sp.SourceHash = "DST", true, fmt.Sprintf("HASH%d=", n)
	return sp
}

// File copies due together into one folder are confirmed by one listing
// when the folder holds their names with the source's size and hash; a job
// the listing does not confirm (its file is not there, or holds other
// bytes) stays with its monitor, which then completes it.
func TestListingConfirmsCopiesIntoOneFolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		folder := &fakeFolder{}
		h := start(t, Config{Lister: folder.list, FirstInterval: 500 * time.Millisecond})
		var jobs []Job
		for n := 1; n <= 5; n++ {
			j, err := h.tr.Add(listedSpec(n))
			require.NoError(t, err)
			jobs = append(jobs, j)
		}
		// The service has finished 1–3; 4 holds other bytes; 5 is not there.
		for n := 1; n <= 3; n++ {
			folder.put(&remote.Item{ID: fmt.Sprintf("NEW%d", n), Name: fmt.Sprintf("FILE%d.bin", n),
				Size: int64(n) * 1000, QuickXorHash: fmt.Sprintf("HASH%d=", n)})
		}
		folder.put(&remote.Item{ID: "OTHER4", Name: "file4.bin", Size: 4000, QuickXorHash: "NOTTHESAME="})
		h.poller.script(monitorURL(4), completed("NEW4"))
		h.poller.script(monitorURL(5), completed("NEW5"))

		for _, j := range jobs {
			got, err := h.tr.Wait(t.Context(), j.ID)
			require.NoError(t, err)
			assert.Equal(t, StateCompleted, got.State)
		}
		byID := map[string]string{}
		for _, j := range h.doneJobs() {
			byID[j.DestName] = j.ResourceID
		}
		assert.Equal(t, map[string]string{"file1.bin": "NEW1", "file2.bin": "NEW2", "file3.bin": "NEW3",
			"file4.bin": "NEW4", "file5.bin": "NEW5"}, byID)
		folder.mu.Lock()
		assert.Equal(t, 1, folder.lists, "one listing for the five")
		folder.mu.Unlock()
		for n := 1; n <= 3; n++ {
			assert.Empty(t, h.poller.times(monitorURL(n)), "job %d confirmed without its monitor", n)
		}
		assert.NotEmpty(t, h.poller.times(monitorURL(4)))
		assert.NotEmpty(t, h.poller.times(monitorURL(5)))
	})
}

// Too few jobs into a folder, a destination that was not new, or no source
// hash: the monitors answer, no listing is made.
func TestListingNeedsABatchOfNewDestinations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		folder := &fakeFolder{}
		h := start(t, Config{Lister: folder.list})
		var ids []string
		add := func(sp Spec) {
			j, err := h.tr.Add(sp)
			require.NoError(t, err)
			h.poller.script(sp.MonitorURL, completed("N"+sp.DestName))
			ids = append(ids, j.ID)
		}
		add(listedSpec(1))
		add(listedSpec(2)) // two into DST: below the batch
		old := listedSpec(3)
		old.DestParentID, old.DestIsNew = "OTHER", false
		add(old)
		for n := 4; n <= 6; n++ {
			sp := listedSpec(n)
			sp.DestParentID, sp.SourceHash = "THIRD", ""
			add(sp)
		}
		for _, id := range ids {
			_, err := h.tr.Wait(t.Context(), id)
			require.NoError(t, err)
		}
		folder.mu.Lock()
		assert.Zero(t, folder.lists)
		folder.mu.Unlock()
	})
}
