package graphtest_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// jobStatus is the monitor's asyncJobStatus body.
type jobStatus struct {
	Operation          string  `json:"operation"`
	PercentageComplete float64 `json:"percentageComplete"`
	Status             string  `json:"status"`
	ResourceID         string  `json:"resourceId"`
	ResourceLocation   string  `json:"resourceLocation"`
	Error              *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// startCopy posts a copy and returns the monitor URL.
func (h *fakeHarness) startCopy(path string, body any, query string) string {
	h.t.Helper()
	r := h.api("POST", path+"/copy"+query, body)
	require.Equal(h.t, http.StatusAccepted, r.status, "%s", r.body)
	assert.Empty(h.t, r.body)
	mon := r.header.Get("Location")
	require.True(h.t, strings.HasPrefix(mon, h.srv.URL+"/monitor/"), mon)
	return mon
}

// poll reads the monitor (without Authorization).
func (h *fakeHarness) poll(mon string) (reply, jobStatus) {
	h.t.Helper()
	r := h.plain("GET", mon, nil)
	var st jobStatus
	if len(r.body) > 0 {
		r.decode(h.t, &st)
	}
	return r, st
}

// childNames lists the names in a folder (by Graph path).
func (h *fakeHarness) childNames(path string) []string {
	h.t.Helper()
	r := h.api("GET", path+"/children", nil)
	require.Equal(h.t, http.StatusOK, r.status, "%s", r.body)
	var page struct {
		Value []struct {
			Name string `json:"name"`
		} `json:"value"`
	}
	r.decode(h.t, &page)
	var names []string
	for _, v := range page.Value {
		names = append(names, v.Name)
	}
	return names
}

func hashesOf(t *testing.T, it map[string]any) map[string]any {
	t.Helper()
	file, ok := it["file"].(map[string]any)
	require.True(t, ok, "not a file: %v", it)
	return file["hashes"].(map[string]any)
}

func TestCopyFileTimeline(t *testing.T) {
	clock := newManualClock()
	h := startFake(t, graphtest.Options{Clock: clock.Now, Copy: graphtest.CopyOptions{Latency: 10 * time.Second, Rate: 1000}})
	old := clock.Now().Add(-48 * time.Hour)
	id := h.put("/Docs/report.txt", strings.Repeat("x", 10000), old)
	destID := h.mkdir("/Backup")
	before := h.srv.Stats()

	// 10 s latency + 10,000 B at 1,000 B/s = 20 s.
	mon := h.startCopy("/me/drive/items/"+id, map[string]any{"parentReference": map[string]any{"id": destID}, "name": "copy.txt"}, "")
	r, st := h.poll(mon)
	assert.Equal(t, http.StatusAccepted, r.status)
	assert.Equal(t, jobStatus{Operation: "ItemCopy", Status: "notStarted"}, st)
	assert.Equal(t, http.StatusNotFound, h.api("GET", "/me/drive/root:/Backup/copy.txt", nil).status)
	assert.Empty(t, h.childNames("/me/drive/items/"+destID))

	var pcts []float64
	for range 3 {
		clock.Advance(5 * time.Second)
		r, st = h.poll(mon)
		require.Equal(t, http.StatusAccepted, r.status)
		assert.Equal(t, "inProgress", st.Status)
		pcts = append(pcts, st.PercentageComplete)
		assert.Equal(t, http.StatusNotFound, h.api("GET", "/me/drive/root:/Backup/copy.txt", nil).status)
	}
	assert.Equal(t, []float64{25, 50, 75}, pcts)

	clock.Advance(5 * time.Second)
	r, _ = h.poll(mon)
	require.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
	assert.Empty(t, r.body)
	loc := r.header.Get("Location")
	require.True(t, strings.HasPrefix(loc, h.srv.URL+"/v1.0/drives/"), loc)

	// The Location is a Graph URL: it needs a token, as RC learnt.
	assert.Equal(t, http.StatusUnauthorized, h.plain("GET", loc, nil).status)
	made := h.item(loc)
	src := h.item("/me/drive/items/" + id)
	assert.Equal(t, "copy.txt", made["name"])
	assert.NotEqual(t, id, made["id"])
	assert.Equal(t, src["size"], made["size"])
	assert.Equal(t, hashesOf(t, src), hashesOf(t, made))
	assert.Equal(t, destID, made["parentReference"].(map[string]any)["id"])
	// The copy is a new item: its mtime is the time of the copy.
	fsi := made["fileSystemInfo"].(map[string]any)
	assert.Equal(t, clock.Now().UTC().Format("2006-01-02T15:04:05.000Z"), fsi["lastModifiedDateTime"])
	assert.Equal(t, old.UTC().Format("2006-01-02T15:04:05.000Z"), src["fileSystemInfo"].(map[string]any)["lastModifiedDateTime"])
	assert.Equal(t, []string{"copy.txt"}, h.childNames("/me/drive/root:/Backup:"))

	// The content is there, and the monitor URL lives on.
	content := h.api("GET", "/me/drive/root:/Backup/copy.txt:/content", nil)
	require.Equal(t, http.StatusFound, content.status)
	assert.Equal(t, strings.Repeat("x", 10000), string(h.plain("GET", content.header.Get("Location"), nil).body))
	r, _ = h.poll(mon)
	assert.Equal(t, http.StatusSeeOther, r.status)
	assert.Equal(t, loc, r.header.Get("Location"))

	after := h.srv.Stats()
	assert.EqualValues(t, 1, after.CopyJobsStarted-before.CopyJobsStarted)
	assert.EqualValues(t, 1, after.CopyJobsCompleted-before.CopyJobsCompleted)
	assert.EqualValues(t, 0, after.CopyJobsFailed-before.CopyJobsFailed)
	assert.Zero(t, after.BytesUploaded-before.BytesUploaded, "a copy moves no bytes through the API")

	// Forgotten after the retention period.
	clock.Advance(5 * time.Hour)
	r, _ = h.poll(mon)
	assert.Equal(t, http.StatusNotFound, r.status)
}

func TestCopyFolderRecursive(t *testing.T) {
	clock := newManualClock()
	h := startFake(t, graphtest.Options{Clock: clock.Now, Copy: graphtest.CopyOptions{Latency: time.Minute}})
	h.put("/Src/a.txt", "alpha", time.Time{})
	h.put("/Src/sub/b.txt", "bravo", time.Time{})
	h.put("/Src/sub/deeper/c.txt", "charlie", time.Time{})
	h.mkdir("/Src/empty")
	h.mkdir("/Dest")
	latest := h.api("GET", "/me/drive/root/delta?token=latest", nil).object(t)["@odata.deltaLink"].(string)

	// parentReference by path, in the old docs' form.
	mon := h.startCopy("/me/drive/root:/Src:", map[string]any{"parentReference": map[string]any{"path": "/drive/root:/Dest"}, "name": "Copied"}, "")
	clock.Advance(30 * time.Second)
	_, st := h.poll(mon)
	assert.Equal(t, "inProgress", st.Status)
	assert.Equal(t, http.StatusNotFound, h.api("GET", "/me/drive/root:/Dest/Copied", nil).status)
	assert.Empty(t, h.childNames("/me/drive/root:/Dest:"))
	d := h.api("GET", latest, nil)
	require.Equal(t, http.StatusOK, d.status)
	assert.Empty(t, d.object(t)["value"], "nothing of an unfinished copy shows in delta")

	clock.Advance(30 * time.Second)
	r, _ := h.poll(mon)
	require.Equal(t, http.StatusSeeOther, r.status)
	top := h.item(r.header.Get("Location"))
	assert.Equal(t, "Copied", top["name"])
	assert.NotNil(t, top["folder"])
	assert.EqualValues(t, len("alpha")+len("bravo")+len("charlie"), top["size"])
	assert.ElementsMatch(t, []string{"a.txt", "sub", "empty"}, h.childNames("/me/drive/root:/Dest/Copied:"))
	assert.ElementsMatch(t, []string{"b.txt", "deeper"}, h.childNames("/me/drive/root:/Dest/Copied/sub:"))
	for _, p := range []string{"/a.txt", "/sub/b.txt", "/sub/deeper/c.txt"} {
		src, dst := h.item("/me/drive/root:/Src"+p), h.item("/me/drive/root:/Dest/Copied"+p)
		assert.Equal(t, hashesOf(t, src), hashesOf(t, dst), p)
		assert.NotEqual(t, src["id"], dst["id"], p)
	}
	// The source is untouched.
	assert.ElementsMatch(t, []string{"a.txt", "sub", "empty"}, h.childNames("/me/drive/root:/Src:"))
}

func TestCopyMonitorStyles(t *testing.T) {
	for _, style := range []string{"303", "200", "202"} {
		t.Run(style, func(t *testing.T) {
			clock := newManualClock()
			h := startFake(t, graphtest.Options{Clock: clock.Now, Copy: graphtest.CopyOptions{Latency: 4 * time.Second, MonitorStyle: style}})
			id := h.put("/f.txt", "data", time.Time{})
			mon := h.startCopy("/me/drive/items/"+id, map[string]any{"name": "g.txt"}, "")
			r, st := h.poll(mon)
			assert.Equal(t, http.StatusAccepted, r.status, "running is always 202")
			assert.Equal(t, "notStarted", st.Status)
			clock.Advance(4 * time.Second)
			r, st = h.poll(mon)
			newID := h.item("/me/drive/root:/g.txt")["id"].(string)
			switch style {
			case "303":
				assert.Equal(t, http.StatusSeeOther, r.status)
				assert.Empty(t, r.body)
				assert.Equal(t, h.srv.URL+"/v1.0/drives/"+h.srv.DefaultDriveID()+"/items/"+newID, r.header.Get("Location"))
			default:
				want := http.StatusOK
				if style == "202" {
					want = http.StatusAccepted
				}
				assert.Equal(t, want, r.status)
				assert.Equal(t, "completed", st.Status)
				assert.Equal(t, "ItemCopy", st.Operation)
				assert.EqualValues(t, 100, st.PercentageComplete)
				assert.Equal(t, newID, st.ResourceID)
				assert.Equal(t, "g.txt", h.item(st.ResourceLocation)["name"])
			}
		})
	}
}

func TestCopyFailures(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	id := h.put("/f.txt", "data", time.Time{})
	h.put("/taken.txt", "other", time.Time{})

	t.Run("injected", func(t *testing.T) {
		h.srv.SetFaults(graphtest.FaultOptions{FailNextCopies: 1})
		mon := h.startCopy("/me/drive/items/"+id, map[string]any{"name": "x.txt"}, "")
		r, st := h.poll(mon)
		assert.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "failed", st.Status)
		require.NotNil(t, st.Error)
		assert.Equal(t, "generalException", st.Error.Code)
		assert.NotEmpty(t, st.Error.Message)
		assert.Equal(t, http.StatusNotFound, h.api("GET", "/me/drive/root:/x.txt", nil).status)
		// Only the next one.
		r, _ = h.poll(h.startCopy("/me/drive/items/"+id, map[string]any{"name": "x.txt"}, ""))
		assert.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
	})
	t.Run("every Nth with a code", func(t *testing.T) {
		h.srv.SetFaults(graphtest.FaultOptions{FailCopyEvery: 2, FailCopyCode: "quotaLimitReached"})
		var codes []string
		for i := range 4 {
			mon := h.startCopy("/me/drive/items/"+id, map[string]any{"name": fmt.Sprintf("n%d.txt", i)}, "")
			_, st := h.poll(mon)
			if st.Error != nil {
				codes = append(codes, st.Error.Code)
			} else {
				codes = append(codes, "")
			}
		}
		assert.Equal(t, []string{"", "quotaLimitReached", "", "quotaLimitReached"}, codes)
		h.srv.SetFaults(graphtest.FaultOptions{})
	})
	t.Run("name conflict", func(t *testing.T) {
		before := h.srv.Stats()
		mon := h.startCopy("/me/drive/items/"+id, map[string]any{"name": "TAKEN.txt"}, "")
		_, st := h.poll(mon)
		assert.Equal(t, "failed", st.Status)
		require.NotNil(t, st.Error)
		assert.Equal(t, "nameAlreadyExists", st.Error.Code)
		after := h.srv.Stats()
		assert.EqualValues(t, 1, after.CopyJobsFailed-before.CopyJobsFailed)
		assert.EqualValues(t, 1, after.CopyJobsStarted-before.CopyJobsStarted)
		assert.Equal(t, "other", readPath(t, h, "/taken.txt"))
	})
	t.Run("conflict at start", func(t *testing.T) {
		require.NoError(t, h.srv.SetCopyOptions(graphtest.CopyOptions{ConflictAtStart: true}))
		defer func() { require.NoError(t, h.srv.SetCopyOptions(graphtest.CopyOptions{})) }()
		r := h.api("POST", "/me/drive/items/"+id+"/copy", map[string]any{"name": "taken.txt"})
		assert.Equal(t, http.StatusConflict, r.status)
		assert.Equal(t, "nameAlreadyExists", r.errorCode())
		// rename still goes through.
		h.startCopy("/me/drive/items/"+id, map[string]any{"name": "taken.txt"}, "?@microsoft.graph.conflictBehavior=rename")
	})
}

