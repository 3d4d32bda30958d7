package graphtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// as returns a client of the same fake that sends another user's token.
func (c *coreClient) as(userID string) *coreClient {
	c.t.Helper()
	tok, err := c.s.IssueTokenFor(userID)
	require.NoError(c.t, err)
	cc := *c
	cc.token = tok
	return &cc
}

// sharedSetup: the default user (alice) owns /Proj with a.txt and Sub/b.txt
// and /Private/p.txt; bob is a second user.
type sharedSetup struct {
	alice, bob         *coreClient
	aliceDrive, bobID  string
	projID, subID, aID string
}

func newSharedSetup(t *testing.T, opts Options) *sharedSetup {
	alice := newCore(t, opts)
	s := alice.s
	bob, err := s.AddUser(UserOptions{ID: "b0b0b0b0b0b0b0b0", DisplayName: "Bob", Email: "bob@example.com"})
	require.NoError(t, err)
	aID, err := s.PutFile("/Proj/a.txt", []byte("alpha"), time.Time{})
	require.NoError(t, err)
	_, err = s.PutFile("/Proj/Sub/b.txt", []byte("beta"), time.Time{})
	require.NoError(t, err)
	_, err = s.PutFile("/Private/p.txt", []byte("secret"), time.Time{})
	require.NoError(t, err)
	proj, _ := s.ItemByPath("/Proj")
	sub, _ := s.ItemByPath("/Proj/Sub")
	return &sharedSetup{alice: alice, bob: alice.as(bob.ID), aliceDrive: s.DefaultDriveID(), bobID: bob.ID,
		projID: proj.ID, subID: sub.ID, aID: aID}
}

func (ss *sharedSetup) aliceItem(id string) string {
	return "/drives/" + ss.aliceDrive + "/items/" + url.PathEscape(id)
}

func (ss *sharedSetup) invite(role string) {
	ss.alice.t.Helper()
	m := ss.alice.obj("POST", "/me/drive/items/"+url.PathEscape(ss.projID)+"/invite", map[string]any{
		"recipients": []map[string]string{{"email": "bob@example.com"}}, "roles": []string{role},
		"requireSignIn": true, "sendInvitation": false}, http.StatusOK)
	perms := m["value"].([]any)
	require.Len(ss.alice.t, perms, 1)
	assert.Equal(ss.alice.t, []any{role}, perms[0].(map[string]any)["roles"])
}

func TestUsersHaveTheirOwnDrivesAndTokens(t *testing.T) {
	ss := newSharedSetup(t, Options{})
	me := ss.bob.obj("GET", "/me", nil, http.StatusOK)
	assert.Equal(t, ss.bobID, me["id"])
	assert.Equal(t, "bob@example.com", me["mail"])
	drv := ss.bob.obj("GET", "/me/drive", nil, http.StatusOK)
	assert.Equal(t, ss.bobID, drv["id"])
	assert.Equal(t, "Bob", str(drv, "owner", "user", "displayName"))
	assert.Equal(t, ss.aliceDrive, ss.alice.obj("GET", "/me/drive", nil, http.StatusOK)["id"])

	// Nothing of alice's is visible to bob before she shares: 404, not 403.
	ss.bob.graphErr(ss.bob.req("GET", ss.aliceItem(ss.projID), nil), http.StatusNotFound, "itemNotFound", "")
	ss.bob.graphErr(ss.bob.req("GET", "/drives/"+ss.aliceDrive+"/root/children", nil), http.StatusNotFound, "itemNotFound", "")
	ss.bob.graphErr(ss.bob.req("GET", "/drives/"+ss.aliceDrive, nil), http.StatusNotFound, "itemNotFound", "")
	_, err := ss.alice.s.IssueTokenFor("nobody")
	assert.Error(t, err)
}

