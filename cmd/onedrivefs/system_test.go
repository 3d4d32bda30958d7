package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// Tests that go through the system: mount(8) and fstab, systemd's unit
// checker, the Debian package. Those that change the machine (a program in
// /usr/local/bin, a package installed) run as root in CI (CI=true) or when
// ONEDRIVEFS_SYSTEM_TESTS=1, and undo what they did.

func inCI() bool { return os.Getenv("CI") == "true" }

// requireSystemTests skips a test that changes the machine unless it may.
func requireSystemTests(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 || (!inCI() && os.Getenv("ONEDRIVEFS_SYSTEM_TESTS") != "1") {
		t.Skip("changes the system: runs as root with CI=true or ONEDRIVEFS_SYSTEM_TESTS=1")
	}
}

// requireTool skips when a program is missing, or fails in CI, where
// .ci/run installs it.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if inCI() {
			t.Fatalf("%s is not installed (.ci/run installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// installInPath makes the test binary the `onedrivefs` that mount.fuse3
// runs: mount(8) gives its helpers a fixed PATH, so a link in
// /usr/local/bin, removed at the end.
func installInPath(t *testing.T) {
	t.Helper()
	link := "/usr/local/bin/onedrivefs"
	if _, err := os.Lstat(link); err == nil {
		t.Skipf("%s exists and is not this test's to replace", link)
	}
	require.NoError(t, os.Symlink(mountBinary, link))
	t.Cleanup(func() { _ = os.Remove(link) })
}

// mountInfoLine returns dir's line in /proc/self/mountinfo.
func mountInfoLine(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && unescapeMountPath(f[4]) == dir {
			return line
		}
	}
	return ""
}

// waitUnmounted waits until the daemon behind dir has logged its end.
func waitUnmounted(t *testing.T, dir, logFile string) {
	t.Helper()
	eventually(t, 20*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return mountState(dir) == "none" && strings.Contains(string(b), "unmounted by someone else")
	}, "the daemon did not end after umount")
}

