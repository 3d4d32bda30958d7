package remote_test

// Integration tests of what lies beyond the user's own drive: other users'
// shares and shortcuts, permissions, sharing links, SharePoint sites and
// libraries, copies across drives, and delta of a shared folder.

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// sharedEnv: the default user (the owner) has /Team/notes.txt and
// /Team/Docs/plan.txt; "bob" is a second user with a client of his own.
type sharedEnv struct {
	*env   // the owner's client
	bob    *remote.Client
	bobID  string
	teamID string
}

func newSharedEnv(t *testing.T, opts graphtest.Options) *sharedEnv {
	t.Helper()
	e := newEnv(t, envConfig{fake: opts})
	u, err := e.fake.AddUser(graphtest.UserOptions{ID: "b0b0b0b0b0b0b0b0", DisplayName: "Bob", Email: "bob@example.com"})
	require.NoError(t, err)
	tok, err := e.fake.IssueTokenFor(u.ID)
	require.NoError(t, err)
	bob, err := remote.New(remote.Config{
		GraphURL:  e.fake.GraphURL(),
		Tokens:    oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok, TokenType: "Bearer"}),
		Transport: e.rec,
		Retry:     testRetry,
		Logger:    slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	e.put("/Team/notes.txt", []byte("notes"))
	e.put("/Team/Docs/plan.txt", []byte("the plan"))
	team, ok := e.fake.ItemByPath("/Team")
	require.True(t, ok)
	return &sharedEnv{env: e, bob: bob, bobID: u.ID, teamID: team.ID}
}

func TestSharingMeAndDrives(t *testing.T) {
	se := newSharedEnv(t, graphtest.Options{})
	me, err := se.bob.Me(se.ctx)
	require.NoError(t, err)
	assert.Equal(t, remote.User{ID: se.bobID, DisplayName: "Bob", Email: "bob@example.com"}, *me)

	drives, err := se.bob.Drives(se.ctx)
	require.NoError(t, err)
	require.Len(t, drives, 1)
	assert.Equal(t, se.bobID, drives[0].ID)
	assert.Equal(t, "personal", drives[0].DriveType)
	assert.Equal(t, "Bob", drives[0].Owner)
	assert.False(t, drives[0].IsBusiness())

	// Bob's /me/drive is his own, empty drive.
	root, err := se.bob.Root(se.ctx)
	require.NoError(t, err)
	assert.Equal(t, se.bobID, root.DriveID)
}

