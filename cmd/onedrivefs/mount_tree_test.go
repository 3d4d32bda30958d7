package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

func TestMountListStatCat(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	mtime := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	_, err := env.srv.PutFile("/Docs/hello.txt", []byte("hello, world\n"), mtime)
	require.NoError(t, err)
	_, err = env.srv.PutFile("/Docs/README.md", []byte("# readme\n"), mtime)
	require.NoError(t, err)
	_, err = env.srv.MkdirAll("/Photos/2024")
	require.NoError(t, err)
	env.mount()

	out := env.sh("ls -la")
	assert.Contains(t, out, "Docs")
	assert.Contains(t, out, "Photos")
	out = env.sh("ls -la Docs")
	assert.Contains(t, out, "hello.txt")
	assert.Contains(t, out, "README.md")
	assert.Contains(t, out, "-rw-r--r--")

	st := env.sh("stat -c '%s %b %a %U %Y %F' Docs/hello.txt")
	me := strings.TrimSpace(env.sh("id -un"))
	assert.Equal(t, fmt.Sprintf("13 1 644 %s %d regular file", me, mtime.Unix()), strings.TrimSpace(st))
	st = env.sh("stat -c '%a %F' Photos/2024")
	assert.Equal(t, "755 directory", strings.TrimSpace(st))

	assert.Equal(t, "hello, world\n", env.sh("cat Docs/hello.txt"))
	// Case-insensitive lookups find the case-preserved name.
	assert.Equal(t, "# readme\n", env.sh("cat docs/readme.MD"))
	want := filepath.Join(t.TempDir(), "want")
	require.NoError(t, os.WriteFile(want, []byte("hello, world\n"), 0o644))
	env.sh("cmp Docs/hello.txt " + want)
}

func TestMountWriteAppendTruncateTouch(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.MkdirAll("/w")
	require.NoError(t, err)
	env.mount()

	env.sh("echo 'first line' > w/new.txt")
	got, err := env.srv.ReadFile("/w/new.txt")
	require.NoError(t, err)
	assert.Equal(t, "first line\n", string(got), "closed file is on the server")

	env.sh("echo 'second line' >> w/new.txt")
	got, err = env.srv.ReadFile("/w/new.txt")
	require.NoError(t, err)
	assert.Equal(t, "first line\nsecond line\n", string(got))
	assert.Equal(t, "first line\nsecond line\n", env.sh("cat w/new.txt"))

	env.sh("truncate -s 5 w/new.txt")
	got, err = env.srv.ReadFile("/w/new.txt")
	require.NoError(t, err)
	assert.Equal(t, "first", string(got))
	assert.Equal(t, "5", strings.TrimSpace(env.sh("stat -c %s w/new.txt")))

	// Overwriting (open with O_TRUNC) sends the new content once: no empty
	// version first, nothing downloaded.
	env.srv.ResetStats()
	env.sh("echo 'replaced' > w/new.txt")
	got, err = env.srv.ReadFile("/w/new.txt")
	require.NoError(t, err)
	assert.Equal(t, "replaced\n", string(got))
	stats := env.srv.Stats()
	assert.Equal(t, int64(1), stats.Requests["upload.simple"], "one upload: %v", stats.Requests)
	assert.Zero(t, stats.BytesDownloaded)

	env.sh("touch -d '2021-06-07 08:09:10 UTC' w/new.txt")
	info, ok := env.srv.ItemByPath("/w/new.txt")
	require.True(t, ok)
	assert.Equal(t, time.Date(2021, 6, 7, 8, 9, 10, 0, time.UTC), info.FSModified.UTC())
	assert.Equal(t, "1623053350", strings.TrimSpace(env.sh("stat -c %Y w/new.txt")))

	// The kernel sends RELEASE after close(2) has returned (the journal holds
	// the file meanwhile), so the creation is waited for.
	env.sh("touch w/empty")
	eventually(t, 10*time.Second, func() bool {
		info, ok = env.srv.ItemByPath("/w/empty")
		return ok
	}, "an empty new file is created on the server at release")
	assert.Equal(t, int64(0), info.Size)

	// Emptying a file with a redirection: journaled at close, sent at release.
	env.sh(": > w/new.txt")
	eventually(t, 10*time.Second, func() bool {
		info, ok = env.srv.ItemByPath("/w/new.txt")
		return ok && info.Size == 0
	}, "the emptied file reaches the server")
}

