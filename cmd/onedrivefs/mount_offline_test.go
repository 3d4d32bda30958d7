package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/fs"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
	"github.com/onedrivefs/onedrivefs/remote/quickxorhash"
)

// Offline mode at mount level (fs/offline.go, fs/store.go): the fake's
// network goes away (connections refused) and comes back; the mount keeps
// serving its local copy, journals the changes made meanwhile, and sends
// them in order once the service is back.

// backOnlineWait bounds the wait for the prober (1 s, doubling to 10 s) to
// see the service again and send what was journaled.
const backOnlineWait = 30 * time.Second

// offlineSeed is the drive the offline tests start from.
var offlineSeed = map[string]string{
	"/docs/a.txt":     "alpha\n",
	"/docs/b.txt":     "bravo\n",
	"/docs/mv.txt":    "to be moved\n",
	"/docs/old.txt":   "to be deleted\n",
	"/docs/sub/c.txt": "charlie\n",
	"/other/u.txt":    "never read before going offline\n",
}

func (env *mountEnv) seedOffline() {
	env.t.Helper()
	for p, c := range offlineSeed {
		_, err := env.srv.PutFile(p, []byte(c), time.Time{})
		require.NoError(env.t, err)
	}
}

// setNetwork switches the fake's network.
func (env *mountEnv) setNetwork(mode graphtest.NetworkMode) {
	env.t.Helper()
	require.NoError(env.t, env.srv.SetNetwork(mode))
}

// mountStatus reads the mount's status attribute.
func (env *mountEnv) mountStatus() fs.Status {
	env.t.Helper()
	b, err := getxattr(env.dir, "user.onedrive.status")
	require.NoError(env.t, err)
	var st fs.Status
	require.NoError(env.t, json.Unmarshal(b, &st))
	return st
}

// offlineChanges makes, through the mount, the changes every offline test
// makes (a new file, an append, mkdir and a file in it, mv, rm, a
// server-side copy through the xattr, a folder's time), and returns what the drive must hold afterwards (path → content,
// "" for a folder) and the paths that must be gone.
func (env *mountEnv) offlineChanges() (want map[string]string, gone []string) {
	t := env.t
	t.Helper()
	require.NoError(t, os.WriteFile(env.path("docs/new.txt"), []byte("written offline\n"), 0o644))
	f, err := os.OpenFile(env.path("docs/a.txt"), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString("appended offline\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Mkdir(env.path("docs/newdir"), 0o755))
	require.NoError(t, os.WriteFile(env.path("docs/newdir/inner.txt"), []byte("inside a folder made offline\n"), 0o644))
	require.NoError(t, os.Rename(env.path("docs/mv.txt"), env.path("docs/moved.txt")))
	require.NoError(t, os.Remove(env.path("docs/old.txt")))
	env.sh("setfattr -n user.onedrive.copy -v b-copy.txt docs/b.txt")
	env.sh("touch -d '" + touchArg + "' docs/sub")
	want = map[string]string{
		"/docs/b-copy.txt":       "bravo\n",
		"/docs/new.txt":          "written offline\n",
		"/docs/a.txt":            "alpha\nappended offline\n",
		"/docs/newdir":           "",
		"/docs/newdir/inner.txt": "inside a folder made offline\n",
		"/docs/moved.txt":        "to be moved\n",
		"/docs/b.txt":            "bravo\n",
	}
	return want, []string{"/docs/mv.txt", "/docs/old.txt"}
}

// requireOnService waits until the fake holds want (compared by the fake's
// quickXorHash) and none of gone.
func (env *mountEnv) requireOnService(want map[string]string, gone []string) {
	t := env.t
	t.Helper()
	check := func() string {
		for p, c := range want {
			it, ok := env.srv.ItemByPath(p)
			switch {
			case !ok:
				return p + " missing"
			case c == "" && !it.IsFolder:
				return p + " is not a folder"
			case c != "" && it.QuickXorHash != quickxorhash.Base64([]byte(c)):
				return p + " has other content"
			}
		}
		for _, p := range gone {
			if _, ok := env.srv.ItemByPath(p); ok {
				return p + " still there"
			}
		}
		return ""
	}
	deadline := time.Now().Add(backOnlineWait)
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the changes made offline did not all reach the service: %s", why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readOfflineFails reads a file the mount never cached and checks that it
// fails with EIO, and at once.
func (env *mountEnv) readOfflineFails(rel string) {
	t := env.t
	t.Helper()
	start := time.Now()
	_, err := os.ReadFile(env.path(rel))
	took := time.Since(start)
	require.Error(t, err, "an uncached file cannot be read offline")
	assert.True(t, errors.Is(err, syscall.EIO), "EIO, not %v", err)
	t.Logf("measured: an uncached read offline failed after %v", took)
	// The behaviour is the bound: before offline detection this took
	// 9.5 s of retries.
	assert.Less(t, took, 2*time.Second, "an uncached read offline fails at once")
	eventually(t, 5*time.Second, func() bool { return strings.Contains(env.stderr.String(), "not available offline") },
		"the log says the file is not available offline")
}

// Must show: mount, read, unmount; the service goes away; the mount starts
// offline from its store, shows the tree, serves what was read, fails an
// uncached read at once, and accepts new files, edits, mkdir, mv and rm;
// the service comes back: all of it reaches it, and the log says so.
func TestOfflineRemount(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.seedOffline()
	env.mount()
	before := env.sh("ls -R .")
	env.sh("cat docs/a.txt docs/b.txt docs/mv.txt docs/sub/c.txt >/dev/null")
	env.unmount()

	env.setNetwork(graphtest.NetworkRefuse)
	env.mount()
	assert.Contains(t, env.stderr.String(), "starting offline", "stderr says the mount started offline")
	assert.Equal(t, before, env.sh("ls -R ."), "the tree, from the store")
	assert.Equal(t, "alpha\n", env.sh("cat docs/a.txt"))
	assert.Equal(t, "charlie\n", env.sh("cat docs/sub/c.txt"))
	env.readOfflineFails("other/u.txt")
	st := env.mountStatus()
	assert.True(t, st.Offline)
	assert.False(t, st.Online)
	assert.Contains(t, env.stderr.String(), "offline since")

	want, gone := env.offlineChanges()
	assert.Equal(t, "alpha\nappended offline\n", env.sh("cat docs/a.txt"))
	listing := env.sh("ls docs")
	for _, n := range []string{"new.txt", "newdir", "moved.txt"} {
		assert.Contains(t, listing, n)
	}
	assert.NotContains(t, listing, "old.txt")
	assert.Equal(t, 5, env.mountStatus().OfflineChanges, "mkdir, mv, rm, the xattr copy and touch are journaled")

	env.setNetwork(graphtest.NetworkUp)
	env.requireOnService(want, gone)
	eventually(t, backOnlineWait, func() bool { return strings.Contains(env.stderr.String(), "back online") },
		"the log says the mount is back online")
	eventually(t, backOnlineWait, func() bool { st := env.mountStatus(); return st.Online && st.OfflineChanges == 0 },
		"the status says online, nothing left to send")
	assert.Equal(t, "never read before going offline\n", env.sh("cat other/u.txt"))
}

// A mount started while the network answers nothing (connections
// accepted, no reply) starts offline from its store, after a check finds
// the service silent, instead of waiting for ever; what is cached reads,
// changes are journaled, and reach the service once it answers.
func TestOfflineRemountSilent(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.seedOffline()
	env.mount()
	env.sh("ls -R . >/dev/null; cat docs/a.txt >/dev/null")
	env.unmount()

	env.setNetwork(graphtest.NetworkBlackhole)
	start := time.Now()
	env.mount()
	t.Logf("measured: the mount started into a silent network after %v", time.Since(start))
	assert.Contains(t, env.stderr.String(), "starting offline")
	assert.Equal(t, "alpha\n", env.sh("cat docs/a.txt"))
	env.sh("mkdir docs/started-in-the-dark && echo dark > docs/started-in-the-dark/f.txt")

	env.setNetwork(graphtest.NetworkUp)
	env.requireOnService(map[string]string{"/docs/started-in-the-dark": "", "/docs/started-in-the-dark/f.txt": "dark\n"}, nil)
}

// Must show: the service goes away in the middle of a session and comes
// back, without a remount; operations while offline fail or succeed at once.
func TestOfflineMidSession(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.seedOffline()
	env.mount()
	env.sh("ls -R . >/dev/null; cat docs/a.txt docs/mv.txt >/dev/null")

	env.setNetwork(graphtest.NetworkRefuse)
	start := time.Now()
	want, gone := env.offlineChanges()
	t.Logf("measured: the offline changes took %v", time.Since(start))
	env.readOfflineFails("other/u.txt")
	eventually(t, 5*time.Second, func() bool { return env.mountStatus().Offline }, "the offline state is detected")
	assert.Contains(t, env.stderr.String(), "offline since")
	assert.Contains(t, env.sh("ls docs"), "newdir")

	env.setNetwork(graphtest.NetworkUp)
	env.requireOnService(want, gone)
	eventually(t, backOnlineWait, func() bool { return strings.Contains(env.stderr.String(), "back online") },
		"the log says the mount is back online")
}

// Must show: kill -9 while offline with journaled changes; a remount (still
// offline) shows them; back online, nothing is lost.
func TestOfflineKillAndRemount(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.seedOffline()
	env.mount()
	env.sh("ls -R . >/dev/null; cat docs/a.txt docs/mv.txt >/dev/null")
	env.setNetwork(graphtest.NetworkRefuse)
	want, gone := env.offlineChanges()
	env.kill()

	env.mount()
	assert.Contains(t, env.stderr.String(), "starting offline")
	listing := env.sh("ls docs")
	for _, n := range []string{"new.txt", "newdir", "moved.txt"} {
		assert.Contains(t, listing, n, "the offline changes survive kill -9")
	}
	assert.NotContains(t, listing, "old.txt")
	assert.Equal(t, "alpha\nappended offline\n", env.sh("cat docs/a.txt"))

	env.setNetwork(graphtest.NetworkUp)
	env.requireOnService(want, gone)
	eventually(t, backOnlineWait, func() bool {
		it, ok := env.srv.ItemByPath("/docs/sub")
		return ok && it.FSModified.Equal(time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC))
	}, "the folder's time set offline survives kill -9 and reaches the service")
}

// Must show: a pinned folder is downloaded whole and readable offline,
// files never opened before included; getfattr and status show the pin.
func TestOfflinePinnedFolder(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.seedOffline()
	files := map[string][]byte{}
	for i, n := range []string{"p/one.bin", "p/two.bin", "p/deep/three.bin"} {
		files[n] = env.putRandom("/"+n, 100<<10*(i+1))
	}
	env.mount()
	out, err := exec.Command(mountBinary, "pin", env.path("p")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "1", env.sh("getfattr --only-values -n user.onedrive.pin p/deep/three.bin"))
	assert.Equal(t, "0", env.sh("getfattr --only-values -n user.onedrive.pin docs/a.txt"))
	assert.Equal(t, []string{"/p"}, env.mountStatus().Pinned)

	env.setNetwork(graphtest.NetworkRefuse)
	for n, data := range files {
		got, err := os.ReadFile(env.path(n))
		require.NoError(t, err, "%s is available offline", n)
		assert.Equal(t, data, got, n)
	}
	env.readOfflineFails("docs/b.txt")
	env.setNetwork(graphtest.NetworkUp)
}

// Must show: a remount shows the tree from the store at once, with no
// children request, then catches up with what changed while unmounted
// through the delta poll it makes at once.
func TestStoreRemountListsNothing(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.seedOffline()
	env.mount("--poll-interval", "1h") // only the mount's own first poll
	before := env.sh("ls -R .")
	env.unmount()
	_, err := env.srv.PutFile("/docs/while-unmounted.txt", []byte("x"), time.Time{})
	require.NoError(t, err)

	env.srv.ResetStats()
	env.mount("--poll-interval", "1h")
	after := env.sh("ls -R .")
	for _, l := range lines(before) {
		assert.Contains(t, after, l, "the tree as it was stored")
	}
	eventually(t, 10*time.Second, func() bool { return strings.Contains(env.sh("ls docs"), "while-unmounted.txt") },
		"the first poll catches up with the change made while unmounted")
	st := env.srv.Stats()
	assert.Zero(t, st.Requests["children.list"], "no folder listed again: %v", st.Requests)
	assert.Equal(t, int64(1), st.Requests["delta"], "one delta call: %v", st.Requests)
}

// A network that swallows packets (the fake accepts connections and answers
// nothing) is found by a check on a fresh connection once a request has
// waited suspiciously long (remote/unanswered.go). Each operation below is
// the first call into a freshly silent network: it returns (an error, or a
// journaled success, as with refused connections), the mount goes offline,
// and once the network is back everything made in the dark reaches the
// service. The waits are logged (the benchmark reports them), not asserted.
func TestOfflineBlackhole(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.seedOffline()
	_, err := env.srv.PutFile("/cold/deeper/x.txt", []byte("in a folder never listed\n"), time.Time{})
	require.NoError(t, err)
	env.bin = raceBinary(t)            // under go test -race, the watcher runs race-checked too
	env.mount("--poll-interval", "1h") // no background request to find the silence first
	env.sh("ls . docs other >/dev/null; cat docs/a.txt >/dev/null")

	var longest time.Duration
	for _, op := range []struct {
		name, script string
		fails        bool // with EIO; otherwise it succeeds (journaled)
	}{
		{"uncached cat", "cat other/u.txt", true},
		{"mkdir", "mkdir docs/made-in-the-dark", false},
		{"write+close of a new file", "echo dark > docs/made-in-the-dark/f.txt", false},
		{"stat in a folder never listed", "stat cold/deeper/x.txt", true},
		{"ls of a folder never listed", "ls cold/deeper", true},
		{"touch", "touch -d '" + touchArg + "' docs/a.txt", false},
		{"append to a cached file", "echo more >> docs/a.txt", false},
	} {
		took, out, err := env.firstCallInto(graphtest.NetworkBlackhole, op.script)
		t.Logf("measured: %s, the first call into a silent network, returned after %v", op.name, took)
		longest = max(longest, took)
		if op.fails {
			require.Error(t, err, op.name)
			assert.Contains(t, out, "Input/output error", op.name)
		} else {
			require.NoError(t, err, "%s: %s", op.name, out)
		}
		assert.Contains(t, env.stderr.String(), "the service does not answer; going offline")
	}
	t.Logf("measured: the longest first call into a silent network: %v", longest)

	env.requireOnService(map[string]string{
		"/docs/made-in-the-dark": "", "/docs/made-in-the-dark/f.txt": "dark\n",
		"/docs/a.txt": "alpha\nmore\n", "/other/u.txt": offlineSeed["/other/u.txt"], "/cold/deeper/x.txt": "in a folder never listed\n",
	}, nil)
	eventually(t, backOnlineWait, func() bool {
		it, ok := env.srv.ItemByPath("/docs/a.txt")
		return ok && it.QuickXorHash == quickxorhash.Base64([]byte("alpha\nmore\n")) && env.mountStatus().OfflineChanges == 0
	}, "everything made in the dark was sent")
	assert.Equal(t, "in a folder never listed\n", env.sh("cat cold/deeper/x.txt"))
	assert.NotContains(t, env.stderr.String(), raceReport)
}

// A network that goes silent while a file is being read (its download
// streaming: a train entering a tunnel): the read fails with EIO within
// about a second instead of waiting for TCP's timeouts, and once the
// network is back the whole file reads, intact.
func TestOfflineBlackholeMidDownload(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	data := env.putRandom("/big.bin", 64<<20)
	env.mount("--poll-interval", "1h")
	f, err := os.Open(env.path("big.bin"))
	require.NoError(t, err)
	defer f.Close()
	head := make([]byte, 1<<20)
	_, err = io.ReadFull(f, head) // starts the stream, which runs ahead
	require.NoError(t, err)
	assert.Equal(t, data[:1<<20], head)

	env.setNetwork(graphtest.NetworkBlackhole)
	start := time.Now()
	_, err = io.Copy(io.Discard, f)
	t.Logf("measured: reading on into a silent network failed after %v", time.Since(start))
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.EIO), "EIO, not %v", err)
	eventually(t, 5*time.Second, func() bool { return env.mountStatus().Offline }, "the offline state is detected")

	env.setNetwork(graphtest.NetworkUp)
	eventually(t, backOnlineWait, func() bool { return env.mountStatus().Online }, "the mount comes back online")
	got, err := os.ReadFile(env.path("big.bin"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got), "the whole file reads, intact, once back")
}

// firstCallInto switches the fake's network to mode with the mount online,
// runs script in the mount and times it, then brings the network back and
// waits until the mount is online with nothing left to send.
func (env *mountEnv) firstCallInto(mode graphtest.NetworkMode, script string) (time.Duration, string, error) {
	t := env.t
	t.Helper()
	eventually(t, backOnlineWait, func() bool { st := env.mountStatus(); return st.Online && st.OfflineChanges == 0 },
		"the mount is online before the network goes")
	env.setNetwork(mode)
	start := time.Now()
	out, err := env.shErr(script)
	took := time.Since(start)
	eventually(t, 5*time.Second, func() bool { return env.mountStatus().Offline }, "the offline state is detected")
	env.setNetwork(graphtest.NetworkUp)
	eventually(t, backOnlineWait, func() bool { st := env.mountStatus(); return st.Online && st.OfflineChanges == 0 },
		"the mount comes back online")
	return took, out, err
}