func TestMountHelperThroughMount8(t *testing.T) {
	requireSystemTests(t)
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/docs/hello.txt", []byte("hello"), time.Time{})
	require.NoError(t, err)
	installInPath(t)
	logFile := filepath.Join(t.TempDir(), "mount.log")
	t.Cleanup(func() { forceUnmount(env.dir) })

	opts := strings.Join([]string{"ro", "allow_other", "cache_size=20M", "poll_interval=1s", "_netdev", "nofail",
		"x-systemd.automount", "config_dir=" + env.cfg, "cache_dir=" + env.cache, "log_file=" + logFile}, ",")
	out, err := exec.Command("mount", "-t", "fuse.onedrivefs", "default", env.dir, "-o", opts).CombinedOutput()
	require.NoError(t, err, "%s", out)
	// mount(8) has returned: the drive serves now.
	got, err := os.ReadFile(env.path("docs/hello.txt"))
	require.NoError(t, err)
	assert.Equal(t, "hello", string(got))
	line := mountInfoLine(t, env.dir)
	assert.Contains(t, line, " - fuse.onedrivefs ")
	assert.Contains(t, line, "allow_other")
	err = os.WriteFile(env.path("new.txt"), []byte("x"), 0o644)
	assert.ErrorIs(t, err, syscall.EROFS, "ro")

	out, err = exec.Command("umount", env.dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	waitUnmounted(t, env.dir, logFile)
}

func TestMountHelperFromFstab(t *testing.T) {
	requireSystemTests(t)
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/hello.txt", []byte("from fstab"), time.Time{})
	require.NoError(t, err)
	installInPath(t)
	logFile := filepath.Join(t.TempDir(), "mount.log")
	t.Cleanup(func() { forceUnmount(env.dir) })

	fstab := filepath.Join(t.TempDir(), "fstab")
	entry := "default " + env.dir + " fuse.onedrivefs noauto,nofail,_netdev,config_dir=" + env.cfg +
		",cache_dir=" + env.cache + ",log_file=" + logFile + ",poll_interval=1s 0 0\n"
	require.NoError(t, os.WriteFile(fstab, []byte("# a temporary fstab\n"+entry), 0o644))
	out, err := exec.Command("mount", "-T", fstab, env.dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	got, err := os.ReadFile(env.path("hello.txt"))
	require.NoError(t, err)
	assert.Equal(t, "from fstab", string(got))
	require.NoError(t, os.WriteFile(env.path("written.txt"), []byte("rw by default"), 0o644))

	out, err = exec.Command("umount", env.dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	waitUnmounted(t, env.dir, logFile)
	got, err = env.srv.ReadFile("/written.txt")
	require.NoError(t, err)
	assert.Equal(t, "rw by default", string(got), "a file closed before umount is on the drive")
}

// verifyUnit runs systemd-analyze verify on an instance of unit (whose
// ExecStart program is exe) with the man pages in manDir.
func verifyUnit(t *testing.T, unit, exe, manDir string) {
	t.Helper()
	analyze := requireTool(t, "systemd-analyze")
	text, err := os.ReadFile(unit)
	require.NoError(t, err)
	require.Contains(t, string(text), "ExecStart=/usr/bin/onedrivefs mount %f")
	dir := t.TempDir()
	// An instance (the mount point /tmp/x), as `systemctl --user enable
	// onedrivefs@$(systemd-escape --path /tmp/x)` makes.
	inst := filepath.Join(dir, "onedrivefs@tmp-x.service")
	require.NoError(t, os.WriteFile(inst, []byte(strings.ReplaceAll(string(text), "/usr/bin/onedrivefs", exe)), 0o644))
	args := []string{"verify", inst}
	if _, err := exec.LookPath("man"); err != nil {
		args = []string{"verify", "--man=no", inst} // no man(1) to check Documentation= with
	}
	cmd := exec.Command(analyze, args...)
	cmd.Env = append(os.Environ(), "MANPATH="+manDir, "SYSTEMD_LOG_LEVEL=notice")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "systemd-analyze verify:\n%s", out)
	assert.NotContains(t, string(out), "onedrivefs@", "no warning about the unit:\n%s", out)
}

func TestSystemdUnitVerifies(t *testing.T) {
	if mountBinary == "" {
		t.Fatalf("building onedrivefs failed: %v", buildErr)
	}
	manDir := t.TempDir()
	out, err := exec.Command(mountBinary, "gen-man", filepath.Join(manDir, "man1")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	verifyUnit(t, filepath.Join("..", "..", "contrib", "systemd", "onedrivefs@.service"), mountBinary, manDir)
}

// The package `make deb` built (.ci/run passes it in ONEDRIVEFS_DEB)
// installs, runs from /usr/bin, and carries its man pages, completions,
// user unit and mount helper link; it is purged afterwards.
func TestDebianPackageInstalls(t *testing.T) {
	requireSystemTests(t)
	deb := os.Getenv("ONEDRIVEFS_DEB")
	if deb == "" {
		if inCI() {
			t.Fatal("ONEDRIVEFS_DEB is not set: .ci/run builds the package with make deb and passes its path")
		}
		t.Skip("set ONEDRIVEFS_DEB to a package built by make deb")
	}
	requireTool(t, "dpkg")
	if exec.Command("dpkg", "-s", "onedrivefs").Run() == nil {
		t.Skip("an onedrivefs package is installed already; not this test's to replace")
	}
	out, err := exec.Command("dpkg", "-i", deb).CombinedOutput()
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "--purge", "onedrivefs").CombinedOutput(); err != nil {
			t.Errorf("dpkg --purge: %v\n%s", err, out)
		}
		_, err := os.Stat("/usr/bin/onedrivefs")
		assert.True(t, errors.Is(err, os.ErrNotExist), "purged")
	})
	require.NoError(t, err, "dpkg -i:\n%s", out)

	out, err = exec.Command("/usr/bin/onedrivefs", "--version").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Regexp(t, `^onedrivefs \S+ go1\.\S+ linux/\S+\n$`, string(out))
	for _, path := range []string{
		"/usr/share/man/man1/onedrivefs.1.gz",
		"/usr/share/man/man1/onedrivefs-mount.1.gz",
		"/usr/share/bash-completion/completions/onedrivefs",
		"/usr/share/zsh/vendor-completions/_onedrivefs",
		"/usr/share/fish/vendor_completions.d/onedrivefs.fish",
		"/usr/lib/systemd/user/onedrivefs@.service",
	} {
		fi, err := os.Stat(path)
		if assert.NoError(t, err, path) {
			assert.NotZero(t, fi.Size(), path)
		}
	}
	helper, err := filepath.EvalSymlinks("/usr/sbin/mount.fuse.onedrivefs")
	require.NoError(t, err, "the mount helper link")
	assert.Equal(t, "mount.fuse3", filepath.Base(helper))
	verifyUnit(t, "/usr/lib/systemd/user/onedrivefs@.service", "/usr/bin/onedrivefs", "/usr/share/man")

	// The installed program mounts through mount(8) and the helper link.
	env := newMountEnv(t, graphtest.Options{})
	_, err = env.srv.PutFile("/pkg.txt", []byte("installed"), time.Time{})
	require.NoError(t, err)
	logFile := filepath.Join(t.TempDir(), "mount.log")
	t.Cleanup(func() { forceUnmount(env.dir) })
	out, err = exec.Command("mount", "-t", "fuse.onedrivefs", "default", env.dir, "-o",
		"config_dir="+env.cfg+",cache_dir="+env.cache+",log_file="+logFile).CombinedOutput()
	require.NoError(t, err, "%s", out)
	got, err := os.ReadFile(env.path("pkg.txt"))
	require.NoError(t, err)
	assert.Equal(t, "installed", string(got))
	out, err = exec.Command("umount", env.dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	waitUnmounted(t, env.dir, logFile)
}
