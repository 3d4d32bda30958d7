package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// demoRun is one `onedrivefs demo` child process.
type demoRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	mnt    string
	stdout *mountLog
	stderr *mountLog
	waited chan struct{}
	err    error // of cmd.Wait, once waited is closed
}

// startDemo runs the real binary's demo on mnt with the given data and cache
// directories, and waits for its guide.
func startDemo(t *testing.T, home, mnt string, extra ...string) *demoRun {
	t.Helper()
	args := append([]string{"demo",
		"--data", filepath.Join(home, "data"), "--cache-dir", filepath.Join(home, "cache"),
		"--log-level", "info", "--copy-latency", "100ms", "--copy-rate", "4G"}, extra...)
	cmd := exec.Command(mountBinary, append(args, mnt)...)
	// The demo must not need anything from the user's environment.
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	cmd.Dir = home
	d := &demoRun{t: t, cmd: cmd, mnt: mnt, stdout: &mountLog{}, stderr: &mountLog{}, waited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.stdout, d.stderr
	require.NoError(t, cmd.Start())
	go func() {
		d.err = cmd.Wait()
		close(d.waited)
	}()
	t.Cleanup(d.cleanup)

	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(d.stdout.String(), "Stop with Ctrl-C") {
		select {
		case <-d.waited:
			skipOrFail(t, "onedrivefs demo exited (%v):\n%s\n%s", d.err, d.stdout, d.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no guide after 60s:\n%s\n%s", d.stdout, d.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.True(t, isMounted(mnt), "the guide was printed before the mount was live")
	return d
}

// interrupt sends SIGINT (Ctrl-C) and requires a clean exit with no mount
// left behind.
func (d *demoRun) interrupt() {
	t := d.t
	t.Helper()
	require.NoError(t, d.cmd.Process.Signal(os.Interrupt))
	select {
	case <-d.waited:
	case <-time.After(60 * time.Second):
		t.Fatalf("onedrivefs demo did not stop after SIGINT:\n%s\n%s", d.stdout, d.stderr)
	}
	require.NoError(t, d.err, "exit status\n%s\n%s", d.stdout, d.stderr)
	assert.False(t, isMounted(d.mnt), "the mount is still there after Ctrl-C")
	_, err := os.Stat(d.mnt)
	assert.ErrorIs(t, err, os.ErrNotExist, "the mount point the demo created is left behind")
}

func (d *demoRun) cleanup() {
	select {
	case <-d.waited:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.waited:
		case <-time.After(30 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.waited
		}
	}
	forceUnmount(d.mnt)
	if d.t.Failed() {
		d.t.Logf("demo stdout:\n%s\ndemo stderr:\n%s", d.stdout, d.stderr)
	}
}

// inMount runs a shell script in the mount (this test process does not serve
// it: the demo child does).
func (d *demoRun) inMount(script string) string {
	d.t.Helper()
	cmd := exec.Command("bash", "-ec", script)
	cmd.Dir = d.mnt
	out, err := cmd.CombinedOutput()
	require.NoError(d.t, err, "%s\n%s", script, out)
	return string(out)
}

func TestDemo(t *testing.T) {
	requireFUSE(t)
	home := t.TempDir()
	mnt := filepath.Join(home, "onedrive") // missing: the demo creates it

	// First run: seeded, signed in, mounted, guided.
	d := startDemo(t, home, mnt)
	out := d.stdout.String()
	assert.Contains(t, out, "Seeding the demo drive")
	// The guide's paths are relative to the working directory.
	for _, want := range []string{
		"mounted on onedrive\n",
		"time cp onedrive/Videos/holiday.mkv onedrive/Videos/holiday-copy.mkv",
		"setfattr -n user.onedrive.copy -v Photos-backup onedrive/Photos",
		"getfattr -n user.onedrive.copy.status onedrive/Photos",
		" jobs onedrive\n",
		"Ctrl-C",
	} {
		assert.Contains(t, out, want)
	}
	assert.Equal(t, "Archive\nDocuments\nPhotos\nVideos\n", d.inMount("ls"))
	assert.Contains(t, d.inMount("cat Documents/Welcome.md"), "# Welcome to the onedrivefs demo")
	assert.Equal(t, "500\n", d.inMount("ls Archive/Journal | wc -l"))
	assert.Equal(t, "419430400\n", d.inMount("stat -c %s Videos/holiday.mkv"))
	assert.Contains(t, d.inMount("tail -c 100 Videos/holiday.mkv"), "end of holiday.mkv")
	photos := strings.Fields(d.inMount("ls Photos | tr ' ' _"))
	assert.Len(t, photos, len(demoPhotos))
	png := d.inMount("head -c 8 'Photos/" + demoPhotos[0].name + "' | od -An -c")
	assert.Contains(t, png, "P   N   G")
	d.inMount("echo 'kept across runs' > Documents/from-the-test.txt")

	// The guide's three commands work, and the copies are server-side.
	statsURL := regexp.MustCompile(`curl -s (\S+/_fake/stats)`).FindStringSubmatch(out)
	require.NotNil(t, statsURL, "the guide shows where the counters are")
	before := fakeStats(t, statsURL[1])
	d.inMount("cp Videos/holiday.mkv Videos/holiday-copy.mkv")
	assert.Equal(t, "419430400\n", d.inMount("stat -c %s Videos/holiday-copy.mkv"))
	d.inMount("setfattr -n user.onedrive.copy -v Photos-backup Photos")
	assert.Contains(t, d.inMount("getfattr -n user.onedrive.copy.status Photos"), `Photos-backup`)
	eventually(t, 30*time.Second, func() bool {
		entries, err := os.ReadDir(filepath.Join(mnt, "Photos-backup"))
		return err == nil && len(entries) == len(demoPhotos)
	}, "the folder copy did not appear")
	jobs := d.inMount(mountBinary + " jobs .")
	assert.Contains(t, jobs, "/Videos/holiday-copy.mkv")
	assert.Contains(t, jobs, "/Photos-backup")
	after := fakeStats(t, statsURL[1])
	assert.Equal(t, before.BytesDownloaded, after.BytesDownloaded, "a copy downloaded bytes")
	assert.Equal(t, before.BytesUploaded, after.BytesUploaded, "a copy uploaded bytes")
	assert.Equal(t, before.CopyJobsCompleted+2, after.CopyJobsCompleted)

	// The sign-in is the demo's own, not the user's.
	_, err := os.Stat(filepath.Join(home, ".config", "onedrivefs"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	d.interrupt()

	// Second run: not seeded again, the changes are still there.
	d = startDemo(t, home, mnt)
	assert.NotContains(t, d.stdout.String(), "Seeding")
	assert.Equal(t, "kept across runs\n", d.inMount("cat Documents/from-the-test.txt"))
	assert.Equal(t, "holiday-copy.mkv\nholiday.mkv\n", d.inMount("ls Videos"))
	d.interrupt()

	// --fresh: back to the sample tree.
	d = startDemo(t, home, mnt, "--fresh")
	assert.Contains(t, d.stdout.String(), "Seeding the demo drive")
	assert.NotContains(t, d.inMount("ls Documents"), "from-the-test.txt")
	d.interrupt()
}

// fakeStats reads the demo fake's counters.
func fakeStats(t *testing.T, url string) graphtest.Stats {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var st graphtest.Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

func TestDemoRefusesToWipeForeignDirs(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o600))
	err := wipeDemoDir(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not wiping")
	_, err = os.Stat(filepath.Join(dir, "precious"))
	require.NoError(t, err)

	mine := filepath.Join(t.TempDir(), "demo")
	require.NoError(t, claimDemoDir(mine))
	require.NoError(t, os.MkdirAll(filepath.Join(mine, "drive", "blobs"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(mine, "lock"), nil, 0o600))
	require.NoError(t, wipeDemoDir(mine))
	entries, err := os.ReadDir(mine)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{demoMarker, "lock"}, names)
	require.NoError(t, wipeDemoDir(filepath.Join(mine, "missing")), "a missing directory is already wiped")

	// A directory the user chose, empty: the demo makes it its own.
	chosen := t.TempDir()
	require.NoError(t, claimDemoDir(chosen))
	_, err = os.Stat(filepath.Join(chosen, demoMarker))
	require.NoError(t, err)
}

func TestDemoRunsOncePerDataDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDemoDir(dir)
	require.NoError(t, err)
	_, err = lockDemoDir(dir)
	require.ErrorContains(t, err, "another onedrivefs demo is running")
	unlock()
	unlock, err = lockDemoDir(dir)
	require.NoError(t, err)
	unlock()
}

func TestDemoPhotosArePNG(t *testing.T) {
	for _, p := range demoPhotos {
		b, err := p.render(64, 48)
		require.NoError(t, err)
		assert.True(t, bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")), p.name)
	}
}
