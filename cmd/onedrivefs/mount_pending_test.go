package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// Pending copies through a real mount: cp returns when the service accepted
// the copy, the destination behaves like the finished copy, and `sync DIR`
// waits for the jobs. The fake's counters prove what crossed the wire.

// seedTree puts files of size bytes on the fake under root: dirs folders
// nested two deep (root/dNN/sub), per files each. It returns the relative
// paths.
func (env *mountEnv) seedTree(root string, dirs, per, size int) []string {
	env.t.Helper()
	var out []string
	for d := 0; d < dirs; d++ {
		for i := 0; i < per; i++ {
			rel := fmt.Sprintf("d%02d/sub/f%03d.txt", d, i)
			if i%2 == 0 {
				rel = fmt.Sprintf("d%02d/f%03d.txt", d, i)
			}
			env.putRandom(path.Join(root, rel), size)
			out = append(out, rel)
		}
	}
	return out
}

// Must show: cp -r of 500 files of 4 KiB in nested folders, with a copy
// latency of 1.5 s, returns before the jobs end (it used to wait for each
// job in turn: 500 × 1.5 s), moves no file byte, a copied file reads right
// at once, and after `sync DIR` every file on the fake has its source's
// hash.
func TestPendingCpRecursiveTree(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{Copy: graphtest.CopyOptions{Latency: 1500 * time.Millisecond}})
	files := env.seedTree("/tree", 10, 50, 4096)
	env.mount()
	env.sh("ls -R tree > /dev/null")
	env.srv.ResetStats()

	start := time.Now()
	env.sh("/bin/cp -r tree tree-copy")
	took := time.Since(start)
	st := env.srv.Stats()
	t.Logf("measured: cp -r of %d files took %v; %d jobs started, %d completed when cp returned",
		len(files), took, st.CopyJobsStarted, st.CopyJobsCompleted)
	assert.Equal(t, int64(len(files)), st.CopyJobsStarted)
	assert.Less(t, st.CopyJobsCompleted, int64(len(files)), "cp returned before the last jobs ended")
	requireNoBytesMoved(t, st)

	last := files[len(files)-1]
	monitorPolls := st.Requests["monitor"]
	env.srv.ResetStats()
	env.sh("cmp tree/" + last + " tree-copy/" + last)
	assert.Equal(t, fmt.Sprintf("%d\n", len(files)), env.sh("find tree-copy -type f | wc -l"))

	env.sh("sync tree-copy")
	assert.Equal(t, len(files), completedJobs(env), "sync DIR waited for every job")
	st = env.srv.Stats()
	assert.Zero(t, st.BytesUploaded)
	monitorPolls += st.Requests["monitor"]
	t.Logf("measured: %d monitor polls, %d listings for %d copies", monitorPolls, st.Requests["children.list"], len(files))
	assert.Less(t, monitorPolls, int64(len(files)/2),
		"the copies were confirmed by listings of their folders, not by one monitor poll each")
	assert.Equal(t, env.serverTree("/tree"), env.serverTree("/tree-copy"), "every file has its source's hash")
}

// completedJobs counts the fake's completed copy jobs.
func completedJobs(env *mountEnv) int {
	done := 0
	for _, j := range env.srv.CopyJobs() {
		if j.Status == "completed" {
			done++
		}
	}
	return done
}

// Must show: cp -a keeps mtimes on the service; mv and rm of pending copies
// right after cp end with the right tree on the service; the source
// overwritten right after cp returns leaves the copy with the old bytes.
func TestPendingCpPreserveMoveRemove(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{Copy: graphtest.CopyOptions{Latency: time.Second}})
	env.seedTree("/src", 2, 4, 4096)
	old := time.Date(2005, 6, 7, 8, 9, 10, 0, time.UTC)
	for _, f := range []string{"/src/d00/f000.txt", "/src/d01/sub/f001.txt"} {
		_, err := env.srv.PutFile(f, randomBytes(t, 1000), old)
		require.NoError(t, err)
	}
	orig := env.putRandom("/a.bin", 100<<10)
	env.mount()
	env.sh("ls -R > /dev/null")

	env.sh("cp -a src dst && mv dst/d00/f002.txt dst/moved.txt && rm dst/d01/f000.txt && " +
		"cp a.bin a-copy.bin && printf 'overwritten' > a.bin")
	assert.Less(t, env.srv.Stats().CopyJobsCompleted, int64(9), "the commands ran while jobs were pending")
	env.sh("sync .")

	want := env.serverTree("/src")
	want["moved.txt"] = want["d00/f002.txt"]
	delete(want, "d00/f002.txt")
	delete(want, "d01/f000.txt")
	assert.Equal(t, want, env.serverTree("/dst"))
	for _, f := range []string{"/dst/d00/f000.txt", "/dst/d01/sub/f001.txt"} {
		info, ok := env.srv.ItemByPath(f)
		require.True(t, ok, f)
		assert.Equal(t, old, info.FSModified.UTC(), "cp -a keeps the mtime on the service: %s", f)
	}
	assert.True(t, bytes.Equal(orig, env.serverFile("/a-copy.bin")), "the copy has the bytes the source had")
	assert.Eventually(t, func() bool {
		b, err := env.srv.ReadFile("/a.bin")
		return err == nil && string(b) == "overwritten"
	}, 15*time.Second, 50*time.Millisecond, "the source's own change lands too")
}

// Must show: kill -9 of the daemon right after cp -r returns (with a rename,
// a delete and a touch of pending copies), then a remount: every copy,
// rename, delete and mtime lands.
func TestPendingCopiesSurviveKill(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{Copy: graphtest.CopyOptions{Latency: 2 * time.Second}})
	env.seedTree("/src", 2, 6, 2048)
	env.mount()
	env.sh("ls -R > /dev/null")
	env.sh("cp -r src dst && mv dst/d00/f002.txt dst/d01/moved.txt && rm dst/d01/f000.txt && " +
		"touch -d '2003-04-05 06:07:08 UTC' dst/d00/f004.txt")
	require.Less(t, env.srv.Stats().CopyJobsCompleted, int64(12), "killed while jobs were pending")
	env.kill()

	env.mount()
	want := env.serverTree("/src")
	want["d01/moved.txt"] = want["d00/f002.txt"]
	delete(want, "d00/f002.txt")
	delete(want, "d01/f000.txt")
	touched := time.Date(2003, 4, 5, 6, 7, 8, 0, time.UTC)
	assert.Eventually(t, func() bool {
		info, ok := env.srv.ItemByPath("/dst/d00/f004.txt")
		return ok && info.FSModified.Equal(touched) && equalTrees(env, "/dst", want)
	}, 30*time.Second, 100*time.Millisecond, "the tree on the service: %v", env.treeIfAny("/dst"))
	assert.Equal(t, "moved.txt\nsub\n", env.sh("ls dst/d01 | grep -v '^f'"))
}

// equalTrees reports whether the fake's tree under p is want (without
// failing the test when p does not exist yet).
func equalTrees(env *mountEnv, p string, want map[string]string) bool {
	got := env.treeIfAny(p)
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// treeIfAny is serverTree, or nil when p is not on the fake.
func (env *mountEnv) treeIfAny(p string) map[string]string {
	if _, ok := env.srv.ItemByPath(p); !ok {
		return nil
	}
	return env.serverTree(p)
}

// Must show: a job that fails after cp returned ends with the right bytes
// through the byte path, and the status says so.
func TestPendingCopyFailedJobCompletesByBytes(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{Copy: graphtest.CopyOptions{Latency: 500 * time.Millisecond}})
	data := env.putRandom("/f.bin", 1<<20)
	env.mount()
	env.sh("ls")
	env.srv.SetFaults(graphtest.FaultOptions{FailCopyEvery: 1})
	env.srv.ResetStats()
	env.sh("/bin/cp f.bin g.bin")
	assert.Zero(t, env.srv.Stats().BytesUploaded, "cp itself moved nothing")
	env.sh("cmp f.bin g.bin")
	env.sh("sync .")
	st := env.srv.Stats()
	assert.Equal(t, int64(1), st.CopyJobsFailed)
	assert.True(t, bytes.Equal(data, env.serverFile("/g.bin")))
	_, status, _ := env.copyStatus("f.bin")
	assert.Equal(t, "failed", status)
	assert.True(t, strings.Contains(env.stderr.String(), "the server-side copy failed; copying the bytes instead"))
}

// Must show: `onedrivefs wait PATH` waits for everything pending under PATH
// — copies and uploads — and says when something cannot be sent yet.
func TestWaitCommand(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{Copy: graphtest.CopyOptions{Latency: time.Second}})
	env.seedTree("/src", 2, 5, 1024)
	env.mount()
	env.sh("ls -R > /dev/null")
	wait := func(p string) (string, error) {
		cmd := exec.Command(mountBinary, "wait", env.path(p))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	env.sh("cp -r src dst")
	require.Less(t, completedJobs(env), 10, "the copies are pending")
	out, err := wait("dst")
	require.NoError(t, err, out)
	assert.Contains(t, out, "is on OneDrive")
	assert.Equal(t, 10, completedJobs(env))
	assert.Equal(t, env.serverTree("/src"), env.serverTree("/dst"))

	env.srv.SetFaults(graphtest.FaultOptions{ThrottleFor: time.Hour, ThrottleStatus: 503, Ops: []string{"upload"}})
	env.sh("printf 'journaled' > dst/new.txt")
	out, err = wait("dst")
	require.Error(t, err, "an upload that cannot be sent: %s", out)
	assert.Contains(t, out, "not everything under")
	env.srv.SetFaults(graphtest.FaultOptions{})
	out, err = wait("dst/new.txt")
	require.NoError(t, err, out)
	assert.Equal(t, "journaled", string(env.serverFile("/dst/new.txt")))
}
