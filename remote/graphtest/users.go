package graphtest

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Users, drives and who may do what (docs/graph-contract.md §11).
//
// The fake has one default user, who owns the default drive (/me/drive of
// every token issued by IssueToken or a sign-in), and any number of further
// users (AddUser), each with a drive of their own and tokens of their own
// (IssueTokenFor). A token identifies its user: /me/… resolves to that
// user's drive. SharePoint sites (AddSite) own document libraries, which are
// drives of type documentLibrary.
//
// Access to an item of a drive, for a user:
//   - owner: the drive is the user's own;
//   - write: the drive is a library of a site the user is a member of, or a
//     share (invite, Share) with role write on the item or an ancestor;
//   - read: a share with role read on the item or an ancestor;
//   - none otherwise.
//
// Every request on another user's drive is checked: an item the caller has
// no access to is 404 itemNotFound (the service does not reveal what exists),
// a write where the caller may only read is 403 accessDenied. Sharing links
// (createLink) grant nothing on their own: they are resolved through
// /shares/{id}/driveItem.

// Roles, from least to most.
const (
	roleNone  = ""
	roleRead  = "read"
	roleWrite = "write"
	roleOwner = "owner"
)

func roleRank(r string) int {
	switch r {
	case roleRead:
		return 1
	case roleWrite:
		return 2
	case roleOwner:
		return 3
	}
	return 0
}

// Drive types.
const (
	drivePersonal        = "personal"
	driveBusiness        = "business"
	driveDocumentLibrary = "documentLibrary"
)

// sharingState is the fake's directory: users, sites, the owner and type of
// each drive, permissions and sharing links. All fields are guarded by
// Server.mu; the exported ones are saved with the drive (persist.go).
type sharingState struct {
	Users  map[string]*fakeUser   `json:"users"`       // by lower-case id
	Sites  map[string]*fakeSite   `json:"sites"`       // by lower-case id
	Drives map[string]*driveMeta  `json:"drives"`      // by lower-case drive id
	Perms  map[string]*permission `json:"permissions"` // by permission id
}

type fakeUser struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Email       string `json:"email"`
	DriveID     string `json:"driveId"`
}

type fakeSite struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	DisplayName string    `json:"displayName"`
	DriveIDs    []string  `json:"driveIds"` // the first is the default library (/sites/{id}/drive)
	Members     []string  `json:"members"`  // user ids with write access to every library
	Created     time.Time `json:"created"`
}

type driveMeta struct {
	Type  string `json:"type,omitempty"` // "": Options.DriveType
	Name  string `json:"name"`
	Owner string `json:"owner,omitempty"` // user id; "" for a site's library
	Site  string `json:"site,omitempty"`  // site id of a library
}

// permission is a share of one item: a grant to a user (invite) or a
// sharing link (createLink).
type permission struct {
	ID        string     `json:"id"`
	DriveID   string     `json:"driveId"`
	ItemID    string     `json:"itemId"`
	Role      string     `json:"role"`                // read or write
	GrantedTo string     `json:"grantedTo,omitempty"` // user id; "" for a link
	GrantedBy string     `json:"grantedBy,omitempty"` // user id
	Link      *shareLink `json:"link,omitempty"`
	Created   time.Time  `json:"created"`
}

type shareLink struct {
	Type    string    `json:"type"`  // view or edit
	Scope   string    `json:"scope"` // anonymous, organization or users
	Token   string    `json:"token"`
	Expires time.Time `json:"expires,omitzero"`
}

func (st *sharingState) init() {
	if st.Users == nil {
		st.Users = map[string]*fakeUser{}
	}
	if st.Sites == nil {
		st.Sites = map[string]*fakeSite{}
	}
	if st.Drives == nil {
		st.Drives = map[string]*driveMeta{}
	}
	if st.Perms == nil {
		st.Perms = map[string]*permission{}
	}
}

