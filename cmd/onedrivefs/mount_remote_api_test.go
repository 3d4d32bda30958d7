package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// Changes made to the fake drive the way another device signed in to the
// same account makes them: through the Graph API, so that the mount learns
// of them only through delta (or by meeting them on its next request).

// graphRequest sends a Graph request for the default drive (path relative
// to /me/drive, e.g. "/items/ID") with a fresh token and returns the status
// and body. A transport error fails the test.
func (env *mountEnv) graphRequest(method, path string, body any) (int, []byte) {
	env.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(env.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, env.srv.GraphURL()+"/me/drive"+path, rd)
	require.NoError(env.t, err)
	req.Header.Set("Authorization", "Bearer "+env.srv.IssueToken())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := env.srv.Client().Do(req)
	require.NoError(env.t, err, "%s %s", method, path)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(env.t, err)
	return resp.StatusCode, out
}

// remoteItem returns the fake's item at p, failing the test when there is
// none.
func (env *mountEnv) remoteItem(p string) graphtest.ItemInfo {
	env.t.Helper()
	info, ok := env.srv.ItemByPath(p)
	require.True(env.t, ok, "%s is not on the fake", p)
	return info
}

// remoteDelete deletes the item at p on the fake (file or folder, with its
// children), as another device would.
func (env *mountEnv) remoteDelete(p string) {
	env.t.Helper()
	info := env.remoteItem(p)
	status, body := env.graphRequest(http.MethodDelete, "/items/"+info.ID, nil)
	require.Equal(env.t, http.StatusNoContent, status, "DELETE %s: %s", p, body)
}

// remoteRename renames the item at p on the fake to name (same folder), as
// another device would.
func (env *mountEnv) remoteRename(p, name string) {
	env.t.Helper()
	info := env.remoteItem(p)
	status, body := env.graphRequest(http.MethodPatch, "/items/"+info.ID, map[string]any{"name": name})
	require.Equal(env.t, http.StatusOK, status, "PATCH %s → %s: %s", p, name, body)
}

// remoteNames lists the names in the fake's folder p.
func (env *mountEnv) remoteNames(p string) []string {
	env.t.Helper()
	list, err := env.srv.List(p)
	require.NoError(env.t, err, p)
	names := make([]string, 0, len(list))
	for _, it := range list {
		names = append(names, it.Name)
	}
	return names
}

// conflictCopies returns the names in the fake's folder p that are conflict
// copies made by the mount ("name (conflict …)").
func (env *mountEnv) conflictCopies(p string) []string {
	env.t.Helper()
	var out []string
	for _, n := range env.remoteNames(p) {
		if strings.Contains(n, "(conflict") {
			out = append(out, n)
		}
	}
	return out
}

// journalRecords lists the write-back journal of the mount's cache dir
// (empty when nothing is waiting to be sent).
func (env *mountEnv) journalRecords() []string {
	env.t.Helper()
	des, err := os.ReadDir(filepath.Join(env.cache, "journal"))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(env.t, err)
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// waitRemoteContent waits until the fake holds want at p.
func (env *mountEnv) waitRemoteContent(p string, want []byte, d time.Duration, msg string) {
	env.t.Helper()
	var got []byte
	var err error
	deadline := time.Now().Add(d)
	for {
		got, err = env.srv.ReadFile(p)
		if err == nil && bytes.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		env.t.Fatalf("%s: %s is not on the fake after %v: %v", msg, p, d, err)
	}
	env.t.Fatalf("%s: the fake holds %d bytes at %s after %v, want %d (%s)", msg, len(got), p, d, len(want), firstDiff(got, want))
}

// firstDiff describes where got first differs from want.
func firstDiff(got, want []byte) string {
	n := min(len(got), len(want))
	for i := range n {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d", i)
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("equal up to byte %d", n)
	}
	return "equal"
}

// recreatedWords matches words that say content was re-created on the
// service after its item (or folder) was deleted there, in the usual
// wordings ("re-created", "recreating", "creating it again", "created a
// folder again").
var recreatedWords = regexp.MustCompile(`(?i)re-?creat|creat\w*\b.{0,40}\bagain`)

// mentionsRecreation reports whether a line of the mount's log says that
// content was re-created (an attribute recreated=false does not).
func mentionsRecreation(log string) bool {
	for _, line := range strings.Split(log, "\n") {
		if recreatedWords.MatchString(strings.ReplaceAll(line, "recreated=false", "")) {
			return true
		}
	}
	return false
}
