package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// POSIX conformance of the mount where OneDrive can represent it: name and
// path limits, unlinked files that stay open, directory link counts and
// times, and file times that survive the upload. The test process makes
// the system calls; the mount is served by a child process.

// statOf stats p (following nothing: lstat) and fails the test on error.
func statOf(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Lstat(p, &st), p)
	return st
}

func fstatOf(t *testing.T, fd int) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(fd, &st))
	return st
}

// tsTime turns a stat timestamp into a time.Time (nanoseconds kept).
func tsTime(ts unix.Timespec) time.Time { return time.Unix(ts.Unix()).UTC() }

// serviceTime is t as the service states it: UTC, milliseconds (the fake
// stores what it is sent and answers with three fraction digits).
func serviceTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// closeOnCleanup closes fd at the end of the test unless *fd is -1.
func closeOnCleanup(t *testing.T, fd *int) {
	t.Cleanup(func() {
		if *fd >= 0 {
			_ = unix.Close(*fd)
		}
	})
}

// preadAll reads n bytes at off through fd, failing the test on error or a
// short read.
func preadAll(t *testing.T, fd int, off int64, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	got := 0
	for got < n {
		k, err := unix.Pread(fd, buf[got:], off+int64(got))
		require.NoError(t, err, "pread at %d", off+int64(got))
		if k == 0 {
			t.Fatalf("pread at %d: end of file after %d of %d bytes", off+int64(got), got, n)
		}
		got += k
	}
	return buf
}

func pwriteAll(t *testing.T, fd int, p []byte, off int64) {
	t.Helper()
	n, err := unix.Pwrite(fd, p, off)
	require.NoError(t, err, "pwrite at %d", off)
	require.Equal(t, len(p), n, "pwrite at %d", off)
}

// A name over 255 bytes is ENAMETOOLONG in every path operation, and a
// 255-byte name works.
func TestPosixNameTooLong(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/f.txt", []byte("f"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.MkdirAll("/d")
	require.NoError(t, err)
	env.mount()

	long := strings.Repeat("n", 256)
	at := env.path(long)
	openClose := func(p string, flags int) error {
		fd, err := unix.Open(p, flags, 0o644)
		if err == nil {
			_ = unix.Close(fd)
		}
		return err
	}
	// Ordered so that an operation that wrongly succeeds changes as little
	// as possible for the ones after it.
	ops := []struct {
		name string
		op   func() error
	}{
		{"stat", func() error { var st unix.Stat_t; return unix.Lstat(at, &st) }},
		{"stat in a folder", func() error { var st unix.Stat_t; return unix.Lstat(env.path("d/"+long), &st) }},
		// 128 characters, 256 bytes: the limit is in bytes.
		{"stat of a multibyte name", func() error {
			var st unix.Stat_t
			return unix.Lstat(env.path(strings.Repeat("é", 128)), &st)
		}},
		{"open O_CREAT of a multibyte name", func() error {
			return openClose(env.path(strings.Repeat("é", 128)), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY)
		}},
		{"open", func() error { return openClose(at, unix.O_RDONLY) }},
		{"open O_CREAT", func() error { return openClose(at, unix.O_CREAT|unix.O_WRONLY) }},
		{"open O_CREAT in a folder", func() error { return openClose(env.path("d/"+long), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY) }},
		{"mkdir", func() error { return unix.Mkdir(at, 0o755) }},
		{"unlink", func() error { return unix.Unlink(at) }},
		{"rmdir", func() error { return unix.Rmdir(at) }},
		{"rename source", func() error { return unix.Rename(at, env.path("x.txt")) }},
		{"copy xattr destination", func() error {
			return unix.Setxattr(env.path("f.txt"), "user.onedrive.copy", []byte(long), 0)
		}},
		{"copy xattr destination in a folder", func() error {
			return unix.Setxattr(env.path("f.txt"), "user.onedrive.copy", []byte("d/"+long), 0)
		}},
		{"rename target", func() error { return unix.Rename(env.path("f.txt"), at) }},
		{"rename folder target", func() error { return unix.Rename(env.path("d"), at) }},
	}
	for _, c := range ops {
		t.Run(c.name, func(t *testing.T) {
			assert.ErrorIs(t, c.op(), unix.ENAMETOOLONG)
		})
	}

	assert.Equal(t, []string{"d", "f.txt"}, env.remoteNames("/"), "nothing changed on the fake")
	assert.Empty(t, env.remoteNames("/d"))
	assert.Zero(t, env.srv.Stats().CopyJobsStarted, "no copy job started")
	local, err := os.ReadDir(env.dir)
	require.NoError(t, err)
	require.Len(t, local, 2)

	name255 := strings.Repeat("n", 255)
	require.NoError(t, os.WriteFile(env.path(name255), []byte("255 bytes"), 0o644))
	env.waitRemoteContent("/"+name255, []byte("255 bytes"), 5*time.Second, "a 255-byte name")
	st := statOf(t, env.path(name255))
	assert.Equal(t, int64(9), st.Size)
}

