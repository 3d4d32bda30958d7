package fs

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

func TestStatusReportsPollsQuotaAndAttribute(t *testing.T) {
	env := newTestEnv(t, func(_ *graphtest.Options, c *Config) { c.PollInterval = 20 * time.Millisecond })
	ctx := context.Background()

	// Mounted (started): the quota was fetched, no poll yet.
	st := env.fs.Status()
	assert.Nil(t, st.LastPoll, "no poll yet")
	assert.True(t, st.Online, "the quota's request reached the service")
	require.NotNil(t, st.Quota)
	assert.Equal(t, int64(1<<40), st.Quota.Total)
	assert.Empty(t, st.PendingUploads)
	assert.Zero(t, st.JournalRecords)
	assert.Empty(t, st.CopyJobs)

	require.NoError(t, env.fs.initDelta(ctx))
	pctx, cancel := context.WithCancel(ctx)
	looped := make(chan struct{})
	go func() {
		defer close(looped)
		env.fs.pollLoop(pctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-looped
	})
	require.Eventually(t, func() bool {
		p := env.fs.Status().LastPoll
		return p != nil && p.OK
	}, 5*time.Second, 10*time.Millisecond, "the poll loop's polls are recorded")

	// The attribute on the root is the same document; other nodes have none.
	b, err := env.fs.getxattr(env.fs.root, xattrStatus)
	require.NoError(t, err)
	var doc Status
	require.NoError(t, json.Unmarshal(b, &doc))
	assert.True(t, doc.Online)
	require.NotNil(t, doc.LastPoll)
	assert.Contains(t, string(env.fs.listxattr(env.fs.root)), xattrStatus)
	f := env.writeFile(env.fs.root, "f.txt", []byte("x"))
	_, err = env.fs.getxattr(f, xattrStatus)
	assert.ErrorIs(t, err, errNoXattr)
	assert.NotContains(t, string(env.fs.listxattr(f)), xattrStatus)

	// The service gone: the next polls fail and the mount says offline.
	require.NoError(t, env.srv.Close())
	require.Eventually(t, func() bool {
		st := env.fs.Status()
		return st.LastPoll != nil && !st.LastPoll.OK && !st.Online
	}, 10*time.Second, 10*time.Millisecond, "a failed poll is recorded")
	assert.NotEmpty(t, env.fs.Status().LastPoll.Error)
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
