package remote_test

// Integration tests of the service's alternative forms
// (docs/graph-contract.md: where the service's behaviour varies, the client
// accepts every form listed): the fake is switched to each form it can produce
// (FormOptions, the monitor knobs of CopyOptions, FaultOptions.RetryAfterForm
// and dropped replies) and the client must come out the same. The fake's own
// tests (graphtest/forms_test.go) show that each form is really on the wire.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// statuses lists the reply statuses of the exchanges of one kind and method
// ("" for any method), in order; 0 for an exchange that got no reply.
func (r *recorder) statuses(kind, method string) []int {
	var out []int
	for _, ex := range r.exchanges() {
		if ex.Kind == kind && (method == "" || ex.Method == method) {
			out = append(out, ex.Status)
		}
	}
	return out
}

// ---- Downloads ----

func TestIntegrationFormDownloadIgnoresRange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fake: graphtest.Options{Forms: graphtest.FormOptions{DownloadIgnoresRange: true}}})
	content := pattern(600_000, 40)
	id := e.put("/r.bin", content)

	var buf bytes.Buffer
	n, err := e.client.Download(e.ctx, id, 1000, 5000, &buf)
	require.NoError(t, err)
	assert.Equal(t, int64(5000), n)
	assert.Equal(t, content[1000:6000], buf.Bytes(), "the client skips and limits a whole body")

	buf.Reset()
	n, err = e.client.Download(e.ctx, id, int64(len(content))-10, -1, &buf)
	require.NoError(t, err)
	assert.Equal(t, content[len(content)-10:], buf.Bytes())
	assert.Equal(t, int64(10), n)

	buf.Reset()
	n, err = e.client.Download(e.ctx, id, int64(len(content))+5, 10, &buf)
	require.NoError(t, err, "past the end: nothing, as with 416")
	assert.Zero(t, n)

	it, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)
	buf.Reset()
	require.NoError(t, e.client.DownloadVerified(e.ctx, it, &buf))
	assert.Equal(t, content, buf.Bytes())

	assert.Equal(t, []int{200, 200, 200, 200}, e.rec.statuses("download", ""), "the host ignored every Range")
	e.rec.requireNoAuthOnPreauth(t)
}

func TestIntegrationFormDownloadIgnoresRangeResumes(t *testing.T) {
	t.Parallel()
	// A download cut short is resumed by asking for the rest; a host that
	// ignores Range sends everything again, and the client skips what it
	// already has.
	e := newEnv(t, envConfig{fake: graphtest.Options{Forms: graphtest.FormOptions{DownloadIgnoresRange: true}}})
	content := pattern(1<<20, 41)
	id := e.put("/big.bin", content)
	e.fake.SetFaults(graphtest.FaultOptions{ResetEvery: 2, Ops: []string{"download"}})
	assert.Equal(t, content, e.download(id), "the first download is whole")

	var buf bytes.Buffer
	n, err := e.client.Download(e.ctx, id, 100_000, -1, &buf)
	require.NoError(t, err)
	assert.Equal(t, int64(len(content)-100_000), n)
	assert.Equal(t, content[100_000:], buf.Bytes(), "the second was cut, and resumed")
	assert.Equal(t, int64(1), e.fake.Stats().Resets)
	assert.Equal(t, int64(3), e.fake.Stats().Requests["download"])
}

func TestIntegrationFormContentDownloadURL(t *testing.T) {
	t.Parallel()
	// The direct API's @content.downloadUrl is used like Graph's.
	e := newEnv(t, envConfig{fake: graphtest.Options{Forms: graphtest.FormOptions{DownloadURLAnnotation: "content"}}})
	content := pattern(10_000, 42)
	id := e.put("/d.bin", content)
	it, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)
	require.NotEmpty(t, it.DownloadURL)
	kids, err := e.client.Children(e.ctx, e.rootID())
	require.NoError(t, err)
	require.Len(t, kids, 1)
	assert.NotEmpty(t, kids[0].DownloadURL)
	var buf bytes.Buffer
	require.NoError(t, e.client.DownloadVerified(e.ctx, it, &buf))
	assert.Equal(t, content, buf.Bytes())
	assert.Zero(t, e.fake.Stats().Requests["content.get"], "the item's URL was used, no redirect asked for")
}

// ---- Copy monitor ----

func TestIntegrationFormMonitorFailedStatus(t *testing.T) {
	t.Parallel()
	// Whatever the HTTP status of a failed poll (500 with a valid status
	// body in 2017), the JSON status decides.
	for _, status := range []int{http.StatusOK, http.StatusAccepted, http.StatusNotFound, http.StatusInternalServerError} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			e, clock := copyEnv(t, "200", func(o *graphtest.Options) {
				o.Copy.MonitorFailedStatus = status
				o.Faults = graphtest.FaultOptions{FailNextCopies: 1, FailCopyCode: "accessDenied"}
			})
			srcID := e.put("/a.txt", []byte("a"))
			dst := e.mkdir("/dst")
			monitor, err := e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{DestParentID: dst})
			require.NoError(t, err)
			st := waitJob(t, e, clock, monitor)
			assert.Equal(t, remote.JobFailed, st.State)
			assert.Equal(t, "failed", st.Status)
			require.NotNil(t, st.Err)
			assert.Equal(t, "accessDenied", st.Err.Code)
			assert.Zero(t, st.Err.StatusCode, "the poll's HTTP status is not the job's")
			assert.ErrorIs(t, st.Err, remote.ErrForbidden)
			assert.NotErrorIs(t, st.Err, remote.ErrNotFound)
			polls := e.rec.statuses("monitor", "")
			assert.Equal(t, status, polls[len(polls)-1])
			assert.Equal(t, int64(len(polls)), e.fake.Stats().Requests["monitor"],
				"each poll was one request: a failed poll's status body is an answer, not retried")
		})
	}
}

func TestIntegrationFormMonitorSharePointShape(t *testing.T) {
	t.Parallel()
	// Business: 200 on every poll, SharePoint's operation body.
	e, clock := copyEnv(t, "200", func(o *graphtest.Options) {
		o.Copy.MonitorBody = "sharepoint"
		o.Copy.MonitorRunningStatus = http.StatusOK
	})
	content := pattern(50_000, 43)
	srcID := e.put("/src/a.txt", content)
	dst := e.mkdir("/dst")
	monitor, err := e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{DestParentID: dst, Name: "b.txt"})
	require.NoError(t, err)

	clock.Advance(30 * time.Minute)
	st, err := e.client.Monitor(e.ctx, monitor)
	require.NoError(t, err)
	assert.Equal(t, remote.JobRunning, st.State, "a 200 is not completion: the status says inProgress")
	assert.Equal(t, "inProgress", st.Status)
	assert.InDelta(t, 50, st.Percent, 5)
	assert.Empty(t, st.Operation, "SharePoint names no operation")

	clock.Advance(time.Hour)
	st, err = e.client.Monitor(e.ctx, monitor)
	require.NoError(t, err)
	assert.Equal(t, remote.JobCompleted, st.State)
	assert.Equal(t, float64(100), st.Percent)
	require.NotEmpty(t, st.ResourceID)
	assert.True(t, strings.HasSuffix(st.ResourceURL, "/items/"+st.ResourceID), st.ResourceURL)
	it, err := e.client.Item(e.ctx, st.ResourceID)
	require.NoError(t, err)
	assert.Equal(t, "b.txt", it.Name)
	assert.Equal(t, qxh(content), it.QuickXorHash)
	assert.Equal(t, []int{200, 200}, e.rec.statuses("monitor", ""))
	e.rec.requireNoAuthOnPreauth(t)
}

func TestIntegrationFormMonitorCompletion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		copy   graphtest.CopyOptions
		status int
		op     string
	}{
		{"lowercase operation", graphtest.CopyOptions{MonitorStyle: "202", MonitorOperation: "itemCopy"}, http.StatusAccepted, "itemCopy"},
		{"303 with a status body", graphtest.CopyOptions{MonitorStyle: "303-body"}, http.StatusSeeOther, "ItemCopy"},
		{"SharePoint 202", graphtest.CopyOptions{MonitorStyle: "202", MonitorBody: "sharepoint"}, http.StatusAccepted, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{fake: graphtest.Options{Copy: tc.copy}})
			srcID := e.put("/a.txt", []byte("abc"))
			monitor, err := e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{Name: "b.txt"})
			require.NoError(t, err)
			st, err := e.client.Monitor(e.ctx, monitor)
			require.NoError(t, err)
			assert.Equal(t, remote.JobCompleted, st.State)
			assert.Equal(t, tc.op, st.Operation)
			b, err := e.client.ItemByPath(e.ctx, "/b.txt")
			require.NoError(t, err)
			assert.Equal(t, b.ID, st.ResourceID)
			assert.Equal(t, []int{tc.status}, e.rec.statuses("monitor", ""))
		})
	}
}

func TestIntegrationFormMonitorFailureBodies(t *testing.T) {
	t.Parallel()
	// A name taken at completion, reported in each failure form; the code
	// reaches Err.Code, which callers show (fs/jobs.go).
	for _, tc := range []struct {
		failure, body string
	}{
		{"error", "graph"},
		{"details", "sharepoint"}, // SharePoint's multi-item form: no top-level code
		{"details", "graph"},
		{"errorCode", "graph"},
	} {
		t.Run(tc.failure+"/"+tc.body, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{fake: graphtest.Options{Copy: graphtest.CopyOptions{
				MonitorStyle: "200", MonitorFailure: tc.failure, MonitorBody: tc.body}}})
			srcID := e.put("/a.txt", []byte("a"))
			e.put("/taken.txt", []byte("t"))
			monitor, err := e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{Name: "taken.txt"})
			require.NoError(t, err)
			st, err := e.client.Monitor(e.ctx, monitor)
			require.NoError(t, err)
			assert.Equal(t, remote.JobFailed, st.State)
			require.NotNil(t, st.Err)
			assert.Equal(t, "nameAlreadyExists", st.Err.Code)
			assert.NotEmpty(t, st.Err.Message)
			assert.ErrorIs(t, st.Err, remote.ErrConflict)
			got, err := e.fake.ReadFile("/taken.txt")
			require.NoError(t, err)
			assert.Equal(t, "t", string(got), "the failed copy changed nothing")
		})
	}
}