// A path longer than the service's 400 characters is refused at
// create, mkdir and rename time, before any data is accepted; the longest
// allowed path works end to end. Characters are counted, not bytes.
func TestPosixPathTooLong(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.mount()
	cases := []struct {
		name string
		dir  string
	}{
		{"ascii", strings.Repeat("a", 200)},
		// 254-byte names; the path is 400 characters and 654 bytes.
		{"multibyte", strings.Repeat("é", 127) + "/" + strings.Repeat("ü", 127)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.NoError(t, os.MkdirAll(env.path(c.dir), 0o755))
			longest := strings.Repeat("x", 400-utf8.RuneCountInString(c.dir)-1)
			require.Equal(t, 400, utf8.RuneCountInString(c.dir+"/"+longest))
			// One character more, a different name for each operation so
			// that one's failure does not decide the next.
			tooLong := func(last string) string { return c.dir + "/" + longest + last }

			content := []byte("the longest path the service allows\n")
			require.NoError(t, os.WriteFile(env.path(c.dir+"/"+longest), content, 0o644))
			env.waitRemoteContent("/"+c.dir+"/"+longest, content, 5*time.Second, "the longest allowed path")
			assert.Equal(t, string(content), env.sh("cat '"+c.dir+"/"+longest+"'"), "read back through the mount")

			fd, err := unix.Open(env.path(tooLong("f")), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644)
			if err == nil {
				_, werr := unix.Write(fd, []byte("would be lost"))
				cerr := unix.Close(fd)
				t.Errorf("open(O_CREAT) of a 401-character path succeeded; write: %v, close: %v", werr, cerr)
			}
			assert.ErrorIs(t, err, unix.ENAMETOOLONG, "open(O_CREAT)")
			assert.ErrorIs(t, unix.Mkdir(env.path(tooLong("d")), 0o755), unix.ENAMETOOLONG, "mkdir")
			assert.ErrorIs(t, unix.Rename(env.path(c.dir+"/"+longest), env.path(tooLong("r"))), unix.ENAMETOOLONG, "rename")

			assert.Equal(t, []string{longest}, env.remoteNames("/"+c.dir), "on the fake")
			des, err := os.ReadDir(env.path(c.dir))
			require.NoError(t, err)
			var names []string
			for _, de := range des {
				names = append(names, de.Name())
			}
			assert.Equal(t, []string{longest}, names, "listed in the mount")
			got, err := env.srv.ReadFile("/" + c.dir + "/" + longest)
			require.NoError(t, err)
			assert.Equal(t, content, got, "the longest path keeps its content")
		})
	}
}

// A new file unlinked while open keeps its data for its descriptor (nlink
// 0) and is never sent.
func TestPosixUnlinkOpenNewFile(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.mount()
	env.srv.ResetStats()

	h := env.path("h.tmp")
	fd, err := unix.Open(h, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR, 0o644)
	require.NoError(t, err)
	closeOnCleanup(t, &fd)
	pwriteAll(t, fd, []byte("Hello"), 0)
	require.NoError(t, unix.Unlink(h))

	buf := make([]byte, 64)
	n, err := unix.Pread(fd, buf, 0)
	require.NoError(t, err)
	assert.Equal(t, "Hello", string(buf[:n]), "pread after unlink")
	st := fstatOf(t, fd)
	assert.Equal(t, int64(5), st.Size, "fstat size after unlink")
	assert.Equal(t, uint64(0), uint64(st.Nlink), "fstat nlink after unlink")

	pwriteAll(t, fd, []byte(", world"), 5)
	n, err = unix.Pread(fd, buf, 0)
	require.NoError(t, err)
	assert.Equal(t, "Hello, world", string(buf[:n]), "pread after a write after unlink")
	assert.Equal(t, int64(12), fstatOf(t, fd).Size)
	require.NoError(t, unix.Close(fd))
	fd = -1

	_, err = os.Lstat(h)
	assert.ErrorIs(t, err, os.ErrNotExist)
	// RELEASE reaches the mount after close(2) returned: give a late upload
	// the time to show.
	time.Sleep(time.Second)
	_, ok := env.srv.ItemByPath("/h.tmp")
	assert.False(t, ok, "the unlinked file is not on the fake")
	assert.Empty(t, env.remoteNames("/"))
	stats := env.srv.Stats()
	assert.Zero(t, stats.BytesUploaded, "nothing uploaded: %v", stats.Requests)
	assert.Zero(t, stats.Requests["upload.simple"]+stats.Requests["upload.create"], "%v", stats.Requests)
}

