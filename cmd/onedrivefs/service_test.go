package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// The mount as a service: signals, dead mounts, --daemon, systemd's
// notifications. Every test runs the real binary on a real FUSE mount.

// mountState tells what is on dir: "mounted" (and answering), "none", or
// "dead" (ENOTCONN: a mount whose daemon is gone).
func mountState(dir string) string {
	switch {
	case isDeadMount(dir):
		return "dead"
	case isMounted(dir):
		return "mounted"
	}
	return "none"
}

// writeClosed writes files through the mount and closes them, so that the
// mount owes them to OneDrive.
func writeClosed(t *testing.T, env *mountEnv, files map[string]string) {
	t.Helper()
	for name, content := range files {
		require.NoError(t, os.WriteFile(env.path(name), []byte(content), 0o644))
	}
}

// requireOnDrive checks that the fake drive holds files.
func requireOnDrive(t *testing.T, env *mountEnv, files map[string]string) {
	t.Helper()
	for name, content := range files {
		got, err := env.srv.ReadFile("/" + name)
		require.NoError(t, err, name)
		assert.Equal(t, content, string(got), name)
	}
}

// waitExit waits for the mount's child to end and returns its exit status.
func waitExit(t *testing.T, env *mountEnv) int {
	t.Helper()
	select {
	case <-env.waited:
	case <-time.After(30 * time.Second):
		t.Fatalf("onedrivefs did not stop; log:\n%s", env.stderr.String())
	}
	code := env.cmd.ProcessState.ExitCode()
	env.cmd = nil
	return code
}

func TestStopSignalsUnmountAndSend(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			env := newMountEnv(t, graphtest.Options{})
			env.mount()
			files := map[string]string{"a.txt": "alpha", "b.txt": strings.Repeat("b", 100<<10)}
			writeClosed(t, env, files)
			require.NoError(t, env.cmd.Process.Signal(sig))
			assert.Equal(t, 0, waitExit(t, env), "log:\n%s", env.stderr.String())
			assert.Equal(t, "none", mountState(env.dir), "the mount is gone, not dead")
			requireOnDrive(t, env, files)
		})
	}
}

func TestSIGHUPKeepsServing(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.mount()
	require.NoError(t, env.cmd.Process.Signal(syscall.SIGHUP))
	require.NoError(t, env.cmd.Process.Signal(syscall.SIGHUP))
	files := map[string]string{"after-hup.txt": "still here"}
	writeClosed(t, env, files)
	assert.Equal(t, "still here", env.sh("cat after-hup.txt"))
	select {
	case <-env.waited:
		t.Fatalf("SIGHUP stopped the mount; log:\n%s", env.stderr.String())
	default:
	}
	assert.Equal(t, "mounted", mountState(env.dir))
	eventually(t, 10*time.Second, func() bool { return strings.Contains(env.stderr.String(), "the mount keeps serving") },
		"the mount did not log the SIGHUP")
	env.unmount()
	requireOnDrive(t, env, files)
}

// logrotate moves the log file away and sends SIGHUP: the mount logs to a
// new file at the same path, and serves on.
func TestSIGHUPReopensLogFile(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	logFile := filepath.Join(t.TempDir(), "mount.log")
	env.mount("--log-file", logFile)
	env.sh("echo one > one.txt")
	require.NoError(t, os.Rename(logFile, logFile+".1"))
	require.NoError(t, env.cmd.Process.Signal(syscall.SIGHUP))
	eventually(t, 10*time.Second, func() bool {
		b, err := os.ReadFile(logFile)
		return err == nil && strings.Contains(string(b), "the mount keeps serving")
	}, "no new log file after SIGHUP")
	env.sh("echo two > two.txt")
	assert.Equal(t, "two\n", env.sh("cat two.txt"))
	eventually(t, 10*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "two.txt")
	}, "the mount's lines after SIGHUP go to the new file")
	old, err := os.ReadFile(logFile + ".1")
	require.NoError(t, err)
	assert.Contains(t, string(old), "serving")
	assert.NotContains(t, string(old), "two.txt")
	env.unmount()
}