func TestMountMkdirRmdirMvRm(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/src/file.bin", make([]byte, 100000), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.PutFile("/src/sub/inner.txt", []byte("inner"), time.Time{})
	require.NoError(t, err)
	env.mount()

	env.sh("mkdir -p a/b/c")
	_, ok := env.srv.ItemByPath("/a/b/c")
	assert.True(t, ok)

	out, err := env.shErr("rmdir a/b")
	require.Error(t, err)
	assert.Contains(t, out, "Directory not empty")
	env.sh("rmdir a/b/c")
	_, ok = env.srv.ItemByPath("/a/b/c")
	assert.False(t, ok)

	before := env.srv.Stats()
	env.sh("mv src/file.bin a/b/moved.bin && mv src/sub a/sub2")
	after := env.srv.Stats()
	assert.Equal(t, before.BytesDownloaded, after.BytesDownloaded, "a move downloads nothing")
	assert.Equal(t, before.BytesUploaded, after.BytesUploaded, "a move uploads nothing")
	_, ok = env.srv.ItemByPath("/a/b/moved.bin")
	assert.True(t, ok)
	_, ok = env.srv.ItemByPath("/a/sub2/inner.txt")
	assert.True(t, ok)
	assert.Equal(t, "inner", env.sh("cat a/sub2/inner.txt"))
	out, _ = env.shErr("ls src")
	assert.Empty(t, strings.TrimSpace(out))

	env.sh("rm -r a")
	_, ok = env.srv.ItemByPath("/a")
	assert.False(t, ok)
	assert.NotContains(t, env.sh("ls"), "a\n")
}

func TestMountNamesAndDf(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{QuotaTotal: 10 << 30})
	_, err := env.srv.PutFile("/A.TXT", []byte("upper"), time.Time{})
	require.NoError(t, err)
	env.mount()

	out, err := env.shErr("touch 'a:b'")
	require.Error(t, err)
	assert.Contains(t, out, "Invalid argument")
	assert.Contains(t, env.stderr.String(), "not allowed")

	// Creating a.txt beside A.TXT opens the existing file.
	env.sh("echo lower > a.txt")
	got, err := env.srv.ReadFile("/A.TXT")
	require.NoError(t, err)
	assert.Equal(t, "lower\n", string(got))
	list, err := env.srv.List("/")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "A.TXT", list[0].Name)

	out = env.sh("df -B1 .")
	assert.Contains(t, out, "onedrivefs")
	assert.Contains(t, out, fmt.Sprint(int64(10<<30)))

	out, err = env.shErr("ln -s A.TXT link")
	require.Error(t, err)
	assert.Contains(t, out, "Operation not permitted")
}

func TestMountReplaceByRenameAndCopyInside(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/target.txt", []byte("old target"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.PutFile("/src.txt", []byte("new content"), time.Time{})
	require.NoError(t, err)
	env.mount()

	// mv onto an existing file replaces it, as POSIX rename does.
	env.sh("mv src.txt target.txt")
	got, err := env.srv.ReadFile("/target.txt")
	require.NoError(t, err)
	assert.Equal(t, "new content", string(got))
	_, ok := env.srv.ItemByPath("/src.txt")
	assert.False(t, ok)
	assert.Equal(t, "target.txt\n", env.sh("ls"))

	// cp inside the mount (bytes through the data path until server-side
	// copy exists) and an editor-style save: write a temporary, fsync,
	// rename over the original.
	env.sh("cp target.txt copy.txt && cmp target.txt copy.txt && sync .")
	env.sh("printf 'edited' > .target.tmp && sync .target.tmp && mv -f .target.tmp target.txt")
	got, err = env.srv.ReadFile("/target.txt")
	require.NoError(t, err)
	assert.Equal(t, "edited", string(got))
	assert.Equal(t, "edited", env.sh("cat target.txt"))
	assert.Equal(t, "copy.txt\ntarget.txt\n", env.sh("ls"))
}

// The kernel may know one file under several spellings; removing it
// through one spelling makes every spelling disappear.
func TestMountCaseAliasesFollowRemoval(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/README.md", []byte("r"), time.Time{})
	require.NoError(t, err)
	env.mount()
	assert.Equal(t, "r", env.sh("cat README.MD"))
	assert.Equal(t, "r", env.sh("cat readme.md"))
	env.sh("rm README.md")
	eventually(t, 5*time.Second, func() bool {
		_, err1 := env.shErr("stat README.MD")
		_, err2 := env.shErr("stat readme.md")
		return err1 != nil && err2 != nil
	}, "an alias of the removed file is still visible")
	assert.Equal(t, "", env.sh("ls"))
}
