package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// sitesFake is a fake with two sites: "marketing" (two libraries), of
// which the default user is a member, and "finance", of which they are not.
func sitesFake(t *testing.T) (*graphtest.Server, graphtest.Site) {
	t.Helper()
	srv := graphtest.NewServer(graphtest.Options{Auth: graphtest.AuthOptions{PollInterval: time.Second}})
	t.Cleanup(func() { _ = srv.Close() })
	mk, err := srv.AddSite(graphtest.SiteOptions{Name: "marketing", DisplayName: "Marketing Team",
		Members: []string{srv.DefaultDriveID()}, Libraries: []string{"Documents", "Campaigns"}})
	require.NoError(t, err)
	_, err = srv.AddSite(graphtest.SiteOptions{Name: "finance", DisplayName: "Finance"})
	require.NoError(t, err)
	return srv, mk
}

func TestDrivesListsOwnDriveAndLibraries(t *testing.T) {
	srv, mk := sitesFake(t)
	home := t.TempDir()
	dir := filepath.Join(home, ".config", "onedrivefs")
	p := remote.Profile{GraphURL: srv.GraphURL(), AuthURL: srv.AuthURL()}.WithDefaults()
	require.NoError(t, remote.SaveProfile(dir, p, nil))
	tok := &oauth2.Token{AccessToken: srv.IssueToken(), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
	require.NoError(t, remote.NewTokenStore(dir, nil).Save(tok))

	code, out, errOut := runLoginCmd(t, home, "drives", "--search", "a")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, "header, own drive, two libraries (finance is out of reach): %s", out)
	assert.Regexp(t, `^\*\s+`+srv.DefaultDriveID()+`\s+personal\s+OneDrive\s+Fake User$`, lines[1])
	assert.Regexp(t, mk.DriveIDs[0]+`\s+documentLibrary\s+Documents\s+Marketing Team \(site marketing\)`, lines[2])
	assert.Regexp(t, mk.DriveIDs[1]+`\s+documentLibrary\s+Campaigns`, lines[3])
	assert.NotContains(t, out, "Finance")

	code, _, errOut = runLoginCmd(t, t.TempDir(), "drives")
	assert.Equal(t, 1, code)
	assert.NotEmpty(t, errOut, "not signed in")
}

func TestLoginSitePicksTheLibrary(t *testing.T) {
	if testing.Short() {
		t.Skip("signs in through the device flow (a one-second poll)")
	}
	srv, mk := sitesFake(t)
	home := t.TempDir()
	dir := filepath.Join(home, ".config", "onedrivefs")
	login := []string{"login", "--graph-url", srv.GraphURL(), "--auth-url", srv.AuthURL(), "--client-id", "test-client"}

	code, out, errOut := runLoginCmd(t, home, append(login, "--site", "Marketing Team")...)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Contains(t, out, `site:    Marketing Team (`+mk.ID+`), library "Documents"`)
	assert.Contains(t, out, "drive:   "+mk.DriveIDs[0]+" (documentLibrary)")
	p, err := remote.LoadProfile(dir)
	require.NoError(t, err)
	assert.Equal(t, mk.DriveIDs[0], p.DriveID)

	// A site out of reach or unknown: signed in, profile unchanged.
	for _, name := range []string{"finance", "nope"} {
		code, _, errOut = runLoginCmd(t, home, append(login, "--site", name)...)
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut, "the profile was not changed")
		p, err = remote.LoadProfile(dir)
		require.NoError(t, err)
		assert.Equal(t, mk.DriveIDs[0], p.DriveID)
	}
	code, _, _ = runLoginCmd(t, home, append(login, "--site", "x", "--drive-id", "y")...)
	assert.Equal(t, 2, code)
	_, err = os.Stat(filepath.Join(dir, "token.json"))
	assert.NoError(t, err)
}