func TestReadShareIsEnforcedOnEveryWrite(t *testing.T) {
	ss := newSharedSetup(t, Options{})
	ss.invite("read")
	bob := ss.bob

	// Reads inside the shared folder work, by id and by path below it.
	assert.Equal(t, "Proj", bob.obj("GET", ss.aliceItem(ss.projID), nil, http.StatusOK)["name"])
	page := bob.obj("GET", ss.aliceItem(ss.projID)+"/children", nil, http.StatusOK)
	assert.Len(t, page["value"], 2)
	assert.Equal(t, "beta", string(readAll(t, bob.plain("GET", bob.location(ss.aliceItem(ss.projID)+":/Sub/b.txt:/content"), nil))))
	// Outside it, and the drive itself: no access. Paths start from an item
	// bob can read, even when they end inside the share.
	bob.graphErr(bob.req("GET", "/drives/"+ss.aliceDrive+"/root:/Private/p.txt", nil), http.StatusNotFound, "itemNotFound", "")
	bob.graphErr(bob.req("GET", "/drives/"+ss.aliceDrive+"/root:/Proj/a.txt", nil), http.StatusNotFound, "itemNotFound", "")
	bob.graphErr(bob.req("GET", "/drives/"+ss.aliceDrive, nil), http.StatusForbidden, "accessDenied", "")
	bob.graphErr(bob.req("GET", "/drives/"+ss.aliceDrive+"/root/delta", nil), http.StatusNotFound, "itemNotFound", "")

	// Every kind of write is 403 accessDenied and changes nothing.
	for _, w := range []struct {
		method, path string
		body         any
	}{
		{"PUT", ss.aliceItem(ss.aID) + "/content", "changed"},
		{"PUT", ss.aliceItem(ss.projID) + ":/new.txt:/content", "new"},
		{"POST", ss.aliceItem(ss.projID) + "/children", map[string]any{"name": "D", "folder": map[string]any{}}},
		{"PATCH", ss.aliceItem(ss.aID), map[string]any{"name": "renamed.txt"}},
		{"DELETE", ss.aliceItem(ss.aID), nil},
		{"POST", ss.aliceItem(ss.projID) + ":/big.bin:/createUploadSession", map[string]any{}},
		{"POST", ss.aliceItem(ss.aID) + "/createLink", map[string]any{"type": "view"}},
		{"POST", ss.aliceItem(ss.aID) + "/invite", map[string]any{"recipients": []map[string]string{{"email": "user@example.com"}}, "roles": []string{"read"}}},
	} {
		bob.graphErr(bob.req(w.method, w.path, w.body), http.StatusForbidden, "accessDenied", "")
	}
	got, err := ss.alice.s.ReadFile("/Proj/a.txt")
	require.NoError(t, err)
	assert.Equal(t, "alpha", string(got))
	_, ok := ss.alice.s.ItemByPath("/Proj/new.txt")
	assert.False(t, ok)
}