// ensureDefaultUserLocked makes sure the default drive has its owner, the
// default user (whose id, as on Personal accounts, is the drive id).
func (s *Server) ensureDefaultUserLocked() {
	s.sharing.init()
	id := strings.ToLower(s.defaultID)
	if s.sharing.Users[id] == nil {
		s.sharing.Users[id] = &fakeUser{ID: id, DisplayName: "Fake User", Email: "user@example.com", DriveID: s.defaultID}
	}
	// These drives report Options.DriveType (an empty Type), whatever it
	// was when the state was saved.
	for _, d := range append([]string{s.defaultID}, s.opts.OtherDriveIDs...) {
		s.sharing.Drives[strings.ToLower(d)] = &driveMeta{Name: "OneDrive", Owner: id}
	}
}

func (s *Server) defaultUserID() string { return strings.ToLower(s.defaultID) }

// driveMetaLocked returns what is known of a drive's owner and type.
func (s *Server) driveMetaLocked(d *drive) *driveMeta {
	if m := s.sharing.Drives[strings.ToLower(d.ID)]; m != nil {
		return m
	}
	return &driveMeta{Owner: s.defaultUserID()}
}

// driveType is the driveType the service reports for d.
func (s *Server) driveType(d *drive) string {
	if t := s.driveMetaLocked(d).Type; t != "" {
		return t
	}
	return s.opts.DriveType
}

// isBusiness reports whether d answers in the Business forms: folders
// without cTag, delta at the root only.
func (s *Server) isBusiness(d *drive) bool {
	t := s.driveType(d)
	return t == driveBusiness || t == driveDocumentLibrary
}

// callerLocked is the user a Graph request's token belongs to (the default
// user for tokens that name none).
func (s *Server) callerLocked(r *http.Request) string {
	if tok, ok := bearerToken(r); ok {
		if t := s.auth.Access[tok]; t != nil && t.User != "" {
			return t.User
		}
	}
	return s.defaultUserID()
}

// userDriveLocked is the drive /me/drive names for a user.
func (s *Server) userDriveLocked(userID string) string {
	if u := s.sharing.Users[strings.ToLower(userID)]; u != nil {
		return u.DriveID
	}
	return s.defaultID
}

// isSiteMember reports whether user is a member of the site owning d.
func (s *Server) isSiteMember(user string, m *driveMeta) bool {
	site := s.sharing.Sites[strings.ToLower(m.Site)]
	if site == nil {
		return false
	}
	for _, u := range site.Members {
		if strings.EqualFold(u, user) {
			return true
		}
	}
	return false
}

// roleLocked is user's role on it, an item of d: see the file comment.
func (s *Server) roleLocked(user string, d *drive, it *item) string {
	m := s.driveMetaLocked(d)
	if m.Owner != "" && strings.EqualFold(m.Owner, user) {
		return roleOwner
	}
	if m.Site != "" && s.isSiteMember(user, m) {
		return roleWrite
	}
	grants := s.grantsLocked(user, d)
	if len(grants) == 0 {
		return roleNone
	}
	best := roleNone
	for cur := it; cur != nil; cur = d.Items[cur.ParentID] {
		for _, p := range grants {
			if p.ItemID == cur.ID && roleRank(p.Role) > roleRank(best) {
				best = p.Role
			}
		}
		if cur.ParentID == "" {
			break
		}
	}
	return best
}

// grantsLocked returns the grants (not links) to user on items of d.
func (s *Server) grantsLocked(user string, d *drive) []*permission {
	var out []*permission
	for _, p := range s.sharing.Perms {
		if p.Link == nil && strings.EqualFold(p.GrantedTo, user) && strings.EqualFold(p.DriveID, d.ID) {
			out = append(out, p)
		}
	}
	return out
}

// reachesDriveLocked reports whether user may address d at all: owner, site
// member, or holder of a grant on some item of it.
func (s *Server) reachesDriveLocked(user string, d *drive) bool {
	m := s.driveMetaLocked(d)
	if strings.EqualFold(m.Owner, user) || (m.Site != "" && s.isSiteMember(user, m)) {
		return true
	}
	return len(s.grantsLocked(user, d)) > 0
}

// authorizeLocked checks that user may read it (write: change it or add to
// it): 404 itemNotFound without access, 403 accessDenied for a write with
// read access only.
func (s *Server) authorizeLocked(user string, d *drive, it *item, write bool) *apiError {
	role := s.roleLocked(user, d, it)
	switch {
	case role == roleNone:
		return errNotFound()
	case write && roleRank(role) < roleRank(roleWrite):
		return errAccessDenied("The caller has read-only access to this item.")
	}
	return nil
}

