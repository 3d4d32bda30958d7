package graphtest

import (
	"net/http"
	"strings"
	"time"
)

// Control endpoints for users, sites and shares (users.go), under /_fake/
// like the rest of the control API (control.go).

func directoryControlEndpoints() []controlEndpoint {
	return []controlEndpoint{
		{"GET", "/_fake/users", "the users: id, displayName, email, driveId"},
		{"POST", "/_fake/users", "add a user with a drive of their own: {id?, displayName?, email?, driveType?}"},
		{"POST", "/_fake/users/{id}/tokens", "issue an access token of that user"},
		{"GET", "/_fake/sites", "the SharePoint sites and their libraries"},
		{"POST", "/_fake/sites", "add a site: {name, displayName?, members: [user], libraries: [name]}"},
		{"POST", "/_fake/shares", "share an item: {owner?, path, with, role: read|write, shortcut?: name in the recipient's root}"},
		{"DELETE", "/_fake/shares/{permissionId}", "remove a share or a link"},
		{"POST", "/_fake/folders?drive=ID&path=/a/b", "create a folder (and its parents) in any drive"},
		{"PUT", "/_fake/files?drive=ID&path=/a/b", "store the body as the file at path in any drive"},
	}
}

// serveDirectoryControl serves the endpoints above; it reports whether path
// was one of them.
func (s *Server) serveDirectoryControl(w http.ResponseWriter, r *http.Request, path string) bool {
	method := r.Method
	switch {
	case path == "users" && method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"users": s.Users()})
	case path == "users" && method == http.MethodPost:
		var o UserOptions
		if !readControlBody(w, r, &o) {
			return true
		}
		u, err := s.AddUser(o)
		if err != nil {
			controlFail(w, http.StatusBadRequest, err.Error())
			return true
		}
		writeJSON(w, http.StatusCreated, u)
	case strings.HasPrefix(path, "users/") && strings.HasSuffix(path, "/tokens") && method == http.MethodPost:
		id := strings.TrimSuffix(strings.TrimPrefix(path, "users/"), "/tokens")
		tok, err := s.IssueTokenFor(id)
		if err != nil {
			controlFail(w, http.StatusNotFound, err.Error())
			return true
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"token_type":   "Bearer",
			"access_token": tok,
			"expires_in":   int64(s.AuthOptions().TokenLifetime / time.Second),
		})
	case path == "sites" && method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"sites": s.Sites()})
	case path == "sites" && method == http.MethodPost:
		var o SiteOptions
		if !readControlBody(w, r, &o) {
			return true
		}
		site, err := s.AddSite(o)
		if err != nil {
			controlFail(w, http.StatusBadRequest, err.Error())
			return true
		}
		writeJSON(w, http.StatusCreated, site)
	case path == "shares" && method == http.MethodPost:
		var o ShareOptions
		if !readControlBody(w, r, &o) {
			return true
		}
		sh, err := s.Share(o)
		if err != nil {
			controlFail(w, http.StatusBadRequest, err.Error())
			return true
		}
		writeJSON(w, http.StatusCreated, sh)
	case strings.HasPrefix(path, "shares/") && method == http.MethodDelete:
		if err := s.Revoke(strings.TrimPrefix(path, "shares/")); err != nil {
			controlFail(w, http.StatusNotFound, err.Error())
			return true
		}
		w.WriteHeader(http.StatusNoContent)
	case path == "folders" && method == http.MethodPost:
		q := r.URL.Query()
		id, err := s.MkdirAllIn(q.Get("drive"), q.Get("path"))
		if err != nil {
			controlFail(w, http.StatusBadRequest, err.Error())
			return true
		}
		writeJSON(w, http.StatusCreated, map[string]string{"id": id})
	case path == "files" && method == http.MethodPut:
		q := r.URL.Query()
		id, err := s.PutReaderIn(q.Get("drive"), q.Get("path"), r.Body, time.Time{})
		if err != nil {
			controlFail(w, http.StatusBadRequest, err.Error())
			return true
		}
		writeJSON(w, http.StatusCreated, map[string]string{"id": id})
	case path == "users" || strings.HasPrefix(path, "users/") || path == "sites" ||
		path == "shares" || strings.HasPrefix(path, "shares/") || path == "folders" || path == "files":
		controlFail(w, http.StatusMethodNotAllowed, "method "+method+" not allowed on /_fake/"+path)
	default:
		return false
	}
	return true
}