// A file on the service, open, then unlinked, is still read whole (and
// written, when open for writing) through its descriptor; after the last
// close it is gone from the service, and nothing is sent again.
func TestPosixUnlinkOpenUploadedFile(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.mount()
	for _, mode := range []struct {
		name  string
		flags int
	}{{"read-only", unix.O_RDONLY}, {"read-write", unix.O_RDWR}} {
		t.Run(mode.name, func(t *testing.T) {
			name := "up-" + mode.name + ".bin"
			data := randomBytes(t, 4<<20+12345)
			require.NoError(t, os.WriteFile(env.path(name), data, 0o644))
			env.waitRemoteContent("/"+name, data, 10*time.Second, "uploaded at close")
			env.srv.ResetStats()

			fd, err := unix.Open(env.path(name), mode.flags, 0)
			require.NoError(t, err)
			closeOnCleanup(t, &fd)
			assert.Equal(t, data[:4096], preadAll(t, fd, 0, 4096), "read before the unlink")
			require.NoError(t, unix.Unlink(env.path(name)))
			// Drop what the kernel cached, so that the reads below reach
			// the mount.
			require.NoError(t, unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED))

			st := fstatOf(t, fd)
			assert.Equal(t, uint64(0), uint64(st.Nlink), "fstat nlink after unlink")
			assert.Equal(t, int64(len(data)), st.Size, "fstat size after unlink")

			want := bytes.Clone(data)
			if mode.flags == unix.O_RDWR {
				patch := []byte("written after the unlink")
				off := 3<<20 + 7
				pwriteAll(t, fd, patch, int64(off))
				copy(want[off:], patch)
				pwriteAll(t, fd, []byte("grown"), int64(len(want)))
				want = append(want, "grown"...)
				require.NoError(t, unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED))
			}
			// From the end to the start, so that read-ahead of one read
			// serves nothing of the next.
			got := make([]byte, len(want))
			const chunk = 256 << 10
			for end := len(want); end > 0; end -= chunk {
				start := max(0, end-chunk)
				copy(got[start:end], preadAll(t, fd, int64(start), end-start))
			}
			assert.True(t, bytes.Equal(want, got), "content through the descriptor after unlink: %s", firstDiff(got, want))
			assert.Equal(t, int64(len(want)), fstatOf(t, fd).Size)
			require.NoError(t, unix.Close(fd))
			fd = -1

			eventually(t, 5*time.Second, func() bool {
				_, ok := env.srv.ItemByPath("/" + name)
				return !ok
			}, "the unlinked file is still on the fake after the last close")
			time.Sleep(time.Second) // a late upload would show by now
			_, ok := env.srv.ItemByPath("/" + name)
			assert.False(t, ok, "sent again under its old name")
			assert.NotContains(t, env.remoteNames("/"), name)
			assert.Zero(t, env.srv.Stats().BytesUploaded, "nothing sent after the unlink: %v", env.srv.Stats().Requests)
			_, err = os.Lstat(env.path(name))
			assert.ErrorIs(t, err, os.ErrNotExist)
		})
	}
}

