package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// Server-side copies through a real mount: cp (copy_file_range) and the
// user.onedrive.copy attribute. The fake's counters prove what crossed the
// wire: copy jobs started and completed, content bytes downloaded and
// uploaded.

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// putRandom stores a random file of n bytes at p on the fake and returns
// its content.
func (env *mountEnv) putRandom(p string, n int) []byte {
	env.t.Helper()
	data := randomBytes(env.t, n)
	_, err := env.srv.PutFile(p, data, time.Time{})
	require.NoError(env.t, err)
	return data
}

// serverFile returns the content of the file at p on the fake.
func (env *mountEnv) serverFile(p string) []byte {
	env.t.Helper()
	got, err := env.srv.ReadFile(p)
	require.NoError(env.t, err, p)
	return got
}

// requireNoBytesMoved checks that no file content crossed the wire.
func requireNoBytesMoved(t *testing.T, st graphtest.Stats) {
	t.Helper()
	assert.Zero(t, st.BytesDownloaded, "bytes downloaded: %v", st.Requests)
	assert.Zero(t, st.BytesUploaded, "bytes uploaded: %v", st.Requests)
	assert.Zero(t, st.Requests["upload.simple"], "no upload, not even an empty placeholder: %v", st.Requests)
	assert.Zero(t, st.Requests["upload.session.create"], "%v", st.Requests)
}

// serverTree describes the tree under p on the fake: relative path → "dir"
// or the file's size and quickXorHash.
func (env *mountEnv) serverTree(p string) map[string]string {
	env.t.Helper()
	out := map[string]string{}
	var walk func(dir, rel string)
	walk = func(dir, rel string) {
		list, err := env.srv.List(dir)
		require.NoError(env.t, err, dir)
		for _, it := range list {
			r := path.Join(rel, it.Name)
			if it.IsFolder {
				out[r] = "dir"
				walk(path.Join(dir, it.Name), r)
				continue
			}
			out[r] = fmt.Sprintf("%d %s", it.Size, it.QuickXorHash)
		}
	}
	walk(p, "")
	return out
}

// copyStatus reads the status JSON of the newest copy job of p in the mount.
func (env *mountEnv) copyStatus(p string) (string, string, float64) {
	env.t.Helper()
	d, err := jobStatus(env.path(p))
	require.NoError(env.t, err)
	return d.ID, d.Status, d.PercentageComplete
}

// Must show: /bin/cp of a 64 MiB file inside the mount is one server-side
// copy job; no content byte crosses the wire; the copy has the source's
// quickXorHash and content; cp exits 0 (sh fails the test otherwise).
func TestCopyCpLargeFileIsServerSide(t *testing.T) {
	const latency = 300 * time.Millisecond
	env := newMountEnv(t, graphtest.Options{Copy: graphtest.CopyOptions{Latency: latency}})
	data := env.putRandom("/src/big.bin", 64<<20)
	env.mount()
	env.sh("ls src")
	env.srv.ResetStats()

	start := time.Now()
	env.sh("/bin/cp src/big.bin big-copy.bin && sync .")
	took := time.Since(start)
	st := env.srv.Stats()
	t.Logf("measured: /bin/cp of 64 MiB took %v; the fake's copy job took %v; requests %v", took, latency, st.Requests)
	assert.Equal(t, int64(1), st.CopyJobsStarted)
	assert.Equal(t, int64(1), st.CopyJobsCompleted)
	requireNoBytesMoved(t, st)

	src, _ := env.srv.ItemByPath("/src/big.bin")
	dst, ok := env.srv.ItemByPath("/big-copy.bin")
	require.True(t, ok)
	assert.Equal(t, src.QuickXorHash, dst.QuickXorHash)
	assert.NotEqual(t, src.ID, dst.ID)
	assert.True(t, bytes.Equal(data, env.serverFile("/big-copy.bin")))
	assert.Equal(t, "67108864\n", env.sh("stat -c %s big-copy.bin"))
	env.sh("cmp src/big.bin big-copy.bin")
	assert.Equal(t, `user.onedrive.quickxorhash="`+src.QuickXorHash+`"`+"\n",
		env.sh("getfattr --absolute-names -n user.onedrive.quickxorhash big-copy.bin | grep quickxorhash"))
}

