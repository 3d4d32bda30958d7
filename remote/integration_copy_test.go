package remote_test

// Integration tests of server-side copy and its monitor: the three forms of
// completion (303, 200, 202), failures, conflict behaviours, folders and
// other drives.

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// copyEnv is an env whose fake runs on a clock the test moves, with copy
// jobs that take an hour of it.
func copyEnv(t *testing.T, style string, mod func(*graphtest.Options)) (*env, *shiftClock) {
	clock := &shiftClock{}
	o := graphtest.Options{
		Clock: clock.Now,
		Auth:  graphtest.AuthOptions{TokenLifetime: 100 * time.Hour},
		Copy:  graphtest.CopyOptions{Latency: time.Hour, MonitorStyle: style},
	}
	if mod != nil {
		mod(&o)
	}
	return newEnv(t, envConfig{fake: o}), clock
}

// waitJob polls until the job ends, moving the fake's clock an hour at a
// time.
func waitJob(t *testing.T, e *env, clock *shiftClock, monitor string) *remote.JobStatus {
	t.Helper()
	for range 10 {
		st, err := e.client.Monitor(e.ctx, monitor)
		require.NoError(t, err)
		if st.State != remote.JobRunning {
			return st
		}
		clock.Advance(time.Hour)
	}
	t.Fatal("the copy job never ended")
	return nil
}

func TestIntegrationCopyMonitorForms(t *testing.T) {
	t.Parallel()
	for _, style := range []string{"303", "200", "202"} {
		t.Run(style, func(t *testing.T) {
			e, clock := copyEnv(t, style, nil)
			content := pattern(300_000, 12)
			mtime := time.Date(2015, 5, 5, 5, 5, 5, 0, time.UTC)
			srcID, err := e.fake.PutFile("/src/a.txt", content, mtime)
			require.NoError(t, err)
			dst := e.mkdir("/dst")

			monitor, err := e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{DestParentID: dst, Name: "b.txt"})
			require.NoError(t, err)
			require.NotEmpty(t, monitor)

			st, err := e.client.Monitor(e.ctx, monitor)
			require.NoError(t, err)
			assert.Equal(t, remote.JobRunning, st.State)
			assert.Equal(t, "notStarted", st.Status)
			assert.Equal(t, "ItemCopy", st.Operation)
			_, err = e.client.ItemByPath(e.ctx, "/dst/b.txt")
			assert.ErrorIs(t, err, remote.ErrNotFound, "the destination is absent before completion")

			clock.Advance(30 * time.Minute)
			st, err = e.client.Monitor(e.ctx, monitor)
			require.NoError(t, err)
			assert.Equal(t, remote.JobRunning, st.State)
			assert.Equal(t, "inProgress", st.Status)
			assert.InDelta(t, 50, st.Percent, 5)
			_, err = e.client.ItemByPath(e.ctx, "/dst/b.txt")
			assert.ErrorIs(t, err, remote.ErrNotFound)

			clock.Advance(time.Hour)
			st, err = e.client.Monitor(e.ctx, monitor)
			require.NoError(t, err)
			assert.Equal(t, remote.JobCompleted, st.State)
			assert.Equal(t, "completed", st.Status)
			assert.Equal(t, float64(100), st.Percent)
			assert.Nil(t, st.Err)
			require.NotEmpty(t, st.ResourceID)

			it, err := e.client.Item(e.ctx, st.ResourceID)
			require.NoError(t, err)
			assert.Equal(t, "b.txt", it.Name)
			assert.Equal(t, dst, it.ParentID)
			assert.Equal(t, int64(len(content)), it.Size)
			assert.Equal(t, qxh(content), it.QuickXorHash)
			assert.False(t, mtime.Equal(it.FSModified), "a copy does not keep the mtime")
			byPath, err := e.client.ItemByPath(e.ctx, "/dst/b.txt")
			require.NoError(t, err)
			assert.Equal(t, it.ID, byPath.ID)
			var buf bytes.Buffer
			require.NoError(t, e.client.DownloadVerified(e.ctx, it, &buf))
			assert.Equal(t, content, buf.Bytes())

			// The monitor keeps answering for a while after the end.
			st, err = e.client.Monitor(e.ctx, monitor)
			require.NoError(t, err)
			assert.Equal(t, remote.JobCompleted, st.State)
			assert.Equal(t, it.ID, st.ResourceID)
			// …and then forgets the job.
			clock.Advance(5 * time.Hour)
			_, err = e.client.Monitor(e.ctx, monitor)
			assert.ErrorIs(t, err, remote.ErrNotFound)

			// The monitor answered in the form asked for.
			var monitorStatuses []int
			for _, ex := range e.rec.exchanges() {
				if ex.Kind == "monitor" {
					monitorStatuses = append(monitorStatuses, ex.Status)
				}
			}
			final := map[string]int{"303": http.StatusSeeOther, "200": http.StatusOK, "202": http.StatusAccepted}[style]
			assert.Equal(t, []int{202, 202, final, final, 404}, monitorStatuses)
			e.rec.requireNoAuthOnPreauth(t)
		})
	}
}

func TestIntegrationCopyFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code     string
		sentinel error
	}{
		{"accessDenied", remote.ErrForbidden},
		{"quotaLimitReached", remote.ErrQuotaExceeded},
		{"", nil}, // the fake's default, generalException
	} {
		t.Run(tc.code, func(t *testing.T) {
			e, clock := copyEnv(t, "200", func(o *graphtest.Options) {
				o.Faults = graphtest.FaultOptions{FailNextCopies: 1, FailCopyCode: tc.code}
			})
			srcID := e.put("/a.txt", []byte("a"))
			dst := e.mkdir("/dst")
			monitor, err := e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{DestParentID: dst})
			require.NoError(t, err)
			st := waitJob(t, e, clock, monitor)
			assert.Equal(t, remote.JobFailed, st.State)
			assert.Equal(t, "failed", st.Status)
			require.NotNil(t, st.Err)
			want := tc.code
			if want == "" {
				want = "generalException"
			}
			assert.Equal(t, want, st.Err.Code)
			assert.NotEmpty(t, st.Err.Message)
			if tc.sentinel != nil {
				assert.ErrorIs(t, st.Err, tc.sentinel)
			}
			_, ok := e.fake.ItemByPath("/dst/a.txt")
			assert.False(t, ok, "a failed copy leaves nothing")
			assert.Equal(t, int64(1), e.fake.Stats().CopyJobsFailed)

			// The next copy is not hit.
			monitor, err = e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{DestParentID: dst})
			require.NoError(t, err)
			st = waitJob(t, e, clock, monitor)
			assert.Equal(t, remote.JobCompleted, st.State)
		})
	}
}

func TestIntegrationCopyConflictBehavior(t *testing.T) {
	t.Parallel()
	e, clock := copyEnv(t, "202", nil)
	srcID := e.put("/src/a.txt", []byte("source"))
	src, _ := e.fake.ItemByPath("/src")
	oldID := e.put("/dst/a.txt", []byte("old"))
	dst, _ := e.fake.ItemByPath("/dst")

	// Default (fail): accepted, then the job fails with nameAlreadyExists.
	for _, cb := range []remote.ConflictBehavior{remote.ConflictDefault, remote.ConflictFail} {
		monitor, err := e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{DestParentID: dst.ID, Conflict: cb})
		require.NoError(t, err)
		st := waitJob(t, e, clock, monitor)
		assert.Equal(t, remote.JobFailed, st.State)
		require.NotNil(t, st.Err)
		assert.Equal(t, "nameAlreadyExists", st.Err.Code)
		assert.ErrorIs(t, st.Err, remote.ErrConflict)
	}

	// Rename: "a 1.txt".
	monitor, err := e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{DestParentID: dst.ID, Conflict: remote.ConflictRename})
	require.NoError(t, err)
	st := waitJob(t, e, clock, monitor)
	require.Equal(t, remote.JobCompleted, st.State)
	it, err := e.client.Item(e.ctx, st.ResourceID)
	require.NoError(t, err)
	assert.Equal(t, "a 1.txt", it.Name)

	// Replace: the old file is gone, the copy holds the source's bytes.
	monitor, err = e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{DestParentID: dst.ID, Conflict: remote.ConflictReplace})
	require.NoError(t, err)
	st = waitJob(t, e, clock, monitor)
	require.Equal(t, remote.JobCompleted, st.State)
	assert.NotEqual(t, oldID, st.ResourceID)
	got, err := e.fake.ReadFile("/dst/a.txt")
	require.NoError(t, err)
	assert.Equal(t, "source", string(got))

	// Into the source's own folder under the same name: a conflict too.
	monitor, err = e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{})
	require.NoError(t, err)
	st = waitJob(t, e, clock, monitor)
	assert.Equal(t, remote.JobFailed, st.State)
	// …and with a new name, a sibling.
	monitor, err = e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{Name: "sibling.txt"})
	require.NoError(t, err)
	st = waitJob(t, e, clock, monitor)
	require.Equal(t, remote.JobCompleted, st.State)
	it, err = e.client.Item(e.ctx, st.ResourceID)
	require.NoError(t, err)
	assert.Equal(t, src.ID, it.ParentID)

	// The old documents' behaviour: the request itself is refused.
	require.NoError(t, e.fake.SetCopyOptions(graphtest.CopyOptions{ConflictAtStart: true, Latency: time.Hour,
		RequireRespondAsync: true}))
	_, err = e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{DestParentID: dst.ID})
	assert.ErrorIs(t, err, remote.ErrConflict)
	var re *remote.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusConflict, re.StatusCode)

	// Synchronous refusals.
	_, err = e.client.StartCopy(e.ctx, e.rootID(), remote.CopyRequest{DestParentID: dst.ID})
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusBadRequest, re.StatusCode, "the root cannot be copied")
	_, err = e.client.StartCopy(e.ctx, "NOPE!1", remote.CopyRequest{DestParentID: dst.ID})
	assert.ErrorIs(t, err, remote.ErrNotFound)
	_, err = e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{DestParentID: "NOPE!2"})
	assert.ErrorIs(t, err, remote.ErrNotFound)
	_, err = e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{DestParentID: dst.ID, Name: "bad:name"})
	assert.ErrorIs(t, err, remote.ErrInvalidName)
}

func TestIntegrationCopyFolder(t *testing.T) {
	t.Parallel()
	e, clock := copyEnv(t, "303", nil)
	e.put("/tree/a.txt", []byte("a"))
	e.put("/tree/sub/b.txt", []byte("bb"))
	e.mkdir("/tree/empty")
	tree, _ := e.fake.ItemByPath("/tree")
	dst := e.mkdir("/dst")

	monitor, err := e.client.StartCopy(e.ctx, tree.ID, remote.CopyRequest{DestParentID: dst})
	require.NoError(t, err)
	st := waitJob(t, e, clock, monitor)
	require.Equal(t, remote.JobCompleted, st.State)
	top, err := e.client.Item(e.ctx, st.ResourceID)
	require.NoError(t, err)
	assert.Equal(t, "tree", top.Name)
	assert.True(t, top.IsFolder)
	assert.Equal(t, int64(3), top.Size)
	got, err := e.fake.ReadFile("/dst/tree/sub/b.txt")
	require.NoError(t, err)
	assert.Equal(t, "bb", string(got))

	// childrenOnly copies the contents.
	dst2 := e.mkdir("/dst2")
	monitor, err = e.client.StartCopy(e.ctx, tree.ID, remote.CopyRequest{DestParentID: dst2, ChildrenOnly: true})
	require.NoError(t, err)
	st = waitJob(t, e, clock, monitor)
	require.Equal(t, remote.JobCompleted, st.State)
	kids, err := e.client.Children(e.ctx, dst2)
	require.NoError(t, err)
	var names []string
	for _, k := range kids {
		names = append(names, k.Name)
	}
	assert.Equal(t, []string{"a.txt", "empty", "sub"}, names)
}

