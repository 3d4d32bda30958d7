package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// Mount-level tests: the real binary serves a real FUSE mount of an
// in-process fake drive, and real programs (ls, stat, cat, cp, mv…) work in
// it. The mount is served by a child process: a process that serves a FUSE
// mount and also calls into it can deadlock.

// mountBinary is the onedrivefs binary built once by TestMain ("" when the
// build failed; buildErr says why).
var (
	mountBinary string
	buildErr    error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "onedrivefs-bin-")
	if err == nil {
		mountBinary = filepath.Join(dir, "onedrivefs")
		out, berr := exec.Command("go", "build", "-o", mountBinary, ".").CombinedOutput()
		if berr != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", berr, out)
			mountBinary = ""
		}
	} else {
		buildErr = err
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// mountEnv is a fake drive mounted by a child onedrivefs process.
type mountEnv struct {
	t      testing.TB
	srv    *graphtest.Server
	dir    string // mount point
	cfg    string // config dir
	cache  string // cache dir
	cmd    *exec.Cmd
	stderr *mountLog
	waited chan struct{}
	// environ is added to the child's environment (KEY=VALUE), on top of
	// this process's.
	environ []string
	// bin is the binary mount runs; "" → mountBinary.
	bin string
	// sharedWithMe keeps the virtual "Shared with me" folder at the root;
	// other tests mount without it (--no-shared-with-me), so that the
	// root holds exactly what the fake's drive does.
	sharedWithMe bool
}

// mountLog collects a child process's output: a bytes.Buffer safe for a
// writer and a reader goroutine.
type mountLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *mountLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *mountLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// skipOrFail skips a test that cannot mount, or fails it when
// ONEDRIVEFS_REQUIRE_FUSE=1.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("ONEDRIVEFS_REQUIRE_FUSE") == "1" {
		t.Fatalf("cannot mount (ONEDRIVEFS_REQUIRE_FUSE=1): "+format, args...)
	}
	t.Skipf("cannot mount: "+format, args...)
}

func requireFUSE(t testing.TB) {
	t.Helper()
	if mountBinary == "" {
		t.Fatalf("building onedrivefs failed: %v", buildErr)
	}
	if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		skipOrFail(t, "/dev/fuse: %v", err)
	} else {
		f.Close()
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			skipOrFail(t, "fusermount3 is not installed")
		}
	}
}

// mountDriveType, when set, is the fake's drive type for the mount tests
// whose options do not name one: TestMountBusinessDrive runs existing
// tests against a Business drive with it.
var mountDriveType string

