package remote

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Beyond the user's own drive (docs/graph-contract.md §11): who is signed
// in, the drives they reach (their own, SharePoint libraries), what others
// shared with them, shortcuts, permissions and sharing links. Items of
// another drive are reached with OnDrive(driveID) and the usual methods.

// Role is what a user may do with an item: read, write, or (the drive's
// owner) everything.
type Role string

const (
	RoleNone  Role = ""
	RoleRead  Role = "read"
	RoleWrite Role = "write"
	RoleOwner Role = "owner"
)

func (r Role) rank() int {
	switch r {
	case RoleRead:
		return 1
	case RoleWrite:
		return 2
	case RoleOwner:
		return 3
	}
	return 0
}

// CanWrite reports whether the role allows changes.
func (r Role) CanWrite() bool { return r.rank() >= RoleWrite.rank() }

// User is the signed-in user.
type User struct {
	ID, DisplayName, Email string
}

// Site is a SharePoint site.
type Site struct {
	ID, Name, DisplayName, WebURL string
}

// Identity is a user (or group) a permission names.
type Identity struct {
	ID, DisplayName, Email string
}

// Permission is one way an item is shared: a grant to a user (GrantedTo) or
// a sharing link (Link). Role is the best of its roles.
type Permission struct {
	ID        string
	Role      Role
	GrantedTo *Identity
	// InheritedFromID is the id of the ancestor the permission was given
	// on; "" when it was given on the item itself.
	InheritedFromID string
	Link            *SharingLink
	// ShareID resolves a link (ResolveShare); "" for grants.
	ShareID string
	// Expires is when a link stops working; zero for never.
	Expires time.Time
}

// SharingLink is a link anyone holding it can open (per its scope).
type SharingLink struct {
	Type   LinkType
	Scope  string // anonymous, organization or users
	WebURL string
}

// LinkType is the kind of a sharing link.
type LinkType string

const (
	LinkView LinkType = "view"
	LinkEdit LinkType = "edit"
)

// LinkRequest asks for a sharing link. Scope "" is the service's default
// (anonymous); a zero Expires is a link that does not expire.
type LinkRequest struct {
	Type    LinkType
	Scope   string
	Expires time.Time
}

// meCache holds the signed-in user once known.
type meCache struct {
	mu   sync.Mutex
	user *User // GUARDED_BY(mu)
}

// Me returns the signed-in user (asked once, then remembered).
func (c *Client) Me(ctx context.Context) (*User, error) {
	c.me.mu.Lock()
	u := c.me.user
	c.me.mu.Unlock()
	if u != nil {
		return u, nil
	}
	var w wireUser
	if err := c.getJSON(ctx, "get me", c.graphBase.String()+"/me", &w); err != nil {
		return nil, err
	}
	email := w.Mail
	if email == "" {
		email = w.UserPrincipalName
	}
	u = &User{ID: w.ID, DisplayName: w.DisplayName, Email: email}
	c.me.mu.Lock()
	c.me.user = u
	c.me.mu.Unlock()
	return u, nil
}

// Drives lists the drives of the signed-in user (GET /me/drives): their own
// drive and, on Business accounts, the libraries they belong to.
func (c *Client) Drives(ctx context.Context) ([]*Drive, error) {
	return c.driveList(ctx, "list drives", c.graphBase.String()+"/me/drives")
}

// SearchSites lists the SharePoint sites whose name or title matches text
// (GET /sites?search=).
func (c *Client) SearchSites(ctx context.Context, text string) ([]*Site, error) {
	u := c.graphBase.String() + "/sites?search=" + url.QueryEscape(text)
	var sites []*Site
	err := collect(ctx, c, "search sites", u, func(w *wireSite) {
		sites = append(sites, &Site{ID: w.ID, Name: w.Name, DisplayName: w.DisplayName, WebURL: w.WebURL})
	})
	return sites, err
}

// FollowedSites lists the SharePoint sites the signed-in user follows
// (GET /me/followedSites).
func (c *Client) FollowedSites(ctx context.Context) ([]*Site, error) {
	var sites []*Site
	err := collect(ctx, c, "followed sites", c.graphBase.String()+"/me/followedSites", func(w *wireSite) {
		sites = append(sites, &Site{ID: w.ID, Name: w.Name, DisplayName: w.DisplayName, WebURL: w.WebURL})
	})
	return sites, err
}

