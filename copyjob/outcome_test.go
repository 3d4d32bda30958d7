package copyjob

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

func TestCompletesWithResourceID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{})
		h.poller.script(monitorURL(1), running("notStarted", 0), running("inProgress", 40), completed("NEW1"))

		added := h.add(t, 1)
		assert.Equal(t, StateQueued, added.State)
		assert.Equal(t, specFor(1), added.Spec)

		got, err := h.tr.Wait(t.Context(), added.ID)
		require.NoError(t, err)
		assert.Equal(t, StateCompleted, got.State)
		assert.Equal(t, "completed", got.Raw)
		assert.Equal(t, "NEW1", got.ResourceID)
		assert.Equal(t, 100.0, got.Percent)
		assert.Equal(t, 3, got.Polls)
		assert.Nil(t, got.Error)
		assert.False(t, got.Finished.IsZero())
		assert.Empty(t, got.MonitorURL, "a finished job forgets its monitor URL")
		assert.Equal(t, []Job{got}, h.doneJobs(), "OnDone once, with the job Wait returns")
	})
}

// monitorTransport answers monitor URLs from a list of replies, in order
// (the last repeats), without a network: the real remote.Client parses them.
type monitorTransport struct {
	mu      sync.Mutex
	replies []*http.Response // GUARDED_BY(mu)
	n       int              // GUARDED_BY(mu)
	auth    []string         // GUARDED_BY(mu) Authorization headers seen
}

func (m *monitorTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.auth = append(m.auth, req.Header.Get("Authorization"))
	r := *m.replies[min(m.n, len(m.replies)-1)]
	m.n++
	r.Request = req
	r.Body = io.NopCloser(strings.NewReader(r.Header.Get("X-Test-Body")))
	return &r, nil
}

func reply(code int, body string, header ...string) *http.Response {
	h := http.Header{"X-Test-Body": {body}}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	if body != "" {
		h.Set("Content-Type", "application/json")
	}
	return &http.Response{StatusCode: code, Header: h}
}

// The tracker polls through the real remote.Client, which takes a 303's
// Location as the new item (the oldest form of completion).
func TestCompletesWith303Location(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		loc := "https://api.onedrive.com/v1.0/drive/items/ABC!123?tempauth=zzz"
		rt := &monitorTransport{replies: []*http.Response{
			reply(http.StatusAccepted, `{"operation":"ItemCopy","status":"inProgress","percentageComplete":10}`),
			reply(http.StatusSeeOther, "", "Location", loc),
		}}
		client, err := remote.New(remote.Config{GraphURL: "https://graph.microsoft.com/v1.0", Transport: rt,
			Tokens: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "GRAPHTOKEN"})})
		require.NoError(t, err)
		h := start(t, Config{Poller: client})

		got, err := h.tr.Wait(t.Context(), h.add(t, 1).ID)
		require.NoError(t, err)
		assert.Equal(t, StateCompleted, got.State)
		assert.Equal(t, "ABC!123", got.ResourceID, "id taken from the Location")
		assert.Equal(t, loc, got.ResourceURL)
		assert.Equal(t, 100.0, got.Percent)
		assert.Equal(t, "completed", got.StatusDoc().Status)
		assert.Equal(t, 2, got.Polls)
		assert.Equal(t, []string{"", ""}, rt.auth, "monitors are polled without a token")
	})
}

// The remote client's errors, as the service's replies produce them, are
// taken as the package doc says: a 429 with Retry-After pauses polling, a
// 404 from the monitor means it is gone.
func TestRemoteClientErrorsAreMapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		throttled := reply(http.StatusTooManyRequests,
			`{"error":{"code":"activityLimitReached","message":"Too many requests"}}`, "Retry-After", "3")
		gone := reply(http.StatusNotFound, `{"error":{"code":"itemNotFound","message":"Item not found"}}`)
		rt := &monitorTransport{replies: []*http.Response{throttled, gone}}
		client, err := remote.New(remote.Config{GraphURL: "https://graph.microsoft.com/v1.0", Transport: rt,
			Tokens: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "GRAPHTOKEN"})})
		require.NoError(t, err)
		h := start(t, Config{Poller: client, FirstInterval: 100 * ms, MaxGonePolls: 3})

		j := h.add(t, 1)
		got, err := h.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		assert.Equal(t, StateFailed, got.State)
		require.NotNil(t, got.Error)
		assert.Equal(t, CodeMonitorGone, got.Error.Code)
		assert.Contains(t, got.Error.Message, "404")
		assert.Equal(t, 4, got.Polls, "the throttled poll, then MaxGonePolls gone answers")
		assert.GreaterOrEqual(t, time.Since(j.Created), 100*ms+3*time.Second, "the Retry-After was honoured")
	})
}

func TestFailedJobs(t *testing.T) {
	cases := []struct {
		name string
		st   remote.JobStatus
		want JobError
	}{
		{"service code", remote.JobStatus{State: remote.JobFailed, Status: "failed",
			Err: &remote.Error{Op: "copy", Code: "nameAlreadyExists", Message: "Name already exists"}},
			JobError{"nameAlreadyExists", "Name already exists"}},
		{"no code", remote.JobStatus{State: remote.JobFailed, Status: "failed"}, JobError{CodeCopyFailed, "the service reported the copy as failed"}},
		{"cancelled", remote.JobStatus{State: remote.JobFailed, Status: "cancelled"}, JobError{"cancelled", "the service reported the copy as cancelled"}},
		{"state without word", remote.JobStatus{State: remote.JobFailed}, JobError{CodeCopyFailed, "the service reported the copy as failed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := start(t, Config{})
				h.poller.script(monitorURL(1), running("inProgress", 5), step{st: tc.st})
				got, err := h.tr.Wait(t.Context(), h.add(t, 1).ID)
				require.NoError(t, err, "a failed job is a result, not a Wait error")
				assert.Equal(t, StateFailed, got.State)
				require.NotNil(t, got.Error)
				assert.Equal(t, tc.want, *got.Error)
				assert.Len(t, h.doneJobs(), 1)
			})
		})
	}
}

func TestTransientErrorsAreRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{FirstInterval: 100 * time.Millisecond, BackoffFactor: 2, MaxInterval: time.Second})
		u := monitorURL(1)
		netErr := &url.Error{Op: "Get", URL: u, Err: errors.New("connection reset by peer")}
		h.poller.script(u, errs(netErr), errs(errors.New("HTTP 503")), errs(errors.New("invalid character '<'")), completed("NEW1"))

		j := h.add(t, 1)
		got, err := h.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		assert.Equal(t, StateCompleted, got.State)
		assert.Equal(t, 4, got.Polls)
		assert.Equal(t,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond},
			gaps(j.Created, h.poller.times(u)), "errors back off like running polls")
	})
}

func TestPollTimeoutIsATransientError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{PollTimeout: 2 * time.Second})
		hang := make(chan struct{}) // never closed: the first poll hangs until its deadline
		h.poller.script(monitorURL(1), step{block: hang}, completed("NEW1"))
		got, err := h.tr.Wait(t.Context(), h.add(t, 1).ID)
		require.NoError(t, err)
		assert.Equal(t, StateCompleted, got.State)
		assert.Equal(t, 2, got.Polls)
	})
}

func TestGivesUpOnPersistentErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{MaxConsecutiveErrors: 5, MaxErrorDuration: time.Minute, MaxInterval: 2 * time.Second}
		h := start(t, cfg)
		u := monitorURL(1)
		h.poller.script(u, running("inProgress", 10),
			errs(fmt.Errorf("monitor: %w", &url.Error{Op: "Get", URL: u, Err: errors.New("no route to host")})))

		j := h.add(t, 1)
		got, err := h.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		assert.Equal(t, StateFailed, got.State)
		require.NotNil(t, got.Error)
		assert.Equal(t, CodeMonitorUnreachable, got.Error.Code)
		assert.Contains(t, got.Error.Message, "no route to host")
		assert.NotContains(t, got.Error.Message, pathSecret)
		assert.NotContains(t, got.Error.Message, querySecret)

		polls := h.poller.times(u)
		firstErr, last := polls[1], polls[len(polls)-1]
		assert.GreaterOrEqual(t, last.Sub(firstErr), time.Minute, "many fast errors alone do not give up")
		assert.Less(t, last.Sub(firstErr), time.Minute+cfg.MaxInterval, "but it gives up once both limits are reached")
		assert.Equal(t, len(polls), got.Polls)
	})
}

func TestMonitorGone(t *testing.T) {
	gone := &remote.Error{Op: "copy monitor", StatusCode: 404, Code: "itemNotFound", Message: "Item not found"}
	t.Run("persistent 404 fails", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := start(t, Config{MaxGonePolls: 3})
			h.poller.script(monitorURL(1), running("inProgress", 50), errs(gone))
			got, err := h.tr.Wait(t.Context(), h.add(t, 1).ID)
			require.NoError(t, err)
			assert.Equal(t, StateFailed, got.State)
			require.NotNil(t, got.Error)
			assert.Equal(t, CodeMonitorGone, got.Error.Code)
			assert.Contains(t, got.Error.Message, "404 Not Found")
			assert.Equal(t, 4, got.Polls, "one good answer, then exactly MaxGonePolls gone answers")
		})
	})
	t.Run("other errors do not count as gone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := start(t, Config{MaxGonePolls: 3})
			other := &remote.Error{Op: "copy monitor", StatusCode: 502}
			h.poller.script(monitorURL(1), errs(gone), errs(other), errs(other), errs(gone), completed("NEW1"))
			got, err := h.tr.Wait(t.Context(), h.add(t, 1).ID)
			require.NoError(t, err)
			assert.Equal(t, StateCompleted, got.State)
		})
	})
	t.Run("a good answer resets the count", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := start(t, Config{MaxGonePolls: 3})
			h.poller.script(monitorURL(1), errs(gone), errs(gone), running("inProgress", 50), errs(gone), errs(gone), completed("NEW1"))
			got, err := h.tr.Wait(t.Context(), h.add(t, 1).ID)
			require.NoError(t, err)
			assert.Equal(t, StateCompleted, got.State)
			assert.Equal(t, 6, got.Polls)
		})
	})
}

func TestProgressIsVisible(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, Config{FirstInterval: time.Second, MaxInterval: time.Second})
		h.poller.script(monitorURL(1), running("notStarted", 0), running("inProgress", 27.8))
		j := h.add(t, 1)

		ch := h.tr.Changed()
		time.Sleep(time.Second) // first poll: notStarted
		synctest.Wait()
		assert.True(t, isClosed(ch), "Changed fires on the first answer")
		got, _ := h.tr.Get(j.ID)
		assert.Equal(t, StateRunning, got.State)
		assert.Equal(t, "notStarted", got.Raw)

		time.Sleep(time.Second) // second poll: inProgress 27.8
		synctest.Wait()
		got, _ = h.tr.Get(j.ID)
		assert.Equal(t, "inProgress", got.Raw)
		assert.Equal(t, 27.8, got.Percent)
		assert.Equal(t, 2, got.Polls)
		assert.Empty(t, h.doneJobs())
	})
}