func TestSharingReadOnlyShareThroughShortcut(t *testing.T) {
	se := newSharedEnv(t, graphtest.Options{})
	perms, err := se.client.Invite(se.ctx, se.teamID, []string{"bob@example.com"}, remote.RoleRead)
	require.NoError(t, err)
	require.Len(t, perms, 1)
	assert.Equal(t, remote.RoleRead, perms[0].Role)
	assert.Equal(t, se.bobID, perms[0].GrantedTo.ID)

	shared, err := se.bob.SharedWithMe(se.ctx)
	require.NoError(t, err)
	require.Len(t, shared, 1)
	assert.Equal(t, "Team", shared[0].Name)
	assert.True(t, shared[0].IsFolder)
	assert.False(t, shared[0].Shortcut)
	assert.Equal(t, se.fake.DefaultDriveID(), shared[0].RemoteDriveID)
	assert.Equal(t, se.teamID, shared[0].RemoteID)
	assert.NotEqual(t, se.teamID, shared[0].ID, "an entry's own id is not the item's")

	// Add it to bob's drive as a shortcut and follow it.
	bobRoot, err := se.bob.Root(se.ctx)
	require.NoError(t, err)
	sc, err := se.bob.AddShortcut(se.ctx, bobRoot.ID, "Team (owner)", shared[0].RemoteDriveID, shared[0].RemoteID, remote.ConflictFail)
	require.NoError(t, err)
	assert.True(t, sc.Shortcut)
	assert.True(t, sc.IsFolder, "the folder facet comes from remoteItem")
	kids, err := se.bob.Children(se.ctx, bobRoot.ID)
	require.NoError(t, err)
	require.Len(t, kids, 1)
	assert.True(t, kids[0].Shortcut)
	assert.Equal(t, se.teamID, kids[0].RemoteID)

	target, err := se.bob.RemoteTarget(se.ctx, kids[0])
	require.NoError(t, err)
	assert.Equal(t, remote.RoleRead, target.Role)
	assert.False(t, target.Role.CanWrite())
	team := se.bob.OnDrive(kids[0].RemoteDriveID)
	inside, err := team.Children(se.ctx, target.ID)
	require.NoError(t, err)
	assert.Len(t, inside, 2)
	var notes *remote.Item
	for _, it := range inside {
		if it.Name == "notes.txt" {
			notes = it
		}
	}
	require.NotNil(t, notes)
	var buf bytes.Buffer
	require.NoError(t, team.DownloadVerified(se.ctx, notes, &buf))
	assert.Equal(t, "notes", buf.String())
	se.rec.requireNoAuthOnPreauth(t)

	// Every write is refused with ErrForbidden and changes nothing.
	_, err = team.Upload(se.ctx, remote.UploadRequest{ParentID: target.ID, Name: "x.txt", Size: 1, Content: strings.NewReader("x")})
	assert.ErrorIs(t, err, remote.ErrForbidden)
	_, err = team.CreateFolder(se.ctx, target.ID, "New", remote.ConflictFail)
	assert.ErrorIs(t, err, remote.ErrForbidden)
	_, err = team.Update(se.ctx, notes.ID, remote.ItemUpdate{Name: "renamed.txt"})
	assert.ErrorIs(t, err, remote.ErrForbidden)
	assert.ErrorIs(t, team.Delete(se.ctx, notes.ID, ""), remote.ErrForbidden)
	_, err = team.CreateLink(se.ctx, notes.ID, remote.LinkRequest{Type: remote.LinkView})
	assert.ErrorIs(t, err, remote.ErrForbidden)
	got, err := se.fake.ReadFile("/Team/notes.txt")
	require.NoError(t, err)
	assert.Equal(t, "notes", string(got))

	// What was not shared stays out of reach: not found, not forbidden.
	se.put("/Private/p.txt", []byte("p"))
	priv, _ := se.fake.ItemByPath("/Private/p.txt")
	_, err = team.Item(se.ctx, priv.ID)
	assert.ErrorIs(t, err, remote.ErrNotFound)
}