// A folder's st_nlink is 2 + its subfolders, the root's too, and follows
// mkdir, rmdir and rename.
func TestPosixDirLinkCount(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	for _, p := range []string{"/a/x", "/a/y", "/b"} {
		_, err := env.srv.MkdirAll(p)
		require.NoError(t, err)
	}
	_, err := env.srv.PutFile("/a/f.txt", []byte("f"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.PutFile("/top.txt", []byte("t"), time.Time{})
	require.NoError(t, err)
	env.mount()

	nlink := func(rel string) uint64 {
		t.Helper()
		return uint64(statOf(t, env.path(rel)).Nlink)
	}
	assert.Equal(t, uint64(4), nlink(""), "root: a and b")
	assert.Equal(t, uint64(4), nlink("a"), "a: x and y")
	assert.Equal(t, uint64(2), nlink("b"))
	assert.Equal(t, uint64(2), nlink("a/x"))

	require.NoError(t, os.Mkdir(env.path("b/new"), 0o755))
	assert.Equal(t, uint64(3), nlink("b"), "after mkdir b/new")
	require.NoError(t, os.Mkdir(env.path("c"), 0o755))
	assert.Equal(t, uint64(5), nlink(""), "root after mkdir c")
	require.NoError(t, os.WriteFile(env.path("b/file.txt"), []byte("x"), 0o644))
	assert.Equal(t, uint64(3), nlink("b"), "a file is no link")

	require.NoError(t, os.Rename(env.path("a/x"), env.path("b/x")))
	assert.Equal(t, uint64(3), nlink("a"), "after moving x out of a")
	assert.Equal(t, uint64(4), nlink("b"), "after moving x into b")

	require.NoError(t, os.Remove(env.path("b/new")))
	assert.Equal(t, uint64(3), nlink("b"), "after rmdir b/new")
	require.NoError(t, os.Remove(env.path("c")))
	assert.Equal(t, uint64(4), nlink(""), "root after rmdir c")
}

// A folder's mtime and ctime move forward when an entry is created,
// removed or renamed into or out of it.
func TestPosixDirTimes(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	_, err := env.srv.PutFile("/d/gone.txt", []byte("g"), old)
	require.NoError(t, err)
	for _, p := range []string{"/d/olddir", "/e"} {
		_, err = env.srv.MkdirAll(p)
		require.NoError(t, err)
	}
	env.mount()

	steps := []struct {
		name string
		op   func() error
		dirs []string
	}{
		{"create a file", func() error { return os.WriteFile(env.path("d/new.txt"), []byte("n"), 0o644) }, []string{"d"}},
		{"mkdir", func() error { return os.Mkdir(env.path("d/sub"), 0o755) }, []string{"d"}},
		{"unlink", func() error { return os.Remove(env.path("d/gone.txt")) }, []string{"d"}},
		{"rmdir", func() error { return os.Remove(env.path("d/olddir")) }, []string{"d"}},
		{"rename inside", func() error { return os.Rename(env.path("d/new.txt"), env.path("d/renamed.txt")) }, []string{"d"}},
		{"rename a file out and in", func() error { return os.Rename(env.path("d/renamed.txt"), env.path("e/moved.txt")) }, []string{"d", "e"}},
		{"rename a folder out and in", func() error { return os.Rename(env.path("d/sub"), env.path("e/sub")) }, []string{"d", "e"}},
		{"create in the root", func() error { return os.WriteFile(env.path("top.txt"), []byte("t"), 0o644) }, []string{""}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			before := map[string]unix.Stat_t{}
			for _, d := range s.dirs {
				before[d] = statOf(t, env.path(d))
			}
			start := time.Now()
			require.NoError(t, s.op())
			for _, d := range s.dirs {
				st := statOf(t, env.path(d))
				m0, c0 := tsTime(before[d].Mtim), tsTime(before[d].Ctim)
				m1, c1 := tsTime(st.Mtim), tsTime(st.Ctim)
				assert.True(t, m1.After(m0), "%q mtime %v, before the operation %v", d, m1, m0)
				assert.False(t, m1.Before(start), "%q mtime %v is before the operation started (%v)", d, m1, start)
				assert.True(t, c1.After(c0), "%q ctime %v, before the operation %v", d, c1, c0)
				assert.False(t, c1.Before(start), "%q ctime %v is before the operation started (%v)", d, c1, start)
			}
		})
	}
}

// A file's mtime is what the last write set, and stays so after close,
// after the upload and after a delta poll; the service gets it in
// fileSystemInfo. The same for utimensat (touch -d) and cp -p.
func TestPosixMtimeStableAcrossUpload(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/old.txt", []byte("old content"), time.Date(2019, 5, 6, 7, 8, 9, 0, time.UTC))
	require.NoError(t, err)
	env.mount()

	type check struct {
		name    string
		rel     string
		want    time.Time
		content []byte
	}
	var checks []check
	write := func(name, rel string, flags int) {
		t.Run(name, func(t *testing.T) {
			content := []byte(strings.Repeat(name+"\n", 100))
			fd, err := unix.Open(env.path(rel), flags, 0o644)
			require.NoError(t, err)
			closeOnCleanup(t, &fd)
			pwriteAll(t, fd, content[:100], 0)
			time.Sleep(20 * time.Millisecond)
			pwriteAll(t, fd, content[100:], 100)
			m1 := tsTime(fstatOf(t, fd).Mtim)
			require.NoError(t, unix.Close(fd))
			fd = -1
			assert.Equal(t, m1, tsTime(statOf(t, env.path(rel)).Mtim), "stat right after close")
			env.waitRemoteContent("/"+rel, content, 5*time.Second, "sent at close")
			assert.Equal(t, m1, tsTime(statOf(t, env.path(rel)).Mtim), "stat after the upload")
			checks = append(checks, check{name, rel, m1, content})
		})
	}
	write("new file", "new.txt", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY)
	write("existing file rewritten", "old.txt", unix.O_WRONLY|unix.O_TRUNC)

	t.Run("touch -d", func(t *testing.T) {
		env.sh("TZ=UTC touch -d '2001-02-03 04:05:06.789' touched.txt")
		want := time.Date(2001, 2, 3, 4, 5, 6, 789e6, time.UTC)
		assert.Equal(t, want, tsTime(statOf(t, env.path("touched.txt")).Mtim))
		checks = append(checks, check{"touch -d", "touched.txt", want, []byte{}})
	})
	t.Run("cp -p", func(t *testing.T) {
		local := filepath.Join(t.TempDir(), "src.txt")
		require.NoError(t, os.WriteFile(local, []byte("kept"), 0o644))
		want := time.Date(2020, 2, 3, 4, 5, 6, 123456789, time.UTC)
		require.NoError(t, os.Chtimes(local, want, want))
		env.sh("cp -p " + local + " kept.txt")
		assert.Equal(t, want, tsTime(statOf(t, env.path("kept.txt")).Mtim))
		checks = append(checks, check{"cp -p", "kept.txt", want, []byte("kept")})
	})

	for _, c := range checks {
		env.waitRemoteContent("/"+c.rel, c.content, 5*time.Second, c.name)
	}
	time.Sleep(2500 * time.Millisecond) // at least one delta poll (--poll-interval 1s)
	for _, c := range checks {
		t.Run("after a poll/"+c.name, func(t *testing.T) {
			assert.Equal(t, c.want, tsTime(statOf(t, env.path(c.rel)).Mtim), "stat after a delta poll")
			info := env.remoteItem("/" + c.rel)
			assert.Equal(t, serviceTime(c.want), serviceTime(info.FSModified), "fileSystemInfo.lastModifiedDateTime on the fake")
		})
	}
}

// utimensat sets atime and mtime independently, and stat answers both,
// also after close and a delta poll (the service has no atime: the mount
// remembers it).
func TestPosixAtimeRoundTrip(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.mount()
	mtime := time.Unix(1_500_000_000, 250_000_000).UTC()
	cases := []struct {
		name  string
		atime time.Time
	}{
		{"2^31", time.Unix(1<<31, 0).UTC()},
		{"2^32", time.Unix(1<<32, 0).UTC()},
		{"1e9+123456789ns", time.Unix(1e9, 123456789).UTC()},
		{"0", time.Unix(0, 0).UTC()},
	}
	rel := func(i int) string { return fmt.Sprintf("at%d.txt", i) }
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := env.path(rel(i))
			require.NoError(t, os.WriteFile(p, []byte(c.name), 0o644))
			ts := []unix.Timespec{unix.NsecToTimespec(c.atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
			require.NoError(t, unix.UtimesNano(p, ts))
			st := statOf(t, p)
			assert.Equal(t, c.atime, tsTime(st.Atim), "atime")
			assert.Equal(t, mtime, tsTime(st.Mtim), "mtime")
		})
	}
	for i := range cases {
		env.waitRemoteContent("/"+rel(i), []byte(cases[i].name), 5*time.Second, "sent")
	}
	time.Sleep(2500 * time.Millisecond) // at least one delta poll (--poll-interval 1s)
	for i, c := range cases {
		t.Run("after a poll/"+c.name, func(t *testing.T) {
			st := statOf(t, env.path(rel(i)))
			assert.Equal(t, c.atime, tsTime(st.Atim), "atime")
			assert.Equal(t, mtime, tsTime(st.Mtim), "mtime")
		})
	}
}