func errAccessDenied(message string) *apiError {
	return &apiError{http.StatusForbidden, codeAccessDenied, message, ""}
}

// writes reports whether a Graph request changes what it addresses. A copy
// only reads its source (its destination is checked on its own), and a
// search or delta only reads.
func writes(method, sub string) bool {
	if method == http.MethodGet || method == http.MethodHead {
		return false
	}
	return sub != "copy"
}

// identityLocked is the identity set of a user, or of a site for its
// libraries.
func (s *Server) identityLocked(userID string) *wireIdentitySet {
	if u := s.sharing.Users[strings.ToLower(userID)]; u != nil {
		return &wireIdentitySet{User: wireIdentity{ID: u.ID, DisplayName: u.DisplayName, Email: u.Email}}
	}
	return &wireIdentitySet{User: wireIdentity{ID: userID, DisplayName: userID}}
}

// driveOwnerLocked is the identity set that owns d.
func (s *Server) driveOwnerLocked(d *drive) *wireIdentitySet {
	m := s.driveMetaLocked(d)
	if m.Site != "" {
		if site := s.sharing.Sites[strings.ToLower(m.Site)]; site != nil {
			return &wireIdentitySet{User: wireIdentity{ID: site.ID, DisplayName: site.DisplayName}}
		}
	}
	return s.identityLocked(m.Owner)
}

// UserOptions describe a user to add.
type UserOptions struct {
	// ID of the user and of their drive; empty: a fresh 16-hex id.
	ID string `json:"id"`
	// DisplayName; empty: the id.
	DisplayName string `json:"displayName"`
	// Email, the address invitations name; empty: {id}@example.com.
	Email string `json:"email"`
	// DriveType of their drive: personal or business; empty: whatever
	// Options.DriveType says.
	DriveType string `json:"driveType"`
}

// User is a user of the fake as the control API reports it.
type User struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Email       string `json:"email"`
	DriveID     string `json:"driveId"`
}

var errUnknownUser = errors.New("unknown user")