func TestSharingWriteShareAndFolderDelta(t *testing.T) {
	se := newSharedEnv(t, graphtest.Options{})
	_, err := se.client.Invite(se.ctx, se.teamID, []string{"bob@example.com"}, remote.RoleWrite)
	require.NoError(t, err)
	team := se.bob.OnDrive(se.fake.DefaultDriveID())
	role, err := team.MyRole(se.ctx, se.teamID)
	require.NoError(t, err)
	assert.Equal(t, remote.RoleWrite, role)

	start, err := team.FolderDelta(se.ctx, se.teamID, "latest")
	require.NoError(t, err)
	assert.Empty(t, start.Items)

	// Bob writes, small and through an upload session; the owner changes
	// something too; the folder's delta shows both, and only the folder.
	up, err := team.Upload(se.ctx, remote.UploadRequest{ParentID: se.teamID, Name: "from-bob.txt", Size: 3, Content: strings.NewReader("bob")})
	require.NoError(t, err)
	assert.Equal(t, se.fake.DefaultDriveID(), up.DriveID)
	big := pattern(5<<20, 7)
	_, err = team.Upload(se.ctx, remote.UploadRequest{ParentID: se.teamID, Name: "big.bin", Size: int64(len(big)), Content: bytes.NewReader(big)})
	require.NoError(t, err)
	se.put("/Team/Docs/owner.txt", []byte("owner"))
	se.put("/Elsewhere/x.txt", []byte("x"))

	page, err := team.FolderDelta(se.ctx, se.teamID, start.DeltaLink)
	require.NoError(t, err)
	names := map[string]bool{}
	for _, it := range page.Items {
		names[it.Name] = true
	}
	assert.True(t, names["from-bob.txt"] && names["big.bin"] && names["owner.txt"], "%v", names)
	assert.False(t, names["x.txt"] || names["Elsewhere"], "changes outside the shared folder: %v", names)
	got, err := se.fake.ReadFile("/Team/big.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, got))

	// The other item operations, through the shared folder.
	dir, err := team.CreateFolder(se.ctx, se.teamID, "Bob's folder", remote.ConflictFail)
	require.NoError(t, err)
	moved, err := team.Update(se.ctx, up.ID, remote.ItemUpdate{Name: "moved.txt", ParentID: dir.ID})
	require.NoError(t, err)
	assert.Equal(t, dir.ID, moved.ParentID)
	var part bytes.Buffer
	n, err := team.Download(se.ctx, up.ID, 1, 2, &part)
	require.NoError(t, err)
	assert.Equal(t, int64(2), n)
	assert.Equal(t, "ob", part.String())
	require.NoError(t, team.Delete(se.ctx, dir.ID, ""))
	_, ok := se.fake.ItemByPath("/Team/Bob's folder")
	assert.False(t, ok)
	se.rec.requireNoAuthOnPreauth(t)

	// Bob's own drive's delta knows nothing of it.
	own, err := se.bob.Delta(se.ctx, "")
	require.NoError(t, err)
	for _, it := range own.Items {
		assert.NotEqual(t, "from-bob.txt", it.Name)
	}
}

func TestSharingCrossDriveCopy(t *testing.T) {
	se := newSharedEnv(t, graphtest.Options{})
	_, err := se.client.Invite(se.ctx, se.teamID, []string{"bob@example.com"}, remote.RoleRead)
	require.NoError(t, err)
	bobRoot, err := se.bob.Root(se.ctx)
	require.NoError(t, err)
	team := se.bob.OnDrive(se.fake.DefaultDriveID())
	before := se.fake.Stats()

	// From the read-only share into bob's drive: a server-side copy.
	mon, err := team.StartCopy(se.ctx, se.teamID, remote.CopyRequest{DestDriveID: bobRoot.DriveID, DestParentID: bobRoot.ID, Name: "Team copy", Conflict: remote.ConflictFail})
	require.NoError(t, err)
	var st *remote.JobStatus
	for i := 0; i < 50; i++ {
		st, err = se.bob.Monitor(se.ctx, mon)
		require.NoError(t, err)
		if st.State != remote.JobRunning {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.Equal(t, remote.JobCompleted, st.State, "%+v", st)
	copied, err := se.bob.Child(se.ctx, bobRoot.ID, "Team copy")
	require.NoError(t, err)
	assert.Equal(t, bobRoot.DriveID, copied.DriveID)
	plan, err := se.bob.ItemByPath(se.ctx, "/Team copy/Docs/plan.txt")
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, se.bob.DownloadVerified(se.ctx, plan, &buf))
	assert.Equal(t, "the plan", buf.String())
	after := se.fake.Stats()
	assert.Equal(t, before.BytesUploaded, after.BytesUploaded, "no byte went up for the copy")

	// Back into the read-only share: refused at once.
	_, err = se.bob.StartCopy(se.ctx, plan.ID, remote.CopyRequest{DestDriveID: se.fake.DefaultDriveID(), DestParentID: se.teamID})
	assert.ErrorIs(t, err, remote.ErrForbidden)
	se.rec.requireNoAuthOnPreauth(t)
}

func TestSharingPermissionsAndLinks(t *testing.T) {
	se := newSharedEnv(t, graphtest.Options{})
	_, err := se.client.Invite(se.ctx, se.teamID, []string{"bob@example.com"}, remote.RoleRead)
	require.NoError(t, err)
	plan, err := se.client.ItemByPath(se.ctx, "/Team/Docs/plan.txt")
	require.NoError(t, err)

	perms, err := se.client.Permissions(se.ctx, plan.ID)
	require.NoError(t, err)
	var owner, inherited *remote.Permission
	for _, p := range perms {
		switch p.Role {
		case remote.RoleOwner:
			owner = p
		case remote.RoleRead:
			inherited = p
		}
	}
	require.NotNil(t, owner)
	require.NotNil(t, inherited)
	assert.Equal(t, se.teamID, inherited.InheritedFromID)
	role, err := se.client.MyRole(se.ctx, plan.ID)
	require.NoError(t, err)
	assert.Equal(t, remote.RoleOwner, role)

	link, err := se.client.CreateLink(se.ctx, plan.ID, remote.LinkRequest{Type: remote.LinkEdit, Expires: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	require.NotNil(t, link.Link)
	assert.Equal(t, remote.RoleWrite, link.Role)
	assert.Equal(t, remote.LinkEdit, link.Link.Type)
	assert.False(t, link.Expires.IsZero())
	again, err := se.client.CreateLink(se.ctx, plan.ID, remote.LinkRequest{Type: remote.LinkEdit, Expires: link.Expires})
	require.NoError(t, err)
	assert.Equal(t, link.ID, again.ID)

	// The link resolves to the item, for anyone signed in.
	for _, c := range []*remote.Client{se.client, se.bob} {
		it, err := c.ResolveShare(se.ctx, link.Link.WebURL)
		require.NoError(t, err)
		assert.Equal(t, plan.ID, it.ID)
	}
	_, err = se.bob.ResolveShare(se.ctx, link.Link.WebURL+"nope")
	assert.ErrorIs(t, err, remote.ErrNotFound)

	// Invitations to strangers and links of unknown types fail clearly.
	_, err = se.client.Invite(se.ctx, se.teamID, []string{"stranger@example.org"}, remote.RoleRead)
	var re *remote.Error
	require.True(t, errors.As(err, &re))
	assert.Equal(t, http.StatusBadRequest, re.StatusCode)
	_, err = se.client.CreateLink(se.ctx, plan.ID, remote.LinkRequest{Type: "embed"})
	assert.Error(t, err)
}

func TestSharingSitesAndBusinessLibraries(t *testing.T) {
	se := newSharedEnv(t, graphtest.Options{})
	site, err := se.fake.AddSite(graphtest.SiteOptions{Name: "engineering", DisplayName: "Engineering", Members: []string{"bob@example.com"}})
	require.NoError(t, err)
	_, err = se.fake.PutFileIn(site.DriveIDs[0], "/Specs/a.txt", []byte("spec"), time.Time{})
	require.NoError(t, err)

	sites, err := se.bob.SearchSites(se.ctx, "engin")
	require.NoError(t, err)
	require.Len(t, sites, 1)
	assert.Equal(t, "Engineering", sites[0].DisplayName)
	lib, err := se.bob.SiteDrive(se.ctx, sites[0].ID)
	require.NoError(t, err)
	assert.Equal(t, "documentLibrary", lib.DriveType)
	assert.True(t, lib.IsBusiness())
	assert.Equal(t, "Engineering", lib.Owner)
	libs, err := se.bob.SiteDrives(se.ctx, sites[0].ID)
	require.NoError(t, err)
	assert.Len(t, libs, 1)
	drives, err := se.bob.Drives(se.ctx)
	require.NoError(t, err)
	assert.Len(t, drives, 2)
	followed, err := se.bob.FollowedSites(se.ctx)
	require.NoError(t, err)
	require.Len(t, followed, 1)
	assert.Equal(t, sites[0].ID, followed[0].ID)

	lc := se.bob.OnDrive(lib.ID)
	got, err := lc.ItemByPath(se.ctx, "/Specs/a.txt")
	require.NoError(t, err)
	assert.Equal(t, lib.ID, got.DriveID)
	specs, err := lc.ItemByPath(se.ctx, "/Specs")
	require.NoError(t, err)
	assert.Empty(t, specs.CTag, "Business folders have no cTag")
	_, err = lc.FolderDelta(se.ctx, specs.ID, "")
	assert.ErrorIs(t, err, remote.ErrNotSupported, "Business drives have delta at the root only")
	full, err := lc.Delta(se.ctx, "")
	require.NoError(t, err)
	assert.NotEmpty(t, full.Items)

	// The owner is no member: the library is out of reach.
	_, err = se.client.OnDrive(lib.ID).Root(se.ctx)
	assert.ErrorIs(t, err, remote.ErrNotFound)
	_, err = se.client.SiteDrive(se.ctx, "fake.sharepoint.com,no,such")
	assert.ErrorIs(t, err, remote.ErrNotFound)
}

func TestSharingDeltaParentPathForm(t *testing.T) {
	for _, withPath := range []bool{false, true} {
		e := newEnv(t, envConfig{fake: graphtest.Options{Forms: graphtest.FormOptions{DeltaParentPath: withPath}}})
		e.put("/A/b.txt", []byte("b"))
		page, err := e.client.Delta(e.ctx, "")
		require.NoError(t, err)
		for _, it := range page.Items {
			if it.Name == "b.txt" {
				if withPath {
					assert.Equal(t, "/drive/root:/A", it.ParentPath)
				} else {
					assert.Empty(t, it.ParentPath)
				}
			}
		}
	}
}

func TestSharingFindSiteAndReachableDrives(t *testing.T) {
	se := newSharedEnv(t, graphtest.Options{})
	eng, err := se.fake.AddSite(graphtest.SiteOptions{Name: "eng", DisplayName: "Engineering", Members: []string{"bob@example.com"},
		Libraries: []string{"Documents", "Archive"}})
	require.NoError(t, err)
	_, err = se.fake.AddSite(graphtest.SiteOptions{Name: "eng-ops", DisplayName: "Engineering Ops"})
	require.NoError(t, err)
	_, err = se.fake.AddSite(graphtest.SiteOptions{Name: "hr", DisplayName: "Engineering", Members: []string{"bob@example.com"}})
	require.NoError(t, err)

	site, lib, err := se.bob.FindSiteDrive(se.ctx, "ENG")
	require.NoError(t, err)
	assert.Equal(t, eng.ID, site.ID)
	assert.Equal(t, eng.DriveIDs[0], lib.ID)
	_, _, err = se.bob.FindSiteDrive(se.ctx, "Engineering")
	var choice *remote.SiteChoiceError
	require.ErrorAs(t, err, &choice)
	assert.Len(t, choice.Candidates, 2)
	_, _, err = se.bob.FindSiteDrive(se.ctx, "finance")
	assert.ErrorIs(t, err, remote.ErrNotFound)
	_, _, err = se.bob.FindSiteDrive(se.ctx, "eng-ops")
	assert.ErrorIs(t, err, remote.ErrForbidden, "bob is no member of eng-ops")

	all, err := se.bob.ReachableDrives(se.ctx, "eng")
	require.NoError(t, err)
	var got []string
	for _, rd := range all {
		name := rd.Drive.ID
		if rd.Site != nil {
			name = rd.Site.Name + "/" + rd.Drive.Name
		}
		got = append(got, name)
	}
	assert.Equal(t, []string{se.bobID, "eng/Documents", "eng/Archive", "hr/Documents"}, got,
		"own drive, then followed sites' libraries, each once; eng-ops is out of reach")
	mine, err := se.client.ReachableDrives(se.ctx, "")
	require.NoError(t, err)
	require.Len(t, mine, 1)
	assert.Nil(t, mine[0].Site)
}

func TestSharingCopyFromLibraryOnBusiness(t *testing.T) {
	// A Business account: the monitor answers 200 on every poll with the
	// SharePoint body; a library of a site the user belongs to is copied
	// into the user's own drive server-side.
	e := newEnv(t, envConfig{fake: graphtest.Options{DriveType: "business"}})
	me, err := e.client.Me(e.ctx)
	require.NoError(t, err)
	site, err := e.fake.AddSite(graphtest.SiteOptions{Name: "legal", Members: []string{me.ID}})
	require.NoError(t, err)
	_, err = e.fake.PutFileIn(site.DriveIDs[0], "/Contracts/c1.pdf", pattern(3000, 3), time.Time{})
	require.NoError(t, err)
	_, lib, err := e.client.FindSiteDrive(e.ctx, "legal")
	require.NoError(t, err)
	src, err := e.client.OnDrive(lib.ID).ItemByPath(e.ctx, "/Contracts")
	require.NoError(t, err)
	root, err := e.client.Root(e.ctx)
	require.NoError(t, err)
	mon, err := e.client.OnDrive(lib.ID).StartCopy(e.ctx, src.ID, remote.CopyRequest{DestDriveID: root.DriveID, DestParentID: root.ID})
	require.NoError(t, err)
	var st *remote.JobStatus
	for i := 0; i < 50; i++ {
		if st, err = e.client.Monitor(e.ctx, mon); err != nil || st.State != remote.JobRunning {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, err)
	require.Equal(t, remote.JobCompleted, st.State, "%+v", st)
	got, err := e.client.Item(e.ctx, st.ResourceID)
	require.NoError(t, err)
	assert.Equal(t, "Contracts", got.Name)
	assert.Equal(t, root.DriveID, got.DriveID)
	e.rec.requireNoAuthOnPreauth(t)
}
