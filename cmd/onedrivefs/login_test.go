package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loginFake answers the device-code sign-in like the Microsoft identity
// platform: the first poll succeeds, or is declined when declined is set.
type loginFake struct {
	srv *httptest.Server

	mu       sync.Mutex
	declined bool
	clientID string // client_id of the last token request
	tenant   string
}

const (
	loginFakeDeviceCode = "DEVICE-CODE-SECRET-1"
	loginFakeUserCode   = "QWER-7890"
)

func newLoginFake(t *testing.T) *loginFake {
	t.Helper()
	f := &loginFake{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/devicecode", func(w http.ResponseWriter, r *http.Request) {
		writeLoginJSON(w, http.StatusOK, map[string]any{
			"device_code": loginFakeDeviceCode, "user_code": loginFakeUserCode,
			"verification_uri": f.srv.URL + "/devicelogin", "expires_in": 900, "interval": 5,
		})
	})
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		f.mu.Lock()
		defer f.mu.Unlock()
		f.clientID, f.tenant = r.PostForm.Get("client_id"), r.PathValue("tenant")
		if r.PostForm.Get("device_code") != loginFakeDeviceCode {
			writeLoginJSON(w, http.StatusBadRequest, map[string]any{"error": "bad_verification_code"})
			return
		}
		if f.declined {
			writeLoginJSON(w, http.StatusBadRequest, map[string]any{
				"error": "authorization_declined", "error_description": "AADSTS70000: The user declined."})
			return
		}
		writeLoginJSON(w, http.StatusOK, map[string]any{
			"token_type": "Bearer", "expires_in": 3599, "scope": "Files.ReadWrite.All",
			"access_token": "ACCESS-SECRET-1", "refresh_token": "REFRESH-SECRET-1",
		})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func writeLoginJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// runLoginCmd runs the command line args with HOME set to home and returns
// the exit status and the two output streams.
func runLoginCmd(t *testing.T, home string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{stdin: bytes.NewReader(nil), stdout: &stdout, stderr: &stderr,
		getenv: func(k string) string {
			if k == "HOME" {
				return home
			}
			return ""
		}}
	code := run(t.Context(), e, args)
	for _, s := range []string{stdout.String(), stderr.String()} {
		assert.NotContains(t, s, "SECRET", "a token or device code was printed")
	}
	return code, stdout.String(), stderr.String()
}

func TestLoginStoresProfileAndToken(t *testing.T) {
	f := newLoginFake(t)
	home := t.TempDir()
	code, out, errOut := runLoginCmd(t, home, "login", "--auth-url", f.srv.URL, "--graph-url", f.srv.URL+"/v1.0",
		"--tenant", "consumers", "--client-id", "my-app", "--drive-id", "drive-9")
	require.Equal(t, 0, code, "stderr: %s", errOut)

	dir := filepath.Join(home, ".config", "onedrivefs")
	assert.Contains(t, out, f.srv.URL+"/devicelogin")
	assert.Contains(t, out, loginFakeUserCode)
	assert.Contains(t, out, "Signed in.")
	assert.Contains(t, out, filepath.Join(dir, "token.json"))
	assert.Contains(t, out, filepath.Join(dir, "profile.json"))
	assert.NotContains(t, errOut, "no --client-id", "no placeholder note for an explicit id")

	f.mu.Lock()
	assert.Equal(t, "my-app", f.clientID)
	assert.Equal(t, "consumers", f.tenant)
	f.mu.Unlock()

	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	fi, err = os.Stat(filepath.Join(dir, "token.json"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "token.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &tok))
	assert.Equal(t, "ACCESS-SECRET-1", tok.AccessToken)
	assert.Equal(t, "REFRESH-SECRET-1", tok.RefreshToken)

	var prof map[string]any
	data, err = os.ReadFile(filepath.Join(dir, "profile.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &prof))
	assert.Equal(t, f.srv.URL+"/v1.0", prof["graphUrl"])
	assert.Equal(t, f.srv.URL, prof["authUrl"])
	assert.Equal(t, "consumers", prof["tenant"])
	assert.Equal(t, "my-app", prof["clientId"])
	assert.Equal(t, "drive-9", prof["driveId"])
}

func TestLoginAgainKeepsSavedSettings(t *testing.T) {
	f := newLoginFake(t)
	dir := filepath.Join(t.TempDir(), "cfg")
	code, _, errOut := runLoginCmd(t, "", "login", "--config-dir", dir, "--auth-url", f.srv.URL,
		"--graph-url", f.srv.URL+"/v1.0", "--client-id", "my-app", "--tenant", "organizations")
	require.Equal(t, 0, code, errOut)

	code, out, errOut := runLoginCmd(t, "", "login", "--config-dir", dir)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "onedrivefs mount --config-dir "+dir)
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, "my-app", f.clientID, "the saved client id is used again")
	assert.Equal(t, "organizations", f.tenant)
}

func TestLoginDeclined(t *testing.T) {
	f := newLoginFake(t)
	f.declined = true
	dir := t.TempDir()
	code, _, errOut := runLoginCmd(t, "", "login", "--config-dir", dir, "--auth-url", f.srv.URL)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "onedrivefs login: sign-in was declined")
	_, err := os.Stat(filepath.Join(dir, "token.json"))
	assert.True(t, os.IsNotExist(err), "nothing stored")
	_, err = os.Stat(filepath.Join(dir, "profile.json"))
	assert.True(t, os.IsNotExist(err), "nothing stored")
}

func TestLoginUsageErrors(t *testing.T) {
	code, _, errOut := runLoginCmd(t, t.TempDir(), "login", "--graph-url", "not a url")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "graph URL")

	code, _, errOut = runLoginCmd(t, t.TempDir(), "login", "extra")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `unexpected argument "extra"`)

	code, _, errOut = runLoginCmd(t, "", "login")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "--config-dir")
}

func TestLoginAndLogoutHelp(t *testing.T) {
	code, out, _ := runLoginCmd(t, t.TempDir(), "login", "--help")
	assert.Equal(t, 0, code)
	for _, flagName := range []string{"--graph-url", "--auth-url", "--tenant", "--client-id", "--drive-id", "--config-dir", "--profile", "--browser"} {
		assert.Contains(t, out, flagName)
	}
	assert.Contains(t, out, "device-code")
	assert.Contains(t, out, "Allow public client flows")

	code, out, _ = runLoginCmd(t, t.TempDir(), "help", "logout")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "--config-dir")
}

func TestLogout(t *testing.T) {
	f := newLoginFake(t)
	home := t.TempDir()
	dir := filepath.Join(home, ".config", "onedrivefs")
	code, _, errOut := runLoginCmd(t, home, "login", "--auth-url", f.srv.URL)
	require.Equal(t, 0, code, errOut)

	code, out, _ := runLoginCmd(t, home, "logout")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "Signed out: removed "+filepath.Join(dir, "token.json"))
	_, err := os.Stat(filepath.Join(dir, "token.json"))
	assert.True(t, os.IsNotExist(err))
	_, err = os.Stat(filepath.Join(dir, "profile.json"))
	assert.NoError(t, err, "the profile is kept")

	code, out, _ = runLoginCmd(t, home, "logout")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "Not signed in")
}