// AddUser adds a user with an empty drive of their own and returns them.
// An id or email already taken is an error.
func (s *Server) AddUser(o UserOptions) (User, error) {
	if o.DriveType != "" && o.DriveType != drivePersonal && o.DriveType != driveBusiness {
		return User{}, fmt.Errorf("drive type must be personal or business, not %q", o.DriveType)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := strings.ToLower(o.ID)
	if id == "" {
		id = randomToken(8)
	}
	if s.sharing.Users[id] != nil || s.drives[id] != nil {
		return User{}, fmt.Errorf("user or drive %q exists already", id)
	}
	if o.Email == "" {
		o.Email = id + "@example.com"
	}
	if s.userByEmailLocked(o.Email) != nil {
		return User{}, fmt.Errorf("email %q is taken", o.Email)
	}
	if o.DisplayName == "" {
		o.DisplayName = id
	}
	u := &fakeUser{ID: id, DisplayName: o.DisplayName, Email: o.Email, DriveID: id}
	s.drives[id] = s.newDrive(id)
	s.sharing.Users[id] = u
	s.sharing.Drives[id] = &driveMeta{Type: o.DriveType, Name: "OneDrive", Owner: id}
	s.dirty = true
	return u.public(), nil
}

func (u *fakeUser) public() User {
	return User{ID: u.ID, DisplayName: u.DisplayName, Email: u.Email, DriveID: u.DriveID}
}

// Users lists the users, the default one included, by id.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.sharing.Users))
	for _, u := range s.sharing.Users {
		out = append(out, u.public())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *Server) userByEmailLocked(email string) *fakeUser {
	for _, u := range s.sharing.Users {
		if strings.EqualFold(u.Email, email) {
			return u
		}
	}
	return nil
}

// IssueTokenFor returns a valid access token of a user (as IssueToken does
// for the default user).
func (s *Server) IssueTokenFor(userID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.sharing.Users[strings.ToLower(userID)]
	if u == nil {
		return "", fmt.Errorf("%w %q", errUnknownUser, userID)
	}
	tok := s.issueAccessLocked("Files.ReadWrite.All User.Read")
	s.auth.Access[tok].User = u.ID
	return tok, nil
}

// ShareOptions describe a share made by a drive's owner.
type ShareOptions struct {
	// Owner is the user who shares (the owner of the drive holding Path);
	// empty: the default user.
	Owner string `json:"owner"`
	// Path of the item in the owner's drive, e.g. "/Projects/Alpha".
	Path string `json:"path"`
	// With is the user (id or email) it is shared with.
	With string `json:"with"`
	// Role: read or write.
	Role string `json:"role"`
	// Shortcut, when not empty, also adds a shortcut of that name at the
	// root of the recipient's drive ("Add shortcut to My files").
	Shortcut string `json:"shortcut"`
}

// Share is a share as Share reports it.
type Share struct {
	PermissionID string `json:"permissionId"`
	DriveID      string `json:"driveId"`
	ItemID       string `json:"itemId"`
	Role         string `json:"role"`
	With         string `json:"with"`
	ShortcutID   string `json:"shortcutId,omitempty"`
}

// Share shares an item of a user's drive with another user, as the owner's
// invite does, and optionally adds it as a shortcut to the recipient's
// drive. Tests and the demo use it to set up "a folder shared by a second
// user and added as a shortcut" without speaking Graph.
func (s *Server) Share(o ShareOptions) (Share, error) {
	if o.Role != roleRead && o.Role != roleWrite {
		return Share{}, fmt.Errorf("role must be read or write, not %q", o.Role)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	owner := strings.ToLower(o.Owner)
	if owner == "" {
		owner = s.defaultUserID()
	}
	ou := s.sharing.Users[owner]
	if ou == nil {
		return Share{}, fmt.Errorf("%w %q", errUnknownUser, o.Owner)
	}
	to := s.sharing.Users[strings.ToLower(o.With)]
	if to == nil {
		to = s.userByEmailLocked(o.With)
	}
	if to == nil {
		return Share{}, fmt.Errorf("%w %q", errUnknownUser, o.With)
	}
	if to.ID == ou.ID {
		return Share{}, errors.New("an item cannot be shared with its owner")
	}
	d := s.drives[strings.ToLower(ou.DriveID)]
	it, aerr := d.walk(d.Items[d.RootID], splitPath(o.Path))
	if aerr != nil {
		return Share{}, fmt.Errorf("%s: no such item in %s's drive", o.Path, ou.ID)
	}
	if it.ParentID == "" {
		return Share{}, errors.New("the root of a drive cannot be shared")
	}
	p := s.grantLocked(d, it, ou.ID, to.ID, o.Role)
	sh := Share{PermissionID: p.ID, DriveID: d.ID, ItemID: it.ID, Role: p.Role, With: to.ID}
	if o.Shortcut != "" {
		ud := s.drives[strings.ToLower(to.DriveID)]
		if ex := ud.child(ud.Items[ud.RootID], o.Shortcut); ex != nil && ex.Remote != nil &&
			ex.Remote.ItemID == it.ID && strings.EqualFold(ex.Remote.DriveID, d.ID) {
			sh.ShortcutID = ex.ID // already there (a repeated set-up)
			return sh, nil
		}
		sc, aerr := s.addShortcutLocked(to.ID, o.Shortcut, d, it, "fail")
		if aerr != nil {
			return sh, fmt.Errorf("shortcut: %s", aerr.message)
		}
		sh.ShortcutID = sc.ID
	}
	return sh, nil
}

// grantLocked records (or upgrades) a grant of role on it to user to.
func (s *Server) grantLocked(d *drive, it *item, by, to, role string) *permission {
	for _, p := range s.sharing.Perms {
		if p.Link == nil && strings.EqualFold(p.GrantedTo, to) && p.ItemID == it.ID && strings.EqualFold(p.DriveID, d.ID) {
			p.Role = role
			s.dirty = true
			return p
		}
	}
	p := &permission{ID: "p" + randomToken(8), DriveID: d.ID, ItemID: it.ID, Role: role,
		GrantedTo: to, GrantedBy: by, Created: s.now().UTC()}
	s.sharing.Perms[p.ID] = p
	s.dirty = true
	return p
}

// Revoke removes a permission (a grant or a link) by id.
func (s *Server) Revoke(permissionID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sharing.Perms[permissionID] == nil {
		return fmt.Errorf("unknown permission %q", permissionID)
	}
	delete(s.sharing.Perms, permissionID)
	s.dirty = true
	return nil
}

// SiteOptions describe a SharePoint site to add.
type SiteOptions struct {
	// Name is the site's URL name ("marketing"); DisplayName its title
	// (empty: Name).
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	// Members (user ids or emails) may read and write every library.
	Members []string `json:"members"`
	// Libraries are the names of its document libraries; empty:
	// "Documents". The first is the site's default drive.
	Libraries []string `json:"libraries"`
}

// Site is a site as AddSite and Sites report it.
type Site struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	DisplayName string   `json:"displayName"`
	DriveIDs    []string `json:"driveIds"`
	Members     []string `json:"members"`
}

// AddSite adds a SharePoint site with empty document libraries.
func (s *Server) AddSite(o SiteOptions) (Site, error) {
	if o.Name == "" || strings.ContainsAny(o.Name, "/,") {
		return Site{}, fmt.Errorf("site name %q must be non-empty, without / or ,", o.Name)
	}
	if o.DisplayName == "" {
		o.DisplayName = o.Name
	}
	if len(o.Libraries) == 0 {
		o.Libraries = []string{"Documents"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.sharing.Sites {
		if strings.EqualFold(st.Name, o.Name) {
			return Site{}, fmt.Errorf("site %q exists already", o.Name)
		}
	}
	site := &fakeSite{ID: "fake.sharepoint.com," + uuidLike() + "," + uuidLike(),
		Name: o.Name, DisplayName: o.DisplayName, Created: s.now().UTC()}
	for _, m := range o.Members {
		u := s.sharing.Users[strings.ToLower(m)]
		if u == nil {
			u = s.userByEmailLocked(m)
		}
		if u == nil {
			return Site{}, fmt.Errorf("%w %q", errUnknownUser, m)
		}
		site.Members = append(site.Members, u.ID)
	}
	for _, lib := range o.Libraries {
		id := "b!" + randomToken(20)
		s.drives[strings.ToLower(id)] = s.newDrive(id)
		s.sharing.Drives[strings.ToLower(id)] = &driveMeta{Type: driveDocumentLibrary, Name: lib, Site: site.ID}
		site.DriveIDs = append(site.DriveIDs, id)
	}
	s.sharing.Sites[strings.ToLower(site.ID)] = site
	s.dirty = true
	return site.public(), nil
}

func (st *fakeSite) public() Site {
	return Site{ID: st.ID, Name: st.Name, DisplayName: st.DisplayName,
		DriveIDs: append([]string(nil), st.DriveIDs...), Members: append([]string(nil), st.Members...)}
}

// Sites lists the sites by name.
func (s *Server) Sites() []Site {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Site, 0, len(s.sharing.Sites))
	for _, st := range s.sharing.Sites {
		out = append(out, st.public())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// uuidLike is a random id in the 8-4-4-4-12 hex form of a GUID.
func uuidLike() string {
	h := randomToken(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// dropPermissionsLocked forgets the permissions on an item being deleted.
func (s *Server) dropPermissionsLocked(d *drive, itemID string) {
	for id, p := range s.sharing.Perms {
		if p.ItemID == itemID && strings.EqualFold(p.DriveID, d.ID) {
			delete(s.sharing.Perms, id)
		}
	}
}

// businessCopyForms makes the copy monitor answer in the Business forms
// when the default drive is a Business one and the caller chose no form:
// 200 on every poll, running or completed, with the SharePoint-shaped body.
func businessCopyForms(o *Options) {
	if o.DriveType != driveBusiness {
		return
	}
	if o.Copy.MonitorRunningStatus == 0 {
		o.Copy.MonitorRunningStatus = http.StatusOK
	}
	if o.Copy.MonitorStyle == "" {
		o.Copy.MonitorStyle = monitorOK
	}
	if o.Copy.MonitorBody == "" {
		o.Copy.MonitorBody = monitorBodySharePoint
	}
}
