package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// TestLoginThenMountWithStoredProfile signs in with the real binary against
// the fake (device code, approved on its first poll), then mounts with no
// endpoint flags: the second command finds the endpoints and the token in
// the stored profile.
func TestLoginThenMountWithStoredProfile(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/Documents/notes.txt", []byte("signed in\n"), time.Time{})
	require.NoError(t, err)

	// Forget the sign-in newMountEnv wrote; sign in as a user would.
	xdg := t.TempDir()
	env.cfg = filepath.Join(xdg, "onedrivefs")
	login := exec.Command(mountBinary, "login", "--graph-url", env.srv.GraphURL(), "--auth-url", env.srv.AuthURL())
	login.Env = append(os.Environ(), "XDG_CONFIG_HOME="+xdg)
	out, err := login.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "Signed in.")
	assert.Contains(t, string(out), "drive:   "+env.srv.DefaultDriveID())
	code := regexp.MustCompile(`enter the code:\s+(\S+)`).FindStringSubmatch(string(out))
	require.NotNil(t, code, "%s", out)
	assert.Equal(t, 1, strings.Count(string(out), code[1]), "the code is printed once:\n%s", out)

	for name, mode := range map[string]os.FileMode{"": 0o700, "profile.json": 0o600, "token.json": 0o600} {
		fi, err := os.Stat(filepath.Join(env.cfg, name))
		require.NoError(t, err)
		assert.Equal(t, mode, fi.Mode().Perm(), "mode of %q", name)
	}
	stats := env.srv.Stats()
	assert.Equal(t, int64(1), stats.Requests["oauth.devicecode"])

	env.mount() // --config-dir names the directory only; no endpoint flag
	assert.Equal(t, "signed in\n", env.sh("cat Documents/notes.txt"))
}
