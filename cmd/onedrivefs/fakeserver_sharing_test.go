package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startFakeInProcess runs `fake-server args…` in this process and returns
// its base URL, its standard output so far (read up to the Data: line) and
// a stop function that waits for it to save and exit.
func startFakeInProcess(t *testing.T, args ...string) (string, string, func()) {
	t.Helper()
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: outW, stderr: &stderr, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, e, append([]string{"fake-server", "--addr", "127.0.0.1:0", "--copy-latency", "0"}, args...))
		outW.Close()
	}()
	sc := bufio.NewScanner(outR)
	var out strings.Builder
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "Data: ") {
			break
		}
	}
	require.Contains(t, out.String(), "Graph API: ", "stderr: %s", stderr.String())
	go func() { // drain
		for sc.Scan() {
		}
	}()
	line := out.String()[strings.Index(out.String(), "Graph API: ")+len("Graph API: "):]
	base := strings.TrimSuffix(strings.SplitN(line, "\n", 2)[0], "/v1.0")
	stop := func() {
		cancel()
		require.Equal(t, 0, <-done, "stderr: %s", stderr.String())
	}
	return base, out.String(), stop
}

func TestFakeServerUsersSitesAndShares(t *testing.T) {
	data, seed, bobSeed := t.TempDir(), t.TempDir(), t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(seed, "Mine"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(seed, "Mine", "m.txt"), []byte("mine"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(bobSeed, "Shared"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bobSeed, "Shared", "s.txt"), []byte("from bob"), 0o644))
	args := []string{"--data", data, "--seed", seed,
		"--user", "bob:bob@example.com:Bob", "--user-seed", "bob=" + bobSeed,
		"--share", "bob:/Shared:me:read:Bob's Shared", "--share", "me:/Mine:bob@example.com:write",
		"--site", "eng:bob", "--delta-parent-path"}
	base, out, stop := startFakeInProcess(t, args...)
	assert.Contains(t, out, "User: bob <bob@example.com> drive bob\n")
	assert.Contains(t, out, "Site: eng (")

	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(token, path string) map[string]any {
		t.Helper()
		req, err := http.NewRequest("GET", base+"/v1.0"+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		raw, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, raw)
		require.NoError(t, json.Unmarshal(raw, &m))
		return m
	}
	token := func(path string) string {
		t.Helper()
		resp, err := hc.Post(base+path, "application/json", nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		return m["access_token"].(string)
	}
	me, bob := token("/_fake/tokens"), token("/_fake/users/bob/tokens")

	// The default user's root holds the shortcut to bob's folder.
	var shortcut map[string]any
	for _, v := range get(me, "/me/drive/root/children")["value"].([]any) {
		if m := v.(map[string]any); m["name"] == "Bob's Shared" {
			shortcut = m
		}
	}
	require.NotNil(t, shortcut, "the shortcut is in the default user's root")
	ri := shortcut["remoteItem"].(map[string]any)
	assert.Equal(t, "bob", ri["parentReference"].(map[string]any)["driveId"])
	kids := get(me, "/drives/bob/items/"+ri["id"].(string)+"/children")["value"].([]any)
	require.Len(t, kids, 1)
	assert.Equal(t, "s.txt", kids[0].(map[string]any)["name"])
	// Bob sees /Mine shared with him, and his site's library.
	assert.Len(t, get(bob, "/me/drive/sharedWithMe")["value"], 1)
	assert.Len(t, get(bob, "/me/drives")["value"], 2)
	// --delta-parent-path: delta items carry their parent's path.
	for _, v := range get(me, "/me/drive/root/delta")["value"].([]any) {
		if m := v.(map[string]any); m["name"] == "m.txt" {
			assert.Equal(t, "/drive/root:/Mine", m["parentReference"].(map[string]any)["path"])
		}
	}
	stop()

	// Restarted with the same flags: nothing is added twice, nothing fails.
	base, out, stop = startFakeInProcess(t, args...)
	assert.Equal(t, 1, strings.Count(out, "User: bob "))
	me = token("/_fake/tokens")
	n := 0
	for _, v := range get(me, "/me/drive/root/children")["value"].([]any) {
		if v.(map[string]any)["name"] == "Bob's Shared" {
			n++
		}
	}
	assert.Equal(t, 1, n)
	stop()
}

func TestFakeServerSharingFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--share", "me:/A:bob"},
		{"--share", "me:/A:bob:admin"},
		{"--user-seed", "bob"},
		{"--site", ":bob"},
		{"--user", ":x@example.com"},
	} {
		var stderr bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" }}
		code := run(context.Background(), e, append([]string{"fake-server", "--data", t.TempDir()}, args...))
		assert.Equal(t, 2, code, "%v", args)
		assert.Contains(t, stderr.String(), "Usage: onedrivefs fake-server [flags]", "%v", args)
	}
}

func TestFakeServerBusinessMonitorForms(t *testing.T) {
	knobs := func(args ...string) map[string]any {
		t.Helper()
		base, _, stop := startFakeInProcess(t, append([]string{"--data", t.TempDir()}, args...)...)
		defer stop()
		resp, err := http.Get(base + "/_fake/copy")
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		return m
	}
	b := knobs("--drive-type", "business")
	assert.EqualValues(t, 200, b["monitorRunningStatus"])
	assert.Equal(t, "200", b["monitorStyle"])
	assert.Equal(t, "sharepoint", b["monitorBody"])
	b = knobs("--drive-type", "business", "--monitor-running-status", "202", "--monitor-style", "303")
	assert.EqualValues(t, 202, b["monitorRunningStatus"], "an explicit flag wins")
	assert.Equal(t, "303", b["monitorStyle"])
	assert.Equal(t, "sharepoint", b["monitorBody"])
	p := knobs()
	assert.EqualValues(t, 202, p["monitorRunningStatus"])
	assert.Equal(t, "graph", p["monitorBody"])
}
