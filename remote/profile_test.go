package remote

import (
	"io/fs"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

func TestDefaultProfile(t *testing.T) {
	p := DefaultProfile()
	assert.Equal(t, "https://graph.microsoft.com/v1.0", p.GraphURL)
	assert.Equal(t, "https://login.microsoftonline.com", p.AuthURL)
	assert.Equal(t, "common", p.Tenant)
	assert.Equal(t, DefaultClientID, p.ClientID)
	assert.Equal(t, []string{"Files.ReadWrite.All", "offline_access"}, p.Scopes)
	assert.Empty(t, p.DriveID)
	assert.NoError(t, p.Validate())
	assert.True(t, p.UsesPlaceholderClientID())
}

func TestProfileOAuthConfig(t *testing.T) {
	p := Profile{AuthURL: "http://127.0.0.1:8080/", Tenant: "consumers", ClientID: "id-1",
		Scopes: []string{"a", "b"}}
	cfg := p.OAuthConfig()
	assert.Equal(t, "id-1", cfg.ClientID)
	assert.Empty(t, cfg.ClientSecret)
	assert.Equal(t, []string{"a", "b"}, cfg.Scopes)
	assert.Equal(t, oauth2.Endpoint{
		AuthURL:       "http://127.0.0.1:8080/consumers/oauth2/v2.0/authorize",
		TokenURL:      "http://127.0.0.1:8080/consumers/oauth2/v2.0/token",
		DeviceAuthURL: "http://127.0.0.1:8080/consumers/oauth2/v2.0/devicecode",
		AuthStyle:     oauth2.AuthStyleInParams,
	}, cfg.Endpoint)

	cfg.Scopes[0] = "changed"
	assert.Equal(t, "a", p.Scopes[0], "the config does not share the profile's slice")

	assert.Equal(t, "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
		DefaultProfile().OAuthConfig().Endpoint.DeviceAuthURL)
}

func TestProfileWithDefaultsAndValidate(t *testing.T) {
	p := Profile{GraphURL: "http://127.0.0.1:9/v1.0/", DriveID: "d1"}.WithDefaults()
	assert.Equal(t, "http://127.0.0.1:9/v1.0", p.GraphURL)
	assert.Equal(t, DefaultAuthURL, p.AuthURL)
	assert.Equal(t, "d1", p.DriveID)
	require.NoError(t, p.Validate())

	bad := []Profile{
		{GraphURL: "graph.microsoft.com/v1.0"},
		{GraphURL: "ftp://x/v1.0"},
		{AuthURL: "http://x/?q=1"},
		{Tenant: "a/b"},
	}
	for _, b := range bad {
		assert.Error(t, b.WithDefaults().Validate(), "%+v", b)
	}
	assert.Error(t, Profile{GraphURL: DefaultGraphURL, AuthURL: DefaultAuthURL, Tenant: "common",
		Scopes: DefaultScopes()}.Validate(), "empty client id")
}

func TestProfileUsesPlaceholderClientID(t *testing.T) {
	p := DefaultProfile()
	p.AuthURL = "http://127.0.0.1:8080"
	assert.False(t, p.UsesPlaceholderClientID(), "the fake server on loopback accepts any id")
	p = DefaultProfile()
	p.ClientID = "11111111-2222-3333-4444-555555555555"
	assert.False(t, p.UsesPlaceholderClientID())
}

func TestSaveLoadProfile(t *testing.T) {
	dir := t.TempDir()
	p := Profile{GraphURL: "http://127.0.0.1:8080/v1.0", AuthURL: "http://127.0.0.1:8080",
		Tenant: "organizations", ClientID: "cid", DriveID: "b!drive", Scopes: []string{"Files.Read"}}
	require.NoError(t, SaveProfile(dir, p, nil))
	assert.Equal(t, fs.FileMode(0o600), perm(t, ProfilePath(dir)))

	got, err := LoadProfile(dir)
	require.NoError(t, err)
	assert.Equal(t, p, got)

	assert.Error(t, SaveProfile(dir, Profile{GraphURL: "nope"}, nil), "an invalid profile is not saved")
	got, err = LoadProfile(dir)
	require.NoError(t, err)
	assert.Equal(t, p, got)
}

func TestLoadProfileErrors(t *testing.T) {
	_, err := LoadProfile(t.TempDir())
	assert.ErrorIs(t, err, ErrNotSignedIn)
	assert.ErrorIs(t, err, fs.ErrNotExist)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(ProfilePath(dir), []byte("{"), 0o600))
	_, err = LoadProfile(dir)
	assert.ErrorContains(t, err, "damaged")

	// Missing fields take their defaults (profiles written by older versions).
	require.NoError(t, os.WriteFile(ProfilePath(dir), []byte(`{"clientId":"x"}`), 0o600))
	got, err := LoadProfile(dir)
	require.NoError(t, err)
	assert.Equal(t, DefaultGraphURL, got.GraphURL)
	assert.Equal(t, "x", got.ClientID)
}

func TestConfigDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	assert.Equal(t, "/x/onedrivefs", ConfigDir(env(map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"})))
	assert.Equal(t, "/h/.config/onedrivefs", ConfigDir(env(map[string]string{"HOME": "/h"})))
	assert.Equal(t, "/h/.config/onedrivefs", ConfigDir(env(map[string]string{"XDG_CONFIG_HOME": "rel", "HOME": "/h"})),
		"a relative XDG_CONFIG_HOME is ignored")
	assert.Equal(t, "", ConfigDir(env(nil)))
}