// newMountEnv starts a fake drive and writes a sign-in for it; mount starts
// the child.
func newMountEnv(t testing.TB, opts graphtest.Options) *mountEnv {
	t.Helper()
	requireFUSE(t)
	if opts.DriveType == "" {
		opts.DriveType = mountDriveType
	}
	srv := graphtest.NewServer(opts)
	t.Cleanup(func() { _ = srv.Close() })
	base := t.TempDir()
	env := &mountEnv{
		t: t, srv: srv,
		dir:   filepath.Join(base, "mnt"),
		cfg:   filepath.Join(base, "config"),
		cache: filepath.Join(base, "cache"),
	}
	require.NoError(t, os.Mkdir(env.dir, 0o755))
	p := remote.Profile{GraphURL: srv.GraphURL(), AuthURL: srv.AuthURL()}.WithDefaults()
	require.NoError(t, remote.SaveProfile(env.cfg, p, nil))
	tok := &oauth2.Token{AccessToken: srv.IssueToken(), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
	require.NoError(t, remote.NewTokenStore(env.cfg, nil).Save(tok))
	return env
}

// mount starts `onedrivefs mount` and waits until the mount is live.
func (env *mountEnv) mount(extra ...string) {
	t := env.t
	t.Helper()
	args := []string{"mount", "--config-dir", env.cfg, "--cache-dir", env.cache,
		"--poll-interval", "1s", "--log-level", "debug"}
	if !env.sharedWithMe {
		args = append(args, "--no-shared-with-me")
	}
	args = append(args, extra...)
	args = append(args, env.dir)
	bin := env.bin
	if bin == "" {
		bin = mountBinary
	}
	cmd := exec.Command(bin, args...)
	if len(env.environ) > 0 {
		cmd.Env = append(os.Environ(), env.environ...)
	}
	env.stderr = &mountLog{}
	cmd.Stderr = env.stderr
	cmd.Stdout = env.stderr
	require.NoError(t, cmd.Start())
	env.cmd = cmd
	env.waited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(env.waited)
	}()
	t.Cleanup(env.cleanup)
	deadline := time.Now().Add(20 * time.Second)
	for !isMounted(env.dir) {
		select {
		case <-env.waited:
			skipOrFail(t, "onedrivefs mount exited: %s", env.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mount did not appear; log:\n%s", env.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unmount stops the child with SIGTERM and waits for it.
func (env *mountEnv) unmount() {
	t := env.t
	t.Helper()
	if env.cmd == nil {
		return
	}
	_ = env.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-env.waited:
	case <-time.After(30 * time.Second):
		t.Errorf("onedrivefs did not stop after SIGTERM; log:\n%s", env.stderr.String())
	}
	env.cmd = nil
	forceUnmount(env.dir)
}

// kill stops the child with SIGKILL (no chance to flush) and removes the
// dead mount.
func (env *mountEnv) kill() {
	if env.cmd == nil {
		return
	}
	_ = env.cmd.Process.Kill()
	<-env.waited
	env.cmd = nil
	forceUnmount(env.dir)
}

func (env *mountEnv) cleanup() {
	env.stopDaemon(syscall.SIGTERM)
	if env.t.Failed() && env.stderr != nil {
		env.t.Logf("onedrivefs log:\n%s", env.stderr.String())
	}
}

// forceUnmount leaves no mount behind: fusermount3 -u, then umount -l.
func forceUnmount(dir string) {
	for i := 0; i < 3 && isMounted(dir); i++ {
		if exec.Command("fusermount3", "-u", dir).Run() == nil {
			continue
		}
		_ = exec.Command("umount", "-l", dir).Run()
	}
}

func isMounted(dir string) bool {
	ok, _ := isMountPoint(dir)
	return ok
}

// path returns the path of rel inside the mount.
func (env *mountEnv) path(rel string) string { return filepath.Join(env.dir, rel) }

// sh runs a shell command with the mount as working directory and returns
// its combined output; it fails the test if the command fails.
func (env *mountEnv) sh(script string) string {
	env.t.Helper()
	out, err := env.shErr(script)
	require.NoError(env.t, err, "%s\n%s", script, out)
	return out
}

// shErr runs a shell command in the mount and returns its output and error.
func (env *mountEnv) shErr(script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-ec", script)
	cmd.Dir = env.dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		env.dumpDaemon()
	}
	return string(out), err
}

// dumpDaemon ends a daemon that let a command hang with SIGQUIT, so that the
// Go runtime writes every goroutine's stack into its log (shown when the
// test fails), and removes the dead mount it leaves.
func (env *mountEnv) dumpDaemon() {
	if env.cmd == nil {
		return
	}
	env.t.Logf("a command in the mount hung: ending the daemon with SIGQUIT for its goroutines' stacks")
	env.stopDaemon(syscall.SIGQUIT)
}

// stopDaemon sends sig to the daemon (if one runs), kills it if it has not
// exited 20 s later, and leaves no mount behind.
func (env *mountEnv) stopDaemon(sig syscall.Signal) {
	if env.cmd != nil {
		_ = env.cmd.Process.Signal(sig)
		select {
		case <-env.waited:
		case <-time.After(20 * time.Second):
			_ = env.cmd.Process.Kill()
			<-env.waited
		}
		env.cmd = nil
	}
	forceUnmount(env.dir)
}

// eventually retries cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }
