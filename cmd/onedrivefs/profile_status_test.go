package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/fs"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

func TestProfilesKeepAccountsApart(t *testing.T) {
	srv := graphtest.NewServer(graphtest.Options{})
	t.Cleanup(func() { _ = srv.Close() })
	home := t.TempDir()
	base := filepath.Join(home, ".config", "onedrivefs")

	code, _, errOut := runCLI(t, home, "login", "--graph-url", srv.GraphURL(), "--auth-url", srv.AuthURL())
	require.Equal(t, 0, code, errOut)
	before, err := os.ReadFile(filepath.Join(base, "profile.json"))
	require.NoError(t, err)

	code, out, errOut := runCLI(t, home, "login", "--graph-url", srv.GraphURL(), "--auth-url", srv.AuthURL(),
		"--profile", "work", "--tenant", "organizations")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "Mount with: onedrivefs mount --profile work MOUNTPOINT")
	after, err := os.ReadFile(filepath.Join(base, "profile.json"))
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "the default profile is untouched")
	work, err := os.ReadFile(filepath.Join(base, "profiles", "work", "profile.json"))
	require.NoError(t, err)
	assert.Contains(t, string(work), `"tenant": "organizations"`)
	_, err = os.Stat(filepath.Join(base, "profiles", "work", "token.json"))
	require.NoError(t, err)

	code, out, _ = runCLI(t, home, "profiles")
	require.Equal(t, 0, code)
	assert.Regexp(t, `(?m)^default\s+yes\s+`+regexp.QuoteMeta(srv.GraphURL()), out)
	assert.Regexp(t, `(?m)^work\s+yes\s+`, out)

	code, _, _ = runCLI(t, home, "logout", "--profile", "work")
	require.Equal(t, 0, code)
	code, out, _ = runCLI(t, home, "profiles")
	require.Equal(t, 0, code)
	assert.Regexp(t, `(?m)^default\s+yes`, out)
	assert.Regexp(t, `(?m)^work\s+no`, out)
}

func TestMountAProfile(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/work.txt", []byte("work drive"), time.Time{})
	require.NoError(t, err)
	// The sign-in belongs to the profile "work" alone.
	workDir := filepath.Join(env.cfg, "profiles", "work")
	require.NoError(t, os.MkdirAll(workDir, 0o700))
	for _, name := range []string{"profile.json", "token.json"} {
		require.NoError(t, os.Rename(filepath.Join(env.cfg, name), filepath.Join(workDir, name)))
	}
	code, _, errOut := runCLI(t, t.TempDir(), "mount", "--config-dir", env.cfg, env.dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "not signed in")

	env.mount("--profile", "work")
	assert.Equal(t, "work drive", env.sh("cat work.txt"))
}

func TestLoginWithoutClientIDGuides(t *testing.T) {
	home := t.TempDir()
	code, out, errOut := runCLI(t, home, "login", "--auth-url", "https://login.example.invalid",
		"--graph-url", "https://graph.example.invalid/v1.0")
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	for _, want := range []string{"App registrations", "http://localhost", "Allow public client flows",
		"Files.ReadWrite.All", "onedrivefs login --client-id THAT-ID", "no client id"} {
		assert.Contains(t, errOut, want)
	}
	_, err := os.Stat(filepath.Join(home, ".config", "onedrivefs", "token.json"))
	assert.True(t, os.IsNotExist(err), "nothing stored")
}

func TestLoginBrowser(t *testing.T) {
	srv := graphtest.NewServer(graphtest.Options{})
	t.Cleanup(func() { _ = srv.Close() })
	home := t.TempDir()
	out, errOut := &mountLog{}, &mountLog{}
	e := &env{stdin: strings.NewReader(""), stdout: out, stderr: errOut, getenv: func(k string) string {
		if k == "HOME" {
			return home
		}
		return ""
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, e, []string{"login", "--browser", "--graph-url", srv.GraphURL(), "--auth-url", srv.AuthURL(), "--profile", "web"})
	}()
	signInRE := regexp.MustCompile(`http://\S+/oauth2/v2\.0/authorize\?\S+`)
	eventually(t, 10*time.Second, func() bool { return signInRE.MatchString(out.String()) }, "no sign-in page printed")
	// The browser: the fake signs in at once and sends it back to the listener.
	resp, err := (&http.Client{}).Get(signInRE.FindString(out.String()))
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(page), "Signed in")
	require.Equal(t, 0, <-done, "stderr: %s", errOut.String())
	assert.Contains(t, out.String(), "Signed in.")
	_, err = os.Stat(filepath.Join(home, ".config", "onedrivefs", "profiles", "web", "token.json"))
	require.NoError(t, err)
}