// Must show: a 5 GiB file arrives as two copy_file_range calls (the kernel
// clamps one to 4294963200 bytes): still one job, no byte moved, the right
// size and tail.
func TestCopyCpHugeFileTwoCalls(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	const size = 5 << 30
	_, err := env.srv.SparseFile("/huge.iso", size, []byte("TAIL"))
	require.NoError(t, err)
	env.mount()
	env.sh("ls")
	env.srv.ResetStats()

	env.sh("/bin/cp huge.iso huge-copy.iso && sync .")
	st := env.srv.Stats()
	assert.Equal(t, int64(1), st.CopyJobsStarted, "%v", st.Requests)
	assert.Equal(t, int64(1), st.CopyJobsCompleted)
	requireNoBytesMoved(t, st)
	info, ok := env.srv.ItemByPath("/huge-copy.iso")
	require.True(t, ok)
	assert.Equal(t, int64(size), info.Size)
	assert.Equal(t, fmt.Sprintf("%d\n", size), env.sh("stat -c %s huge-copy.iso"))
	assert.Equal(t, "TAIL", env.sh("tail -c 4 huge-copy.iso"))
}

// copyFileRangeLoop calls copy_file_range from the current file positions
// in steps of step bytes, stopping after limit bytes (0: at the end), and
// returns the number of calls and bytes copied.
func copyFileRangeLoop(t *testing.T, src, dst *os.File, step, limit int) (calls, total int) {
	t.Helper()
	for limit == 0 || total < limit {
		n, err := unix.CopyFileRange(int(src.Fd()), nil, int(dst.Fd()), nil, step, 0)
		require.NoError(t, err)
		calls++
		if n == 0 {
			break
		}
		total += n
	}
	return calls, total
}

