package remote

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStartCopyRequest(t *testing.T) {
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requireBearer(t, r)
		require.Equal(t, http.MethodPost, r.Method)
		assert.Equal(t, drivePrefix+"/items/SRC!1/copy?@microsoft.graph.conflictBehavior=rename", r.RequestURI)
		assert.Equal(t, "respond-async", r.Header.Get("Prefer"))
		assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
		var body map[string]any
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		assert.Equal(t, map[string]any{
			"parentReference": map[string]any{"driveId": "d2", "id": "DEST!2"},
			"name":            "copy of a.txt",
		}, body)
		w.Header().Set("Location", "http://"+r.Host+"/monitor/job1?tempauth=xyz")
		w.WriteHeader(http.StatusAccepted)
	}))
	mon, err := env.c.StartCopy(context.Background(), "SRC!1", CopyRequest{
		DestParentID: "DEST!2", DestDriveID: "d2", Name: "copy of a.txt", Conflict: ConflictRename})
	require.NoError(t, err)
	assert.Equal(t, env.srv.URL+"/monitor/job1?tempauth=xyz", mon)
}

func TestStartCopyWithoutLocationIsAnError(t *testing.T) {
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	}))
	_, err := env.c.StartCopy(context.Background(), "src", CopyRequest{})
	require.Error(t, err)
}

func TestStartCopySynchronousErrors(t *testing.T) {
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		graphError(w, http.StatusNotFound, "itemNotFound", "")
	}))
	_, err := env.c.StartCopy(context.Background(), "src", CopyRequest{DestParentID: "gone"})
	require.ErrorIs(t, err, ErrNotFound)
}

// monitorReply is one scripted poll reply.
type monitorReply struct {
	status   int
	header   map[string]string
	fixture  string // testdata/graph file for the body
	body     string // or an inline body
	location string // Location, relative to the server ("" for none)
}

func TestJobStatusWords(t *testing.T) {
	for word, want := range map[string]JobState{
		"completed": JobCompleted, "Completed": JobCompleted,
		"failed": JobFailed, "deleteFailed": JobFailed, "cancelled": JobFailed, "canceled": JobFailed,
		"notStarted": JobRunning, "inProgress": JobRunning, "waiting": JobRunning, "updating": JobRunning,
		"deletePending": JobRunning, "cancelPending": JobRunning, "somethingNew": JobRunning,
	} {
		w := wireJobStatus{Status: word}
		st := w.toStatus()
		assert.Equal(t, want, st.State, word)
		assert.Equal(t, word, st.Status, "the service's word is kept")
		if want == JobFailed {
			assert.NotNil(t, st.Err, word)
		}
	}
}

