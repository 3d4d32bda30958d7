package graphtest

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// The directory endpoints (docs/graph-contract.md §11): who the caller is,
// which drives they have, SharePoint sites and their document libraries,
// sharing links and what was shared with them.
//
//	GET /me                       the caller: id, displayName, mail, userPrincipalName
//	GET /me/drives                the caller's own drive, then the libraries of the sites they are a member of
//	GET /me/drive/sharedWithMe    shares.go
//	GET /me/followedSites         the sites the caller follows (in the fake: those they are a member of)
//	GET /sites?search=TEXT        sites whose name or title contains TEXT (case-insensitively); no search: 400
//	GET /sites/{id}               one site (404 if unknown)
//	GET /sites/{id}/drive         its default library (a drive of type documentLibrary)
//	GET /sites/{id}/drives        all its libraries
//	GET /shares/{id}/driveItem[/content]   shares.go
//
// Sites are visible to every user (search results are not filtered by
// membership, as sites of an organisation are discoverable), but their
// libraries (/sites/{id}/drive, /drives) are 403 accessDenied to others, and
// the items of a library are readable only by the site's members
// (users.go).

// Directory endpoints, as route.directory.
const (
	dirMe            = "me"
	dirMyDrives      = "me/drives"
	dirSharedWithMe  = "me/drive/sharedWithMe"
	dirSiteSearch    = "sites"
	dirFollowedSites = "me/followedSites"
	dirSite          = "site"
	dirSiteDrive     = "site/drive"
	dirSiteDrives    = "site/drives"
	dirShareItem     = "shares"
)

// Operation names of the directory endpoints (counters, faults).
const (
	opMe            = "me.get"
	opDrivesList    = "drives.list"
	opSharedWithMe  = "sharedWithMe"
	opSitesSearch   = "sites.search"
	opFollowedSites = "sites.followed"
	opSiteGet       = "site.get"
	opSiteDrive     = "site.drive"
	opSharesGet     = "shares.get"
	opPermissions   = "permissions"
	opInvite        = "invite"
	opCreateLink    = "createLink"
)

// parseDirectoryPath recognises the directory endpoints in the escaped
// path after "/v1.0/"; ok is false for every other path.
func parseDirectoryPath(p string) (rt route, ok bool) {
	p = strings.TrimSuffix(p, "/")
	switch p {
	case "me":
		return route{directory: dirMe, op: opMe}, true
	case "me/drives":
		return route{directory: dirMyDrives, op: opDrivesList}, true
	case "me/followedSites":
		return route{directory: dirFollowedSites, op: opFollowedSites}, true
	case "me/drive/sharedWithMe", "drive/sharedWithMe":
		return route{directory: dirSharedWithMe, op: opSharedWithMe}, true
	case "sites":
		return route{directory: dirSiteSearch, op: opSitesSearch}, true
	}
	if rest, found := strings.CutPrefix(p, "sites/"); found {
		id, sub, _ := strings.Cut(rest, "/")
		id, _ = url.PathUnescape(id)
		switch sub {
		case "":
			return route{directory: dirSite, op: opSiteGet, rest: id}, true
		case "drive":
			return route{directory: dirSiteDrive, op: opSiteDrive, rest: id}, true
		case "drives":
			return route{directory: dirSiteDrives, op: opSiteDrive, rest: id}, true
		}
		return route{}, false
	}
	if rest, found := strings.CutPrefix(p, "shares/"); found {
		id, sub, _ := strings.Cut(rest, "/")
		id, _ = url.PathUnescape(id)
		switch sub {
		case "driveItem":
			return route{directory: dirShareItem, op: opSharesGet, rest: id}, true
		case "driveItem/content":
			return route{directory: dirShareItem, op: opSharesGet, rest: id, sub: "content"}, true
		}
	}
	return route{}, false
}

// sharingOp names the operation of an item's sharing sub-resource.
func sharingOp(sub string) string {
	switch {
	case sub == "permissions" || strings.HasPrefix(sub, "permissions/"):
		return opPermissions
	case sub == "invite":
		return opInvite
	case sub == "createLink":
		return opCreateLink
	}
	return opUnknown
}

