package graphtest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// deltaItem is what the tests read of a delta entry.
type deltaItem struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	CTag            string `json:"cTag"`
	Root            *struct{}
	Deleted         *struct{ State string } `json:"deleted"`
	ParentReference *struct {
		ID   string  `json:"id"`
		Path *string `json:"path"`
	} `json:"parentReference"`
	Folder *struct{} `json:"folder"`
}

type deltaPage struct {
	Value     []deltaItem `json:"value"`
	NextLink  string      `json:"@odata.nextLink"`
	DeltaLink string      `json:"@odata.deltaLink"`
}

// deltaRound follows nextLinks from link to the deltaLink; it returns the
// entries of every page, the number of pages and the deltaLink.
func (h *fakeHarness) deltaRound(link string) ([]deltaItem, int, string) {
	h.t.Helper()
	var all []deltaItem
	for pages := 1; ; pages++ {
		r := h.api("GET", link, nil)
		require.Equal(h.t, http.StatusOK, r.status, "%s", r.body)
		var p deltaPage
		r.decode(h.t, &p)
		all = append(all, p.Value...)
		if p.NextLink == "" {
			require.NotEmpty(h.t, p.DeltaLink, "the last page has a deltaLink")
			require.True(h.t, strings.HasPrefix(p.DeltaLink, h.srv.URL+"/v1.0/"), p.DeltaLink)
			return all, pages, p.DeltaLink
		}
		assert.Empty(h.t, p.DeltaLink)
		require.True(h.t, strings.HasPrefix(p.NextLink, h.srv.URL+"/v1.0/"), p.NextLink)
		link = p.NextLink
		require.Less(h.t, pages, 1000)
	}
}

// byName indexes entries by name (the last entry of a name wins, as delta
// clients apply them).
func byName(items []deltaItem) map[string]deltaItem {
	m := map[string]deltaItem{}
	for _, it := range items {
		m[it.Name] = it
	}
	return m
}

func TestDeltaFullEnumerationPaged(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	for i := range 5 {
		for j := range 4 {
			h.put(fmt.Sprintf("/d%d/sub/f%d.txt", i, j), "x", time.Time{})
		}
	}
	// 1 root + 5 folders + 5 subfolders + 20 files = 31 items.
	items, pages, link := h.deltaRound("/me/drive/root/delta?$top=7")
	assert.Equal(t, 5, pages)
	require.Len(t, items, 31)
	seen := map[string]bool{}
	for i, it := range items {
		assert.False(t, seen[it.ID], "duplicate %s", it.Name)
		if i == 0 {
			assert.NotNil(t, it.Root, "the root comes first")
		} else {
			require.NotNil(t, it.ParentReference)
			assert.True(t, seen[it.ParentReference.ID], "%s arrives before its parent", it.Name)
			assert.Nil(t, it.ParentReference.Path, "delta omits parentReference.path")
		}
		assert.Nil(t, it.Deleted)
		seen[it.ID] = true
	}
	u, err := url.Parse(link)
	require.NoError(t, err)
	assert.NotEmpty(t, u.Query().Get("token"), "RC reads the token from the deltaLink's query")

	// Nothing changed: the next round is empty.
	items, pages, _ = h.deltaRound(link)
	assert.Empty(t, items)
	assert.Equal(t, 1, pages)

	// The default page size applies without $top.
	items, pages, _ = h.deltaRound("/me/drive/root/delta")
	assert.Len(t, items, 31)
	assert.Equal(t, 1, pages)
}

func TestDeltaTokenLatest(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	h.put("/a.txt", "a", time.Time{})
	r := h.api("GET", "/me/drive/root/delta?token=latest", nil)
	require.Equal(t, http.StatusOK, r.status)
	var p deltaPage
	r.decode(t, &p)
	assert.Empty(t, p.Value)
	assert.Empty(t, p.NextLink)
	require.NotEmpty(t, p.DeltaLink)

	h.put("/b.txt", "b", time.Time{})
	items, _, _ := h.deltaRound(p.DeltaLink)
	names := byName(items)
	assert.Contains(t, names, "b.txt")
	assert.NotContains(t, names, "a.txt")
}