// SiteDrive returns a site's default document library.
func (c *Client) SiteDrive(ctx context.Context, siteID string) (*Drive, error) {
	var w wireDrive
	if err := c.getJSON(ctx, "get site drive", c.siteURL(siteID)+"/drive", &w); err != nil {
		return nil, err
	}
	return w.toDrive(), nil
}

// SiteDrives lists all document libraries of a site.
func (c *Client) SiteDrives(ctx context.Context, siteID string) ([]*Drive, error) {
	return c.driveList(ctx, "list site drives", c.siteURL(siteID)+"/drives")
}

func (c *Client) siteURL(siteID string) string {
	return c.graphBase.String() + "/sites/" + escapeSegment(siteID)
}

func (c *Client) driveList(ctx context.Context, op, u string) ([]*Drive, error) {
	var drives []*Drive
	err := collect(ctx, c, op, u, func(w *wireDrive) { drives = append(drives, w.toDrive()) })
	return drives, err
}

// SharedWithMe lists the items others shared with the signed-in user
// (GET /me/drive/sharedWithMe), whether or not they were added as
// shortcuts. Each has RemoteDriveID and RemoteID set: use those, not ID
// (the entry's own id, which is not the item's). Microsoft deprecated this
// endpoint and announced it would stop returning data after November 2026:
// an empty list does not mean that nothing is shared.
func (c *Client) SharedWithMe(ctx context.Context) ([]*Item, error) {
	var items []*Item
	err := collect(ctx, c, "shared with me", c.graphBase.String()+"/me/drive/sharedWithMe", func(w *wireItem) {
		it := w.toItem()
		it.Shortcut = false // an entry of the list, not an item of the user's drive
		items = append(items, it)
	})
	return items, err
}

// AddShortcut adds, in folder parentID of this drive, a shortcut named name
// to the item remoteID of drive remoteDriveID ("Add shortcut to My files").
// An empty name keeps the item's own. The service accepts shortcuts only
// in the root of the user's own drive, and only to items shared with the
// user by invitation (not through a link).
func (c *Client) AddShortcut(ctx context.Context, parentID, name, remoteDriveID, remoteID string, cb ConflictBehavior) (*Item, error) {
	if name != "" {
		if err := checkName("add shortcut", name); err != nil {
			return nil, err
		}
	}
	body := wireCreateShortcut{Name: name, ConflictBehavior: string(cb),
		RemoteItem: wireRemoteTarget{ID: remoteID, ParentReference: wireItemRef{DriveID: remoteDriveID}}}
	r, err := jsonRequest("add shortcut", http.MethodPost, c.itemURL(parentID)+"/children", body, notRepeatable)
	if err != nil {
		return nil, err
	}
	var w wireItem
	if err := c.callJSON(ctx, r, &w); err != nil {
		return nil, err
	}
	return w.toItem(), nil
}

// RemoteTarget returns the item a shared-in item (a shortcut, or an entry of
// SharedWithMe) points at, read from its own drive, with Role set to the
// signed-in user's role on it.
func (c *Client) RemoteTarget(ctx context.Context, shared *Item) (*Item, error) {
	if shared.RemoteDriveID == "" || shared.RemoteID == "" {
		return nil, fmt.Errorf("%w: remote target: %q is not a shared item", ErrNotSupported, shared.Name)
	}
	rc := c.OnDrive(shared.RemoteDriveID)
	it, err := rc.Item(ctx, shared.RemoteID)
	if err != nil {
		return nil, err
	}
	if it.Role, err = rc.MyRole(ctx, it.ID); err != nil {
		return nil, err
	}
	return it, nil
}

// MyRole returns the signed-in user's role on an item of this drive, from
// its permissions: RoleOwner on the user's own items, else the best role
// granted to them (on the item or an ancestor); RoleNone when no
// permission names them (e.g. access through a SharePoint site's
// membership that the service does not list).
func (c *Client) MyRole(ctx context.Context, itemID string) (Role, error) {
	me, err := c.Me(ctx)
	if err != nil {
		return RoleNone, err
	}
	perms, err := c.Permissions(ctx, itemID)
	if err != nil {
		return RoleNone, err
	}
	best := RoleNone
	for _, p := range perms {
		if p.GrantedTo != nil && strings.EqualFold(p.GrantedTo.ID, me.ID) && p.Role.rank() > best.rank() {
			best = p.Role
		}
	}
	return best, nil
}

