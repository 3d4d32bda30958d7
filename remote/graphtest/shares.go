package graphtest

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Shares, shortcuts and sharing links (docs/graph-contract.md §11):
//   - a shortcut ("Add shortcut to My files") is an item of the user's own
//     drive whose remoteItem names a folder (or file) of another drive. It
//     is created with POST …/children of the drive's root (only there, as
//     the service documents; elsewhere 400) and a body carrying remoteItem
//     {id, parentReference {driveId}} instead of a folder facet; the caller
//     needs a grant on the item (a link is not enough). It has no file
//     or folder facet of its own (they are in remoteItem), its children are
//     an empty collection and its content cannot be read: clients go to
//     /drives/{remoteItem.parentReference.driveId}/items/{remoteItem.id}.
//   - GET …/permissions lists an item's permissions (its own and inherited
//     ones, with inheritedFrom); the owner sees all of them, another user
//     the drive's owner and their own grants (and the links, with write
//     access). GET/DELETE …/permissions/{id}: one permission; deleting
//     needs the owner.
//   - POST …/invite {recipients [{email}], roles [read|write]} grants users
//     access (needs write access; recipients must be users of the fake:
//     400 invalidRequest otherwise); 200 {value: [permission]}.
//   - POST …/createLink {type view|edit, scope anonymous|organization|users,
//     expirationDateTime?} needs write access: 201 with a new link
//     permission, 200 with the same link when an identical one exists.
//     organization is for Business drives only (400 on Personal); an
//     expiration in the past is 400.
//   - GET /shares/{shareId or u!base64url(webUrl)}/driveItem resolves a link
//     to its item, …/driveItem/content to a 302 to the content; an expired
//     link is 403 accessDenied, an unknown one 404.
//   - GET /me/drive/sharedWithMe lists the items granted to the caller, as
//     entries with ids of their own and a remoteItem facet (whether or not
//     they were added as shortcuts), in one page. Microsoft retired it after
//     November 2026; FormOptions.SharedWithMeRetired makes it answer an
//     empty list, as the retired endpoint does.

// remoteRef is what a shortcut points at.
type remoteRef struct {
	DriveID string `json:"driveId"`
	ItemID  string `json:"itemId"`
}

// wireRemoteItem is a remoteItem facet.
type wireRemoteItem struct {
	ID                   string           `json:"id"`
	Name                 string           `json:"name,omitempty"`
	Size                 int64            `json:"size"`
	WebURL               string           `json:"webUrl,omitempty"`
	CreatedDateTime      string           `json:"createdDateTime,omitempty"`
	LastModifiedDateTime string           `json:"lastModifiedDateTime,omitempty"`
	File                 *wireFile        `json:"file,omitempty"`
	Folder               *wireFolder      `json:"folder,omitempty"`
	FileSystemInfo       *wireFSInfo      `json:"fileSystemInfo,omitempty"`
	ParentReference      *wireItemRef     `json:"parentReference,omitempty"`
	Shared               *wireShared      `json:"shared,omitempty"`
	CreatedBy            *wireIdentitySet `json:"createdBy,omitempty"`
}

type wireShared struct {
	Owner          *wireIdentitySet `json:"owner,omitempty"`
	SharedBy       *wireIdentity    `json:"sharedBy,omitempty"`
	SharedDateTime string           `json:"sharedDateTime,omitempty"`
	Scope          string           `json:"scope,omitempty"`
}

type wireRemoteItemIn struct {
	ID              string         `json:"id"`
	ParentReference *wireItemRefIn `json:"parentReference"`
}

type wirePermission struct {
	ID                 string           `json:"id"`
	Roles              []string         `json:"roles"`
	GrantedTo          *wireIdentitySet `json:"grantedTo,omitempty"`
	GrantedToV2        *wireIdentitySet `json:"grantedToV2,omitempty"`
	InheritedFrom      *wireItemRef     `json:"inheritedFrom,omitempty"`
	Link               *wireSharingLink `json:"link,omitempty"`
	ShareID            string           `json:"shareId,omitempty"`
	ExpirationDateTime string           `json:"expirationDateTime,omitempty"`
}

type wireSharingLink struct {
	Type   string `json:"type"`
	Scope  string `json:"scope"`
	WebURL string `json:"webUrl"`
}