func TestStatusAndRunningJobs(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{Copy: graphtest.CopyOptions{Latency: time.Minute}})
	_, err := env.srv.PutFile("/src.bin", make([]byte, 1000), time.Time{})
	require.NoError(t, err)
	env.mount()
	home := t.TempDir()

	code, out, errOut := runCLI(t, home, "status", env.dir)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, env.dir+": online")
	assert.Contains(t, out, "pending uploads: 0 (0 B)")
	assert.Contains(t, out, "copy jobs:       0 running")
	assert.Contains(t, out, "quota:           ")

	// The service refuses uploads: a closed file waits in the journal.
	env.srv.SetFaults(graphtest.FaultOptions{ThrottleFor: time.Hour, ThrottleStatus: 503, Ops: []string{"upload"}})
	env.sh("head -c 5000 /dev/zero > pending.bin")
	code, out, errOut = runCLI(t, home, "status", "--json", env.path("src.bin"))
	require.Equal(t, 0, code, errOut)
	var st fs.Status
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	assert.Equal(t, env.dir, st.MountPoint)
	require.Len(t, st.PendingUploads, 1, out)
	assert.Equal(t, "pending.bin", st.PendingUploads[0].Name)
	assert.Equal(t, int64(5000), st.PendingBytes)
	assert.Equal(t, 1, st.JournalRecords)
	require.NotNil(t, st.Quota)
	assert.Equal(t, int64(1<<40), st.Quota.Total)
	code, out, _ = runCLI(t, home, "status", env.dir)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "pending uploads: 1 (4.9 KiB)")
	assert.Contains(t, out, "pending.bin")

	// The service back: the retry empties the journal.
	env.srv.SetFaults(graphtest.FaultOptions{})
	eventually(t, 20*time.Second, func() bool {
		_, out, _ := runCLI(t, home, "status", env.dir)
		return strings.Contains(out, "pending uploads: 0") && strings.Contains(out, "journal records: 0")
	}, "the pending upload was not sent")

	// Two copies that take a minute on the service.
	for _, dest := range []string{"copy1.bin", "copy2.bin"} {
		code, _, errOut := runCLI(t, home, "cp", env.path("src.bin"), env.path(dest))
		require.Equal(t, 0, code, errOut)
	}
	code, out, _ = runCLI(t, home, "jobs", env.dir, "--running", "-n", "1")
	require.Equal(t, 0, code)
	rows := lines(out)
	require.Len(t, rows, 2, out) // the header and the newest job
	assert.Contains(t, rows[1], "/copy2.bin")
	code, out, _ = runCLI(t, home, "jobs", "--running", env.dir)
	require.Equal(t, 0, code)
	assert.Len(t, lines(out), 3, out)
	code, out, _ = runCLI(t, home, "status", env.dir)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "copy jobs:       2 running")
	assert.Contains(t, out, "/src.bin -> /copy1.bin")
}

func TestStatusOfflineAndBack(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.mount()
	home := t.TempDir()
	status := func() string {
		code, out, errOut := runCLI(t, home, "status", env.dir)
		require.Equal(t, 0, code, errOut)
		return out
	}
	assert.Contains(t, status(), env.dir+": online")

	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkRefuse))
	eventually(t, 30*time.Second, func() bool { return strings.Contains(status(), ": offline") },
		"the mount did not notice the service was gone")
	out := status()
	assert.Regexp(t, `last poll:\s+\d+s ago: `, out, "the failed poll and its error")

	require.NoError(t, env.srv.SetNetwork(graphtest.NetworkUp))
	eventually(t, 30*time.Second, func() bool { return strings.Contains(status(), ": online") },
		"the mount did not notice the service was back")
}