func TestIntegrationLegacyCopyAddressing(t *testing.T) {
	t.Parallel()
	// OD-old: POST /drive/root:/{path}:/copy with parentReference.path. The
	// client does not send this form (it copies by id); the fake accepts it
	// and the client polls the resulting monitor.
	e := newEnv(t, envConfig{fake: graphtest.Options{Copy: graphtest.CopyOptions{MonitorStyle: "200"}}})
	content := pattern(20_000, 44)
	e.put("/My Docs/a #1.txt", content)
	dst := e.mkdir("/Dest Dir")
	token := e.fake.IssueToken()
	startCopy := func(path string, body map[string]any) *http.Response {
		t.Helper()
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodPost, e.fake.GraphURL()+path, bytes.NewReader(raw))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Prefer", "respond-async")
		resp, err := http.DefaultTransport.RoundTrip(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	src := "/drive/root:/" + (&url.URL{Path: "My Docs/a #1.txt"}).EscapedPath() + ":/copy"

	for i, ref := range []map[string]any{
		{"path": "/drive/root:/Dest Dir"},
		{"path": "/drives/" + e.fake.DefaultDriveID() + "/root:/Dest%20Dir"},
		{"path": "/drive/root:/Dest Dir", "id": dst},
	} {
		name := fmt.Sprintf("b%d.txt", i)
		resp := startCopy(src, map[string]any{"parentReference": ref, "name": name})
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", ref)
		st, err := e.client.Monitor(e.ctx, resp.Header.Get("Location"))
		require.NoError(t, err)
		require.Equal(t, remote.JobCompleted, st.State, "%v", ref)
		it, err := e.client.Item(e.ctx, st.ResourceID)
		require.NoError(t, err)
		assert.Equal(t, name, it.Name)
		assert.Equal(t, dst, it.ParentID)
		assert.Equal(t, qxh(content), it.QuickXorHash)
	}

	// id and path naming different folders: refused synchronously.
	resp := startCopy(src, map[string]any{"parentReference": map[string]any{"path": "/drive/root:/My Docs", "id": dst}})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	// The legacy /drive/items/{id}/copy addressing works as well.
	srcInfo, ok := e.fake.ItemByPath("/My Docs/a #1.txt")
	require.True(t, ok)
	resp = startCopy("/drive/items/"+srcInfo.ID+"/copy", map[string]any{"parentReference": map[string]any{"id": dst}})
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	st, err := e.client.Monitor(e.ctx, resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, remote.JobCompleted, st.State)
	_, err = e.client.ItemByPath(e.ctx, "/Dest Dir/a #1.txt")
	require.NoError(t, err)
}

// ---- Delta ----

func TestIntegrationFormDeltaPathLinks(t *testing.T) {
	t.Parallel()
	// Links in the delta(token='X') form, over several pages, then a
	// change, a bare token and a resync.
	e := newEnv(t, envConfig{fake: graphtest.Options{PageSize: 2, Forms: graphtest.FormOptions{DeltaLinkForm: "path"}}})
	for i := range 5 {
		e.put(fmt.Sprintf("/f%d.txt", i), []byte{byte(i)})
	}
	first, err := e.client.Delta(e.ctx, "")
	require.NoError(t, err)
	assert.Len(t, byID(first.Items), 6, "the root and five files")
	assert.Contains(t, first.DeltaLink, "/delta(token='")
	assert.NotContains(t, first.DeltaLink, "?token=")
	tok := remote.DeltaToken(first.DeltaLink)
	require.NotEmpty(t, tok)
	var followed int
	for _, ex := range e.rec.exchanges() {
		if strings.Contains(ex.Path, "/delta(token=") {
			followed++
		}
	}
	assert.Equal(t, 2, followed, "three pages: two nextLinks in the path form, followed as given")

	newID := e.put("/new.txt", []byte("new"))
	d, err := e.client.Delta(e.ctx, first.DeltaLink)
	require.NoError(t, err)
	assert.Contains(t, byID(d.Items), newID)
	assert.Contains(t, d.DeltaLink, "/delta(token='")

	// A bare token (as a caller may have saved) is sent in the query form,
	// which the service accepts too.
	newer := e.put("/newer.txt", []byte("newer"))
	d2, err := e.client.Delta(e.ctx, remote.DeltaToken(d.DeltaLink))
	require.NoError(t, err)
	m := byID(d2.Items)
	assert.Contains(t, m, newer)
	assert.NotContains(t, m, newID)

	e.fake.ExpireDeltaTokens()
	_, err = e.client.Delta(e.ctx, d2.DeltaLink)
	require.ErrorIs(t, err, remote.ErrResyncRequired)
	var re *remote.Error
	require.ErrorAs(t, err, &re)
	require.NotEmpty(t, re.Location)
	fresh, err := e.client.Delta(e.ctx, re.Location)
	require.NoError(t, err)
	assert.Len(t, byID(fresh.Items), 8)
	assert.Contains(t, fresh.DeltaLink, "/delta(token='")
}

// ---- Errors and throttling ----

func TestIntegrationFormInnerErrors(t *testing.T) {
	t.Parallel()
	for name, forms := range map[string]graphtest.FormOptions{
		"innererror":        {InnerErrorSpelling: "innererror"},
		"nested":            {NestedInnerErrors: true},
		"innererror nested": {InnerErrorSpelling: "innererror", NestedInnerErrors: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{fake: graphtest.Options{Forms: forms}})
			root := e.rootID()

			// A bad name: the detail code says so, at whatever depth.
			_, err := e.client.CreateFolder(e.ctx, root, "a:b", remote.ConflictFail)
			require.ErrorIs(t, err, remote.ErrInvalidName)
			var re *remote.Error
			require.ErrorAs(t, err, &re)
			assert.Equal(t, "invalidRequest", re.Code)
			assert.Equal(t, "nameContainsInvalidCharacters", re.InnerCode)
			assert.NotEmpty(t, re.RequestID)

			deep := e.mkdir("/" + strings.Repeat("d", 200) + "/" + strings.Repeat("e", 190))
			_, err = e.client.CreateFolder(e.ctx, deep, strings.Repeat("f", 20), remote.ConflictFail)
			require.ErrorAs(t, err, &re)
			assert.Equal(t, "pathIsTooLong", re.InnerCode)
			assert.ErrorIs(t, err, remote.ErrInvalidName)

			// A stale delta link: 410 with a resync detail code.
			d, err := e.client.Delta(e.ctx, "latest")
			require.NoError(t, err)
			e.fake.ExpireDeltaTokens()
			_, err = e.client.Delta(e.ctx, d.DeltaLink)
			require.ErrorIs(t, err, remote.ErrResyncRequired)
			require.ErrorAs(t, err, &re)
			assert.Equal(t, "resyncChangesApplyDifferences", re.InnerCode)
			assert.NotEmpty(t, re.Location)
		})
	}
}

