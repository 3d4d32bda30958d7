package graphtest_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// Tests of the alternative forms of answers (FormOptions, the monitor knobs
// of CopyOptions, FaultOptions.RetryAfterForm and dropped replies): the
// fake's wire output in each form. remote/integration_forms_test.go shows
// the client coping with each.

// keys returns the sorted keys of a JSON object.
func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestFormsDownloadIgnoresRange(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	id := h.put("/r.txt", "0123456789", time.Time{})
	r := h.api("GET", "/me/drive/items/"+id+"/content", nil)
	require.Equal(t, http.StatusFound, r.status)
	dl := r.header.Get("Location")
	ranged := func() reply {
		return h.send("GET", dl, nil, http.Header{"Range": {"bytes=2-4"}})
	}

	r = ranged()
	assert.Equal(t, http.StatusPartialContent, r.status, "the default honours Range")
	assert.Equal(t, "234", string(r.body))
	assert.Equal(t, "bytes 2-4/10", r.header.Get("Content-Range"))

	require.NoError(t, h.srv.SetForms(graphtest.FormOptions{DownloadIgnoresRange: true}))
	r = ranged()
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "0123456789", string(r.body))
	assert.Empty(t, r.header.Get("Content-Range"))
}

func TestFormsDownloadURLAnnotation(t *testing.T) {
	h := startFake(t, graphtest.Options{Forms: graphtest.FormOptions{DownloadURLAnnotation: "content"}})
	h.put("/a.txt", "a", time.Time{})
	it := h.item("/me/drive/root:/a.txt")
	assert.NotContains(t, it, "@microsoft.graph.downloadUrl")
	dl, ok := it["@content.downloadUrl"].(string)
	require.True(t, ok, "%v", it)
	r := h.plain("GET", dl, nil)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "a", string(r.body))
}

func TestFormsInnerError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		forms  graphtest.FormOptions
		key    string
		nested bool
	}{
		{"default", graphtest.FormOptions{}, "innerError", false},
		{"od spelling", graphtest.FormOptions{InnerErrorSpelling: "innererror"}, "innererror", false},
		{"nested", graphtest.FormOptions{NestedInnerErrors: true}, "innerError", true},
		{"od nested", graphtest.FormOptions{InnerErrorSpelling: "innererror", NestedInnerErrors: true}, "innererror", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startFake(t, graphtest.Options{Forms: tc.forms})
			r := h.api("POST", "/me/drive/root/children", map[string]any{"name": "a:b", "folder": map[string]any{}})
			require.Equal(t, http.StatusBadRequest, r.status)
			var body map[string]map[string]json.RawMessage
			r.decode(t, &body)
			e := body["error"]
			assert.JSONEq(t, `"invalidRequest"`, string(e["code"]))
			other := "innererror"
			if tc.key == other {
				other = "innerError"
			}
			assert.NotContains(t, e, other)
			require.Contains(t, e, tc.key)
			var inner map[string]any
			require.NoError(t, json.Unmarshal(e[tc.key], &inner))
			assert.Equal(t, r.header.Get("request-id"), inner["request-id"])
			assert.NotEmpty(t, inner["date"])
			if !tc.nested {
				assert.Equal(t, "nameContainsInvalidCharacters", inner["code"])
				assert.NotContains(t, inner, tc.key)
				return
			}
			assert.NotContains(t, inner, "code")
			assert.NotContains(t, inner, other)
			deeper, ok := inner[tc.key].(map[string]any)
			require.True(t, ok, "%s", r.body)
			assert.Equal(t, map[string]any{"code": "nameContainsInvalidCharacters"}, deeper)
		})
	}
}