// remoteItemLocked renders the remoteItem facet of a shortcut (or of a
// sharedWithMe entry) pointing at ref.
func (s *Server) remoteItemLocked(r *http.Request, ref remoteRef) *wireRemoteItem {
	td := s.drives[strings.ToLower(ref.DriveID)]
	var ti *item
	if td != nil {
		ti = td.lookupID(ref.ItemID)
	}
	if ti == nil {
		// The target is gone: the shortcut still says where it pointed.
		return &wireRemoteItem{ID: ref.ItemID, ParentReference: &wireItemRef{DriveID: ref.DriveID}}
	}
	full := s.buildItem(r, td, ti, true)
	ri := &wireRemoteItem{
		ID: ti.ID, Name: ti.Name, Size: ti.Size, WebURL: full.WebURL,
		CreatedDateTime: full.CreatedDateTime, LastModifiedDateTime: full.LastModifiedDateTime,
		File: full.File, Folder: full.Folder, FileSystemInfo: full.FileSystemInfo,
		ParentReference: &wireItemRef{DriveID: td.ID, DriveType: s.driveType(td), ID: ti.ParentID},
		Shared:          &wireShared{Owner: s.driveOwnerLocked(td), Scope: "users"},
		CreatedBy:       full.CreatedBy,
	}
	return ri
}

// handleCreateShortcut serves POST …/children with a remoteItem body: a
// shortcut in the caller's own drive to an item the caller can reach.
func (s *Server) handleCreateShortcut(w http.ResponseWriter, r *http.Request, rt route, in *wireItemIn) {
	behavior, aerr := in.conflictBehavior(r, "fail")
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	ri := in.RemoteItem
	if ri.ID == "" || ri.ParentReference == nil || ri.ParentReference.DriveID == "" {
		errInvalid("remoteItem needs an id and parentReference.driveId.").write(w, r)
		return
	}
	w, unlock := s.lockReply(w)
	defer unlock()
	d, parent, aerr := s.lookupLocked(rt)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	if s.roleLocked(rt.user, d, parent) != roleOwner {
		errAccessDenied("Shortcuts can only be added to the caller's own drive.").write(w, r)
		return
	}
	if parent.ParentID != "" {
		errInvalid("A shared folder can only be added to the root of a drive.").write(w, r)
		return
	}
	td := s.drives[strings.ToLower(ri.ParentReference.DriveID)]
	var target *item
	if td != nil {
		target = td.lookupID(ri.ID)
	}
	if target == nil || s.roleLocked(rt.user, td, target) == roleNone {
		errNotFound().write(w, r)
		return
	}
	name := target.Name
	if in.Name != nil {
		name = *in.Name
	}
	sc, aerr := s.addShortcutUnderLocked(d, parent, name, td, target, behavior)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	writeJSON(w, http.StatusCreated, s.renderItem(r, d, sc, false))
}

// addShortcutLocked adds a shortcut named name at the root of user's drive.
func (s *Server) addShortcutLocked(user, name string, td *drive, target *item, behavior string) (*item, *apiError) {
	d := s.drives[strings.ToLower(s.userDriveLocked(user))]
	return s.addShortcutUnderLocked(d, d.Items[d.RootID], name, td, target, behavior)
}

func (s *Server) addShortcutUnderLocked(d *drive, parent *item, name string, td *drive, target *item, behavior string) (*item, *apiError) {
	if td == d {
		return nil, errInvalid("A shortcut must point into another drive.")
	}
	if aerr := s.checkNewPath(d, parent, name); aerr != nil {
		return nil, aerr
	}
	if d.child(parent, name) != nil {
		switch behavior {
		case "rename":
			name = d.uniqueName(parent, name)
		default: // a shortcut never replaces an item
			return nil, errNameExists(name)
		}
	}
	sc := &item{Name: name, Remote: &remoteRef{DriveID: td.ID, ItemID: target.ID}}
	s.insert(d, parent, sc)
	return sc, nil
}

