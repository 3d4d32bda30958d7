package graphtest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// Shared helpers of the OAuth, copy, delta, fault and counter tests (this
// file also tests the control API).

// manualClock is an Options.Clock that moves only when told.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func newManualClock() *manualClock {
	return &manualClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeHarness is a started fake and an HTTP client that does not follow
// redirects (302 downloads and 303 monitors are inspected, as clients must).
type fakeHarness struct {
	t     *testing.T
	srv   *graphtest.Server
	hc    *http.Client
	token string
}

func startFake(t *testing.T, opts graphtest.Options) *fakeHarness {
	t.Helper()
	srv := graphtest.NewServer(opts)
	t.Cleanup(func() { assert.NoError(t, srv.Close()) })
	return newHarness(t, srv)
}

// newHarness wraps a started server (the caller closes it).
func newHarness(t *testing.T, srv *graphtest.Server) *fakeHarness {
	hc := *srv.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &fakeHarness{t: t, srv: srv, hc: &hc, token: srv.IssueToken()}
}

// reply is a read HTTP response.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// decode decodes the JSON body into v.
func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body: %s", r.body)
}

// object decodes the JSON body as an object.
func (r reply) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	r.decode(t, &m)
	return m
}

// errorCode is the Graph error code of the body ("" if none).
func (r reply) errorCode() string {
	var b struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &b)
	return b.Error.Code
}

// send performs a request. target is absolute or relative to the server;
// body is nil, []byte, string, url.Values (form) or anything JSON-encoded.
func (h *fakeHarness) send(method, target string, body any, header http.Header) reply {
	h.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = h.srv.URL + target
	}
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	case url.Values:
		rd, ctype = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		raw, err := json.Marshal(b)
		require.NoError(h.t, err)
		rd, ctype = bytes.NewReader(raw), "application/json"
	}
	req, err := http.NewRequest(method, target, rd)
	require.NoError(h.t, err)
	for k, vs := range header {
		req.Header[k] = vs
	}
	if ctype != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := h.hc.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: raw}
}

// api sends an authenticated Graph request; path is below /v1.0 or an
// absolute URL.
func (h *fakeHarness) api(method, path string, body any) reply {
	h.t.Helper()
	if strings.HasPrefix(path, "/") {
		path = "/v1.0" + path
	}
	return h.send(method, path, body, http.Header{"Authorization": {"Bearer " + h.token}})
}

// plain sends a request without Authorization (pre-authenticated URLs,
// control API).
func (h *fakeHarness) plain(method, target string, body any) reply {
	h.t.Helper()
	return h.send(method, target, body, nil)
}

// item fetches a driveItem by Graph path, requiring 200.
func (h *fakeHarness) item(path string) map[string]any {
	h.t.Helper()
	r := h.api("GET", path, nil)
	require.Equal(h.t, http.StatusOK, r.status, "GET %s: %s", path, r.body)
	return r.object(h.t)
}

// put seeds a file (mtime zero: now) and returns its id.
func (h *fakeHarness) put(path, content string, mtime time.Time) string {
	h.t.Helper()
	id, err := h.srv.PutFile(path, []byte(content), mtime)
	require.NoError(h.t, err)
	return id
}

// mkdir seeds a folder (and its parents) and returns its id.
func (h *fakeHarness) mkdir(path string) string {
	h.t.Helper()
	id, err := h.srv.MkdirAll(path)
	require.NoError(h.t, err)
	return id
}

func TestControlIndexAndErrors(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	r := h.plain("GET", "/_fake/", nil)
	require.Equal(t, http.StatusOK, r.status)
	var idx struct {
		Endpoints []struct{ Method, Path, Description string } `json:"endpoints"`
	}
	r.decode(t, &idx)
	var paths []string
	for _, e := range idx.Endpoints {
		paths = append(paths, e.Method+" "+e.Path)
	}
	assert.Contains(t, paths, "GET /_fake/stats")
	assert.Contains(t, paths, "PUT /_fake/faults")
	assert.Contains(t, paths, "POST /_fake/devicecodes/{user_code}/approve")

	assert.Equal(t, http.StatusNotFound, h.plain("GET", "/_fake/nope", nil).status)
	assert.Equal(t, http.StatusMethodNotAllowed, h.plain("DELETE", "/_fake/stats", nil).status)
	assert.Equal(t, http.StatusMethodNotAllowed, h.plain("GET", "/_fake/devicecodes/ABC/approve", nil).status)
	assert.Equal(t, http.StatusNotFound, h.plain("POST", "/_fake/devicecodes/NOSUCHCODE/approve", nil).status)
}