// readPath downloads a file of the default drive by path.
func readPath(t *testing.T, h *fakeHarness, path string) string {
	t.Helper()
	r := h.api("GET", "/me/drive/root:"+path+":/content", nil)
	require.Equal(t, http.StatusFound, r.status, "%s", r.body)
	return string(h.plain("GET", r.header.Get("Location"), nil).body)
}

func TestCopyConflictBehavior(t *testing.T) {
	h := startFake(t, graphtest.Options{Copy: graphtest.CopyOptions{MonitorStyle: "200"}})
	id := h.put("/a.txt", "new", time.Time{})
	h.put("/Dir/a.txt", "old", time.Time{})
	h.put("/Dir/a 1.txt", "old too", time.Time{})
	h.mkdir("/Dir/folder")
	dirRef := map[string]any{"parentReference": map[string]any{"path": "/drive/root:/Dir"}}

	_, st := h.poll(h.startCopy("/me/drive/items/"+id, dirRef, "?@microsoft.graph.conflictBehavior=rename"))
	require.Equal(t, "completed", st.Status)
	assert.Equal(t, "a 2.txt", h.item("/me/drive/items/" + st.ResourceID)["name"])

	_, st = h.poll(h.startCopy("/me/drive/items/"+id, dirRef, "?@microsoft.graph.conflictBehavior=replace"))
	require.Equal(t, "completed", st.Status)
	assert.Equal(t, "new", readPath(t, h, "/Dir/a.txt"))
	assert.Equal(t, "a.txt", h.item("/me/drive/items/" + st.ResourceID)["name"])

	// replace does not replace folders.
	withName := map[string]any{"parentReference": map[string]any{"path": "/drive/root:/Dir"}, "name": "folder"}
	_, st = h.poll(h.startCopy("/me/drive/items/"+id, withName, "?@microsoft.graph.conflictBehavior=replace"))
	assert.Equal(t, "failed", st.Status)

	r := h.api("POST", "/me/drive/items/"+id+"/copy?@microsoft.graph.conflictBehavior=overwrite", dirRef)
	assert.Equal(t, http.StatusBadRequest, r.status)
}