func TestIntegrationFormRetryAfterDate(t *testing.T) {
	t.Parallel()
	// Retry-After as an HTTP date: both clocks stand still at a whole
	// second, so the wait it names is exact. It is longer than the client
	// waits inside a call: the caller gets it.
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	clock := func() time.Time { return at }
	e := newEnv(t, envConfig{
		fake: graphtest.Options{Clock: clock, Faults: graphtest.FaultOptions{
			ThrottleEvery: 1, Ops: []string{"drive.get"}, RetryAfter: 30 * time.Second, RetryAfterForm: "date"}},
		client: func(c *remote.Config) {
			c.Clock = clock
			c.Retry.MaxRetryAfter = time.Second
		},
	})
	_, err := e.client.Drive(e.ctx)
	require.ErrorIs(t, err, remote.ErrThrottled)
	var re *remote.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 30*time.Second, re.RetryAfter)
	assert.Equal(t, int64(1), e.fake.Stats().Requests["drive.get"])
}

func TestIntegrationFormRetryAfterDateWaited(t *testing.T) {
	t.Parallel()
	// On real clocks, a dated Retry-After is waited out like one in
	// seconds, for every kind of request.
	e := newEnv(t, envConfig{})
	content := pattern(100_000, 46)
	id := e.put("/a.bin", content)
	e.fake.SetFaults(graphtest.FaultOptions{ThrottleEvery: 2, Ops: []string{"item.get", "download"},
		RetryAfter: time.Second, RetryAfterForm: "date"})
	_, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)
	assert.Equal(t, content, e.download(id), "the download was throttled, waited and repeated")
	assert.Equal(t, int64(1), e.fake.Stats().Throttled)
	assert.Equal(t, []int{http.StatusTooManyRequests, http.StatusOK}, e.rec.statuses("download", ""))
}

func TestIntegrationFormBandwidthThrottle(t *testing.T) {
	t.Parallel()
	// 509 (the bandwidth cap) is throttling too: waited out and retried.
	e := newEnv(t, envConfig{})
	content := pattern(100_000, 47)
	id := e.put("/a.bin", content)
	e.fake.SetFaults(graphtest.FaultOptions{ThrottleEvery: 2, ThrottleStatus: 509, Ops: []string{"download"}})
	assert.Equal(t, content, e.download(id))
	assert.Equal(t, content, e.download(id))
	assert.Equal(t, int64(1), e.fake.Stats().Throttled)
	assert.Equal(t, []int{200, 509, 200}, e.rec.statuses("download", ""))
}

// ---- Upload reply statuses ----

func TestIntegrationFormUploadStatuses(t *testing.T) {
	t.Parallel()
	// 200 for a new file and 201 for a replaced one, the other way round
	// from the fake's default: the client takes both as the item.
	e := newEnv(t, envConfig{
		fake:   graphtest.Options{Forms: graphtest.FormOptions{UploadCreatedStatus: 200, UploadReplacedStatus: 201}},
		client: func(c *remote.Config) { c.FragmentSize = remote.FragmentUnit; c.SimpleUploadLimit = 1 << 20 },
	})
	root := e.rootID()
	upload := func(name string, content []byte) *remote.Item {
		t.Helper()
		it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: name,
			Content: bytes.NewReader(content), Size: int64(len(content))})
		require.NoError(t, err)
		assert.Equal(t, qxh(content), it.QuickXorHash)
		got, err := e.fake.ReadFile("/" + name)
		require.NoError(t, err)
		assert.Equal(t, content, got)
		return it
	}
	small1 := upload("small.txt", []byte("one"))
	small2 := upload("small.txt", []byte("two!"))
	assert.Equal(t, small1.ID, small2.ID)
	big := pattern(2<<20, 48)
	big1 := upload("big.bin", big)
	big2 := upload("big.bin", big[:len(big)-7])
	assert.Equal(t, big1.ID, big2.ID)

	assert.Equal(t, []int{200, 201}, e.rec.statuses("graph", http.MethodPut), "simple PUTs: new, replace")
	var finals []int
	for _, s := range e.rec.statuses("upload", http.MethodPut) {
		if s != http.StatusAccepted {
			finals = append(finals, s)
		}
	}
	assert.Equal(t, []int{200, 201}, finals, "final fragments: new, replace")
}

// ---- Replies lost after the service acted ----

