package copyjob

import (
	"encoding/json"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatusJSON(t *testing.T) {
	base := Job{ID: "0abc00000001", Spec: Spec{SourceID: "SRC", SourcePath: "/a/b.txt", DestPath: "/c/b.txt", DestName: "b.txt", MonitorURL: monitorURL(1)}}
	with := func(f func(*Job)) Job { j := base; f(&j); return j }
	cases := []struct {
		name string
		job  Job
		want string
	}{
		{"queued", with(func(j *Job) { j.State = StateQueued }),
			`{"id":"0abc00000001","source":"/a/b.txt","destination":"/c/b.txt","status":"notStarted","percentageComplete":0,"error":null}`},
		{"running", with(func(j *Job) { j.State, j.Raw, j.Percent = StateRunning, "inProgress", 27.8 }),
			`{"id":"0abc00000001","source":"/a/b.txt","destination":"/c/b.txt","status":"inProgress","percentageComplete":27.8,"error":null}`},
		{"completed", with(func(j *Job) { j.State, j.Raw, j.Percent, j.ResourceID = StateCompleted, "", 100, "NEW" }),
			`{"id":"0abc00000001","source":"/a/b.txt","destination":"/c/b.txt","status":"completed","percentageComplete":100,"error":null}`},
		{"failed", with(func(j *Job) {
			j.State, j.Raw, j.Percent = StateFailed, "deleteFailed", 40
			j.Error = &JobError{Code: "nameAlreadyExists", Message: "Name already exists"}
		}),
			`{"id":"0abc00000001","source":"/a/b.txt","destination":"/c/b.txt","status":"failed","percentageComplete":40,"error":{"code":"nameAlreadyExists","message":"Name already exists"}}`},
		{"ids when no paths", with(func(j *Job) { j.SourcePath, j.DestPath, j.State = "", "", StateQueued }),
			`{"id":"0abc00000001","source":"SRC","destination":"b.txt","status":"notStarted","percentageComplete":0,"error":null}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.job.StatusJSON()
			require.NoError(t, err)
			assert.JSONEq(t, tc.want, string(got))
			var keys map[string]any
			require.NoError(t, json.Unmarshal(got, &keys))
			assert.Len(t, keys, 6, "exactly the documented keys")
		})
	}

	list, err := StatusListJSON(nil)
	require.NoError(t, err)
	assert.Equal(t, "[]", string(list), "an empty list is an array, not null")
	list, err = StatusListJSON([]Job{cases[1].job, cases[2].job})
	require.NoError(t, err)
	var docs []StatusDoc
	require.NoError(t, json.Unmarshal(list, &docs))
	require.Len(t, docs, 2)
	assert.Equal(t, "inProgress", docs[0].Status)
	assert.Equal(t, "completed", docs[1].Status)
}

func TestJobJSONCarriesNoCredential(t *testing.T) {
	j := Job{ID: "x", Spec: specFor(1), State: StateRunning, ResourceURL: "https://h/items/X?tempauth=" + querySecret}
	data, err := json.Marshal(j)
	require.NoError(t, err)
	assert.NotContains(t, string(data), pathSecret)
	assert.NotContains(t, string(data), querySecret)
	assert.Contains(t, string(data), `"sourcePath":"/src/file1.bin"`)
}

func TestStateTerminal(t *testing.T) {
	assert.True(t, StateCompleted.Terminal())
	assert.True(t, StateFailed.Terminal())
	assert.False(t, StateRunning.Terminal())
	assert.False(t, StateQueued.Terminal())
}

func TestScrub(t *testing.T) {
	u := monitorURL(7)
	parsed, _ := url.Parse(u)
	for _, msg := range []string{
		(&url.Error{Op: "Get", URL: u, Err: errors.New("EOF")}).Error(),
		"unexpected answer from " + parsed.Path,
		"query was " + parsed.RawQuery,
		"decoded " + parsed.Query().Encode(),
	} {
		got := scrub(msg, u)
		assert.NotContains(t, got, pathSecret, msg)
		assert.NotContains(t, got, querySecret, msg)
	}
	assert.Equal(t, `Get "<monitor>": EOF`, scrub((&url.Error{Op: "Get", URL: u, Err: errors.New("EOF")}).Error(), u))
	assert.Equal(t, "api.onedrive.com", monitorHost(u))
}

func TestIDs(t *testing.T) {
	var g idGen
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	prev := ""
	for i := range 2 * idSeqLimit { // more ids in one millisecond than the counter holds
		id := g.next(now)
		require.Len(t, id, idTimeDigits+idSeqDigits)
		require.Greater(t, id, prev, "id %d", i)
		prev = id
	}
	assert.Greater(t, g.next(now.Add(-time.Hour)), prev, "a clock stepping back does not reorder ids")

	var h idGen
	h.observe(prev)
	assert.Greater(t, h.next(now), prev, "ids after a reload sort after the loaded ones")
	later := h.next(now.Add(time.Hour))
	assert.Equal(t, pad36(now.Add(time.Hour).UnixMilli(), idTimeDigits)+"000", later, "ids follow the clock again")
}