// sharingHandler returns the handler of an item's sharing sub-resource, or
// nil.
func (s *Server) sharingHandler(sub, method string) func(http.ResponseWriter, *http.Request, route) {
	switch {
	case sub == "permissions" && method == http.MethodGet:
		return s.handleListPermissions
	case strings.HasPrefix(sub, "permissions/") && (method == http.MethodGet || method == http.MethodDelete):
		return s.handlePermission
	case sub == "invite" && method == http.MethodPost:
		return s.handleInvite
	case sub == "createLink" && method == http.MethodPost:
		return s.handleCreateLink
	case sub == "permissions" || strings.HasPrefix(sub, "permissions/") || sub == "invite" || sub == "createLink":
		return func(w http.ResponseWriter, r *http.Request, _ route) { methodNotAllowed(w, r) }
	}
	return nil
}

// permissionsOfLocked lists the permissions on it and its ancestors that
// user may see, with the inherited ones marked.
func (s *Server) permissionsOfLocked(r *http.Request, user string, d *drive, it *item) []wirePermission {
	role := s.roleLocked(user, d, it)
	m := s.driveMetaLocked(d)
	var out []wirePermission
	if m.Owner != "" {
		owner := s.identityLocked(m.Owner)
		out = append(out, wirePermission{ID: "owner", Roles: []string{roleOwner}, GrantedTo: owner, GrantedToV2: owner})
	}
	if m.Site != "" && s.isSiteMember(user, m) {
		me := s.identityLocked(user)
		out = append(out, wirePermission{ID: "member-" + user, Roles: []string{roleWrite}, GrantedTo: me, GrantedToV2: me})
	}
	var perms []*permission
	for _, p := range s.sharing.Perms {
		if strings.EqualFold(p.DriveID, d.ID) {
			perms = append(perms, p)
		}
	}
	sort.Slice(perms, func(i, j int) bool { return perms[i].ID < perms[j].ID })
	for cur := it; cur != nil; cur = d.Items[cur.ParentID] {
		for _, p := range perms {
			if p.ItemID != cur.ID {
				continue
			}
			visible := role == roleOwner || strings.EqualFold(p.GrantedTo, user) ||
				(p.Link != nil && roleRank(role) >= roleRank(roleWrite))
			if !visible {
				continue
			}
			wp := s.renderPermissionLocked(r, p)
			if cur != it {
				wp.InheritedFrom = &wireItemRef{DriveID: d.ID, ID: cur.ID, Path: "/drives/" + d.ID + "/root:" + s.pathOf(d, cur)}
			}
			out = append(out, wp)
		}
		if cur.ParentID == "" {
			break
		}
	}
	return out
}

func (s *Server) renderPermissionLocked(r *http.Request, p *permission) wirePermission {
	wp := wirePermission{ID: p.ID, Roles: []string{p.Role}}
	if p.Link != nil {
		wp.Link = &wireSharingLink{Type: p.Link.Type, Scope: p.Link.Scope, WebURL: base(r) + "/s/" + p.Link.Token}
		wp.ShareID = "s!" + p.Link.Token
		if !p.Link.Expires.IsZero() {
			wp.ExpirationDateTime = wireTime(p.Link.Expires)
		}
		return wp
	}
	to := s.identityLocked(p.GrantedTo)
	wp.GrantedTo, wp.GrantedToV2 = to, to
	return wp
}

func (s *Server) handleListPermissions(w http.ResponseWriter, r *http.Request, rt route) {
	w, unlock := s.lockReply(w)
	defer unlock()
	d, it, aerr := s.lookupLocked(rt)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	list := s.permissionsOfLocked(r, rt.user, d, it)
	page := wireCollection{Value: make([]any, len(list))}
	for i := range list {
		page.Value[i] = list[i]
	}
	writeJSON(w, http.StatusOK, page)
}

// handlePermission serves GET and DELETE …/permissions/{id}.
func (s *Server) handlePermission(w http.ResponseWriter, r *http.Request, rt route) {
	id := strings.TrimPrefix(rt.sub, "permissions/")
	w, unlock := s.lockReply(w)
	defer unlock()
	d, it, aerr := s.lookupLocked(rt)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	var found *wirePermission
	for _, p := range s.permissionsOfLocked(r, rt.user, d, it) {
		if p.ID == id {
			found = &p
			break
		}
	}
	if found == nil {
		errNotFound().write(w, r)
		return
	}
	if r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, found)
		return
	}
	p := s.sharing.Perms[id]
	switch {
	case s.roleLocked(rt.user, d, it) != roleOwner:
		errAccessDenied("Only the owner can remove a permission.").write(w, r)
	case p == nil || found.InheritedFrom != nil:
		errInvalid("This permission cannot be removed here (it is the owner's, or inherited).").write(w, r)
	default:
		delete(s.sharing.Perms, id)
		s.dirty = true
		w.WriteHeader(http.StatusNoContent)
	}
}