// serveDirectory serves an authenticated directory request.
func (s *Server) serveDirectory(w http.ResponseWriter, r *http.Request, rt route) {
	switch rt.directory {
	case dirSharedWithMe:
		s.handleSharedWithMe(w, r, rt)
		return
	case dirShareItem:
		s.handleShare(w, r, rt)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r)
		return
	}
	w, unlock := s.lockReply(w)
	defer unlock()
	switch rt.directory {
	case dirMe:
		u := s.sharing.Users[strings.ToLower(rt.user)]
		if u == nil {
			errNotFound().write(w, r)
			return
		}
		writeJSON(w, http.StatusOK, applySelect(r, wireUser{ID: u.ID, DisplayName: u.DisplayName, Mail: u.Email, UserPrincipalName: u.Email}))
	case dirMyDrives:
		page := wireCollection{Value: []any{}}
		if d := s.drives[strings.ToLower(s.userDriveLocked(rt.user))]; d != nil {
			page.Value = append(page.Value, applySelect(r, s.buildDrive(d)))
		}
		for _, site := range s.sortedSitesLocked() {
			if !s.isSiteMember(rt.user, &driveMeta{Site: site.ID}) {
				continue
			}
			for _, id := range site.DriveIDs {
				if d := s.drives[strings.ToLower(id)]; d != nil {
					page.Value = append(page.Value, applySelect(r, s.buildDrive(d)))
				}
			}
		}
		writeJSON(w, http.StatusOK, page)
	case dirFollowedSites:
		page := wireCollection{Value: []any{}}
		for _, site := range s.sortedSitesLocked() {
			if s.isSiteMember(rt.user, &driveMeta{Site: site.ID}) {
				page.Value = append(page.Value, applySelect(r, s.renderSite(r, site)))
			}
		}
		writeJSON(w, http.StatusOK, page)
	case dirSiteSearch:
		q := r.URL.Query()
		if !q.Has("search") {
			errInvalid("Listing sites needs ?search=.").write(w, r)
			return
		}
		text := strings.ToLower(strings.Trim(q.Get("search"), "\"'"))
		page := wireCollection{Value: []any{}}
		for _, site := range s.sortedSitesLocked() {
			if strings.Contains(strings.ToLower(site.Name), text) || strings.Contains(strings.ToLower(site.DisplayName), text) {
				page.Value = append(page.Value, applySelect(r, s.renderSite(r, site)))
			}
		}
		writeJSON(w, http.StatusOK, page)
	default:
		site := s.sharing.Sites[strings.ToLower(rt.rest)]
		if site == nil {
			errNotFound().write(w, r)
			return
		}
		if rt.directory != dirSite && !s.isSiteMember(rt.user, &driveMeta{Site: site.ID}) {
			errAccessDenied("Only the site's members can open its libraries.").write(w, r)
			return
		}
		switch rt.directory {
		case dirSite:
			writeJSON(w, http.StatusOK, applySelect(r, s.renderSite(r, site)))
		case dirSiteDrive:
			d := s.drives[strings.ToLower(site.DriveIDs[0])]
			writeJSON(w, http.StatusOK, applySelect(r, s.buildDrive(d)))
		case dirSiteDrives:
			page := wireCollection{Value: []any{}}
			for _, id := range site.DriveIDs {
				if d := s.drives[strings.ToLower(id)]; d != nil {
					page.Value = append(page.Value, applySelect(r, s.buildDrive(d)))
				}
			}
			writeJSON(w, http.StatusOK, page)
		}
	}
}

func (s *Server) sortedSitesLocked() []*fakeSite {
	out := make([]*fakeSite, 0, len(s.sharing.Sites))
	for _, st := range s.sharing.Sites {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

type wireUser struct {
	ID                string `json:"id"`
	DisplayName       string `json:"displayName"`
	Mail              string `json:"mail,omitempty"`
	UserPrincipalName string `json:"userPrincipalName,omitempty"`
}

type wireSite struct {
	ID                   string `json:"id"`
	Name                 string `json:"name"`
	DisplayName          string `json:"displayName"`
	WebURL               string `json:"webUrl"`
	CreatedDateTime      string `json:"createdDateTime"`
	LastModifiedDateTime string `json:"lastModifiedDateTime"`
}

func (s *Server) renderSite(r *http.Request, site *fakeSite) wireSite {
	return wireSite{ID: site.ID, Name: site.Name, DisplayName: site.DisplayName,
		WebURL:          base(r) + "/sites/" + url.PathEscape(site.Name),
		CreatedDateTime: wireTime(site.Created), LastModifiedDateTime: wireTime(site.Created)}
}