func TestMonitorForms(t *testing.T) {
	cases := map[string]struct {
		reply monitorReply
		check func(t *testing.T, st *JobStatus)
	}{
		"running 202": {monitorReply{status: 202, fixture: "asyncjob-inprogress.json"}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobRunning, st.State)
			assert.Equal(t, "inProgress", st.Status)
			assert.Equal(t, "ItemCopy", st.Operation)
			assert.InDelta(t, 27.8, st.Percent, 1e-9)
		}},
		"running SharePoint 200 percentComplete": {monitorReply{status: 200, fixture: "asyncjob-sharepoint-inprogress.json"}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobRunning, st.State)
			assert.InDelta(t, 42.5, st.Percent, 1e-9)
		}},
		"running with Retry-After": {monitorReply{status: 202, fixture: "asyncjob-inprogress.json", header: map[string]string{"Retry-After": "5"}}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobRunning, st.State)
			assert.Equal(t, 5*time.Second, st.RetryAfter)
		}},
		"202 without body": {monitorReply{status: 202}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobRunning, st.State)
		}},
		"other running statuses": {monitorReply{status: 200, body: `{"status":"waiting","operation":"itemCopy"}`}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobRunning, st.State)
			assert.Equal(t, "itemCopy", st.Operation)
		}},
		"completed 202 (Graph LRO)": {monitorReply{status: 202, fixture: "asyncjob-completed.json"}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobCompleted, st.State)
			assert.Equal(t, "01MOWKYVJML57KN2ANMBA3JZJS2MBGC7KM", st.ResourceID)
			assert.Equal(t, 100.0, st.Percent)
		}},
		"completed 200 (SharePoint)": {monitorReply{status: 200, fixture: "asyncjob-sharepoint-completed.json"}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobCompleted, st.State)
			assert.Equal(t, "01NKDM7HLT4XJRRYDBFVA35VVNBFMCEVFU", st.ResourceID)
			assert.True(t, strings.HasSuffix(st.ResourceURL, "/items/01NKDM7HLT4XJRRYDBFVA35VVNBFMCEVFU"))
		}},
		"completed 303 without body": {monitorReply{status: 303, location: "/v1.0/drives/d1/items/NEW!42?force303=1&tempauth=abc"}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobCompleted, st.State)
			assert.Equal(t, "NEW!42", st.ResourceID)
			assert.Contains(t, st.ResourceURL, "/v1.0/drives/d1/items/NEW!42")
		}},
		"completed 303 OData form": {monitorReply{status: 303, location: "/_api/v2.0/drives('d1')/items('NEW!43')"}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobCompleted, st.State)
			assert.Equal(t, "NEW!43", st.ResourceID)
		}},
		"completed 303 with status body": {monitorReply{status: 303, fixture: "asyncjob-completed.json", location: "/v1.0/drives/d1/items/OTHER"}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobCompleted, st.State)
			assert.Equal(t, "01MOWKYVJML57KN2ANMBA3JZJS2MBGC7KM", st.ResourceID, "resourceId wins over the Location")
		}},
		"failed 200": {monitorReply{status: 200, fixture: "asyncjob-failed.json"}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobFailed, st.State)
			require.NotNil(t, st.Err)
			assert.Equal(t, "nameAlreadyExists", st.Err.Code)
			assert.Equal(t, "Name already exists", st.Err.Message)
			assert.ErrorIs(t, st.Err, ErrConflict)
		}},
		"failed 500 with status body": {monitorReply{status: 500, fixture: "asyncjob-failed.json"}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobFailed, st.State)
			assert.Equal(t, "nameAlreadyExists", st.Err.Code)
		}},
		"failed with errorCode": {monitorReply{status: 200, fixture: "asyncjob-failed-errorcode.json"}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobFailed, st.State)
			assert.Equal(t, "AccessDenied_CrossDriveCopy", st.Err.Code)
			assert.Contains(t, st.Err.Message, "access was denied")
		}},
		"failed with details": {monitorReply{status: 200, fixture: "asyncjob-failed-details.json"}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobFailed, st.State)
			assert.Equal(t, "generalException", st.Err.Code)
			assert.ErrorIs(t, st.Err, ErrQuotaExceeded, "codes of details are matched too")
		}},
		"cancelled": {monitorReply{status: 200, body: `{"status":"cancelled"}`}, func(t *testing.T, st *JobStatus) {
			assert.Equal(t, JobFailed, st.State)
			assert.NotEmpty(t, st.Err.Message)
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var hits hitCounter
			env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasPrefix(r.URL.Path, "/monitor/") {
					hits.inc("elsewhere")
					return
				}
				requireNoAuth(t, r)
				hits.inc("monitor")
				writeMonitorReply(t, w, r, tc.reply)
			}))
			st, err := env.c.Monitor(context.Background(), env.srv.URL+"/monitor/job?tempauth=x")
			require.NoError(t, err)
			tc.check(t, st)
			assert.Equal(t, 1, hits.get("monitor"), "one poll, not retried")
			assert.Equal(t, 0, hits.get("elsewhere"), "redirects are not followed")
		})
	}
}