type wireInviteIn struct {
	Recipients []struct {
		Email string `json:"email"`
	} `json:"recipients"`
	Roles          []string `json:"roles"`
	RequireSignIn  *bool    `json:"requireSignIn"`
	SendInvitation *bool    `json:"sendInvitation"`
	Message        string   `json:"message"`
}

func (s *Server) handleInvite(w http.ResponseWriter, r *http.Request, rt route) {
	var in wireInviteIn
	if aerr := decodeBody(r, &in, false); aerr != nil {
		aerr.write(w, r)
		return
	}
	if len(in.Recipients) == 0 {
		errInvalid("At least one recipient is required.").write(w, r)
		return
	}
	if len(in.Roles) != 1 || (in.Roles[0] != roleRead && in.Roles[0] != roleWrite) {
		errInvalid(`roles must be ["read"] or ["write"].`).write(w, r)
		return
	}
	w, unlock := s.lockReply(w)
	defer unlock()
	d, it, aerr := s.lookupLocked(rt)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	if it.ParentID == "" {
		errInvalid("The root of a drive cannot be shared.").write(w, r)
		return
	}
	m := s.driveMetaLocked(d)
	var users []*fakeUser
	for _, rc := range in.Recipients {
		u := s.userByEmailLocked(rc.Email)
		if u == nil {
			errInvalid("The recipient "+rc.Email+" is not a user of this service.").write(w, r)
			return
		}
		if strings.EqualFold(u.ID, m.Owner) {
			errInvalid("An item cannot be shared with its owner.").write(w, r)
			return
		}
		users = append(users, u)
	}
	page := wireCollection{Value: []any{}}
	for _, u := range users {
		p := s.grantLocked(d, it, rt.user, u.ID, in.Roles[0])
		page.Value = append(page.Value, s.renderPermissionLocked(r, p))
	}
	writeJSON(w, http.StatusOK, page)
}

type wireCreateLinkIn struct {
	Type               string     `json:"type"`
	Scope              string     `json:"scope"`
	ExpirationDateTime *time.Time `json:"expirationDateTime"`
	Password           string     `json:"password"`
}

func (s *Server) handleCreateLink(w http.ResponseWriter, r *http.Request, rt route) {
	var in wireCreateLinkIn
	if aerr := decodeBody(r, &in, false); aerr != nil {
		aerr.write(w, r)
		return
	}
	role := ""
	switch in.Type {
	case "view":
		role = roleRead
	case "edit":
		role = roleWrite
	default:
		errInvalid(`type must be "view" or "edit".`).write(w, r)
		return
	}
	if in.Password != "" {
		errInvalid("Password-protected links are not supported.").write(w, r)
		return
	}
	w, unlock := s.lockReply(w)
	defer unlock()
	d, it, aerr := s.lookupLocked(rt)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	if it.ParentID == "" {
		errInvalid("The root of a drive cannot be shared.").write(w, r)
		return
	}
	switch in.Scope {
	case "":
		in.Scope = "anonymous"
	case "anonymous", "users":
	case "organization":
		if !s.isBusiness(d) {
			errInvalid("Organization links are only available on Business drives.").write(w, r)
			return
		}
	default:
		errInvalid(`scope must be "anonymous", "organization" or "users".`).write(w, r)
		return
	}
	var expires time.Time
	if in.ExpirationDateTime != nil {
		// Kept to the millisecond, as rendered, so that a client sending
		// back the expiry it was given asks for the same link.
		expires = in.ExpirationDateTime.UTC().Truncate(time.Millisecond)
		if !expires.After(s.now()) {
			errInvalid("expirationDateTime must be in the future.").write(w, r)
			return
		}
	}
	for _, p := range s.sharing.Perms {
		if l := p.Link; l != nil && p.ItemID == it.ID && strings.EqualFold(p.DriveID, d.ID) &&
			l.Type == in.Type && l.Scope == in.Scope && l.Expires.Equal(expires) {
			writeJSON(w, http.StatusOK, s.renderPermissionLocked(r, p))
			return
		}
	}
	p := &permission{ID: "l" + randomToken(8), DriveID: d.ID, ItemID: it.ID, Role: role, GrantedBy: rt.user,
		Link: &shareLink{Type: in.Type, Scope: in.Scope, Token: randomToken(12), Expires: expires}, Created: s.now().UTC()}
	s.sharing.Perms[p.ID] = p
	s.dirty = true
	writeJSON(w, http.StatusCreated, s.renderPermissionLocked(r, p))
}