func TestFormsDeltaLinkPath(t *testing.T) {
	h := startFake(t, graphtest.Options{PageSize: 1, Forms: graphtest.FormOptions{DeltaLinkForm: "path"}})
	h.put("/a.txt", "a", time.Time{})
	h.put("/b.txt", "b", time.Time{})
	pathForm := regexp.MustCompile(`/v1\.0/me/drive/root/delta\(token='[A-Za-z0-9_-]+'\)$`)

	r := h.api("GET", "/me/drive/root/delta", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	links := 0
	for {
		page := r.object(t)
		next, _ := page["@odata.nextLink"].(string)
		if next == "" {
			link, _ := page["@odata.deltaLink"].(string)
			assert.Regexp(t, pathForm, link)
			assert.NotContains(t, link, "?token=")
			break
		}
		assert.Regexp(t, pathForm, next)
		links++
		r = h.api("GET", next, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	}
	assert.Equal(t, 2, links, "root, a.txt and b.txt on pages of one")

	// Other parameters stay in the query.
	r = h.api("GET", "/me/drive/root/delta?token=latest&$select=id,name", nil)
	require.Equal(t, http.StatusOK, r.status)
	link := r.object(t)["@odata.deltaLink"].(string)
	assert.Regexp(t, `/delta\(token='[A-Za-z0-9_-]+'\)\?%24select=id%2Cname$`, link)
	h.put("/c.txt", "c", time.Time{})
	var names []string
	for link != "" {
		r = h.api("GET", link, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		var page struct {
			Value    []map[string]any `json:"value"`
			NextLink string           `json:"@odata.nextLink"`
		}
		r.decode(t, &page)
		for _, v := range page.Value {
			assert.Equal(t, []string{"id", "name"}, keys(v))
			names = append(names, v["name"].(string))
		}
		if page.NextLink != "" {
			assert.Regexp(t, `/delta\(token='[A-Za-z0-9_-]+'\)\?%24select=id%2Cname$`, page.NextLink)
		}
		link = page.NextLink
	}
	assert.Contains(t, names, "c.txt")
}

func TestFormsUploadStatuses(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	put := func(path, content string) int {
		return h.api("PUT", "/me/drive/root:"+path+":/content", content).status
	}
	session := func(path string) int {
		r := h.api("POST", "/me/drive/root:"+path+":/createUploadSession", map[string]any{})
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		up := r.object(t)["uploadUrl"].(string)
		return h.send("PUT", up, "xyz", http.Header{"Content-Range": {"bytes 0-2/3"}}).status
	}
	assert.Equal(t, []int{201, 200, 201, 200}, []int{put("/s.txt", "1"), put("/s.txt", "2"), session("/u.txt"), session("/u.txt")},
		"the default: 201 for a new file, 200 for a replaced one")

	require.NoError(t, h.srv.SetForms(graphtest.FormOptions{UploadCreatedStatus: 200, UploadReplacedStatus: 201}))
	assert.Equal(t, []int{200, 201, 200, 201}, []int{put("/s2.txt", "1"), put("/s2.txt", "2"), session("/u2.txt"), session("/u2.txt")})
}

func TestFormsControl(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	r := h.plain("GET", "/_fake/forms", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, []string{"deltaLinkForm", "deltaParentPath", "downloadIgnoresRange", "downloadUrlAnnotation", "innerErrorSpelling",
		"nestedInnerErrors", "sharedWithMeRetired", "uploadCreatedStatus", "uploadReplacedStatus"}, keys(r.object(t)))

	r = h.plain("PUT", "/_fake/forms", `{"downloadIgnoresRange":true,"deltaLinkForm":"path"}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	r = h.plain("PUT", "/_fake/forms", `{"innerErrorSpelling":"innererror"}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, graphtest.FormOptions{DownloadIgnoresRange: true, DeltaLinkForm: "path", InnerErrorSpelling: "innererror"},
		h.srv.Forms(), "PUT merges")

	for _, bad := range []string{`{"deltaLinkForm":"odata"}`, `{"innerErrorSpelling":"inner_error"}`,
		`{"uploadCreatedStatus":204}`, `{"downloadUrlAnnotation":"x"}`, `{"noSuchForm":1}`} {
		assert.Equal(t, http.StatusBadRequest, h.plain("PUT", "/_fake/forms", bad).status, bad)
	}
	assert.Equal(t, "innererror", h.srv.Forms().InnerErrorSpelling, "a refused change changes nothing")

	require.Equal(t, http.StatusOK, h.plain("DELETE", "/_fake/forms", nil).status)
	assert.Equal(t, graphtest.FormOptions{}, h.srv.Forms())

	_, err := graphtest.New(graphtest.Options{Forms: graphtest.FormOptions{DeltaLinkForm: "odata"}})
	assert.Error(t, err)
	_, err = graphtest.New(graphtest.Options{Faults: graphtest.FaultOptions{RetryAfterForm: "http-date"}})
	assert.Error(t, err)
}

func TestFormsRetryAfterDate(t *testing.T) {
	clock := newManualClock()
	clock.Advance(300 * time.Millisecond) // not on a whole second: rounded up
	h := startFake(t, graphtest.Options{Clock: clock.Now})
	r := h.plain("PUT", "/_fake/faults", `{"throttleEvery":1,"ops":["drive.get"],"retryAfter":"2s","retryAfterForm":"date"}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, "date", r.object(t)["retryAfterForm"])

	r = h.api("GET", "/me/drive", nil)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	at, err := http.ParseTime(r.header.Get("Retry-After"))
	require.NoError(t, err, r.header.Get("Retry-After"))
	assert.Equal(t, time.Date(2025, 3, 1, 12, 0, 3, 0, time.UTC), at.UTC(), "now + 2 s, rounded up to a second")

	h.srv.SetFaults(graphtest.FaultOptions{ThrottleEvery: 1, ThrottleStatus: 509, Ops: []string{"drive.get"}})
	r = h.api("GET", "/me/drive", nil)
	assert.Equal(t, 509, r.status)
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	assert.Equal(t, "activityLimitReached", r.errorCode())
}

func TestFaultDropReplyAfterServing(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	r := h.plain("PUT", "/_fake/faults", `{"dropNextReplies":1,"ops":["folder.create"]}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)

	// A POST is not repeated by net/http: the error reaches the caller.
	req, err := http.NewRequest("POST", h.srv.GraphURL()+"/me/drive/root/children",
		strings.NewReader(`{"name":"Once","folder":{}}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.hc.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "the connection is dropped without an answer")

	_, ok := h.srv.ItemByPath("/Once")
	assert.True(t, ok, "the request was served before its reply was lost")
	assert.Zero(t, h.srv.Faults().DropNextReplies, "used up")
	r = h.api("POST", "/me/drive/root/children", map[string]any{"name": "Once", "folder": map[string]any{}})
	assert.Equal(t, http.StatusConflict, r.status, "the repeat is answered")
	st := h.srv.Stats()
	assert.EqualValues(t, 1, st.RepliesDropped)
	assert.Zero(t, st.Resets)
	assert.EqualValues(t, 2, st.Requests["folder.create"])
}

func TestFaultDropReplyEveryNthFragment(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	r := h.api("POST", "/me/drive/root:/up.bin:/createUploadSession", map[string]any{})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	up := r.object(t)["uploadUrl"].(string)
	frag := strings.Repeat("x", 327680)
	h.srv.SetFaults(graphtest.FaultOptions{DropReplyEvery: 2, Ops: []string{"upload.fragment"}})

	r = h.send("PUT", up, frag, http.Header{"Content-Range": {"bytes 0-327679/983040"}})
	require.Equal(t, http.StatusAccepted, r.status, "the first is answered")
	req, err := http.NewRequest("PUT", up, strings.NewReader(frag))
	require.NoError(t, err)
	req.Header.Set("Content-Range", "bytes 327680-655359/983040")
	resp, err := h.hc.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "the second one's reply is lost")

	r = h.plain("GET", up, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, []any{"655360-"}, r.object(t)["nextExpectedRanges"], "the lost fragment was stored")
	r = h.send("PUT", up, frag, http.Header{"Content-Range": {"bytes 327680-655359/983040"}})
	assert.Equal(t, http.StatusRequestedRangeNotSatisfiable, r.status, "a repeat overlaps")
	assert.EqualValues(t, 2*327680, h.srv.Stats().BytesUploaded, "the repeat was refused unread")
	assert.EqualValues(t, 1, h.srv.Stats().RepliesDropped)
}

// monitorPoll reads the monitor as a JSON object (nil for an empty body).
func (h *fakeHarness) monitorPoll(mon string) (reply, map[string]any) {
	h.t.Helper()
	r := h.plain("GET", mon, nil)
	if len(r.body) == 0 {
		return r, nil
	}
	return r, r.object(h.t)
}

func TestCopyMonitorSharePointShape(t *testing.T) {
	clock := newManualClock()
	h := startFake(t, graphtest.Options{Clock: clock.Now, Copy: graphtest.CopyOptions{
		Latency: 4 * time.Second, MonitorStyle: "200", MonitorBody: "sharepoint", MonitorRunningStatus: 200}})
	id := h.put("/f.txt", "data", time.Time{})
	mon := h.startCopy("/me/drive/items/"+id, map[string]any{"name": "g.txt"}, "")
	jobID := mon[strings.LastIndex(mon, "/")+1:]

	clock.Advance(2 * time.Second)
	r, st := h.monitorPoll(mon)
	assert.Equal(t, http.StatusOK, r.status, "200 while running too")
	assert.Equal(t, []string{"@odata.context", "createdDateTime", "id", "lastActionDateTime", "percentComplete",
		"percentageComplete", "status"}, keys(st))
	assert.Equal(t, "inProgress", st["status"])
	assert.EqualValues(t, 50, st["percentComplete"])
	assert.Equal(t, st["percentComplete"], st["percentageComplete"])
	assert.Equal(t, jobID, st["id"])
	assert.Equal(t, "0001-01-01T00:00:00Z", st["createdDateTime"])
	assert.True(t, strings.HasSuffix(st["@odata.context"].(string), "/operations/$entity"), st["@odata.context"])

	clock.Advance(2 * time.Second)
	r, st = h.monitorPoll(mon)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, []string{"@odata.context", "createdDateTime", "id", "lastActionDateTime", "percentComplete",
		"percentageComplete", "resourceId", "resourceLocation", "status"}, keys(st))
	newID := h.item("/me/drive/root:/g.txt")["id"]
	assert.Equal(t, newID, st["resourceId"])
	assert.Equal(t, "g.txt", h.item(st["resourceLocation"].(string))["name"])
}

func TestCopyMonitorKnobs(t *testing.T) {
	h := startFake(t, graphtest.Options{Copy: graphtest.CopyOptions{MonitorStyle: "303-body", MonitorOperation: "itemCopy"}})
	id := h.put("/f.txt", "data", time.Time{})
	h.put("/taken.txt", "x", time.Time{})

	mon := h.startCopy("/me/drive/items/"+id, map[string]any{"name": "g.txt"}, "")
	r, st := h.monitorPoll(mon)
	assert.Equal(t, http.StatusSeeOther, r.status)
	assert.Equal(t, "itemCopy", st["operation"])
	assert.Equal(t, "completed", st["status"])
	assert.Equal(t, st["resourceLocation"], r.header.Get("Location"))

	for _, tc := range []struct {
		copyOpts graphtest.CopyOptions
		status   int
		want     string // the failure part of the body, as JSON
	}{
		{graphtest.CopyOptions{}, 200,
			`{"error":{"code":"nameAlreadyExists","message":"Name already exists"}}`},
		{graphtest.CopyOptions{MonitorFailedStatus: 500}, 500,
			`{"error":{"code":"nameAlreadyExists","message":"Name already exists"}}`},
		{graphtest.CopyOptions{MonitorFailedStatus: 202, MonitorFailure: "details"}, 202,
			`{"error":{"message":"Errors occurred during copy/move operation.","details":[{"code":"nameAlreadyExists","message":"Name already exists"}]}}`},
		{graphtest.CopyOptions{MonitorFailure: "errorCode"}, 200,
			`{"errorCode":"nameAlreadyExists","statusDescription":"Name already exists"}`},
	} {
		require.NoError(t, h.srv.SetCopyOptions(tc.copyOpts))
		mon := h.startCopy("/me/drive/items/"+id, map[string]any{"name": "taken.txt"}, "")
		r, st := h.monitorPoll(mon)
		assert.Equal(t, tc.status, r.status)
		assert.Equal(t, "failed", st["status"])
		failure := map[string]any{}
		for _, k := range []string{"error", "errorCode", "statusDescription"} {
			if v, ok := st[k]; ok {
				failure[k] = v
			}
		}
		got, err := json.Marshal(failure)
		require.NoError(t, err)
		assert.JSONEq(t, tc.want, string(got))
	}

	require.NoError(t, h.srv.SetCopyOptions(graphtest.CopyOptions{}))
	r = h.plain("GET", "/_fake/copy", nil)
	require.Equal(t, http.StatusOK, r.status)
	co := r.object(t)
	assert.EqualValues(t, 202, co["monitorRunningStatus"], "defaults are shown")
	assert.EqualValues(t, 200, co["monitorFailedStatus"])
	assert.Equal(t, "graph", co["monitorBody"])
	assert.Equal(t, "ItemCopy", co["monitorOperation"])
	assert.Equal(t, "error", co["monitorFailure"])
	for _, bad := range []string{`{"monitorRunningStatus":201}`, `{"monitorFailedStatus":302}`,
		`{"monitorBody":"odata"}`, `{"monitorFailure":"none"}`, `{"monitorStyle":"307"}`} {
		assert.Equal(t, http.StatusBadRequest, h.plain("PUT", "/_fake/copy", bad).status, bad)
	}
	r = h.plain("PUT", "/_fake/copy", `{"monitorFailedStatus":500,"monitorBody":"sharepoint"}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, 500, h.srv.CopyOptions().MonitorFailedStatus)
	assert.Equal(t, "sharepoint", h.srv.CopyOptions().MonitorBody)
}

func TestFormsDeltaParentPath(t *testing.T) {
	for _, tc := range []struct {
		name      string
		driveType string
		knob      bool
		want      bool
	}{
		{"default", "personal", false, false},
		{"personal with the knob", "personal", true, true},
		{"business ignores the knob", "business", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startFake(t, graphtest.Options{DriveType: tc.driveType,
				Forms: graphtest.FormOptions{DeltaParentPath: tc.knob}})
			h.put("/Docs/a.txt", "a", time.Time{})
			r := h.api("GET", "/me/drive/root/delta", nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.body)
			paths := map[string]any{}
			for _, v := range r.object(t)["value"].([]any) {
				it := v.(map[string]any)
				ref, _ := it["parentReference"].(map[string]any)
				if p, ok := ref["path"]; ok {
					paths[it["name"].(string)] = p
				}
			}
			if !tc.want {
				assert.Empty(t, paths)
				return
			}
			assert.Equal(t, map[string]any{"Docs": "/drive/root:", "a.txt": "/drive/root:/Docs"}, paths)
		})
	}
}