// Permissions lists the permissions of an item of this drive that the
// signed-in user may see.
func (c *Client) Permissions(ctx context.Context, itemID string) ([]*Permission, error) {
	var perms []*Permission
	err := collect(ctx, c, "list permissions", c.itemURL(itemID)+"/permissions", func(w *wirePermission) {
		perms = append(perms, w.toPermission())
	})
	return perms, err
}

// Invite shares an item of this drive with users, by email, with role read
// or write. No mail is sent; the users must sign in to use it.
func (c *Client) Invite(ctx context.Context, itemID string, emails []string, role Role) ([]*Permission, error) {
	if role != RoleRead && role != RoleWrite {
		return nil, fmt.Errorf("remote: invite: role must be read or write, not %q", role)
	}
	if len(emails) == 0 {
		return nil, errors.New("remote: invite: no recipients")
	}
	body := wireInvite{Roles: []string{string(role)}, RequireSignIn: true}
	for _, e := range emails {
		body.Recipients = append(body.Recipients, wireRecipient{Email: e})
	}
	// Repeating an invitation grants nothing new: safe to repeat.
	r, err := jsonRequest("invite", http.MethodPost, c.itemURL(itemID)+"/invite", body, repeatable)
	if err != nil {
		return nil, err
	}
	var page struct {
		Value []wirePermission `json:"value"`
	}
	if err := c.callJSON(ctx, r, &page); err != nil {
		return nil, err
	}
	out := make([]*Permission, len(page.Value))
	for i := range page.Value {
		out[i] = page.Value[i].toPermission()
	}
	return out, nil
}

// CreateLink creates a sharing link to an item of this drive, or returns the
// identical link that exists already. It needs write access: on a read-only
// share the service answers 403 (ErrForbidden). The link's WebURL is a
// credential for whoever holds it.
func (c *Client) CreateLink(ctx context.Context, itemID string, lr LinkRequest) (*Permission, error) {
	if lr.Type != LinkView && lr.Type != LinkEdit {
		return nil, fmt.Errorf("remote: create link: type must be view or edit, not %q", lr.Type)
	}
	body := wireCreateLink{Type: string(lr.Type), Scope: lr.Scope}
	if !lr.Expires.IsZero() {
		body.ExpirationDateTime = &wireTime{lr.Expires}
	}
	// The service returns the existing link to a repeated request.
	r, err := jsonRequest("create link", http.MethodPost, c.itemURL(itemID)+"/createLink", body, repeatable)
	if err != nil {
		return nil, err
	}
	var w wirePermission
	if err := c.callJSON(ctx, r, &w); err != nil {
		return nil, err
	}
	if w.Link == nil || w.Link.WebURL == "" {
		return nil, fmt.Errorf("%w: create link: the reply has no link", ErrNotSupported)
	}
	return w.toPermission(), nil
}

// ResolveShare returns the item a sharing link (its URL, or a share id)
// points at (GET /shares/{id}/driveItem).
func (c *Client) ResolveShare(ctx context.Context, link string) (*Item, error) {
	return c.getItem(ctx, "resolve share", c.graphBase.String()+"/shares/"+escapeSegment(ShareID(link))+"/driveItem")
}

// ShareID is the id under which /shares/ knows a sharing link: the link's
// URL encoded as "u!" + unpadded base64url; a value that already is a share
// id ("u!…", "s!…") is returned as is.
func ShareID(link string) string {
	if strings.HasPrefix(link, "u!") || strings.HasPrefix(link, "s!") {
		return link
	}
	return "u!" + base64.RawURLEncoding.EncodeToString([]byte(link))
}

func (w *wirePermission) toPermission() *Permission {
	p := &Permission{ID: w.ID, ShareID: w.ShareID, Expires: w.ExpirationDateTime.Time}
	for _, r := range w.Roles {
		if role := Role(r); role.rank() > p.Role.rank() {
			p.Role = role
		}
	}
	g := w.GrantedToV2
	if g == nil || g.User == nil {
		g = w.GrantedTo
	}
	if g != nil && g.User != nil {
		p.GrantedTo = &Identity{ID: g.User.ID, DisplayName: g.User.DisplayName, Email: g.User.Email}
	}
	if w.InheritedFrom != nil {
		p.InheritedFromID = w.InheritedFrom.ID
	}
	if l := w.Link; l != nil {
		p.Link = &SharingLink{Type: LinkType(l.Type), Scope: l.Scope, WebURL: l.WebURL}
	}
	return p
}