func TestControlFaultsRoundTrip(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	r := h.plain("PUT", "/_fake/faults", `{"throttleEvery":2,"retryAfter":"3s","ops":["item.get"],"slowBy":"10ms"}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	got := h.srv.Faults()
	assert.Equal(t, 2, got.ThrottleEvery)
	assert.Equal(t, 3*time.Second, got.RetryAfter)
	assert.Equal(t, []string{"item.get"}, got.Ops)
	assert.Equal(t, 10*time.Millisecond, got.SlowBy)

	// PUT merges: fields not named keep their value.
	r = h.plain("PUT", "/_fake/faults", `{"throttleStatus":503}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	m := r.object(t)
	assert.EqualValues(t, 503, m["throttleStatus"])
	assert.EqualValues(t, 2, m["throttleEvery"])
	assert.Equal(t, "3s", m["retryAfter"])

	// The faults are live: every 2nd item.get is throttled.
	assert.Equal(t, http.StatusOK, h.api("GET", "/me/drive/root", nil).status)
	r = h.api("GET", "/me/drive/root", nil)
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Equal(t, "3", r.header.Get("Retry-After"))

	assert.Equal(t, http.StatusBadRequest, h.plain("PUT", "/_fake/faults", `{"throttleStatus":418}`).status)
	assert.Equal(t, http.StatusBadRequest, h.plain("PUT", "/_fake/faults", `{"noSuchKnob":1}`).status)
	assert.Equal(t, http.StatusBadRequest, h.plain("PUT", "/_fake/faults", `{"slowBy":"soon"}`).status)

	r = h.plain("DELETE", "/_fake/faults", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, graphtest.FaultOptions{}, h.srv.Faults())
}

func TestControlCopyAndAuthKnobs(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	r := h.plain("GET", "/_fake/copy", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "303", r.object(t)["monitorStyle"])

	r = h.plain("PUT", "/_fake/copy", `{"latency":"1m30s","rate":1048576,"monitorStyle":"200"}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	co := h.srv.CopyOptions()
	assert.Equal(t, 90*time.Second, co.Latency)
	assert.EqualValues(t, 1<<20, co.Rate)
	assert.Equal(t, "200", co.MonitorStyle)
	assert.Equal(t, http.StatusBadRequest, h.plain("PUT", "/_fake/copy", `{"monitorStyle":"307"}`).status)
	assert.Equal(t, "200", h.srv.CopyOptions().MonitorStyle, "a refused change changes nothing")

	r = h.plain("PUT", "/_fake/auth", `{"manualApproval":true,"tokenLifetime":"10m"}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	ao := h.srv.AuthOptions()
	assert.True(t, ao.ManualApproval)
	assert.Equal(t, 10*time.Minute, ao.TokenLifetime)
	assert.Equal(t, "10m0s", h.plain("GET", "/_fake/auth", nil).object(t)["tokenLifetime"])
}

func TestControlTokensAndDelta(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	r := h.plain("POST", "/_fake/tokens", nil)
	require.Equal(t, http.StatusOK, r.status)
	h.token = r.object(t)["access_token"].(string)
	assert.Equal(t, http.StatusOK, h.api("GET", "/me/drive", nil).status)

	latest := h.api("GET", "/me/drive/root/delta?token=latest", nil)
	require.Equal(t, http.StatusOK, latest.status)
	link := latest.object(t)["@odata.deltaLink"].(string)

	require.Equal(t, http.StatusOK, h.plain("POST", "/_fake/delta/expire", nil).status)
	assert.Equal(t, http.StatusGone, h.api("GET", link, nil).status)

	require.Equal(t, http.StatusOK, h.plain("POST", "/_fake/tokens/expire", nil).status)
	assert.Equal(t, http.StatusUnauthorized, h.api("GET", "/me/drive", nil).status)
}

func TestControlJobs(t *testing.T) {
	clock := newManualClock()
	h := startFake(t, graphtest.Options{Clock: clock.Now, Copy: graphtest.CopyOptions{Latency: 8 * time.Second}})
	id := h.put("/a.txt", "abc", time.Time{})
	r := h.api("POST", "/me/drive/items/"+id+"/copy", map[string]any{"name": "b.txt"})
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	clock.Advance(4 * time.Second)
	jobs := h.srv.CopyJobs()
	require.Len(t, jobs, 1)
	assert.Equal(t, "inProgress", jobs[0].Status)
	assert.InDelta(t, 50, jobs[0].PercentageComplete, 0.01)

	r = h.plain("GET", "/_fake/jobs", nil)
	require.Equal(t, http.StatusOK, r.status)
	var body struct {
		Jobs []graphtest.CopyJobStatus `json:"jobs"`
	}
	r.decode(t, &body)
	require.Len(t, body.Jobs, 1)
	assert.Equal(t, jobs[0].ID, body.Jobs[0].ID)
	assert.True(t, strings.HasSuffix(r.header.Get("Content-Type"), "json"))
}
