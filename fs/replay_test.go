package fs

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// uploadsFail makes every upload fail with 503 until the returned func is
// called, so that closed files land in the journal.
func (env *testEnv) uploadsFail() (restore func()) {
	env.srv.SetFaults(graphtest.FaultOptions{ThrottleFor: time.Hour, ThrottleStatus: 503, Ops: []string{"upload"}})
	return func() { env.srv.SetFaults(graphtest.FaultOptions{}) }
}

// rootNames lists the names in the drive's root on the server.
func (env *testEnv) rootNames() []string {
	items, err := env.srv.List("/")
	require.NoError(env.t, err)
	var names []string
	for _, it := range items {
		names = append(names, it.Name)
	}
	return names
}

// A mount killed after sending a journaled file but before removing its
// record replays it: the server already holds those bytes, so no conflict
// copy is made.
func TestReplayOfAlreadySentChangeMakesNoConflictCopy(t *testing.T) {
	env := newTestEnv(t)
	restore := env.uploadsFail()
	env.writeFile(env.fs.root, "report.txt", []byte("final numbers"))
	require.Len(t, env.fs.staging.Pending(), 1)
	restore()
	// What the killed mount had sent.
	_, err := env.srv.PutFile("/report.txt", []byte("final numbers"), time.Time{})
	require.NoError(t, err)

	next := env.newFS(Config{})
	require.NoError(t, next.start(context.Background()))
	assert.Empty(t, next.staging.Pending())
	assert.Equal(t, []string{"report.txt"}, env.rootNames())
}

// A journaled edit of a file renamed or re-timed on the server (its eTag
// moved, its cTag did not) replaces the content; it is not a conflict.
func TestReplayAfterMetadataChangeIsNoConflict(t *testing.T) {
	env := newTestEnv(t)
	id, err := env.srv.PutFile("/notes.txt", []byte("v1"), time.Time{})
	require.NoError(t, err)
	restore := env.uploadsFail()
	env.writeFile(env.fs.root, "notes.txt", []byte("v2 from the mount"))
	restore()
	before, _ := env.srv.ItemByID(id)
	_, err = env.fs.remote.Update(context.Background(), id, remote.ItemUpdate{Name: "renamed.txt"})
	require.NoError(t, err)
	after, _ := env.srv.ItemByID(id)
	require.NotEqual(t, before.ETag, after.ETag)
	require.Equal(t, before.CTag, after.CTag)

	next := env.newFS(Config{})
	require.NoError(t, next.start(context.Background()))
	assert.Empty(t, next.staging.Pending())
	assert.Equal(t, []string{"renamed.txt"}, env.rootNames())
	got, err := env.srv.ReadFile("/renamed.txt")
	require.NoError(t, err)
	assert.Equal(t, "v2 from the mount", string(got))
}

// A journaled edit of a file whose content changed on the server meanwhile
// keeps the server's version and saves the journaled one beside it.
func TestReplayOfConflictingEditSavesConflictCopy(t *testing.T) {
	env := newTestEnv(t)
	_, err := env.srv.PutFile("/plan.txt", []byte("v1"), time.Time{})
	require.NoError(t, err)
	restore := env.uploadsFail()
	env.writeFile(env.fs.root, "plan.txt", []byte("ours"))
	restore()
	_, err = env.srv.PutFile("/plan.txt", []byte("theirs"), time.Time{})
	require.NoError(t, err)

	next := env.newFS(Config{})
	require.NoError(t, next.start(context.Background()))
	assert.Empty(t, next.staging.Pending())
	names := env.rootNames()
	require.Len(t, names, 2)
	got, err := env.srv.ReadFile("/plan.txt")
	require.NoError(t, err)
	assert.Equal(t, "theirs", string(got))
	var copyName string
	for _, n := range names {
		if strings.HasPrefix(n, "plan (conflict ") {
			copyName = n
		}
	}
	require.NotEmpty(t, copyName, "names: %v", names)
	got, err = env.srv.ReadFile("/" + copyName)
	require.NoError(t, err)
	assert.Equal(t, "ours", string(got))
}

// The journal remembers content an attempt may have stored: a mount killed
// after an unconfirmed upload and a later local edit replays the edit over
// its own earlier version, not as a conflict copy.
func TestReplayOverOwnUnconfirmedUploadIsNoConflict(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.unconfirmedThenThrottled("draft.txt")
	recs := env.fs.staging.Pending()
	require.Len(t, recs, 1)
	require.NotEmpty(t, recs[0].Unconfirmed, "the journal names the unconfirmed content")

	// The mount is killed here (h never closed); the next one replays.
	next := env.newFS(Config{})
	require.NoError(t, next.start(ctx))
	assert.Empty(t, next.staging.Pending())
	assert.Equal(t, []string{"draft.txt"}, env.rootNames(), "no conflict copy")
	got, err := env.srv.ReadFile("/draft.txt")
	require.NoError(t, err)
	assert.Equal(t, "SECOND, unconfirmed", string(got))
}