func TestWriteShareAllowsWritesInsideOnly(t *testing.T) {
	ss := newSharedSetup(t, Options{})
	ss.invite("write")
	bob := ss.bob
	bob.obj("PUT", ss.aliceItem(ss.projID)+":/from-bob.txt:/content", "hi", http.StatusCreated)
	got, err := ss.alice.s.ReadFile("/Proj/from-bob.txt")
	require.NoError(t, err)
	assert.Equal(t, "hi", string(got))
	bob.obj("POST", ss.aliceItem(ss.projID)+"/children", map[string]any{"name": "D", "folder": map[string]any{}}, http.StatusCreated)
	bob.obj("PATCH", ss.aliceItem(ss.aID), map[string]any{"name": "renamed.txt"}, http.StatusOK)

	// Moving an item out of the share, into alice's root, is refused.
	root := ss.alice.rootID()
	bob.graphErr(bob.req("PATCH", ss.aliceItem(ss.aID), map[string]any{"parentReference": map[string]any{"id": root}}),
		http.StatusNotFound, "itemNotFound", "")
	_, ok := ss.alice.s.ItemByPath("/Proj/renamed.txt")
	assert.True(t, ok)

	// Revoking the share takes access away at once.
	perms := ss.alice.obj("GET", "/me/drive/items/"+url.PathEscape(ss.projID)+"/permissions", nil, http.StatusOK)["value"].([]any)
	var grant string
	for _, p := range perms {
		if str(p.(map[string]any), "grantedTo", "user", "id") == ss.bobID {
			grant = p.(map[string]any)["id"].(string)
		}
	}
	require.NotEmpty(t, grant)
	bob.graphErr(bob.req("DELETE", ss.aliceItem(ss.projID)+"/permissions/"+grant, nil), http.StatusForbidden, "accessDenied", "")
	resp := ss.alice.req("DELETE", "/me/drive/items/"+url.PathEscape(ss.projID)+"/permissions/"+grant, nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	resp.Body.Close()
	bob.graphErr(bob.req("GET", ss.aliceItem(ss.projID), nil), http.StatusNotFound, "itemNotFound", "")
}

func TestPermissionsListInheritedAndOwnOnly(t *testing.T) {
	ss := newSharedSetup(t, Options{})
	ss.invite("read")
	carol, err := ss.alice.s.AddUser(UserOptions{ID: "c0c0c0c0c0c0c0c0", Email: "carol@example.com"})
	require.NoError(t, err)
	_, err = ss.alice.s.Share(ShareOptions{Path: "/Proj/Sub", With: carol.Email, Role: "write"})
	require.NoError(t, err)

	// The owner sees, on Sub: the owner, carol's grant, bob's inherited one.
	perms := ss.alice.obj("GET", "/me/drive/items/"+url.PathEscape(ss.subID)+"/permissions", nil, http.StatusOK)["value"].([]any)
	byUser := map[string]map[string]any{}
	for _, p := range perms {
		pm := p.(map[string]any)
		byUser[str(pm, "grantedTo", "user", "id")] = pm
	}
	require.Len(t, byUser, 3, "%v", perms)
	assert.Equal(t, []any{"owner"}, byUser[ss.alice.s.DefaultDriveID()]["roles"])
	assert.Equal(t, []any{"write"}, byUser[carol.ID]["roles"])
	assert.Nil(t, byUser[carol.ID]["inheritedFrom"])
	assert.Equal(t, ss.projID, str(byUser[ss.bobID], "inheritedFrom", "id"))

	// Bob sees the owner and his own grant, not carol's.
	perms = ss.bob.obj("GET", ss.aliceItem(ss.subID)+"/permissions", nil, http.StatusOK)["value"].([]any)
	assert.Len(t, perms, 2)
	for _, p := range perms {
		assert.NotEqual(t, carol.ID, str(p.(map[string]any), "grantedTo", "user", "id"))
	}
	// Invitations name users of the service, one role.
	ss.alice.graphErr(ss.alice.req("POST", "/me/drive/items/"+url.PathEscape(ss.projID)+"/invite", map[string]any{
		"recipients": []map[string]string{{"email": "stranger@example.org"}}, "roles": []string{"read"}}), http.StatusBadRequest, "invalidRequest", "")
	ss.alice.graphErr(ss.alice.req("POST", "/me/drive/items/"+url.PathEscape(ss.projID)+"/invite", map[string]any{
		"recipients": []map[string]string{{"email": "bob@example.com"}}, "roles": []string{"owner"}}), http.StatusBadRequest, "invalidRequest", "")
}

func TestShortcutsAndSharedWithMe(t *testing.T) {
	ss := newSharedSetup(t, Options{})
	ss.invite("write")
	bob := ss.bob

	shared := bob.obj("GET", "/me/drive/sharedWithMe", nil, http.StatusOK)["value"].([]any)
	require.Len(t, shared, 1)
	e := shared[0].(map[string]any)
	assert.Equal(t, "Proj", e["name"])
	assert.Equal(t, ss.aliceDrive, str(e, "remoteItem", "parentReference", "driveId"))
	assert.Equal(t, ss.projID, str(e, "remoteItem", "id"))
	assert.NotNil(t, e["remoteItem"].(map[string]any)["folder"])
	assert.Nil(t, e["folder"], "the facets of a shared item are in remoteItem")
	assert.NotEqual(t, ss.projID, e["id"], "an entry has an id of its own")
	assert.Empty(t, ss.alice.obj("GET", "/me/drive/sharedWithMe", nil, http.StatusOK)["value"])
	require.NoError(t, ss.alice.s.SetForms(FormOptions{SharedWithMeRetired: true}))
	assert.Empty(t, bob.obj("GET", "/me/drive/sharedWithMe", nil, http.StatusOK)["value"], "retired: empty")
	require.NoError(t, ss.alice.s.SetForms(FormOptions{}))

	// "Add shortcut to My files".
	body := map[string]any{"name": "Alice's Proj", "remoteItem": map[string]any{
		"id": ss.projID, "parentReference": map[string]any{"driveId": ss.aliceDrive}}}
	sc := bob.obj("POST", "/me/drive/root/children", body, http.StatusCreated)
	assert.Equal(t, "Alice's Proj", sc["name"])
	assert.Nil(t, sc["folder"])
	assert.Equal(t, ss.projID, str(sc, "remoteItem", "id"))
	assert.Equal(t, ss.aliceDrive, str(sc, "remoteItem", "parentReference", "driveId"))
	assert.Equal(t, ss.alice.rootID(), str(sc, "remoteItem", "parentReference", "id"))
	assert.Equal(t, ss.bobID, str(sc, "parentReference", "driveId"))
	bob.graphErr(bob.req("POST", "/me/drive/root/children", body), http.StatusConflict, "nameAlreadyExists", "")

	// It lists in bob's root; its own children are empty; the content is
	// reached through the remote ids.
	kids := bob.obj("GET", "/me/drive/root/children", nil, http.StatusOK)["value"].([]any)
	require.Len(t, kids, 1)
	assert.Equal(t, ss.projID, str(kids[0].(map[string]any), "remoteItem", "id"))
	assert.Empty(t, bob.obj("GET", "/me/drive/items/"+url.PathEscape(sc["id"].(string))+"/children", nil, http.StatusOK)["value"])
	assert.Len(t, bob.obj("GET", ss.aliceItem(ss.projID)+"/children", nil, http.StatusOK)["value"], 2)
	bob.graphErr(bob.req("POST", "/me/drive/items/"+url.PathEscape(sc["id"].(string))+"/copy", map[string]any{}), http.StatusBadRequest, "invalidRequest", "")

	// A shortcut to something bob cannot reach is 404.
	priv, _ := ss.alice.s.ItemByPath("/Private")
	bob.graphErr(bob.req("POST", "/me/drive/root/children", map[string]any{"name": "x", "remoteItem": map[string]any{
		"id": priv.ID, "parentReference": map[string]any{"driveId": ss.aliceDrive}}}), http.StatusNotFound, "itemNotFound", "")

	// The control form adds share and shortcut in one go.
	carol, err := ss.alice.s.AddUser(UserOptions{ID: "c0c0c0c0c0c0c0c0"})
	require.NoError(t, err)
	sh, err := ss.alice.s.Share(ShareOptions{Path: "/Proj", With: carol.ID, Role: "read", Shortcut: "Proj"})
	require.NoError(t, err)
	info, ok := ss.alice.s.ItemByPathIn(carol.DriveID, "/Proj")
	require.True(t, ok)
	assert.Equal(t, sh.ShortcutID, info.ID)
	// Shortcuts go in the root only.
	body["name"] = "Elsewhere"
	sub := bob.mkdir(bob.obj("GET", "/me/drive/root", nil, http.StatusOK)["id"].(string), "Sub")
	bob.graphErr(bob.req("POST", "/me/drive/items/"+url.PathEscape(sub["id"].(string))+"/children", body),
		http.StatusBadRequest, "invalidRequest", "")
}

func TestCreateLinkAndShares(t *testing.T) {
	clock := newCoreClock()
	ss := newSharedSetup(t, Options{Clock: clock.Now})
	ss.invite("read")
	alice := ss.alice
	path := "/me/drive/items/" + url.PathEscape(ss.aID) + "/createLink"

	first := alice.obj("POST", path, map[string]any{"type": "view", "scope": "anonymous"}, http.StatusCreated)
	assert.Equal(t, []any{"read"}, first["roles"])
	assert.Equal(t, "view", str(first, "link", "type"))
	again := alice.obj("POST", path, map[string]any{"type": "view", "scope": "anonymous"}, http.StatusOK)
	assert.Equal(t, first["id"], again["id"], "an identical link is returned, not made anew")
	edit := alice.obj("POST", path, map[string]any{"type": "edit"}, http.StatusCreated)
	assert.Equal(t, []any{"write"}, edit["roles"])

	// Any signed-in user resolves the link, by share id or by encoded URL.
	webURL := str(first, "link", "webUrl")
	encoded := "u!" + base64.RawURLEncoding.EncodeToString([]byte(webURL))
	for _, id := range []string{encoded, first["shareId"].(string)} {
		carolless := ss.bob.obj("GET", "/shares/"+id+"/driveItem", nil, http.StatusOK)
		assert.Equal(t, ss.aID, carolless["id"])
	}
	assert.Equal(t, "alpha", string(readAll(t, alice.plain("GET", alice.location("/shares/"+encoded+"/driveItem/content"), nil))))
	alice.graphErr(alice.req("GET", "/shares/u!"+base64.RawURLEncoding.EncodeToString([]byte(webURL+"x"))+"/driveItem", nil),
		http.StatusNotFound, "itemNotFound", "")

	// Expiry: in the past is refused; an expired link no longer resolves.
	alice.graphErr(alice.req("POST", path, map[string]any{"type": "view", "expirationDateTime": clock.Now().Add(-time.Hour)}),
		http.StatusBadRequest, "invalidRequest", "")
	exp := alice.obj("POST", path, map[string]any{"type": "view", "expirationDateTime": clock.Now().Add(time.Minute).Format(time.RFC3339)}, http.StatusCreated)
	assert.NotEmpty(t, exp["expirationDateTime"])
	alice.obj("GET", "/shares/"+exp["shareId"].(string)+"/driveItem", nil, http.StatusOK)
	clock.Advance(2 * time.Minute)
	alice.graphErr(alice.req("GET", "/shares/"+exp["shareId"].(string)+"/driveItem", nil), http.StatusForbidden, "accessDenied", "")

	// Bad requests.
	alice.graphErr(alice.req("POST", path, map[string]any{"type": "embedded"}), http.StatusBadRequest, "invalidRequest", "")
	alice.graphErr(alice.req("POST", path, map[string]any{"type": "view", "scope": "organization"}), http.StatusBadRequest, "invalidRequest", "")
	alice.graphErr(alice.req("POST", "/me/drive/root/createLink", map[string]any{"type": "view"}), http.StatusBadRequest, "invalidRequest", "")
}

func TestCrossDriveCopyNeedsWriteAccessToTheDestination(t *testing.T) {
	ss := newSharedSetup(t, Options{})
	ss.invite("read")
	bob := ss.bob
	bobRoot := bob.obj("GET", "/me/drive/root", nil, http.StatusOK)["id"].(string)

	// Out of a read-only share into bob's own drive: allowed.
	resp := bob.req("POST", ss.aliceItem(ss.projID)+"/copy", map[string]any{
		"parentReference": map[string]any{"driveId": ss.bobID, "id": bobRoot}, "name": "Copied"}, "Prefer", "respond-async")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", readAll(t, resp))
	mon := bob.plain("GET", resp.Header.Get("Location"), nil)
	readAll(t, mon)
	info, ok := bob.s.ItemByPathIn(ss.bobID, "/Copied/Sub/b.txt")
	require.True(t, ok, "the copy lands in bob's drive")
	assert.Equal(t, int64(4), info.Size)

	// Into the read-only share: 403; into alice's private folder: 404.
	bob.graphErr(bob.req("POST", "/me/drive/items/"+url.PathEscape(info.ID)+"/copy", map[string]any{
		"parentReference": map[string]any{"driveId": ss.aliceDrive, "id": ss.projID}}, "Prefer", "respond-async"),
		http.StatusForbidden, "accessDenied", "")
	priv, _ := ss.alice.s.ItemByPath("/Private")
	bob.graphErr(bob.req("POST", "/me/drive/items/"+url.PathEscape(info.ID)+"/copy", map[string]any{
		"parentReference": map[string]any{"driveId": ss.aliceDrive, "id": priv.ID}}, "Prefer", "respond-async"),
		http.StatusNotFound, "itemNotFound", "")
}

func TestSitesAndBusinessForms(t *testing.T) {
	ss := newSharedSetup(t, Options{})
	s := ss.alice.s
	site, err := s.AddSite(SiteOptions{Name: "marketing", DisplayName: "Marketing Team", Members: []string{"bob@example.com"},
		Libraries: []string{"Documents", "Archive"}})
	require.NoError(t, err)
	require.Len(t, site.DriveIDs, 2)
	_, err = s.PutFileIn(site.DriveIDs[0], "/Plans/q1.txt", []byte("q1"), time.Time{})
	require.NoError(t, err)

	found := ss.alice.obj("GET", "/sites?search=market", nil, http.StatusOK)["value"].([]any)
	require.Len(t, found, 1)
	assert.Equal(t, site.ID, found[0].(map[string]any)["id"])
	assert.Equal(t, "Marketing Team", found[0].(map[string]any)["displayName"])
	assert.Empty(t, ss.alice.obj("GET", "/sites?search=finance", nil, http.StatusOK)["value"])
	ss.alice.graphErr(ss.alice.req("GET", "/sites", nil), http.StatusBadRequest, "invalidRequest", "")
	ss.alice.graphErr(ss.alice.req("GET", "/sites/nope/drive", nil), http.StatusNotFound, "itemNotFound", "")
	ss.alice.graphErr(ss.alice.req("GET", "/sites/"+url.PathEscape(site.ID)+"/drive", nil), http.StatusForbidden, "accessDenied", "")
	assert.Equal(t, "marketing", ss.alice.obj("GET", "/sites/"+url.PathEscape(site.ID), nil, http.StatusOK)["name"])

	lib := ss.bob.obj("GET", "/sites/"+url.PathEscape(site.ID)+"/drive", nil, http.StatusOK)
	assert.Equal(t, site.DriveIDs[0], lib["id"])
	assert.Equal(t, "documentLibrary", lib["driveType"])
	assert.Len(t, ss.bob.obj("GET", "/sites/"+url.PathEscape(site.ID)+"/drives", nil, http.StatusOK)["value"], 2)
	assert.Len(t, ss.bob.obj("GET", "/me/drives", nil, http.StatusOK)["value"], 3, "own drive and two libraries")
	assert.Len(t, ss.alice.obj("GET", "/me/drives", nil, http.StatusOK)["value"], 1)
	followed := ss.bob.obj("GET", "/me/followedSites", nil, http.StatusOK)["value"].([]any)
	require.Len(t, followed, 1)
	assert.Equal(t, site.ID, followed[0].(map[string]any)["id"])
	assert.Empty(t, ss.alice.obj("GET", "/me/followedSites", nil, http.StatusOK)["value"])

	// Members read and write; others do not reach the library.
	libRoot := "/drives/" + url.PathEscape(site.DriveIDs[0]) + "/root"
	ss.bob.obj("PUT", libRoot+":/Plans/q2.txt:/content", "q2", http.StatusCreated)
	ss.alice.graphErr(ss.alice.req("GET", libRoot+"/children", nil), http.StatusNotFound, "itemNotFound", "")

	// Business forms: folders without cTag, delta at the root only.
	plans := ss.bob.obj("GET", libRoot+":/Plans", nil, http.StatusOK)
	assert.Nil(t, plans["cTag"])
	assert.Equal(t, "documentLibrary", str(plans, "parentReference", "driveType"))
	ss.bob.graphErr(ss.bob.req("GET", libRoot+":/Plans:/delta", nil), http.StatusBadRequest, "invalidRequest", "")
	delta := ss.bob.obj("GET", libRoot+"/delta", nil, http.StatusOK)
	assert.NotEmpty(t, delta["@odata.deltaLink"])
	for _, v := range delta["value"].([]any) {
		assert.Empty(t, str(v.(map[string]any), "parentReference", "path"))
	}
	// A Personal drive cannot copy into a library.
	ss.bob.graphErr(ss.bob.req("POST", libRoot+":/Plans/q1.txt:/copy", map[string]any{
		"parentReference": map[string]any{"driveId": ss.bobID, "id": ss.bob.obj("GET", "/me/drive/root", nil, http.StatusOK)["id"]}},
		"Prefer", "respond-async"), http.StatusBadRequest, "invalidRequest", "")
}

func TestDeltaParentPathKnobAndFolderDelta(t *testing.T) {
	ss := newSharedSetup(t, Options{})
	ss.invite("read")
	// Personal drives allow delta on a shared folder.
	page := ss.bob.obj("GET", ss.aliceItem(ss.projID)+"/delta", nil, http.StatusOK)
	var names []string
	for _, v := range page["value"].([]any) {
		names = append(names, v.(map[string]any)["name"].(string))
		assert.Empty(t, str(v.(map[string]any), "parentReference", "path"))
	}
	assert.ElementsMatch(t, []string{"Proj", "a.txt", "Sub", "b.txt"}, names)

	require.NoError(t, ss.alice.s.SetForms(FormOptions{DeltaParentPath: true}))
	page = ss.alice.obj("GET", "/me/drive/root/delta", nil, http.StatusOK)
	paths := map[string]string{}
	for _, v := range page["value"].([]any) {
		m := v.(map[string]any)
		paths[m["name"].(string)] = str(m, "parentReference", "path")
	}
	assert.Equal(t, "/drive/root:/Proj/Sub", paths["b.txt"])
	assert.Equal(t, "/drive/root:", paths["Proj"])
}

func TestBusinessDefaultDriveAnswersInBusinessForms(t *testing.T) {
	c := newCore(t, Options{DriveType: "business"})
	_, err := c.s.PutFile("/F/x.txt", []byte("x"), time.Time{})
	require.NoError(t, err)
	c.graphErr(c.req("GET", "/me/drive/root:/F:/delta", nil), http.StatusBadRequest, "invalidRequest", "")
	o := c.s.CopyOptions()
	assert.Equal(t, http.StatusOK, o.MonitorRunningStatus)
	assert.Equal(t, "sharepoint", o.MonitorBody)
	assert.Equal(t, "business", c.obj("GET", "/me/drive", nil, http.StatusOK)["driveType"])
}

func TestUsersSitesAndSharesSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Options{DataDir: dir})
	require.NoError(t, err)
	u, err := s.AddUser(UserOptions{ID: "b0b0b0b0b0b0b0b0", Email: "bob@example.com"})
	require.NoError(t, err)
	_, err = s.MkdirAll("/Proj")
	require.NoError(t, err)
	sh, err := s.Share(ShareOptions{Path: "/Proj", With: u.Email, Role: "write", Shortcut: "Proj"})
	require.NoError(t, err)
	site, err := s.AddSite(SiteOptions{Name: "hr", Members: []string{u.ID}})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	// Restarted as a Business drive: the default drive follows the option,
	// bob's drive (created without a type) too.
	s2, err := New(Options{DataDir: dir, DriveType: "business"})
	require.NoError(t, err)
	defer s2.Close()
	assert.Len(t, s2.Users(), 2)
	assert.Equal(t, []Site{site}, s2.Sites())
	info, ok := s2.ItemByPathIn(u.DriveID, "/Proj")
	require.True(t, ok)
	assert.Equal(t, sh.ShortcutID, info.ID)
	s2.mu.Lock()
	defer s2.mu.Unlock()
	d := s2.drives[strings.ToLower(s2.defaultID)]
	assert.Equal(t, roleWrite, s2.roleLocked(u.ID, d, d.lookupID(sh.ItemID)))
	assert.Equal(t, "business", s2.driveType(d))
	assert.Equal(t, "business", s2.driveType(s2.drives[u.DriveID]))
}