func TestIntegrationCopyToOtherDrive(t *testing.T) {
	t.Parallel()
	const other = "0123456789abcdef"
	e, clock := copyEnv(t, "200", func(o *graphtest.Options) { o.OtherDriveIDs = []string{other} })
	srcID := e.put("/a.txt", []byte("cross"))
	oc, err := remote.New(remote.Config{GraphURL: e.fake.GraphURL(), DriveID: other,
		Tokens: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: e.fake.IssueToken()}), Transport: e.rec})
	require.NoError(t, err)
	oroot, err := oc.Root(e.ctx)
	require.NoError(t, err)

	monitor, err := e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{DestParentID: oroot.ID, DestDriveID: other})
	require.NoError(t, err)
	st := waitJob(t, e, clock, monitor)
	require.Equal(t, remote.JobCompleted, st.State)
	it, err := oc.Item(e.ctx, st.ResourceID)
	require.NoError(t, err)
	assert.Equal(t, "a.txt", it.Name)
	assert.Equal(t, other, it.DriveID)
	var buf bytes.Buffer
	_, err = oc.Download(e.ctx, it.ID, 0, -1, &buf)
	require.NoError(t, err)
	assert.Equal(t, "cross", buf.String())
	// Not in the source drive.
	_, err = e.client.Item(e.ctx, st.ResourceID)
	assert.ErrorIs(t, err, remote.ErrNotFound)
}

func TestIntegrationCopyWithRealLatency(t *testing.T) {
	t.Parallel()
	// The fake's own timeline, no clock games: a short job the client polls
	// to completion.
	e := newEnv(t, envConfig{fake: graphtest.Options{Copy: graphtest.CopyOptions{Latency: 200 * time.Millisecond,
		MonitorStyle: "202"}}})
	srcID := e.put("/a.txt", pattern(1000, 13))
	monitor, err := e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{Name: "b.txt"})
	require.NoError(t, err)
	var st *remote.JobStatus
	for st == nil || st.State == remote.JobRunning {
		st, err = e.client.Monitor(e.ctx, monitor)
		require.NoError(t, err)
		if st.State == remote.JobRunning {
			time.Sleep(20 * time.Millisecond)
		}
	}
	require.Equal(t, remote.JobCompleted, st.State)
	info, ok := e.fake.ItemByPath("/b.txt")
	require.True(t, ok)
	assert.Equal(t, info.ID, st.ResourceID)
}

func TestIntegrationCopyCompletedBeforeVisible(t *testing.T) {
	// Eventual consistency (docs/graph-contract.md §4, #1239): the job reports
	// completed while the new item is not yet visible by path; its id, from
	// the monitor, already works.
	t.Parallel()
	e, clock := copyEnv(t, "200", func(o *graphtest.Options) {
		o.Faults = graphtest.FaultOptions{VisibilityDelay: 10 * time.Minute}
	})
	srcID := e.put("/a.txt", []byte("a"))
	monitor, err := e.client.StartCopy(e.ctx, srcID, remote.CopyRequest{Name: "b.txt"})
	require.NoError(t, err)
	st := waitJob(t, e, clock, monitor)
	require.Equal(t, remote.JobCompleted, st.State)
	it, err := e.client.Item(e.ctx, st.ResourceID)
	require.NoError(t, err)
	assert.Equal(t, "b.txt", it.Name)
	_, err = e.client.ItemByPath(e.ctx, "/b.txt")
	assert.ErrorIs(t, err, remote.ErrNotFound, "not visible by path yet")
	clock.Advance(time.Hour)
	byPath, err := e.client.ItemByPath(e.ctx, "/b.txt")
	require.NoError(t, err)
	assert.Equal(t, it.ID, byPath.ID)
}