// The mount's output goes into `head -c1`, which exits after one byte: every
// later write of the daemon meets a closed pipe (SIGPIPE, EPIPE). It must go
// on serving, and stop cleanly on SIGTERM.
func TestClosedOutputKeepsServing(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	head := exec.Command("head", "-c1")
	head.Stdin = pr
	require.NoError(t, head.Start())
	pr.Close()

	cmd := exec.Command(mountBinary, "mount", "--config-dir", env.cfg, "--cache-dir", env.cache,
		"--poll-interval", "1s", "--log-level", "debug", env.dir)
	cmd.Stdout, cmd.Stderr = pw, pw
	require.NoError(t, cmd.Start())
	pw.Close()
	env.cmd, env.stderr, env.waited = cmd, &mountLog{}, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(env.waited)
	}()
	t.Cleanup(env.cleanup)
	require.NoError(t, head.Wait(), "head read its byte and left")
	eventually(t, 20*time.Second, func() bool { return isMounted(env.dir) }, "the mount did not appear")

	files := map[string]string{}
	for i := range 5 { // each file makes the daemon log lines into the closed pipe
		files["p"+strconv.Itoa(i)+".txt"] = strings.Repeat("x", i*1000+1)
	}
	writeClosed(t, env, files)
	env.sh("ls -la >/dev/null; cat p1.txt >/dev/null")
	select {
	case <-env.waited:
		t.Fatalf("the mount died when its output was closed: %v", cmd.ProcessState)
	default:
	}
	assert.Equal(t, "mounted", mountState(env.dir))
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, waitExit(t, env))
	assert.Equal(t, "none", mountState(env.dir))
	requireOnDrive(t, env, files)
}

func TestMountClearsADeadMount(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/kept.txt", []byte("kept"), time.Time{})
	require.NoError(t, err)
	env.mount()
	files := map[string]string{"closed.txt": "closed before the kill"}
	writeClosed(t, env, files)
	require.NoError(t, env.cmd.Process.Kill())
	<-env.waited
	env.cmd = nil
	require.Equal(t, "dead", mountState(env.dir), "kill -9 leaves a dead mount")
	code, _, errOut := runCLI(t, t.TempDir(), "status", env.dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, env.dir+" is a dead mount (its daemon died)")

	env.mount() // returns at once: the dead mount is still listed
	eventually(t, 20*time.Second, func() bool {
		_, err := os.Stat(env.path("kept.txt"))
		return err == nil
	}, "the second mount did not replace the dead one")
	assert.Contains(t, env.stderr.String(), "cleared a dead mount on "+env.dir)
	assert.Equal(t, "kept", env.sh("cat kept.txt"))
	env.unmount()
	requireOnDrive(t, env, files) // from the journal, replayed by the second mount
}

var daemonPidRE = regexp.MustCompile(`daemon pid (\d+)`)

func TestDaemonReturnsOnceServing(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/docs/hello.txt", []byte("hello"), time.Time{})
	require.NoError(t, err)
	logFile := filepath.Join(t.TempDir(), "mount.log")
	cmd := exec.Command(mountBinary, "mount", env.dir, "--daemon", "--config-dir", env.cfg,
		"--cache-dir", env.cache, "--log-file", logFile, "--log-level", "debug", "--no-shared-with-me")
	var pid int
	t.Cleanup(func() {
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			eventually(t, 20*time.Second, func() bool { return syscall.Kill(pid, 0) != nil }, "the daemon did not stop")
		}
		forceUnmount(env.dir)
	})
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	// The command has returned 0: the mount serves now, not eventually.
	entries, err := os.ReadDir(env.dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	got, err := os.ReadFile(env.path("docs/hello.txt"))
	require.NoError(t, err)
	assert.Equal(t, "hello", string(got))

	m := daemonPidRE.FindStringSubmatch(string(out))
	require.NotNil(t, m, "%s", out)
	pid, _ = strconv.Atoi(m[1])
	require.NoError(t, syscall.Kill(pid, 0), "the daemon runs")
	stat, err := os.ReadFile("/proc/" + m[1] + "/stat")
	require.NoError(t, err)
	// pid (comm) state ppid pgrp session …: comm may hold spaces.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	assert.Equal(t, m[1], fields[3], "the daemon leads its own session: no terminal can hang it up")

	files := map[string]string{"daemon.txt": "from the daemon's mount"}
	writeClosed(t, env, files)
	require.NoError(t, syscall.Kill(pid, syscall.SIGTERM))
	eventually(t, 20*time.Second, func() bool { return syscall.Kill(pid, 0) != nil }, "the daemon did not stop")
	pid = 0
	assert.Equal(t, "none", mountState(env.dir))
	requireOnDrive(t, env, files)
	logged, err := os.ReadFile(logFile)
	require.NoError(t, err)
	assert.Contains(t, string(logged), "serving")
}