func TestCopyChildrenOnly(t *testing.T) {
	h := startFake(t, graphtest.Options{OtherDriveIDs: []string{"0123456789abcdef"}, Copy: graphtest.CopyOptions{MonitorStyle: "202"}})
	h.put("/Src/a.txt", "a", time.Time{})
	h.put("/Src/sub/b.txt", "b", time.Time{})
	fileID := h.put("/Src/c.txt", "c", time.Time{})
	destID := h.mkdir("/Dest")
	rootID := h.item("/me/drive/root")["id"].(string)
	toDest := map[string]any{"parentReference": map[string]any{"id": destID}}

	_, st := h.poll(h.startCopy("/me/drive/root:/Src:", map[string]any{"parentReference": map[string]any{"id": destID}, "childrenOnly": true}, ""))
	require.Equal(t, "completed", st.Status)
	assert.Equal(t, destID, st.ResourceID)
	assert.ElementsMatch(t, []string{"a.txt", "sub", "c.txt"}, h.childNames("/me/drive/items/"+destID))
	assert.Equal(t, []string{"b.txt"}, h.childNames("/me/drive/root:/Dest/sub:"))

	for _, tc := range []struct {
		name, path string
		body       map[string]any
		message    string
	}{
		{"root without childrenOnly", "/me/drive/root", toDest, "Cannot copy the root folder."},
		{"root by id", "/me/drive/items/" + rootID, toDest, "Cannot copy the root folder."},
		{"childrenOnly on a file", "/me/drive/items/" + fileID, map[string]any{"parentReference": toDest["parentReference"], "childrenOnly": true}, ""},
		{"childrenOnly with name", "/me/drive/root:/Src:", map[string]any{"parentReference": toDest["parentReference"], "childrenOnly": true, "name": "x"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.api("POST", tc.path+"/copy", tc.body)
			assert.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
			assert.Equal(t, "invalidRequest", r.errorCode())
			if tc.message != "" {
				assert.Contains(t, string(r.body), tc.message)
			}
		})
	}

	// The root's children can be copied with childrenOnly, though not into
	// one of them.
	r := h.api("POST", "/me/drive/root/copy", map[string]any{"parentReference": map[string]any{"id": destID}, "childrenOnly": true})
	assert.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	otherRoot := h.item("/drives/0123456789abcdef/root")["id"]
	_, st = h.poll(h.startCopy("/me/drive/root", map[string]any{"parentReference": map[string]any{"driveId": "0123456789abcdef", "id": otherRoot}, "childrenOnly": true}, ""))
	require.Equal(t, "completed", st.Status)
	assert.ElementsMatch(t, []string{"Src", "Dest"}, h.childNames("/drives/0123456789abcdef/root"))
	assert.ElementsMatch(t, []string{"a.txt", "sub", "c.txt"}, h.childNames("/drives/0123456789abcdef/root:/Dest:"))
}

