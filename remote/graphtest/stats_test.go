package graphtest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

func TestStatsCounters(t *testing.T) {
	h := startFake(t, graphtest.Options{Copy: graphtest.CopyOptions{MonitorStyle: "200"}})
	id := h.put("/a.bin", strings.Repeat("a", 1000), time.Time{})
	h.srv.ResetStats()

	// 2 item.get, 1 children.list, 1 content.get + 1 ranged download (100
	// bytes), 1 simple upload of 300 bytes, a session of 2 fragments
	// (327,680 + 10 bytes), a copy with its monitor poll, a delta, a 401.
	h.api("GET", "/me/drive/root", nil)
	h.api("GET", "/me/drive/items/"+id, nil)
	h.api("GET", "/me/drive/root/children", nil)
	r := h.api("GET", "/me/drive/items/"+id+"/content", nil)
	require.Equal(t, http.StatusFound, r.status)
	r = h.send("GET", r.header.Get("Location"), nil, http.Header{"Range": {"bytes=100-199"}})
	require.Equal(t, http.StatusPartialContent, r.status)
	require.Equal(t, http.StatusCreated, h.api("PUT", "/me/drive/root:/b.bin:/content", []byte(strings.Repeat("b", 300))).status)
	r = h.api("POST", "/me/drive/root:/c.bin:/createUploadSession", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	up := r.object(t)["uploadUrl"].(string)
	r = h.send("PUT", up, make([]byte, 327680), http.Header{"Content-Range": {"bytes 0-327679/327690"}})
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	r = h.send("PUT", up, make([]byte, 10), http.Header{"Content-Range": {"bytes 327680-327689/327690"}})
	require.Contains(t, []int{http.StatusOK, http.StatusCreated}, r.status, "%s", r.body)
	_, st := h.poll(h.startCopy("/me/drive/items/"+id, map[string]any{"name": "copy.bin"}, ""))
	require.Equal(t, "completed", st.Status)
	h.api("GET", "/me/drive/root/delta", nil)
	h.plain("GET", "/v1.0/me/drive", nil)
	h.plain("GET", "/_fake/stats", nil) // not counted

	got := h.srv.Stats()
	assert.Equal(t, map[string]int64{
		"item.get":        2,
		"children.list":   1,
		"content.get":     1,
		"download":        1,
		"upload.simple":   1,
		"upload.create":   1,
		"upload.fragment": 2,
		"copy.start":      1,
		"monitor":         1,
		"delta":           1,
		"drive.get":       1,
	}, got.Requests)
	assert.EqualValues(t, 13, got.RequestsTotal)
	assert.EqualValues(t, 100, got.BytesDownloaded)
	assert.EqualValues(t, 300+327690, got.BytesUploaded)
	assert.EqualValues(t, 1, got.CopyJobsStarted)
	assert.EqualValues(t, 1, got.CopyJobsCompleted)
	assert.Zero(t, got.CopyJobsFailed)

	// The same counters over the control API, then reset.
	r = h.plain("GET", "/_fake/stats", nil)
	require.Equal(t, http.StatusOK, r.status)
	var viaHTTP graphtest.Stats
	r.decode(t, &viaHTTP)
	assert.Equal(t, got, viaHTTP)
	m := r.object(t)
	for _, k := range []string{"requests", "requestsTotal", "bytesDownloaded", "bytesUploaded", "copyJobsStarted", "copyJobsCompleted", "copyJobsFailed"} {
		assert.Contains(t, m, k)
	}
	r = h.plain("POST", "/_fake/stats/reset", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, graphtest.Stats{Requests: map[string]int64{}}, h.srv.Stats())
}