func TestIntegrationDroppedReplyCreateFolder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	root := e.rootID()
	e.fake.SetFaults(graphtest.FaultOptions{DropNextReplies: 1, Ops: []string{"folder.create"}})
	f, err := e.client.CreateFolder(e.ctx, root, "Once", remote.ConflictFail)
	require.NoError(t, err, "the repeat's 409 is the first attempt's success")
	list, err := e.fake.List("/")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, list[0].ID, f.ID)
	st := e.fake.Stats()
	assert.Equal(t, int64(2), st.Requests["folder.create"])
	assert.Equal(t, int64(1), st.RepliesDropped)

	// With rename, a repeat could create "Twice 1": not repeated, and the
	// folder the service did create is there.
	e.fake.SetFaults(graphtest.FaultOptions{DropNextReplies: 1, Ops: []string{"folder.create"}})
	_, err = e.client.CreateFolder(e.ctx, root, "Twice", remote.ConflictRename)
	require.ErrorIs(t, err, remote.ErrOutcomeUnknown)
	_, ok := e.fake.ItemByPath("/Twice")
	assert.True(t, ok)
	list, _ = e.fake.List("/")
	assert.Len(t, list, 2)
}

func TestIntegrationDroppedReplyUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	id := e.put("/a.txt", []byte("a"))
	cur, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)
	mtime := time.Date(2020, 2, 2, 2, 2, 2, 0, time.UTC)
	e.fake.SetFaults(graphtest.FaultOptions{DropNextReplies: 1, Ops: []string{"item.update"}})
	it, err := e.client.Update(e.ctx, id, remote.ItemUpdate{Name: "b.txt", FSModified: mtime, IfMatch: cur.ETag})
	require.NoError(t, err, "the repeat's 412 is the first attempt's success")
	assert.Equal(t, "b.txt", it.Name)
	assert.True(t, mtime.Equal(it.FSModified))
	st := e.fake.Stats()
	assert.Equal(t, int64(2), st.Requests["item.update"])
	assert.Equal(t, int64(1), st.RepliesDropped)

	// A 412 that is not ours stays an error: the item changed behind the
	// client's back, so the first attempt was refused too (its reply lost),
	// and the repeat's 412 does not show the requested change.
	e.put("/b.txt", []byte("changed behind our back"))
	e.fake.SetFaults(graphtest.FaultOptions{DropNextReplies: 1, Ops: []string{"item.update"}})
	_, err = e.client.Update(e.ctx, id, remote.ItemUpdate{Name: "c.txt", IfMatch: it.ETag})
	assert.ErrorIs(t, err, remote.ErrPreconditionFailed)
	_, ok := e.fake.ItemByPath("/b.txt")
	assert.True(t, ok, "nothing was renamed")
}

func TestIntegrationDroppedReplyDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	id := e.put("/a.txt", []byte("a"))
	e.fake.SetFaults(graphtest.FaultOptions{DropNextReplies: 1, Ops: []string{"item.delete"}})
	require.NoError(t, e.client.Delete(e.ctx, id, ""), "the repeat's 404 is the first attempt's success")
	_, ok := e.fake.ItemByID(id)
	assert.False(t, ok)
	assert.Equal(t, int64(2), e.fake.Stats().Requests["item.delete"])
	assert.Equal(t, int64(1), e.fake.Stats().RepliesDropped)
}

func TestIntegrationDroppedReplySimpleUpload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	root := e.rootID()
	// New file with conflictBehavior fail: the repeat meets 409.
	e.fake.SetFaults(graphtest.FaultOptions{DropNextReplies: 1, Ops: []string{"upload.simple"}})
	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: "a.txt",
		Content: strings.NewReader("first"), Size: 5, Conflict: remote.ConflictFail})
	require.NoError(t, err)
	assert.Equal(t, qxh([]byte("first")), it.QuickXorHash)

	// Replacement with If-Match: the repeat meets 412.
	e.fake.SetFaults(graphtest.FaultOptions{DropNextReplies: 1, Ops: []string{"upload.simple"}})
	it2, err := e.client.Upload(e.ctx, remote.UploadRequest{ItemID: it.ID,
		Content: strings.NewReader("second"), Size: 6, IfMatch: it.ETag})
	require.NoError(t, err)
	assert.Equal(t, it.ID, it2.ID)
	got, _ := e.fake.ReadFile("/a.txt")
	assert.Equal(t, "second", string(got))
	st := e.fake.Stats()
	assert.Equal(t, int64(4), st.Requests["upload.simple"])
	assert.Equal(t, int64(2), st.RepliesDropped)
}

