package main

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
	"github.com/onedrivefs/onedrivefs/remote/quickxorhash"
)

// Offline, beyond the tree's shape (fs/offline_attr.go): touch of existing
// files and folders is applied and journaled, chmod changes nothing,
// truncate of a cached file is journaled as a write and of an uncached one
// fails at once, and a pin asked for offline is kept and filled once the
// service is back. Folders shared from other drives refuse changes at
// once with a log line saying why.

// touchTime is the time the tests set offline, as touch -d takes it and as
// stat -c %Y shows it.
const (
	touchArg   = "2021-02-03 04:05:06 UTC"
	touchEpoch = "1612325106"
)

func TestOfflineTouchChmodTruncatePin(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.seedOffline()
	_, err := env.srv.PutFile("/docs/theirs.txt", []byte("before\n"), time.Time{})
	require.NoError(t, err)
	env.mount()
	env.sh("ls -R . >/dev/null; cat docs/a.txt docs/b.txt docs/theirs.txt >/dev/null")

	env.setNetwork(graphtest.NetworkRefuse)
	for _, p := range []string{"docs/a.txt", "docs/sub", "other/u.txt", "docs/theirs.txt"} {
		env.sh("touch -d '" + touchArg + "' " + p)
		assert.Equal(t, touchEpoch+"\n", env.sh("stat -c %Y "+p), "%s shows the time set offline", p)
	}
	env.sh("echo 'new offline' > docs/n.txt && touch -d '" + touchArg + "' docs/n.txt")
	env.sh("chmod 600 docs/a.txt")
	assert.Equal(t, "644\n", env.sh("stat -c %a docs/a.txt"), "chmod changes nothing (OneDrive has no modes)")
	env.sh("truncate -s 2 docs/b.txt")
	assert.Equal(t, "br", env.sh("cat docs/b.txt"))
	out, err := env.shErr("truncate -s 3 docs/old.txt")
	require.Error(t, err, "a file not cached cannot be truncated offline to a size that needs its content")
	assert.Contains(t, out, "Input/output error")
	env.sh("setfattr -n user.onedrive.pin -v 1 other")
	assert.Equal(t, "1", env.sh("getfattr --only-values -n user.onedrive.pin other/u.txt"))
	assert.Equal(t, 4, env.mountStatus().OfflineChanges, "four times journaled")
	assert.Contains(t, env.stderr.String(), "pinned while offline")
	// Meanwhile someone changes theirs.txt on OneDrive: that newer version
	// keeps its own time.
	later := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	_, err = env.srv.PutFile("/docs/theirs.txt", []byte("changed on OneDrive\n"), later)
	require.NoError(t, err)

	env.setNetwork(graphtest.NetworkUp)
	env.requireOnService(map[string]string{
		"/docs/a.txt": "alpha\n", "/docs/b.txt": "br", "/docs/n.txt": "new offline\n",
		"/docs/theirs.txt": "changed on OneDrive\n", "/docs/old.txt": "to be deleted\n",
	}, nil)
	want := time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)
	eventually(t, backOnlineWait, func() bool {
		for _, p := range []string{"/docs/a.txt", "/docs/sub", "/other/u.txt", "/docs/n.txt"} {
			it, ok := env.srv.ItemByPath(p)
			if !ok || !it.FSModified.Equal(want) {
				return false
			}
		}
		return env.mountStatus().OfflineChanges == 0
	}, "the times set offline reach OneDrive")
	theirs, ok := env.srv.ItemByPath("/docs/theirs.txt")
	require.True(t, ok)
	assert.True(t, theirs.FSModified.Equal(later), "the newer version's time is kept, not %v", theirs.FSModified)
	assert.Contains(t, env.stderr.String(), "changed on OneDrive meanwhile")

	// The pin asked for offline was filled once back: other/u.txt, never
	// read, is readable in the next outage.
	eventually(t, backOnlineWait, func() bool {
		env.setNetwork(graphtest.NetworkRefuse)
		defer env.setNetwork(graphtest.NetworkUp)
		b, err := os.ReadFile(env.path("other/u.txt"))
		return err == nil && string(b) == offlineSeed["/other/u.txt"]
	}, "the pinned folder's files were downloaded once back online")
}

// Folders shared from other drives while offline: what was listed and
// cached stays readable, a new file is journaled (its content reaches the
// owner's drive once back), and every other change fails at once with EIO
// and a log line saying such changes are not kept offline.
func TestOfflineSharedFolder(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	bob := env.addBob()
	env.mount()
	assert.Equal(t, "a.txt\n", env.sh("ls Proj"))
	assert.Equal(t, "from bob\n", env.sh("cat Proj/a.txt"))
	env.sh("ls Ro >/dev/null")

	env.setNetwork(graphtest.NetworkRefuse)
	assert.Equal(t, "a.txt\n", env.sh("ls Proj"), "the listing held in memory")
	assert.Equal(t, "from bob\n", env.sh("cat Proj/a.txt"), "cached content")
	env.sh("echo 'written offline' > Proj/new.txt")
	for _, cmd := range []string{"mkdir Proj/d", "mv Proj/a.txt Proj/b.txt", "rm Proj/a.txt",
		"touch Proj/a.txt", "cat Ro/r.txt"} {
		start := time.Now()
		out, err := env.shErr(cmd)
		t.Logf("measured: %q offline failed after %v", cmd, time.Since(start))
		require.Error(t, err, cmd)
		assert.Contains(t, out, "Input/output error", cmd)
	}
	log := env.stderr.String()
	assert.Contains(t, log, "changes in folders shared from other drives are not kept")
	assert.Contains(t, log, "not available offline", "the uncached read says so")

	env.setNetwork(graphtest.NetworkUp)
	env.waitRemoteContentIn(bob, "/Proj/new.txt", "written offline\n")
	it, ok := env.bobItem(bob, "/Proj/a.txt")
	require.True(t, ok, "nothing refused offline was done later")
	assert.Equal(t, int64(len("from bob\n")), it.Size)

	// A mount that starts offline has the shortcut (an item of the user's
	// drive, stored) but not its content (bob's drive, never stored): its
	// listing fails at once.
	env.unmount()
	env.setNetwork(graphtest.NetworkRefuse)
	env.mount()
	assert.Equal(t, "Proj\nRo\n", env.sh("ls"))
	start := time.Now()
	out, err := env.shErr("ls Proj")
	t.Logf("measured: listing a shared folder after a remount offline failed after %v", time.Since(start))
	require.Error(t, err)
	assert.Contains(t, out, "Input/output error")
	env.setNetwork(graphtest.NetworkUp)
	eventually(t, backOnlineWait, func() bool {
		out, err := env.shErr("ls Proj")
		return err == nil && out == "a.txt\nnew.txt\n"
	}, "the shared folder lists again once back online")
}

// waitRemoteContentIn waits until drive holds content at p (by the fake's
// quickXorHash).
func (env *mountEnv) waitRemoteContentIn(drive, p, content string) {
	env.t.Helper()
	eventually(env.t, backOnlineWait, func() bool {
		it, ok := env.srv.ItemByPathIn(drive, p)
		return ok && it.QuickXorHash == quickxorhash.Base64([]byte(content))
	}, p+" did not reach its drive with its content")
}