func TestDeltaAfterEachChange(t *testing.T) {
	clock := newManualClock()
	h := startFake(t, graphtest.Options{Clock: clock.Now, Copy: graphtest.CopyOptions{Latency: time.Minute}})
	h.mkdir("/Docs")
	h.mkdir("/Archive")
	_, _, link := h.deltaRound("/me/drive/root/delta")
	next := func() map[string]deltaItem {
		t.Helper()
		var items []deltaItem
		items, _, link = h.deltaRound(link)
		return byName(items)
	}

	r := h.api("PUT", "/me/drive/root:/Docs/note.txt:/content", []byte("first"))
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	id := r.object(t)["id"].(string)
	got := next()
	require.Contains(t, got, "note.txt", "create")
	assert.Contains(t, got, "Docs", "the parent's size and cTag changed too")
	cTag := got["note.txt"].CTag

	r = h.api("PUT", "/me/drive/items/"+id+"/content", []byte("second"))
	require.Contains(t, []int{http.StatusOK, http.StatusCreated}, r.status, "%s", r.body)
	got = next()
	require.Contains(t, got, "note.txt", "modify content")
	assert.NotEqual(t, cTag, got["note.txt"].CTag)

	require.Equal(t, http.StatusOK, h.api("PATCH", "/me/drive/items/"+id, map[string]any{"name": "renamed.txt"}).status)
	got = next()
	require.Contains(t, got, "renamed.txt", "rename")
	assert.Equal(t, id, got["renamed.txt"].ID)

	archive := h.item("/me/drive/root:/Archive")["id"].(string)
	require.Equal(t, http.StatusOK, h.api("PATCH", "/me/drive/items/"+id, map[string]any{"parentReference": map[string]any{"id": archive}}).status)
	got = next()
	require.Contains(t, got, "renamed.txt", "move")
	assert.Equal(t, archive, got["renamed.txt"].ParentReference.ID)

	require.Equal(t, http.StatusNoContent, h.api("DELETE", "/me/drive/items/"+id, nil).status)
	got = next()
	require.Contains(t, got, "renamed.txt", "delete")
	tomb := got["renamed.txt"]
	require.NotNil(t, tomb.Deleted)
	assert.Equal(t, "deleted", tomb.Deleted.State)
	assert.Equal(t, id, tomb.ID)

	// A deleted folder reports itself and its contents.
	h.put("/Gone/inner/x.txt", "x", time.Time{})
	next()
	gone := h.item("/me/drive/root:/Gone")["id"].(string)
	require.Equal(t, http.StatusNoContent, h.api("DELETE", "/me/drive/items/"+gone, nil).status)
	got = next()
	for _, n := range []string{"Gone", "inner", "x.txt"} {
		require.Contains(t, got, n)
		assert.NotNil(t, got[n].Deleted, n)
	}

	// A copy shows only once it has completed.
	src := h.put("/Docs/src.txt", "copy me", time.Time{})
	next()
	mon := h.startCopy("/me/drive/items/"+src, map[string]any{"name": "copied.txt"}, "")
	assert.Empty(t, next(), "copy in progress")
	clock.Advance(time.Minute)
	r, _ = h.poll(mon)
	require.Equal(t, http.StatusSeeOther, r.status)
	got = next()
	require.Contains(t, got, "copied.txt", "copy completion")
	assert.Nil(t, got["copied.txt"].Deleted)
}

func TestDeltaTokenPathForm(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	_, _, link := h.deltaRound("/me/drive/root/delta")
	h.put("/new.txt", "n", time.Time{})
	u, err := url.Parse(link)
	require.NoError(t, err)
	tok := u.Query().Get("token")
	viaQuery, _, _ := h.deltaRound(link)
	viaPath, _, _ := h.deltaRound("/me/drive/root/delta(token='" + tok + "')")
	require.NotEmpty(t, viaQuery)
	assert.Equal(t, viaQuery, viaPath)
	viaDrives, _, _ := h.deltaRound("/drives/" + h.srv.DefaultDriveID() + "/root/delta(token=%27" + tok + "%27)")
	assert.Equal(t, viaQuery, viaDrives)

	r := h.api("GET", "/me/drive/root/delta?token=garbage!", nil)
	assert.Equal(t, http.StatusBadRequest, r.status)
}

func TestDeltaStaleToken(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	h.put("/a.txt", "a", time.Time{})
	_, _, link := h.deltaRound("/drives/" + h.srv.DefaultDriveID() + "/root/delta?$top=1")
	h.srv.ExpireDeltaTokens()
	r := h.api("GET", link, nil)
	assert.Equal(t, http.StatusGone, r.status)
	var body struct {
		Error struct {
			Code       string `json:"code"`
			InnerError struct {
				Code string `json:"code"`
			} `json:"innerError"`
		} `json:"error"`
	}
	r.decode(t, &body)
	assert.Equal(t, "resyncRequired", body.Error.Code)
	assert.Equal(t, "resyncChangesApplyDifferences", body.Error.InnerError.Code)
	fresh := r.header.Get("Location")
	assert.Equal(t, h.srv.URL+"/v1.0/drives/"+h.srv.DefaultDriveID()+"/root/delta?%24top=1", fresh)

	// The Location starts a full resync, whose token is good.
	items, _, link := h.deltaRound(fresh)
	assert.Len(t, items, 2)
	items, _, _ = h.deltaRound(link)
	assert.Empty(t, items)

	// A next link of a round that became stale is stale too.
	h.put("/b.txt", "b", time.Time{})
	h.put("/c.txt", "c", time.Time{})
	r = h.api("GET", link, nil)
	require.Equal(t, http.StatusOK, r.status)
	var p deltaPage
	r.decode(t, &p)
	require.NotEmpty(t, p.NextLink)
	h.srv.ExpireDeltaTokens()
	assert.Equal(t, http.StatusGone, h.api("GET", p.NextLink, nil).status)
}