func TestIntegrationDroppedFragmentReplies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{client: func(c *remote.Config) { c.FragmentSize = 4 * remote.FragmentUnit }})
	content := pattern(5<<20, 49) // 4 fragments
	// The 2nd fragment lands but its reply is lost: the repeat would
	// overlap; the client asks the session and goes on without sending it
	// again. The 4th (last) one's reply is lost too: the session has
	// completed and is gone; the client finds the file holding its bytes.
	e.fake.SetFaults(graphtest.FaultOptions{DropReplyEvery: 2, Ops: []string{"upload.fragment"}})
	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "f.bin",
		Content: bytes.NewReader(content), Size: int64(len(content))})
	require.NoError(t, err)
	assert.Equal(t, qxh(content), it.QuickXorHash)
	got, err := e.fake.ReadFile("/f.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(content, got))
	st := e.fake.Stats()
	assert.Equal(t, int64(len(content)), st.BytesUploaded, "no byte sent twice")
	assert.Equal(t, int64(4), st.Requests["upload.fragment"])
	assert.Equal(t, int64(2), st.RepliesDropped)
	assert.Equal(t, int64(2), st.Requests["upload.status"], "the session was asked after each loss")
	assert.Equal(t, int64(1), st.Requests["upload.create"])
	assert.Equal(t, []int{202, 0, 202, 0}, e.rec.statuses("upload", http.MethodPut))

	// Replacing the file, only the last fragment's reply is lost: the
	// client finds the file, same id, holding exactly its new bytes.
	e.fake.ResetStats()
	content2 := pattern(5<<20, 52)
	e.fake.SetFaults(graphtest.FaultOptions{DropReplyEvery: 4, Ops: []string{"upload.fragment"}})
	it2, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "f.bin",
		Content: bytes.NewReader(content2), Size: int64(len(content2))})
	require.NoError(t, err)
	assert.Equal(t, it.ID, it2.ID)
	assert.Equal(t, qxh(content2), it2.QuickXorHash)
	st = e.fake.Stats()
	assert.Equal(t, int64(len(content2)), st.BytesUploaded, "no byte sent twice")
	assert.Equal(t, int64(1), st.RepliesDropped)
	assert.Equal(t, int64(1), st.Requests["upload.create"])
}

func TestIntegrationDroppedCopyReply(t *testing.T) {
	t.Parallel()
	// Unlike a reset before the service acted, the copy did start: the
	// client cannot know, says so, and does not start a second one.
	e := newEnv(t, envConfig{fake: graphtest.Options{Copy: graphtest.CopyOptions{MonitorStyle: "200"}}})
	id := e.put("/a.txt", []byte("a"))
	e.fake.SetFaults(graphtest.FaultOptions{DropNextReplies: 1, Ops: []string{"copy.start"}})
	_, err := e.client.StartCopy(e.ctx, id, remote.CopyRequest{Name: "b.txt"})
	require.ErrorIs(t, err, remote.ErrOutcomeUnknown)
	st := e.fake.Stats()
	assert.Equal(t, int64(1), st.Requests["copy.start"], "not repeated")
	assert.Equal(t, int64(1), st.CopyJobsStarted, "the service did act")
	_, err = e.client.ItemByPath(e.ctx, "/b.txt")
	require.NoError(t, err, "the caller can find the destination")
}

func TestIntegrationDroppedRepliesRepeated(t *testing.T) {
	t.Parallel()
	// Every other reply of every kind is lost after the request was
	// served: reads, downloads, a session and a delta round still succeed.
	e := newEnv(t, envConfig{client: func(c *remote.Config) { c.FragmentSize = remote.FragmentUnit; c.SimpleUploadLimit = 1 << 10 }})
	root := e.rootID()
	content := pattern(200_000, 50)
	id := e.put("/a.bin", content)
	e.fake.SetFaults(graphtest.FaultOptions{DropReplyEvery: 2})

	_, err := e.client.Drive(e.ctx)
	require.NoError(t, err)
	_, err = e.client.Item(e.ctx, id)
	require.NoError(t, err)
	_, err = e.client.Children(e.ctx, root)
	require.NoError(t, err)
	assert.Equal(t, content, e.download(id))
	up := pattern(2*remote.FragmentUnit+5, 51)
	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: "s.bin",
		Content: bytes.NewReader(up), Size: int64(len(up))})
	require.NoError(t, err)
	assert.Equal(t, qxh(up), it.QuickXorHash)
	_, err = e.client.Delta(e.ctx, "")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, e.fake.Stats().RepliesDropped, int64(5))
}