func writeMonitorReply(t *testing.T, w http.ResponseWriter, r *http.Request, m monitorReply) {
	for k, v := range m.header {
		w.Header().Set(k, v)
	}
	if m.location != "" {
		w.Header().Set("Location", "http://"+r.Host+m.location)
	}
	body := []byte(m.body)
	if m.fixture != "" {
		body = graphFixture(t, m.fixture)
	}
	if len(body) > 0 {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(m.status)
	_, _ = w.Write(body)
}

func TestMonitorErrors(t *testing.T) {
	t.Run("throttled", func(t *testing.T) {
		var hits hitCounter
		env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requireNoAuth(t, r)
			hits.inc("monitor")
			w.Header().Set("Retry-After", "12")
			graphError(w, http.StatusTooManyRequests, "activityLimitReached", "")
		}))
		_, err := env.c.Monitor(context.Background(), env.srv.URL+"/monitor/1")
		require.ErrorIs(t, err, ErrThrottled)
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, 12*time.Second, e.RetryAfter)
		assert.Equal(t, 1, hits.get("monitor"), "the caller decides when to poll again")
		assert.Empty(t, env.clock.Sleeps())
	})
	t.Run("503 without body", func(t *testing.T) {
		env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		_, err := env.c.Monitor(context.Background(), env.srv.URL+"/monitor/1")
		require.ErrorIs(t, err, ErrThrottled)
	})
	t.Run("expired", func(t *testing.T) {
		env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			graphError(w, http.StatusNotFound, "itemNotFound", "")
		}))
		_, err := env.c.Monitor(context.Background(), env.srv.URL+"/monitor/1")
		require.ErrorIs(t, err, ErrNotFound)
	})
	t.Run("token refused", func(t *testing.T) {
		env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			graphError(w, http.StatusUnauthorized, "unauthenticated", "")
		}))
		_, err := env.c.Monitor(context.Background(), env.srv.URL+"/monitor/1")
		require.ErrorIs(t, err, ErrUnauthorized)
		assert.Zero(t, env.tokens.invalidations(), "the monitor never uses the API token")
	})
	t.Run("reset retried", func(t *testing.T) {
		var hits hitCounter
		env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hits.inc("monitor") == 1 {
				breakConn()
			}
			writeMonitorReply(t, w, r, monitorReply{status: 202, fixture: "asyncjob-inprogress.json"})
		}))
		st, err := env.c.Monitor(context.Background(), env.srv.URL+"/monitor/1")
		require.NoError(t, err)
		assert.Equal(t, JobRunning, st.State)
		assert.Equal(t, 2, hits.get("monitor"))
	})
	t.Run("200 without status", func(t *testing.T) {
		env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			replyJSON(w, http.StatusOK, itemJSON("x", "x", 1))
		}))
		_, err := env.c.Monitor(context.Background(), env.srv.URL+"/monitor/1")
		require.ErrorIs(t, err, ErrNotSupported)
	})
}

func TestItemIDFromURL(t *testing.T) {
	cases := map[string]string{
		"https://graph.microsoft.com/v1.0/drives/d/items/ABC!1":                   "ABC!1",
		"https://api.onedrive.com/v1.0/drives/d/items/ABC%211?force303=1":         "ABC!1",
		"https://t-my.sharepoint.com/_api/v2.0/drives/b!x/items/01ABC?tempauth=z": "01ABC",
		"https://t-my.sharepoint.com/_api/v2.0/drives('b!x')/items('01XYZ')":      "01XYZ",
		"https://api.onedrive.com/v1.0/drive/items(01QQ)":                         "01QQ",
		"https://api.onedrive.com/v1.0/drive/items('')":                           "",
		"https://api.onedrive.com/v1.0/drive/root":                                "",
		// Cases copyjob tested when it parsed these URLs itself.
		"https://graph.microsoft.com/v1.0/drives/d/items/01XYZ/children": "01XYZ",
		"https://api.onedrive.com/v1.0/drive/items/a%20b":                "a b",
		"https://api.onedrive.com/v1.0/drive/root:/a/b":                  "",
		"::not a url": "",
	}
	for in, want := range cases {
		assert.Equal(t, want, itemIDFromURL(in), in)
	}
}