func TestCopyRequestErrors(t *testing.T) {
	h := startFake(t, graphtest.Options{OtherDriveIDs: []string{"0123456789abcdef"}})
	id := h.put("/f.txt", "data", time.Time{})
	folderID := h.mkdir("/Folder/Inner")
	outerID := h.item("/me/drive/root:/Folder")["id"].(string)
	for _, tc := range []struct {
		name   string
		path   string
		body   any
		status int
		code   string
	}{
		{"missing source", "/me/drive/items/NOPE!1", map[string]any{"name": "x"}, 404, "itemNotFound"},
		{"missing parent", "/me/drive/items/" + id, map[string]any{"parentReference": map[string]any{"id": "NOPE!2"}}, 404, "itemNotFound"},
		{"missing parent path", "/me/drive/items/" + id, map[string]any{"parentReference": map[string]any{"path": "/drive/root:/Nope"}}, 404, "itemNotFound"},
		{"parent is a file", "/me/drive/items/" + id, map[string]any{"parentReference": map[string]any{"id": id}}, 400, "invalidRequest"},
		{"invalid name", "/me/drive/items/" + id, map[string]any{"name": "a:b"}, 400, "invalidRequest"},
		{"trailing dot", "/me/drive/items/" + id, map[string]any{"name": "a."}, 400, "invalidRequest"},
		{"into itself", "/me/drive/items/" + outerID, map[string]any{"parentReference": map[string]any{"id": folderID}}, 400, "invalidRequest"},
		{"unknown drive", "/me/drive/items/" + id, map[string]any{"parentReference": map[string]any{"driveId": "ffffffffffffffff", "id": folderID}}, 404, "itemNotFound"},
		{"id and path disagree", "/me/drive/items/" + id, map[string]any{"parentReference": map[string]any{"id": folderID, "path": "/drive/root:/Folder"}}, 400, "invalidRequest"},
		{"bad body", "/me/drive/items/" + id, "{", 400, "invalidRequest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.api("POST", tc.path+"/copy", tc.body)
			assert.Equal(t, tc.status, r.status, "%s", r.body)
			assert.Equal(t, tc.code, r.errorCode())
		})
	}
	r := h.api("GET", "/me/drive/items/"+id+"/copy", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, r.status)

	t.Run("respond-async required", func(t *testing.T) {
		require.NoError(t, h.srv.SetCopyOptions(graphtest.CopyOptions{RequireRespondAsync: true}))
		defer func() { require.NoError(t, h.srv.SetCopyOptions(graphtest.CopyOptions{})) }()
		r := h.api("POST", "/me/drive/items/"+id+"/copy", map[string]any{"name": "y.txt"})
		assert.Equal(t, http.StatusBadRequest, r.status)
		r = h.send("POST", "/v1.0/me/drive/items/"+id+"/copy", `{"name":"y.txt"}`, http.Header{
			"Authorization": {"Bearer " + h.token}, "Prefer": {"respond-async"}, "Content-Type": {"application/json"}})
		assert.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	})
	t.Run("cross drive", func(t *testing.T) {
		other := h.item("/drives/0123456789abcdef/root")
		body := map[string]any{"parentReference": map[string]any{"driveId": "0123456789abcdef", "id": other["id"]}}
		r, _ := h.poll(h.startCopy("/me/drive/items/"+id, body, ""))
		require.Equal(t, http.StatusSeeOther, r.status)
		assert.Contains(t, r.header.Get("Location"), "/drives/0123456789abcdef/items/")
		assert.Equal(t, "f.txt", h.item(r.header.Get("Location"))["name"])

		require.NoError(t, h.srv.SetCopyOptions(graphtest.CopyOptions{RefuseCrossDrive: true}))
		defer func() { require.NoError(t, h.srv.SetCopyOptions(graphtest.CopyOptions{})) }()
		body["name"] = "g.txt"
		assert.Equal(t, http.StatusBadRequest, h.api("POST", "/me/drive/items/"+id+"/copy", body).status)
	})
}

