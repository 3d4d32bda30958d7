package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

func TestMountXattrsCpPreserveInstall(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/x.txt", []byte("abc"), time.Time{})
	require.NoError(t, err)
	env.mount()
	info, _ := env.srv.ItemByPath("/x.txt")

	out := env.sh("getfattr -d x.txt")
	assert.Contains(t, out, `user.onedrive.id="`+info.ID+`"`)
	assert.Contains(t, out, "user.onedrive.etag=")
	assert.Contains(t, out, "user.onedrive.ctag=")
	assert.Contains(t, out, `user.onedrive.quickxorhash="YRDDGAAAAAAAAAAAAwAAAAAAAAA="`)

	// cp -p and install work in the mount (xattrs, ACLs and modes are
	// answered, not failed), and cp -p keeps the mtime.
	local := filepath.Join(t.TempDir(), "src.txt")
	require.NoError(t, os.WriteFile(local, []byte("preserved"), 0o600))
	old := time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC)
	require.NoError(t, os.Chtimes(local, old, old))
	env.sh("cp -p " + local + " kept.txt && install -m 0755 " + local + " installed.txt")
	got, err := env.srv.ReadFile("/kept.txt")
	require.NoError(t, err)
	assert.Equal(t, "preserved", string(got))
	kept, _ := env.srv.ItemByPath("/kept.txt")
	assert.Equal(t, old, kept.FSModified.UTC(), "cp -p keeps the mtime on the server")
	got, err = env.srv.ReadFile("/installed.txt")
	require.NoError(t, err)
	assert.Equal(t, "preserved", string(got))
	assert.Equal(t, "644", strings.TrimSpace(env.sh("stat -c %a installed.txt")), "chmod is accepted without effect")
}

func TestMountSigtermSendsOpenFiles(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.mount()
	// A writer keeps its file open while the mount is stopped; what it wrote
	// before is sent (or journaled) at shutdown.
	f, err := os.Create(env.path("open.txt"))
	require.NoError(t, err)
	_, err = f.WriteString("written, not closed")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		env.unmount()
		close(done)
	}()
	eventually(t, 20*time.Second, func() bool {
		_, err := env.srv.ReadFile("/open.txt")
		return err == nil
	}, "the open file was not sent at shutdown")
	got, _ := env.srv.ReadFile("/open.txt")
	assert.Equal(t, "written, not closed", string(got))
	f.Close()
	<-done
}

func TestMountReadOnly(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/r.txt", []byte("r"), time.Time{})
	require.NoError(t, err)
	env.mount("--read-only")
	assert.Equal(t, "r", env.sh("cat r.txt"))
	out, err := env.shErr("echo x > w.txt")
	require.Error(t, err)
	assert.Contains(t, out, "Read-only file system")
	out, err = env.shErr("mkdir d")
	require.Error(t, err)
	assert.Contains(t, out, "Read-only file system")
}

// runMountCmd runs the mount command in-process (for failures before any
// mount happens) and returns its exit status and stderr.
func runMountCmd(t *testing.T, home string, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(k string) string {
		if k == "HOME" {
			return home
		}
		return ""
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, e, append([]string{"mount"}, args...))
	return code, stderr.String()
}

func TestMountErrors(t *testing.T) {
	home := t.TempDir()
	base := t.TempDir()

	code, out := runMountCmd(t, home, filepath.Join(base, "missing"))
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "does not exist")

	file := filepath.Join(base, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	code, out = runMountCmd(t, home, file)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "not a directory")

	full := filepath.Join(base, "full")
	require.NoError(t, os.MkdirAll(filepath.Join(full, "x"), 0o755))
	code, out = runMountCmd(t, home, full)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "not empty")

	empty := filepath.Join(base, "empty")
	require.NoError(t, os.Mkdir(empty, 0o755))
	if _, err := os.Stat("/dev/fuse"); err == nil {
		code, out = runMountCmd(t, home, empty)
		assert.Equal(t, 1, code)
		assert.Contains(t, out, "not signed in")
		assert.Contains(t, out, "onedrivefs login")
	}

	code, out = runMountCmd(t, home)
	assert.Equal(t, 2, code)
	assert.Contains(t, out, "MOUNTPOINT")

	code, _ = runMountCmd(t, home, "--cache-size", "lots", empty)
	assert.Equal(t, 2, code)
}

func TestMountPointBusy(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.mount()
	code, out := runMountCmd(t, t.TempDir(), "--config-dir", env.cfg, env.dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "busy")
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "123": 123, "10K": 10 << 10, "512M": 512 << 20, "10G": 10 << 30, "1T": 1 << 40, "2GiB": 2 << 30} {
		got, err := parseSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := parseSize("-1")
	assert.Error(t, err)
	_, err = parseSize("x")
	assert.Error(t, err)
}

func TestFuseConfAllowsOther(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fuse.conf")
	require.NoError(t, os.WriteFile(p, []byte("# user_allow_other\nmount_max = 1000\n"), 0o644))
	assert.False(t, fuseConfAllowsOther(p))
	require.NoError(t, os.WriteFile(p, []byte("user_allow_other\n"), 0o644))
	assert.True(t, fuseConfAllowsOther(p))
	assert.False(t, fuseConfAllowsOther(filepath.Join(t.TempDir(), "none")))
}

func TestMountWritesProfiles(t *testing.T) {
	var stdout bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: io.Discard, getenv: func(string) string { return "" }}
	require.Zero(t, run(t.Context(), e, []string{"mount", "--help"}))
	help := stdout.String()
	assert.Contains(t, help, "ONEDRIVEFS_CPUPROFILE=FILE")
	assert.Contains(t, help, "ONEDRIVEFS_MEMPROFILE=FILE")

	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/x.txt", []byte("abc"), time.Time{})
	require.NoError(t, err)
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	env.environ = []string{"ONEDRIVEFS_CPUPROFILE=" + cpu, "ONEDRIVEFS_MEMPROFILE=" + mem}
	env.mount()
	assert.Equal(t, "abc", env.sh("cat x.txt"))
	env.unmount()

	for _, path := range []string{cpu, mem} {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		// A pprof profile is a gzipped protocol buffer.
		zr, err := gzip.NewReader(bytes.NewReader(data))
		require.NoError(t, err, "%s is not a profile", path)
		body, err := io.ReadAll(zr)
		require.NoError(t, err, path)
		assert.NotEmpty(t, body, path)
	}
}