func TestDeltaFolderScope(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	folder := h.mkdir("/In")
	h.put("/In/a.txt", "a", time.Time{})
	h.put("/Out/b.txt", "b", time.Time{})
	items, _, link := h.deltaRound("/me/drive/items/" + folder + "/delta")
	names := byName(items)
	assert.Contains(t, names, "a.txt")
	assert.NotContains(t, names, "b.txt")
	assert.Contains(t, link, "/items/"+folder+"/delta?token=")

	inner := h.put("/In/c.txt", "c", time.Time{})
	h.put("/Out/d.txt", "d", time.Time{})
	require.Equal(t, http.StatusNoContent, h.api("DELETE", "/me/drive/items/"+inner, nil).status)
	items, _, _ = h.deltaRound(link)
	names = byName(items)
	assert.Contains(t, names, "c.txt")
	assert.NotNil(t, names["c.txt"].Deleted)
	assert.NotContains(t, names, "d.txt")

	file := h.item("/me/drive/root:/In/a.txt")["id"].(string)
	assert.Equal(t, http.StatusBadRequest, h.api("GET", "/me/drive/items/"+file+"/delta", nil).status)
}

func TestDeltaVisibilityDelay(t *testing.T) {
	clock := newManualClock()
	h := startFake(t, graphtest.Options{Clock: clock.Now, Copy: graphtest.CopyOptions{MonitorStyle: "200"}})
	src := h.put("/a.txt", "a", time.Time{})
	_, _, link := h.deltaRound("/me/drive/root/delta")

	// The job completes, but its result shows only 30 s later (Business's
	// eventual consistency).
	h.srv.SetFaults(graphtest.FaultOptions{VisibilityDelay: 30 * time.Second})
	_, st := h.poll(h.startCopy("/me/drive/items/"+src, map[string]any{"name": "b.txt"}, ""))
	require.Equal(t, "completed", st.Status)
	items, _, link2 := h.deltaRound(link)
	assert.NotContains(t, byName(items), "b.txt")
	assert.NotContains(t, h.childNames("/me/drive/root"), "b.txt")
	assert.Equal(t, http.StatusNotFound, h.api("GET", "/me/drive/root:/b.txt", nil).status)

	clock.Advance(31 * time.Second)
	items, _, _ = h.deltaRound(link2)
	assert.Contains(t, byName(items), "b.txt", "the round that hid it did not skip past it")
	assert.Contains(t, h.childNames("/me/drive/root"), "b.txt")
	assert.Equal(t, st.ResourceID, h.item("/me/drive/root:/b.txt")["id"])
}

// Delta after a token reports each change once, also after thousands of
// changes (the change log is compacted) and after a restart (it is rebuilt
// from the saved drive).
func TestDeltaChangeLogCompactedAndRestored(t *testing.T) {
	dir := t.TempDir()
	srv, err := graphtest.New(graphtest.Options{DataDir: dir})
	require.NoError(t, err)
	require.NoError(t, srv.Start("127.0.0.1:0"))
	h := newHarness(t, srv)
	h.put("/a1.txt", "1", time.Time{})
	h.put("/a2.txt", "2", time.Time{})
	token := func(link string) string {
		u, err := url.Parse(link)
		require.NoError(t, err)
		return "/me/drive/root/delta?token=" + url.QueryEscape(u.Query().Get("token"))
	}
	_, _, link := h.deltaRound("/me/drive/root/delta?token=latest")
	t0 := token(link)
	const bulk = 2500 // over 5,000 stamps: the log is compacted on the way
	for i := range bulk {
		h.put(fmt.Sprintf("/bulk/f%04d", i), "x", time.Time{})
	}
	_, _, link = h.deltaRound("/me/drive/root/delta?token=latest")
	t1 := token(link)
	h.put("/a1.txt", "changed", time.Time{})
	r := h.api("DELETE", "/me/drive/root:/a2.txt", nil)
	require.Equal(t, http.StatusNoContent, r.status)

	check := func() {
		t.Helper()
		items, _, _ := h.deltaRound(t1)
		var got []string
		for _, it := range items {
			name := it.Name
			if it.Deleted != nil {
				name = "deleted:" + name
			}
			got = append(got, name)
		}
		assert.Equal(t, []string{"deleted:a2.txt", "root", "a1.txt"}, got)

		items, _, _ = h.deltaRound(t0)
		seen := map[string]int{}
		for _, it := range items {
			seen[it.ID]++
		}
		assert.Len(t, items, bulk+4, "root, a1, bulk and its files, a2's tombstone")
		for id, n := range seen {
			assert.Equal(t, 1, n, "%s reported %d times", id, n)
		}
		assert.Equal(t, "bulk", byName(items)["bulk"].Name)
	}
	check()

	require.NoError(t, srv.Close())
	srv, err = graphtest.New(graphtest.Options{DataDir: dir})
	require.NoError(t, err)
	require.NoError(t, srv.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = srv.Close() })
	tok := h.token
	h = newHarness(t, srv)
	h.token = tok
	check()
}