func TestDaemonReportsFailure(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	cmd := exec.Command(mountBinary, "mount", "--daemon", "--config-dir", filepath.Join(t.TempDir(), "nobody"), env.dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", out)
	assert.Equal(t, 1, ee.ExitCode())
	assert.Contains(t, string(out), "not signed in")
	assert.Equal(t, "none", mountState(env.dir))
}

// listenNotify is a stand-in for systemd's notification socket.
func listenNotify(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	require.NoError(t, err)
	msgs := make(chan string, 100)
	go func() {
		defer close(msgs)
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return path, msgs
}

// nextNotify returns the next notification holding want, failing after d.
func nextNotify(t *testing.T, msgs <-chan string, want string, d time.Duration, seen *[]string) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m := <-msgs:
			*seen = append(*seen, m)
			for _, line := range strings.Split(m, "\n") {
				if line == want {
					return
				}
			}
		case <-timeout:
			t.Fatalf("no %s notification; got %q", want, *seen)
		}
	}
}

func TestSystemdNotifications(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	sock, msgs := listenNotify(t)
	env.environ = []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=400000"}
	env.mount()
	var seen []string
	nextNotify(t, msgs, "READY=1", 10*time.Second, &seen)
	assert.Regexp(t, `STATUS=serving .* 0 uploads pending`, seen[len(seen)-1])
	nextNotify(t, msgs, "WATCHDOG=1", 5*time.Second, &seen)
	env.unmount()
	nextNotify(t, msgs, "STOPPING=1", 5*time.Second, &seen)
	for _, m := range seen[:len(seen)-1] {
		assert.NotContains(t, m, "STOPPING=1", "STOPPING=1 comes last: %q", seen)
	}
}

func TestSystemdAbstractNotifySocket(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	name := "@onedrivefs-test-" + strconv.Itoa(os.Getpid())
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	require.NoError(t, err)
	defer conn.Close()
	env.environ = []string{"NOTIFY_SOCKET=" + name}
	env.mount()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	buf := make([]byte, 4096)
	n, _, err := conn.ReadFromUnix(buf)
	require.NoError(t, err)
	assert.Contains(t, string(buf[:n]), "READY=1")
}

// `make demo | tee log`, then Ctrl-C: the terminal sends SIGINT to the
// whole job, tee dies at once, and the demo's lines to its stdout meet a
// closed pipe while it unmounts. It used to die of SIGPIPE there (leaving
// the mount point behind and the fake drive unsaved); it must finish.
func TestDemoPipedIntoTeeStopsCleanly(t *testing.T) {
	requireFUSE(t)
	home := t.TempDir()
	mnt := filepath.Join(home, "onedrive")
	logFile := filepath.Join(home, "log")
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	tee := exec.Command("tee", logFile)
	tee.Stdin = pr
	tee.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the job's process group
	require.NoError(t, tee.Start())
	pr.Close()
	demo := exec.Command(mountBinary, "demo", "--data", filepath.Join(home, "data"),
		"--cache-dir", filepath.Join(home, "cache"), "--log-level", "info", mnt)
	demo.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	demo.Dir = home
	demo.Stdout = pw
	errOut := &mountLog{}
	demo.Stderr = errOut
	demo.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: tee.Process.Pid}
	require.NoError(t, demo.Start())
	pw.Close()
	waited := make(chan struct{})
	go func() {
		_ = demo.Wait()
		close(waited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-tee.Process.Pid, syscall.SIGKILL)
		<-waited
		_ = tee.Wait()
		forceUnmount(mnt)
	})
	eventually(t, 60*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "Stop with Ctrl-C")
	}, "the demo did not start")
	require.Equal(t, "mounted", mountState(mnt))

	require.NoError(t, syscall.Kill(-tee.Process.Pid, syscall.SIGINT)) // Ctrl-C
	select {
	case <-waited:
	case <-time.After(60 * time.Second):
		t.Fatalf("the demo did not stop:\n%s", errOut)
	}
	ws := demo.ProcessState.Sys().(syscall.WaitStatus)
	assert.False(t, ws.Signaled(), "the demo was killed by %v:\n%s", ws.Signal(), errOut)
	assert.Equal(t, 0, demo.ProcessState.ExitCode(), errOut.String())
	assert.Equal(t, "none", mountState(mnt))
	_, err = os.Stat(mnt)
	assert.True(t, os.IsNotExist(err), "the demo removed the mount point it made")
}