// Must show: a caller that copies in 512 KiB steps (as KDE does) gets one
// server-side copy; a caller that copies a range gets exactly that range,
// and one that stops early exactly the bytes it copied.
func TestCopyChunkedAndPartialCallers(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	data := env.putRandom("/chunk.bin", 8<<20)
	env.mount()
	env.sh("ls")

	t.Run("512 KiB steps", func(t *testing.T) {
		env.srv.ResetStats()
		src, err := os.Open(env.path("chunk.bin"))
		require.NoError(t, err)
		defer src.Close()
		dst, err := os.OpenFile(env.path("chunk-copy.bin"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		require.NoError(t, err)
		calls, total := copyFileRangeLoop(t, src, dst, 512<<10, 0)
		require.NoError(t, dst.Close())
		env.sh("sync .")
		assert.Equal(t, len(data), total)
		t.Logf("%d copy_file_range calls", calls)
		st := env.srv.Stats()
		assert.Equal(t, int64(1), st.CopyJobsStarted, "%v", st.Requests)
		requireNoBytesMoved(t, st)
		assert.True(t, bytes.Equal(data, env.serverFile("/chunk-copy.bin")))
		assert.Equal(t, "8388608\n", env.sh("stat -c %s chunk-copy.bin"))
	})

	t.Run("a source with unsent writes", func(t *testing.T) {
		env.srv.ResetStats()
		fresh := randomBytes(t, 1<<20)
		src, err := os.OpenFile(env.path("fresh.bin"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		require.NoError(t, err)
		defer src.Close()
		_, err = src.Write(fresh)
		require.NoError(t, err)
		dst, err := os.OpenFile(env.path("fresh-copy.bin"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		require.NoError(t, err)
		offIn, offOut := int64(0), int64(0)
		n, err := unix.CopyFileRange(int(src.Fd()), &offIn, int(dst.Fd()), &offOut, len(fresh), 0)
		require.NoError(t, err)
		assert.Equal(t, len(fresh), n)
		require.NoError(t, dst.Close())
		env.sh("sync .")
		st := env.srv.Stats()
		assert.Equal(t, int64(1), st.CopyJobsStarted)
		assert.Equal(t, int64(len(fresh)), st.BytesUploaded, "the source was sent first, once")
		assert.True(t, bytes.Equal(fresh, env.serverFile("/fresh-copy.bin")))
	})

	t.Run("a range", func(t *testing.T) {
		env.srv.ResetStats()
		src, err := os.Open(env.path("chunk.bin"))
		require.NoError(t, err)
		defer src.Close()
		dst, err := os.OpenFile(env.path("range.bin"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		require.NoError(t, err)
		offIn, offOut := int64(1000), int64(0)
		n, err := unix.CopyFileRange(int(src.Fd()), &offIn, int(dst.Fd()), &offOut, 5000, 0)
		require.NoError(t, err)
		assert.Equal(t, 5000, n)
		require.NoError(t, dst.Close())
		assert.Zero(t, env.srv.Stats().CopyJobsStarted, "a range is copied through the data path")
		assert.Equal(t, data[1000:6000], env.serverFile("/range.bin"))
		assert.Equal(t, "5000\n", env.sh("stat -c %s range.bin"))
	})

	t.Run("a caller that stops early", func(t *testing.T) {
		env.srv.ResetStats()
		src, err := os.Open(env.path("chunk.bin"))
		require.NoError(t, err)
		defer src.Close()
		dst, err := os.OpenFile(env.path("start.bin"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		require.NoError(t, err)
		_, total := copyFileRangeLoop(t, src, dst, 512<<10, 1<<20)
		assert.Equal(t, 1<<20, total)
		fi, err := dst.Stat()
		require.NoError(t, err)
		assert.Equal(t, int64(1<<20), fi.Size(), "stat shows the bytes copied so far")
		require.NoError(t, dst.Close())
		env.sh("sync .")
		st := env.srv.Stats()
		t.Logf("measured: stopping after 1 MiB of 8 MiB cost %d bytes down, %d up", st.BytesDownloaded, st.BytesUploaded)
		assert.Equal(t, data[:1<<20], env.serverFile("/start.bin"), "exactly the bytes copied")
		assert.Equal(t, "1048576\n", env.sh("stat -c %s start.bin"))
		env.sh("cmp -n 1048576 chunk.bin start.bin")
	})
}

// Must show: cp -r of a tree is one server-side job per (non-empty) file
// and gives the same tree.
func TestCopyCpRecursiveTree(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.putRandom("/tree/a.bin", 300<<10)
	env.putRandom("/tree/sub/b.bin", 70<<10)
	env.putRandom("/tree/sub/deep/c.bin", 1<<20)
	env.putRandom("/tree/sub/deep/d.txt", 10)
	_, err := env.srv.PutFile("/tree/empty.txt", nil, time.Time{})
	require.NoError(t, err)
	_, err = env.srv.MkdirAll("/tree/nothing")
	require.NoError(t, err)
	env.mount()
	env.sh("ls")
	env.srv.ResetStats()

	env.sh("/bin/cp -r tree tree-copy && sync .")
	st := env.srv.Stats()
	assert.Equal(t, int64(4), st.CopyJobsStarted, "one job per non-empty file: %v", st.Requests)
	assert.Equal(t, int64(4), st.CopyJobsCompleted)
	assert.Zero(t, st.BytesDownloaded)
	assert.Zero(t, st.BytesUploaded)
	want := env.serverTree("/tree")
	// The empty file is created at its release, which the kernel sends
	// after close returns.
	eventually(t, 10*time.Second, func() bool {
		return assert.ObjectsAreEqual(want, env.serverTree("/tree-copy"))
	}, "the copied tree differs on the server")
	env.sh("diff -r tree tree-copy")
}

// Must show: cp onto an existing file replaces it (one item of that name,
// the source's content, nothing uploaded); cp -p keeps the mtime.
func TestCopyCpOntoExistingAndPreserve(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	data := env.putRandom("/a.bin", 2<<20)
	_, err := env.srv.PutFile("/b.bin", []byte("the old content"), time.Time{})
	require.NoError(t, err)
	mtime := time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC)
	kept := randomBytes(t, 100<<10)
	_, err = env.srv.PutFile("/m.bin", kept, mtime)
	require.NoError(t, err)
	env.mount()
	assert.Equal(t, "the old content", env.sh("cat b.bin"))
	old, _ := env.srv.ItemByPath("/b.bin")
	env.srv.ResetStats()

	env.sh("/bin/cp a.bin b.bin && sync .")
	st := env.srv.Stats()
	assert.Equal(t, int64(1), st.CopyJobsStarted)
	requireNoBytesMoved(t, st)
	assert.True(t, bytes.Equal(data, env.serverFile("/b.bin")))
	now, _ := env.srv.ItemByPath("/b.bin")
	assert.NotEqual(t, old.ID, now.ID, "replaced by the copy")
	names := 0
	list, err := env.srv.List("/")
	require.NoError(t, err)
	for _, it := range list {
		if strings.EqualFold(it.Name, "b.bin") {
			names++
		}
	}
	assert.Equal(t, 1, names)
	assert.Equal(t, "2097152\n", env.sh("stat -c %s b.bin"))
	env.sh("cmp a.bin b.bin")

	env.srv.ResetStats()
	env.sh("/bin/cp -p m.bin m-copy.bin && sync .")
	st = env.srv.Stats()
	assert.Equal(t, int64(1), st.CopyJobsStarted)
	requireNoBytesMoved(t, st)
	info, ok := env.srv.ItemByPath("/m-copy.bin")
	require.True(t, ok)
	assert.Equal(t, mtime, info.FSModified.UTC(), "cp -p keeps the mtime on the server")
	assert.Equal(t, fmt.Sprintf("%d\n", mtime.Unix()), env.sh("stat -c %Y m-copy.bin"))
	assert.True(t, bytes.Equal(kept, env.serverFile("/m-copy.bin")))
}

// Must show: when the service fails the copy (at completion) or the copy
// request is lost, cp still succeeds by moving the bytes, and the log says
// why.
func TestCopyFailureFallsBackToBytes(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	data := env.putRandom("/f.bin", 3<<20)
	env.mount()
	env.sh("ls")

	env.srv.ResetStats()
	env.srv.SetFaults(graphtest.FaultOptions{FailNextCopies: 1})
	env.sh("/bin/cp f.bin failed-job.bin && sync .")
	st := env.srv.Stats()
	assert.Equal(t, int64(1), st.CopyJobsFailed)
	assert.Equal(t, int64(len(data)), st.BytesUploaded, "the bytes were copied instead")
	assert.True(t, bytes.Equal(data, env.serverFile("/failed-job.bin")))

	env.srv.ResetStats()
	env.srv.SetFaults(graphtest.FaultOptions{ResetEvery: 1, Ops: []string{"copy.start"}})
	env.sh("/bin/cp f.bin lost-request.bin && sync .")
	st = env.srv.Stats()
	assert.Zero(t, st.CopyJobsStarted)
	assert.Equal(t, int64(len(data)), st.BytesUploaded)
	assert.True(t, bytes.Equal(data, env.serverFile("/lost-request.bin")))
	env.srv.SetFaults(graphtest.FaultOptions{})
	assert.Equal(t, 1, strings.Count(env.stderr.String(), "the server-side copy failed; copying the bytes instead"), "the failed job")
	assert.Equal(t, 1, strings.Count(env.stderr.String(), "server-side copy not possible; copying the bytes instead"), "the lost request")
}

// Must show: the three forms of completion (303 See Other; 200 and 202 with
// status completed and resourceId) all end the copy; a monitor that answers
// 429 is polled again after its Retry-After.
func TestCopyMonitorFormsAndThrottling(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	data := env.putRandom("/f.bin", 256<<10)
	env.mount()
	env.sh("ls")
	for _, style := range []string{"303", "200", "202"} {
		require.NoError(t, env.srv.SetCopyOptions(graphtest.CopyOptions{MonitorStyle: style}))
		env.srv.ResetStats()
		name := "form-" + style + ".bin"
		env.sh("/bin/cp f.bin " + name + " && sync .")
		st := env.srv.Stats()
		assert.Equal(t, int64(1), st.CopyJobsCompleted, style)
		requireNoBytesMoved(t, st)
		assert.True(t, bytes.Equal(data, env.serverFile("/"+name)), style)
		assert.Equal(t, "262144\n", env.sh("stat -c %s "+name), style)
	}

	require.NoError(t, env.srv.SetCopyOptions(graphtest.CopyOptions{Latency: 1500 * time.Millisecond, MonitorStyle: "200"}))
	env.srv.SetFaults(graphtest.FaultOptions{ThrottleEvery: 2, Ops: []string{"monitor"}, RetryAfter: time.Second})
	env.srv.ResetStats()
	env.sh("/bin/cp f.bin throttled.bin && sync .")
	st := env.srv.Stats()
	env.srv.SetFaults(graphtest.FaultOptions{})
	t.Logf("monitor polls %d, throttled %d", st.Requests["monitor"], st.Throttled)
	assert.GreaterOrEqual(t, st.Throttled, int64(1), "a poll was throttled")
	assert.Greater(t, st.Requests["monitor"], st.Throttled, "and polled again")
	assert.Equal(t, int64(1), st.CopyJobsCompleted)
	requireNoBytesMoved(t, st)
	assert.True(t, bytes.Equal(data, env.serverFile("/throttled.bin")))
	assert.Contains(t, env.stderr.String(), "copy monitor throttled; pausing all polls")
	assert.Contains(t, env.stderr.String(), "retry_after=1s")
}

// Must show: setfattr on a folder of 200 files in nested folders returns
// while the service still copies (several seconds); the destination is
// absent until the job completes and whole right after; the status JSON
// rises.
func TestCopyXattrFolderTree(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	for i := range 200 {
		p := fmt.Sprintf("/photos/y%d/m%d/img%03d.jpg", i%10, i%3, i)
		_, err := env.srv.PutFile(p, []byte(fmt.Sprintf("image %d", i)), time.Time{})
		require.NoError(t, err)
	}
	env.mount()
	env.sh("ls")
	require.NoError(t, env.srv.SetCopyOptions(graphtest.CopyOptions{Latency: 4 * time.Second}))
	env.srv.ResetStats()

	env.sh("setfattr -n user.onedrive.copy -v photos-backup photos")
	_, onServer := env.srv.ItemByPath("/photos-backup")
	assert.False(t, onServer, "setfattr returned before the copy completed")
	assert.NoFileExists(t, env.path("photos-backup"))
	_, err := os.Stat(env.path("photos-backup"))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing is created before the job completes")
	assert.Equal(t, int64(1), env.srv.Stats().CopyJobsStarted)

	var seen []string
	last := -1.0
	eventually(t, 60*time.Second, func() bool {
		id, status, pct := env.copyStatus("photos")
		require.NotEmpty(t, id)
		assert.GreaterOrEqual(t, pct, last, "the percentage never goes down")
		last = pct
		if len(seen) == 0 || seen[len(seen)-1] != fmt.Sprintf("%s %.1f", status, pct) {
			seen = append(seen, fmt.Sprintf("%s %.1f", status, pct))
		}
		if status != "completed" {
			_, onServer := env.srv.ItemByPath("/photos-backup")
			assert.False(t, onServer && status == "notStarted")
		}
		return status == "completed"
	}, "the copy did not complete")
	t.Logf("status readings: %v", seen)
	require.GreaterOrEqual(t, len(seen), 3, "readings before, during and at the end: %v", seen)
	assert.Equal(t, "completed 100.0", seen[len(seen)-1])
	rising := false
	for _, s := range seen {
		if strings.HasPrefix(s, "inProgress ") && s != "inProgress 0.0" {
			rising = true
		}
	}
	assert.True(t, rising, "an inProgress reading with a percentage: %v", seen)

	// Completed means visible at once: no wait for a listing to expire.
	assert.Equal(t, "200\n", env.sh("find photos-backup -type f | wc -l"))
	env.sh("diff -r photos photos-backup")
	assert.Equal(t, env.serverTree("/photos"), env.serverTree("/photos-backup"))
	st := env.srv.Stats()
	assert.Equal(t, int64(1), st.CopyJobsStarted, "one job for the whole folder")
	assert.Zero(t, st.BytesUploaded)
}

// Must show: the destination rules of the attribute and their errors
// (EEXIST, EXDEV, ENOENT, EINVAL), and the status attributes.
func TestCopyXattrDestinations(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/r/file.txt", []byte("payload"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.PutFile("/r/taken.txt", []byte("taken"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.MkdirAll("/r/folder")
	require.NoError(t, err)
	_, err = env.srv.MkdirAll("/r/slash")
	require.NoError(t, err)
	env.mount()

	refused := []struct{ dest, want string }{
		{"taken.txt", "File exists"},
		{"TAKEN.TXT", "File exists"},
		{"/tmp/elsewhere.txt", "Invalid cross-device link"},
		{"../../../outside.txt", "Invalid cross-device link"},
		{"nosuch/x.txt", "No such file or directory"},
		{"nosuch/", "No such file or directory"},
		{"bad:name.txt", "Invalid argument"},
		{"trailing.", "Invalid argument"},
	}
	for _, c := range refused {
		out, err := env.shErr("setfattr -n user.onedrive.copy -v '" + c.dest + "' r/file.txt")
		require.Error(t, err, c.dest)
		assert.Contains(t, out, c.want, c.dest)
	}
	out, err := env.shErr("setfattr -n user.onedrive.copy -v r/folder/inside r")
	require.Error(t, err)
	assert.Contains(t, out, "Invalid argument", "a folder cannot go into itself")
	assert.Zero(t, env.srv.Stats().CopyJobsStarted, "nothing refused reached the service")

	accepted := map[string]string{
		"copy.txt":                      "/r/copy.txt",
		"folder":                        "/r/folder/file.txt",
		"slash/":                        "/r/slash/file.txt",
		env.path("abs.txt"):             "/abs.txt",
		env.path("r/folder") + "/a.txt": "/r/folder/a.txt",
	}
	for dest, want := range accepted {
		env.sh("setfattr -n user.onedrive.copy -v '" + dest + "' r/file.txt")
		id, _, _ := env.copyStatus("r/file.txt")
		eventually(t, 20*time.Second, func() bool {
			_, status, _ := env.copyStatus("r/file.txt")
			return status == "completed"
		}, "copy to "+dest)
		got, err := env.srv.ReadFile(want)
		require.NoError(t, err, dest)
		assert.Equal(t, "payload", string(got), dest)
		assert.Equal(t, "payload", env.sh("cat "+strings.TrimPrefix(want, "/")), dest)
		d, err := jobStatus(env.path("r/file.txt"))
		require.NoError(t, err)
		assert.Equal(t, id, d.ID)
		assert.Equal(t, "/r/file.txt", d.Source)
		assert.Equal(t, want, d.Destination)
		assert.Nil(t, d.Error)
	}

	raw := env.sh("getfattr --only-values -n user.onedrive.copy.status r/file.txt")
	for _, key := range []string{`"id":`, `"source":`, `"destination":`, `"status":"completed"`, `"percentageComplete":100`, `"error":null`} {
		assert.Contains(t, raw, key)
	}
	docs, err := jobList(env.dir)
	require.NoError(t, err)
	assert.Len(t, docs, len(accepted))
	assert.Contains(t, env.sh("getfattr -d -m - r/file.txt"), "user.onedrive.copy.status")
	assert.NotContains(t, env.sh("getfattr -d -m - r/taken.txt"), "user.onedrive.copy", "listed only when readable")
	assert.Contains(t, env.sh("getfattr -d -m - ."), "user.onedrive.copy.jobs")
	_, err = env.shErr("getfattr -n user.onedrive.copy.jobs r")
	assert.Error(t, err, "the jobs list is on the root only")
}

// Must show: a job still running at unmount is resumed by the next mount,
// which shows its result.
func TestCopyJobResumesAfterRemount(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	data := env.putRandom("/doc.bin", 64<<10)
	env.mount()
	require.NoError(t, env.srv.SetCopyOptions(graphtest.CopyOptions{Latency: 4 * time.Second}))
	env.sh("setfattr -n user.onedrive.copy -v doc-copy.bin doc.bin")
	id, status, _ := env.copyStatus("doc.bin")
	require.NotEqual(t, "completed", status)
	env.unmount()
	assert.Zero(t, env.srv.Stats().CopyJobsCompleted, "unmounted while the job ran")

	env.mount()
	eventually(t, 30*time.Second, func() bool {
		_, status, _ := env.copyStatus("doc.bin")
		return status == "completed"
	}, "the resumed job did not complete")
	gotID, _, _ := env.copyStatus("doc.bin")
	assert.Equal(t, id, gotID, "the same job, resumed")
	assert.Contains(t, env.sh("ls"), "doc-copy.bin", "its result shows at once")
	assert.Equal(t, "65536\n", env.sh("stat -c %s doc-copy.bin"))
	assert.True(t, bytes.Equal(data, env.serverFile("/doc-copy.bin")))
	assert.Contains(t, env.stderr.String(), "copy jobs loaded")
}

// cp returns as soon as the service accepted the copy, long before a slow
// job ends: the destination reads as the source meanwhile, stat shows its
// size, and `sync DIR` waits for the job; no second name, no conflict copy.
func TestCopyCpReturnsAtAcceptance(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	data := env.putRandom("/slow.bin", 64<<10)
	env.mount()
	env.sh("ls")
	require.NoError(t, env.srv.SetCopyOptions(graphtest.CopyOptions{Latency: 3 * time.Second}))

	env.srv.ResetStats()
	env.sh("/bin/cp slow.bin slow-copy.bin")
	assert.Zero(t, env.srv.Stats().CopyJobsCompleted, "cp returned before the job ended")
	requireNoBytesMoved(t, env.srv.Stats())
	assert.Equal(t, "65536\n", env.sh("stat -c %s slow-copy.bin"))
	env.sh("cmp slow.bin slow-copy.bin")
	_, status, _ := env.copyStatus("slow.bin")
	assert.Contains(t, []string{"notStarted", "inProgress"}, status, "the job goes on")
	_, onServer := env.srv.ItemByPath("/slow-copy.bin")
	assert.False(t, onServer)

	env.sh("sync .")
	assert.Equal(t, int64(1), env.srv.Stats().CopyJobsCompleted, "sync DIR waited for the job")
	assert.True(t, bytes.Equal(data, env.serverFile("/slow-copy.bin")))
	assert.Equal(t, int64(1), env.srv.Stats().CopyJobsStarted)
	assert.Zero(t, env.srv.Stats().BytesUploaded)
	assert.Equal(t, "slow-copy.bin\nslow.bin\n", env.sh("ls"), "no conflict copy, no second name")
}

// onedrivefs cp and onedrivefs jobs, as a user runs them.
func TestCopyCommands(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	data := env.putRandom("/docs/report.pdf", 200<<10)
	_, err := env.srv.MkdirAll("/backup")
	require.NoError(t, err)
	env.mount()
	require.NoError(t, env.srv.SetCopyOptions(graphtest.CopyOptions{Latency: time.Second}))

	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, mountBinary, args...)
		cmd.Dir = env.dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run("cp", "--wait", "docs/report.pdf", "backup/")
	require.NoError(t, err, out)
	assert.Contains(t, out, "started: /docs/report.pdf -> /backup/report.pdf")
	assert.Contains(t, out, "completed")
	assert.Contains(t, out, "copied /docs/report.pdf -> /backup/report.pdf")
	assert.True(t, bytes.Equal(data, env.serverFile("/backup/report.pdf")))

	out, err = run("cp", "docs", "docs-copy")
	require.NoError(t, err, out)
	assert.Contains(t, out, "copy job ")
	out, err = run("jobs", "--watch", env.dir)
	require.NoError(t, err, out)
	assert.Contains(t, out, "ID")
	assert.Contains(t, out, "/docs-copy")
	assert.Contains(t, out, "/backup/report.pdf")
	assert.Contains(t, out, "completed")
	assert.True(t, bytes.Equal(data, env.serverFile("/docs-copy/report.pdf")))

	env.srv.SetFaults(graphtest.FaultOptions{FailNextCopies: 1, FailCopyCode: "accessDenied"})
	out, err = run("cp", "--wait", "docs/report.pdf", "backup/second.pdf")
	require.Error(t, err, out)
	assert.Contains(t, out, "the copy failed: accessDenied")
	out, err = run("jobs", env.dir)
	require.NoError(t, err, out)
	assert.Contains(t, out, "failed (accessDenied")

	out, err = run("cp", "docs/report.pdf", "backup/report.pdf")
	require.Error(t, err)
	assert.Contains(t, out, "already exists")
	out, err = run("cp", "docs/report.pdf", t.TempDir()+"/x.pdf")
	require.Error(t, err)
	assert.Contains(t, out, "not in the same onedrivefs mount")
	out, err = run("cp", "/etc/hostname", "x")
	require.Error(t, err)
	assert.Contains(t, out, "is not in an onedrivefs mount")
}

// `sync DIR` (fsync of a folder) waits for copies started through the
// attribute into DIR or beneath it, as it does for cp's: the copy is on the
// service and shown in the mount when sync returns.
func TestCopyXattrThenSyncDirIsFinished(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{Copy: graphtest.CopyOptions{Latency: time.Second}})
	_, err := env.srv.PutFile("/src/a.txt", []byte("alpha"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.PutFile("/src/sub/b.txt", []byte("beta"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.MkdirAll("/dst/deep")
	require.NoError(t, err)
	env.mount()

	env.sh(`setfattr -n user.onedrive.copy -v "$PWD/dst/deep/a-copy.txt" src/a.txt && ` +
		`setfattr -n user.onedrive.copy -v "$PWD/dst/deep/src-copy" src`)
	require.Less(t, completedJobs(env), 2, "the jobs were still running when setfattr returned")
	env.sh("sync dst")
	assert.Equal(t, 2, completedJobs(env), "sync DIR waited for the attribute's copies beneath it")
	assert.Equal(t, "alpha", env.sh("cat dst/deep/a-copy.txt"))
	assert.Equal(t, "beta", env.sh("cat dst/deep/src-copy/sub/b.txt"))
}