// collect GETs a collection and its following pages, decoding each value
// as a T and handing it to fn.
func collect[T any](ctx context.Context, c *Client, op, u string, fn func(*T)) error {
	for u != "" {
		var page struct {
			Value    []T    `json:"value"`
			NextLink string `json:"@odata.nextLink"`
		}
		if err := c.getJSON(ctx, op, u, &page); err != nil {
			return err
		}
		for i := range page.Value {
			fn(&page.Value[i])
		}
		if page.NextLink == "" {
			break
		}
		if err := c.sameHost(page.NextLink); err != nil {
			return fmt.Errorf("remote: %s: %w", op, err)
		}
		u = page.NextLink
	}
	return nil
}

// ReachableDrive is a drive the signed-in user can open, and the site whose
// library it is (nil for the user's own drives).
type ReachableDrive struct {
	Drive *Drive
	Site  *Site
}

// ReachableDrives lists the drives the signed-in user can open: their own
// (/me/drives), then the libraries of the sites they follow, then those of
// the sites a search for siteSearch finds ("" for no search). Each drive
// appears once. Sites whose libraries the user may not open are left out.
func (c *Client) ReachableDrives(ctx context.Context, siteSearch string) ([]ReachableDrive, error) {
	own, err := c.Drives(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []ReachableDrive
	add := func(d *Drive, s *Site) {
		if k := strings.ToLower(d.ID); !seen[k] {
			seen[k] = true
			out = append(out, ReachableDrive{Drive: d, Site: s})
		}
	}
	sites, err := c.FollowedSites(ctx)
	if err != nil && !errors.Is(err, ErrNotFound) { // Personal accounts have no sites
		return nil, err
	}
	if siteSearch != "" {
		found, err := c.SearchSites(ctx, siteSearch)
		if err != nil {
			return nil, err
		}
		sites = append(sites, found...)
	}
	// Libraries first mark their drives as a site's, then the user's own
	// drives that are not libraries are added.
	for _, s := range sites {
		libs, err := c.SiteDrives(ctx, s.ID)
		switch {
		case errors.Is(err, ErrForbidden), errors.Is(err, ErrNotFound):
			continue
		case err != nil:
			return nil, err
		}
		for _, d := range libs {
			add(d, s)
		}
	}
	var mine []ReachableDrive
	for _, d := range own {
		if k := strings.ToLower(d.ID); !seen[k] {
			seen[k] = true
			mine = append(mine, ReachableDrive{Drive: d})
		}
	}
	return append(mine, out...), nil
}

// SiteChoiceError is FindSiteDrive's answer when the name matches several
// sites: the caller should ask for one of Candidates by id.
type SiteChoiceError struct {
	Name       string
	Candidates []*Site
}

func (e *SiteChoiceError) Error() string {
	names := make([]string, len(e.Candidates))
	for i, s := range e.Candidates {
		names[i] = fmt.Sprintf("%s (%s)", s.DisplayName, s.ID)
	}
	return fmt.Sprintf("remote: %d sites are called %q: %s", len(e.Candidates), e.Name, strings.Join(names, ", "))
}

// FindSiteDrive finds the SharePoint site called name (its URL name, title
// or id, compared case-insensitively) and returns it with its default
// document library. No such site is an error matching ErrNotFound; several
// are a *SiteChoiceError; a site whose library the user may not open,
// ErrForbidden.
func (c *Client) FindSiteDrive(ctx context.Context, name string) (*Site, *Drive, error) {
	found, err := c.SearchSites(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	var matches []*Site
	for _, s := range found {
		if strings.EqualFold(s.Name, name) || strings.EqualFold(s.DisplayName, name) || strings.EqualFold(s.ID, name) {
			matches = append(matches, s)
		}
	}
	switch len(matches) {
	case 0:
		return nil, nil, fmt.Errorf("%w: no SharePoint site is called %q", ErrNotFound, name)
	case 1:
	default:
		return nil, nil, &SiteChoiceError{Name: name, Candidates: matches}
	}
	d, err := c.SiteDrive(ctx, matches[0].ID)
	if err != nil {
		return nil, nil, err
	}
	return matches[0], d, nil
}