func TestCopySurvivesSourceDeletionAndRestart(t *testing.T) {
	dir := t.TempDir()
	clock := newManualClock()
	opts := graphtest.Options{DataDir: dir, Clock: clock.Now, Copy: graphtest.CopyOptions{Latency: time.Minute}}
	srv := graphtest.NewServer(opts)
	h := newHarness(t, srv)
	id := h.put("/keep.bin", strings.Repeat("k", 5000), time.Time{})
	mon := h.startCopy("/me/drive/items/"+id, map[string]any{"name": "copy.bin"}, "")
	monPath := strings.TrimPrefix(mon, srv.URL)
	require.Equal(t, http.StatusNoContent, h.api("DELETE", "/me/drive/items/"+id, nil).status)
	require.NoError(t, srv.Close())

	srv = graphtest.NewServer(opts)
	defer srv.Close()
	h = newHarness(t, srv)
	r, st := h.poll(monPath)
	assert.Equal(t, http.StatusAccepted, r.status)
	assert.Equal(t, "notStarted", st.Status)
	clock.Advance(30 * time.Second)
	_, st = h.poll(monPath)
	assert.Equal(t, "inProgress", st.Status)
	clock.Advance(30 * time.Second)
	r, _ = h.poll(monPath)
	require.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
	assert.Equal(t, strings.Repeat("k", 5000), readPath(t, h, "/copy.bin"))
}
