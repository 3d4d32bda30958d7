package fs

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatusReportsPollsQuotaAndAttribute(t *testing.T) {
	env := newTestEnv(t)
	tracker := TrackPolls(env.fs.remote)
	env.fs.remote = tracker
	ctx := context.Background()

	st := env.fs.Status()
	assert.Nil(t, st.LastPoll, "no poll yet")
	assert.False(t, st.Online)
	require.NotNil(t, st.Quota)
	assert.Equal(t, int64(1<<40), st.Quota.Total)
	assert.Empty(t, st.PendingUploads)
	assert.Zero(t, st.JournalRecords)

	// The quota's drive request reaches the service: online, before any poll.
	require.NoError(t, env.fs.refreshQuota(ctx))
	st = env.fs.Status()
	assert.True(t, st.Online)
	assert.Nil(t, st.LastPoll)

	require.NoError(t, env.fs.initDelta(ctx))
	require.NoError(t, env.fs.pollOnce(ctx))
	st = env.fs.Status()
	require.NotNil(t, st.LastPoll)
	assert.True(t, st.LastPoll.OK)
	assert.True(t, st.Online)

	// The attribute on the root is the same document; other nodes have none.
	b, err := env.fs.getxattr(env.fs.root, xattrStatus)
	require.NoError(t, err)
	var doc Status
	require.NoError(t, json.Unmarshal(b, &doc))
	assert.True(t, doc.Online)
	assert.Contains(t, string(env.fs.listxattr(env.fs.root)), xattrStatus)
	f := env.writeFile(env.fs.root, "f.txt", []byte("x"))
	_, err = env.fs.getxattr(f, xattrStatus)
	assert.ErrorIs(t, err, errNoXattr)
	assert.NotContains(t, string(env.fs.listxattr(f)), xattrStatus)

	// The service gone: the next poll fails and the mount says offline.
	require.NoError(t, env.srv.Close())
	require.Error(t, env.fs.pollOnce(ctx))
	st = env.fs.Status()
	require.NotNil(t, st.LastPoll)
	assert.False(t, st.LastPoll.OK)
	assert.False(t, st.Online)
	assert.NotEmpty(t, st.LastPoll.Error)
}

func TestStatfsInodesAreSane(t *testing.T) {
	env := newTestEnv(t)
	env.writeFile(env.fs.root, "a.txt", []byte("a"))
	env.writeFile(env.fs.root, "b.txt", []byte("b"))
	var out fuse.StatfsOut
	env.fs.statfs(&out)
	used := out.Files - out.Ffree
	assert.Equal(t, uint64(3), used, "the root and two files")
	assert.Less(t, float64(used)/float64(out.Files), 0.01, "df -i shows next to nothing used")
}