// linkByShareIDLocked finds the link a share id names: "s!TOKEN", or
// "u!" + unpadded base64url of the link's URL (…/s/TOKEN).
func (s *Server) linkByShareIDLocked(shareID string) *permission {
	var token string
	switch {
	case strings.HasPrefix(shareID, "s!"):
		token = strings.TrimPrefix(shareID, "s!")
	case strings.HasPrefix(shareID, "u!"):
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(strings.TrimPrefix(shareID, "u!"), "="))
		if err != nil {
			return nil
		}
		u, err := url.Parse(string(raw))
		if err != nil {
			return nil
		}
		rest, ok := strings.CutPrefix(u.Path, "/s/")
		if !ok {
			return nil
		}
		token = rest
	default:
		return nil
	}
	for _, p := range s.sharing.Perms {
		if p.Link != nil && p.Link.Token == token {
			return p
		}
	}
	return nil
}

// handleShare serves GET /shares/{id}/driveItem[/content].
func (s *Server) handleShare(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r)
		return
	}
	w, unlock := s.lockReply(w)
	defer unlock()
	p := s.linkByShareIDLocked(rt.rest)
	if p == nil {
		errNotFound().write(w, r)
		return
	}
	if !p.Link.Expires.IsZero() && !s.now().Before(p.Link.Expires) {
		errAccessDenied("The sharing link has expired.").write(w, r)
		return
	}
	d := s.drives[strings.ToLower(p.DriveID)]
	var it *item
	if d != nil {
		it = d.lookupID(p.ItemID)
	}
	if it == nil {
		errNotFound().write(w, r)
		return
	}
	if rt.sub == "content" {
		if it.Folder || it.Remote != nil {
			errInvalid("A folder has no content.").write(w, r)
			return
		}
		w.Header().Set("Location", s.downloadURL(r, d, it))
		w.WriteHeader(http.StatusFound)
		return
	}
	wi := s.buildItem(r, d, it, false)
	wi.ParentReference.Path = "" // not reachable by path through a link
	writeJSON(w, http.StatusOK, applySelect(r, wi))
}

// handleSharedWithMe serves GET /me/drive/sharedWithMe.
func (s *Server) handleSharedWithMe(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r)
		return
	}
	w, unlock := s.lockReply(w)
	defer unlock()
	type entry struct {
		key string
		v   *wireItem
	}
	var entries []entry
	for _, p := range s.sharing.Perms {
		if formsOf(r).SharedWithMeRetired {
			break // the retired endpoint answers, with nothing in it
		}
		if p.Link != nil || !strings.EqualFold(p.GrantedTo, rt.user) {
			continue
		}
		d := s.drives[strings.ToLower(p.DriveID)]
		if d == nil {
			continue
		}
		it := d.lookupID(p.ItemID)
		if it == nil {
			continue
		}
		ri := s.remoteItemLocked(r, remoteRef{DriveID: d.ID, ItemID: it.ID})
		ri.Shared.SharedBy = &s.identityLocked(p.GrantedBy).User
		ri.Shared.SharedDateTime = wireTime(p.Created)
		// The entry has an id of its own, not the item's (as documented):
		// clients must go through remoteItem.
		entries = append(entries, entry{foldName(it.Name) + "\x00" + it.ID, &wireItem{
			ID: "S" + strings.ToUpper(p.ID), Name: it.Name, Size: it.Size, WebURL: ri.WebURL,
			CreatedDateTime: ri.CreatedDateTime, LastModifiedDateTime: ri.LastModifiedDateTime,
			RemoteItem: ri,
		}})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
	page := wireCollection{Value: make([]any, 0, len(entries))}
	for _, e := range entries {
		page.Value = append(page.Value, applySelect(r, e.v))
	}
	writeJSON(w, http.StatusOK, page)
}
