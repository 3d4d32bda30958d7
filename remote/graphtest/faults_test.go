package graphtest_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

func TestThrottleEveryNth(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	h.srv.SetFaults(graphtest.FaultOptions{ThrottleEvery: 3, RetryAfter: 1500 * time.Millisecond})
	var statuses []int
	for range 6 {
		r := h.api("GET", "/me/drive/root", nil)
		statuses = append(statuses, r.status)
		if r.status == http.StatusTooManyRequests {
			assert.Equal(t, "2", r.header.Get("Retry-After"), "whole seconds, rounded up")
			assert.Equal(t, "activityLimitReached", r.errorCode())
		}
	}
	assert.Equal(t, []int{200, 200, 429, 200, 200, 429}, statuses)
	assert.EqualValues(t, 2, h.srv.Stats().Throttled)

	// OAuth endpoints are left alone unless named; control always is.
	h.srv.SetFaults(graphtest.FaultOptions{ThrottleEvery: 1})
	dc := h.deviceCode(testScope)
	assert.NotEmpty(t, dc.DeviceCode)
	assert.Equal(t, http.StatusOK, h.plain("GET", "/_fake/stats", nil).status)
	assert.Equal(t, http.StatusTooManyRequests, h.api("GET", "/me/drive", nil).status)
	h.srv.SetFaults(graphtest.FaultOptions{ThrottleEvery: 1, Ops: []string{"oauth"}})
	assert.Equal(t, http.StatusOK, h.api("GET", "/me/drive", nil).status)
	assert.Equal(t, http.StatusTooManyRequests, h.plain("POST", "/common/oauth2/v2.0/token", "grant_type=x").status)
}

func TestThrottleOnlyNamedOps(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	h.srv.SetFaults(graphtest.FaultOptions{ThrottleEvery: 1, Ops: []string{"children.list"}})
	assert.Equal(t, http.StatusOK, h.api("GET", "/me/drive/root", nil).status)
	r := h.api("GET", "/me/drive/root/children", nil)
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Equal(t, "1", r.header.Get("Retry-After"), "the default Retry-After")
}

func TestServiceUnavailableForAPeriod(t *testing.T) {
	clock := newManualClock()
	h := startFake(t, graphtest.Options{Clock: clock.Now})
	h.srv.SetFaults(graphtest.FaultOptions{ThrottleFor: time.Minute, ThrottleStatus: http.StatusServiceUnavailable, RetryAfter: 30 * time.Second})
	assert.Equal(t, clock.Now().Add(time.Minute), h.srv.Faults().ThrottleUntil)
	for range 3 {
		r := h.api("GET", "/me/drive", nil)
		assert.Equal(t, http.StatusServiceUnavailable, r.status)
		assert.Equal(t, "30", r.header.Get("Retry-After"))
		assert.Equal(t, "serviceNotAvailable", r.errorCode())
		clock.Advance(15 * time.Second)
	}
	clock.Advance(15 * time.Second)
	assert.Equal(t, http.StatusOK, h.api("GET", "/me/drive", nil).status)
}

func TestResetMidDownload(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	content := strings.Repeat("0123456789", 100_000) // 1 MB
	id := h.put("/big.bin", content, time.Time{})
	r := h.api("GET", "/me/drive/items/"+id+"/content", nil)
	require.Equal(t, http.StatusFound, r.status)
	dl := r.header.Get("Location")

	h.srv.SetFaults(graphtest.FaultOptions{ResetEvery: 2, Ops: []string{"download"}})
	h.srv.ResetStats()
	get := func() ([]byte, error) {
		resp, err := h.hc.Get(dl)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return io.ReadAll(resp.Body)
	}
	body, err := get()
	require.NoError(t, err, "the first download is whole")
	assert.Equal(t, content, string(body))

	body, err = get()
	require.Error(t, err)
	assert.True(t, errors.Is(err, io.ErrUnexpectedEOF), "%v", err)
	assert.Len(t, body, len(content)/2)
	assert.Equal(t, content[:len(body)], string(body))

	st := h.srv.Stats()
	assert.EqualValues(t, 1, st.Resets)
	assert.EqualValues(t, len(content)+len(content)/2, st.BytesDownloaded, "what was written is counted")
	assert.EqualValues(t, 2, st.Requests["download"])
}

func TestResetBeforeAnswerLeavesUploadSessionAlone(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	r := h.api("POST", "/me/drive/root:/up.bin:/createUploadSession", map[string]any{})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	up := r.object(t)["uploadUrl"].(string)
	frag := make([]byte, 327680)

	h.srv.SetFaults(graphtest.FaultOptions{ResetEvery: 1, Ops: []string{"upload.fragment"}})
	req, err := http.NewRequest("PUT", up, strings.NewReader(string(frag)))
	require.NoError(t, err)
	req.Header.Set("Content-Range", "bytes 0-327679/655360")
	resp, err := h.hc.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "the connection is dropped without an answer")
	h.srv.SetFaults(graphtest.FaultOptions{})

	r = h.plain("GET", up, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, []any{"0-"}, r.object(t)["nextExpectedRanges"], "the dropped fragment did not count")
	assert.EqualValues(t, 1, h.srv.Stats().Resets)
	assert.Zero(t, h.srv.Stats().BytesUploaded)
}

func TestSlowResponses(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	h.srv.SetFaults(graphtest.FaultOptions{SlowBy: 150 * time.Millisecond, Ops: []string{"drive.get"}})
	start := time.Now()
	assert.Equal(t, http.StatusOK, h.api("GET", "/me/drive", nil).status)
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "the answer waited at least SlowBy")
}