func TestDirectoryControlEndpoints(t *testing.T) {
	c := newCore(t, Options{})
	ctl := func(method, path string, body any, want int) map[string]any {
		t.Helper()
		return c.decode(c.plain(method, c.s.URL+"/_fake/"+path, toReader(t, body)), want)
	}
	u := ctl("POST", "users", map[string]any{"id": "bob", "email": "bob@example.com"}, http.StatusCreated)
	assert.Equal(t, "bob", u["driveId"])
	ctl("POST", "users", map[string]any{"id": "bob"}, http.StatusBadRequest)
	assert.Len(t, ctl("GET", "users", nil, http.StatusOK)["users"], 2)

	ctl("POST", "folders?drive=bob&path=/Team/Docs", nil, http.StatusCreated)
	ctl("PUT", "files?drive=bob&path=/Team/Docs/a.txt", "from bob", http.StatusCreated)
	ctl("PUT", "files?drive=nope&path=/a.txt", "x", http.StatusBadRequest)
	sh := ctl("POST", "shares", map[string]any{"owner": "bob", "path": "/Team", "with": "me@nowhere", "role": "read"}, http.StatusBadRequest)
	assert.Contains(t, sh["error"], "unknown user")
	sh = ctl("POST", "shares", map[string]any{"owner": "bob", "path": "/Team", "with": c.s.DefaultDriveID(), "role": "read", "shortcut": "Team"}, http.StatusCreated)
	assert.NotEmpty(t, sh["shortcutId"])

	// The default user reads bob's folder through the shortcut's target.
	kids := c.obj("GET", "/drives/bob/items/"+url.PathEscape(sh["itemId"].(string))+":/Docs:/children", nil, http.StatusOK)["value"].([]any)
	require.Len(t, kids, 1)
	assert.Equal(t, "a.txt", kids[0].(map[string]any)["name"])

	// Bob's token works; the share can be removed.
	tok := ctl("POST", "users/bob/tokens", nil, http.StatusOK)["access_token"].(string)
	bob := *c
	bob.token = tok
	assert.Equal(t, "bob", bob.obj("GET", "/me", nil, http.StatusOK)["id"])
	ctl("POST", "users/nobody/tokens", nil, http.StatusNotFound)
	resp := c.plain("DELETE", c.s.URL+"/_fake/shares/"+sh["permissionId"].(string), nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	resp.Body.Close()
	c.graphErr(c.req("GET", "/drives/bob/items/"+url.PathEscape(sh["itemId"].(string)), nil), http.StatusNotFound, "itemNotFound", "")

	site := ctl("POST", "sites", map[string]any{"name": "eng", "members": []string{"bob"}}, http.StatusCreated)
	assert.Len(t, site["driveIds"], 1)
	assert.Len(t, ctl("GET", "sites", nil, http.StatusOK)["sites"], 1)
	ctl("DELETE", "sites", nil, http.StatusMethodNotAllowed)
	eps := ctl("GET", "", nil, http.StatusOK)["endpoints"].([]any)
	var paths []string
	for _, e := range eps {
		paths = append(paths, e.(map[string]any)["path"].(string))
	}
	assert.Contains(t, paths, "/_fake/shares")
}

func toReader(t *testing.T, body any) io.Reader {
	t.Helper()
	switch b := body.(type) {
	case nil:
		return nil
	case string:
		return strings.NewReader(b)
	}
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	return bytes.NewReader(raw)
}
