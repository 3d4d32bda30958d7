package graphtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Item handlers (docs/graph-contract.md §3). Choices where the contract leaves
// room:
//   - Create folder (POST …/children): the body needs a folder facet;
//     conflictBehavior from the body (either spelling) or the query, default
//     fail (409 nameAlreadyExists); replace deletes the existing item (to the
//     recycle bin) first; rename picks "name N.ext" with the lowest free N.
//   - PATCH: name, parentReference {id | path, driveId}, fileSystemInfo.
//     conflictBehavior as for folders (default fail; replace only replaces a
//     file). parentReference id "root" → 400 (use the root's real id);
//     another drive → 400; a folder into itself or a descendant → 400; the
//     root itself → 400. A rename or move gives a new eTag, not a new cTag;
//     both parents' chains get new tags.
//   - DELETE → 204, recursive, bytes counted in quota.deleted; POST
//     …/permanentDelete → 204, not counted; the root → 403 accessDenied.
//   - If-Match (PATCH, DELETE, PUT content, createUploadSession) compares
//     the eTag ("*" matches anything) → 412 resourceModified; If-None-Match
//     on GET item/content accepts the eTag or the cTag → 304.
//   - Children: ordered by folded name; $top (default PageSize, capped by
//     MaxPageSize); the nextLink is the request's own URL from the caller's
//     base with $skiptoken (keyset: the folded name of the page's last
//     item), other parameters kept; $skipToken is accepted too. Children
//     of a file: an empty collection. $expand=children embeds the first page
//     (children@odata.nextLink for the rest), with children($select=…)
//     honoured.
//   - Items still hidden by FaultOptions.VisibilityDelay are left out of
//     listings, search and path lookups, but occupy their names.
//
// serveGraph dispatches an authenticated /v1.0/ request by its sub-resource
// and method. Copy and delta are handled in copy.go and delta.go.
func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request, rt route) {
	s.mu.Lock()
	rt.user = s.callerLocked(r)
	s.mu.Unlock()
	rt.write = writes(r.Method, rt.sub)
	if rt.directory != "" {
		s.serveDirectory(w, r, rt)
		return
	}
	if rt.driveOnly {
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r)
			return
		}
		s.handleGetDrive(w, r, rt)
		return
	}
	if !rt.me && rt.driveID == "" {
		errNotFound().write(w, r)
		return
	}
	if !rt.rootBase && rt.itemID == "" {
		errInvalid("Invalid request: the path does not address an item.").write(w, r)
		return
	}
	type handler func(http.ResponseWriter, *http.Request, route)
	var h handler
	switch rt.sub + " " + r.Method {
	case " GET", " HEAD":
		h = s.handleGetItem
	case " PATCH":
		h = s.handlePatch
	case " DELETE":
		h = s.handleDelete
	case "children GET":
		h = s.handleListChildren
	case "children POST":
		h = s.handleCreateFolder
	case "content GET", "content HEAD":
		h = s.handleGetContent
	case "content PUT":
		h = s.handlePutContent
	case "createUploadSession POST":
		h = s.handleCreateUploadSession
	case "copy POST":
		h = s.handleCopy
	case "delta GET":
		h = s.handleDelta
	case "search GET":
		h = s.handleSearch
	case "permanentDelete POST":
		h = s.handlePermanentDelete
	default:
		if h := s.sharingHandler(rt.sub, r.Method); h != nil {
			h(w, r, rt)
			return
		}
		switch rt.sub {
		case "", "children", "content", "createUploadSession", "copy", "delta", "search", "permanentDelete":
			methodNotAllowed(w, r)
		default:
			errInvalid("Invalid request: unknown segment "+strconv.Quote(rt.sub)+".").write(w, r)
		}
		return
	}
	h(w, r, rt)
}

// lockReply takes s.mu for a handler that answers with a small JSON body
// built from the store: the handler writes to the returned buffer, and
// unlock releases s.mu and only then sends the buffered answer, so that a
// slow client never holds the lock.
func (s *Server) lockReply(w http.ResponseWriter) (http.ResponseWriter, func()) {
	buf := &replyBuffer{header: http.Header{}}
	s.mu.Lock()
	return buf, func() {
		s.mu.Unlock()
		buf.send(w)
	}
}

// replyBuffer is an http.ResponseWriter that keeps the answer in memory.
type replyBuffer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *replyBuffer) Header() http.Header { return b.header }

func (b *replyBuffer) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *replyBuffer) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

func (b *replyBuffer) send(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, http.StatusMethodNotAllowed, codeInvalidRequest, "The HTTP method is not allowed on this resource.", "")
}

// lookupLocked resolves the drive and item of a route. Called with s.mu held.
func (s *Server) lookupLocked(rt route) (*drive, *item, *apiError) {
	d, aerr := s.driveFor(rt)
	if aerr != nil {
		return nil, nil, aerr
	}
	it, aerr := s.resolve(d, rt)
	if aerr != nil {
		return nil, nil, aerr
	}
	return d, it, nil
}

// matchesETag reports whether an If-Match header value names it: "*", or
// one of a comma-separated list equal to its eTag (quotes optional).
func matchesETag(header string, it *item) bool {
	return matchesTag(header, it, false)
}

// matchesTag is matchesETag that also accepts the cTag when withCTag
// (If-None-Match, which clients send with either tag).
func matchesTag(header string, it *item, withCTag bool) bool {
	for _, v := range splitTags(header) {
		v = strings.TrimSpace(v)
		v = strings.TrimPrefix(v, "W/")
		if v == "*" {
			return true
		}
		v = strings.Trim(v, "\"")
		if v == strings.Trim(it.eTag(), "\"") || (withCTag && v == strings.Trim(it.cTag(), "\"")) {
			return true
		}
	}
	return false
}

// splitTags splits a list of entity tags on the commas outside quotes (the
// service's eTags contain a comma: "{ID},3").
func splitTags(h string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(h); i++ {
		switch h[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, h[start:i])
				start = i + 1
			}
		}
	}
	return append(out, h[start:])
}

// checkIfMatch answers 412 when an If-Match header does not name it.
func checkIfMatch(r *http.Request, it *item) *apiError {
	if h := r.Header.Get("If-Match"); h != "" && (it == nil || !matchesETag(h, it)) {
		return errModified()
	}
	return nil
}

// parseConflict validates a conflictBehavior value; def is used for "".
func parseConflict(v, def string) (string, *apiError) {
	switch strings.ToLower(v) {
	case "":
		return def, nil
	case "fail":
		return "fail", nil
	case "replace":
		return "replace", nil
	case "rename":
		return "rename", nil
	}
	return "", errInvalid("Invalid conflictBehavior " + strconv.Quote(v) + ".")
}

// decodeBody decodes a JSON request body into v; an empty body is allowed
// when optional.
func decodeBody(r *http.Request, v any, optional bool) *apiError {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return errInvalid("Could not read the request body.")
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		if optional {
			return nil
		}
		return errInvalid("A request body is required.")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return errInvalid("Invalid request body: " + err.Error())
	}
	return nil
}

func (s *Server) handleGetDrive(w http.ResponseWriter, r *http.Request, rt route) {
	s.mu.Lock()
	d, aerr := s.driveFor(rt)
	if aerr != nil {
		s.mu.Unlock()
		aerr.write(w, r)
		return
	}
	body := s.buildDrive(d)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, applySelect(r, body))
}

// expandChildren parses $expand: whether children are expanded, and the
// $select given for them as in `children($select=id,name)`.
func expandChildren(r *http.Request) (bool, string) {
	q := r.URL.Query()
	v := q.Get("$expand")
	if v == "" {
		v = q.Get("expand")
	}
	for _, part := range splitTopLevel(v) {
		part = strings.TrimSpace(part)
		if part == "children" {
			return true, ""
		}
		if rest, ok := strings.CutPrefix(part, "children("); ok {
			rest = strings.TrimSuffix(rest, ")")
			for _, opt := range strings.Split(rest, ";") {
				if k, val, ok := strings.Cut(opt, "="); ok && strings.TrimPrefix(strings.TrimSpace(k), "$") == "select" {
					return true, val
				}
			}
			return true, ""
		}
	}
	return false, ""
}

// splitTopLevel splits on commas outside parentheses.
func splitTopLevel(v string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range v {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	if start < len(v) {
		out = append(out, v[start:])
	}
	return out
}

func (s *Server) handleGetItem(w http.ResponseWriter, r *http.Request, rt route) {
	w, unlock := s.lockReply(w)
	defer unlock()
	d, it, aerr := s.lookupLocked(rt)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	if h := r.Header.Get("If-None-Match"); h != "" && matchesTag(h, it, true) {
		w.Header().Set("ETag", it.eTag())
		w.WriteHeader(http.StatusNotModified)
		return
	}
	wi := s.buildItem(r, d, it, false)
	if ok, childSel := expandChildren(r); ok && it.Folder {
		kids := d.sortedChildren(it)
		n := min(len(kids), s.opts.PageSize)
		cr := r
		if childSel != "" {
			cr = r.Clone(r.Context())
			cr.URL.RawQuery = url.Values{"$select": {childSel}}.Encode()
		} else {
			cr = r.Clone(r.Context())
			cr.URL.RawQuery = ""
		}
		list := make([]any, 0, n)
		for _, c := range kids[:n] {
			if !s.hiddenLocked(c) {
				list = append(list, s.renderItem(cr, d, c, false))
			}
		}
		wi.Children = &list
		if n < len(kids) {
			wi.ChildrenNextLink = base(r) + "/v1.0/drives/" + url.PathEscape(d.ID) + "/items/" +
				url.PathEscape(it.ID) + "/children?$skiptoken=" + skipToken(foldName(kids[n-1].Name))
		}
	}
	w.Header().Set("ETag", it.eTag())
	writeJSON(w, http.StatusOK, applySelect(r, wi))
}

// skipToken encodes the folded name of the last item of a page; the next
// page starts after it (keyset paging, stable under concurrent inserts).
func skipToken(lastKey string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(lastKey))
}

// pageParams reads $top and $skiptoken ($skipToken).
func (s *Server) pageParams(r *http.Request) (top int, after string, has bool, aerr *apiError) {
	q := r.URL.Query()
	top = s.opts.PageSize
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return 0, "", false, errInvalid("Invalid $top value.")
		}
		top = min(n, s.opts.MaxPageSize)
	}
	tok := q.Get("$skiptoken")
	if tok == "" {
		tok = q.Get("$skipToken")
	}
	if tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return 0, "", false, errInvalid("Invalid $skiptoken.")
		}
		return top, string(b), true, nil
	}
	return top, "", false, nil
}

// nextLink is the request's own URL (absolute, from the caller's base) with
// $skiptoken set to tok and every other query parameter kept.
func nextLink(r *http.Request, tok string) string {
	var kept []string
	for _, p := range strings.Split(r.URL.RawQuery, "&") {
		k, _, _ := strings.Cut(p, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			dk = k
		}
		if p == "" || strings.EqualFold(dk, "$skiptoken") {
			continue
		}
		kept = append(kept, p)
	}
	kept = append(kept, "$skiptoken="+tok)
	return base(r) + r.URL.EscapedPath() + "?" + strings.Join(kept, "&")
}

func (s *Server) handleListChildren(w http.ResponseWriter, r *http.Request, rt route) {
	top, after, hasAfter, aerr := s.pageParams(r)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	w, unlock := s.lockReply(w)
	defer unlock()
	d, it, aerr := s.lookupLocked(rt)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	if !it.Folder {
		// The service answers an empty collection for a file's children.
		writeJSON(w, http.StatusOK, wireCollection{Value: []any{}})
		return
	}
	keys := make([]string, 0, len(it.children))
	for k := range it.children {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	start := 0
	if hasAfter {
		start = sort.SearchStrings(keys, after)
		if start < len(keys) && keys[start] == after {
			start++
		}
	}
	end := min(start+top, len(keys))
	page := wireCollection{Value: make([]any, 0, end-start)}
	for _, k := range keys[start:end] {
		if c := d.Items[it.children[k]]; !s.hiddenLocked(c) {
			page.Value = append(page.Value, s.renderItem(r, d, c, false))
		}
	}
	if end < len(keys) {
		page.NextLink = nextLink(r, skipToken(keys[end-1]))
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) handleCreateFolder(w http.ResponseWriter, r *http.Request, rt route) {
	var in wireItemIn
	if aerr := decodeBody(r, &in, false); aerr != nil {
		aerr.write(w, r)
		return
	}
	if in.RemoteItem != nil && in.Folder == nil {
		s.handleCreateShortcut(w, r, rt, &in)
		return
	}
	if in.Name == nil {
		errInvalid("The name of the item is missing.").write(w, r)
		return
	}
	if in.Folder == nil {
		errInvalid("Only folders can be created this way: the body needs a folder facet.").write(w, r)
		return
	}
	behavior, aerr := in.conflictBehavior(r, "fail")
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	w, unlock := s.lockReply(w)
	defer unlock()
	d, parent, aerr := s.lookupLocked(rt)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	if !parent.Folder || parent.Remote != nil {
		errInvalid("The parent of a new folder must be a folder.").write(w, r)
		return
	}
	name := *in.Name
	if aerr := s.checkNewPath(d, parent, name); aerr != nil {
		aerr.write(w, r)
		return
	}
	if existing := d.child(parent, name); existing != nil {
		switch behavior {
		case "fail":
			errNameExists(name).write(w, r)
			return
		case "replace":
			s.remove(d, existing, true)
		case "rename":
			name = d.uniqueName(parent, name)
			if aerr := s.checkNewPath(d, parent, name); aerr != nil {
				aerr.write(w, r)
				return
			}
		}
	}
	it := &item{Name: name, Folder: true}
	if fi := in.FileSystemInfo; fi != nil {
		if fi.CreatedDateTime != nil {
			it.FSCreated = fi.CreatedDateTime.UTC()
		}
		if fi.LastModifiedDateTime != nil {
			it.FSModified = fi.LastModifiedDateTime.UTC()
		}
	}
	s.insert(d, parent, it)
	writeJSON(w, http.StatusCreated, s.renderItem(r, d, it, false))
}

// parentFromRef resolves a parentReference of a PATCH: by id (not the
// "root" alias) or by path ("/drive/root:/a/b", "/drives/{id}/root:/a").
func (s *Server) parentFromRef(d *drive, ref *wireItemRefIn) (*item, *apiError) {
	if ref.DriveID != "" && !strings.EqualFold(ref.DriveID, d.ID) {
		return nil, errInvalid("Moving an item to another drive is not supported.")
	}
	switch {
	case ref.ID != "":
		if strings.EqualFold(ref.ID, "root") {
			return nil, errInvalid("Invalid parentReference id: use the id of the root item, not \"root\".")
		}
		p := d.lookupID(ref.ID)
		if p == nil {
			return nil, errNotFound()
		}
		return p, nil
	case ref.Path != "":
		pd, segs, aerr := s.parseItemPath(d, ref.Path)
		if aerr != nil {
			return nil, aerr
		}
		if pd != d {
			return nil, errInvalid("Moving an item to another drive is not supported.")
		}
		return s.walkVisible(d, d.Items[d.RootID], segs)
	}
	return nil, errInvalid("The parentReference needs an id or a path.")
}

func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request, rt route) {
	var in wireItemIn
	if aerr := decodeBody(r, &in, false); aerr != nil {
		aerr.write(w, r)
		return
	}
	behavior, aerr := in.conflictBehavior(r, "fail")
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	w, unlock := s.lockReply(w)
	defer unlock()
	d, it, aerr := s.lookupLocked(rt)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	if aerr := checkIfMatch(r, it); aerr != nil {
		aerr.write(w, r)
		return
	}
	if it.ParentID == "" {
		errInvalid("The root folder cannot be updated.").write(w, r)
		return
	}
	parent := d.Items[it.ParentID]
	newParent, newName := parent, it.Name
	if in.Name != nil {
		newName = *in.Name
	}
	if in.ParentReference != nil {
		p, aerr := s.parentFromRef(d, in.ParentReference)
		if aerr != nil {
			aerr.write(w, r)
			return
		}
		if !p.Folder {
			errInvalid("The new parent must be a folder.").write(w, r)
			return
		}
		if aerr := s.authorizeLocked(rt.user, d, p, true); aerr != nil {
			aerr.write(w, r)
			return
		}
		if d.isAncestor(it, p) {
			errInvalid("A folder cannot be moved into itself or one of its descendants.").write(w, r)
			return
		}
		newParent = p
	}
	moved := newParent != parent || newName != it.Name
	if moved {
		if aerr := s.checkNewPath(d, newParent, newName); aerr != nil {
			aerr.write(w, r)
			return
		}
		if existing := d.child(newParent, newName); existing != nil && existing != it {
			switch behavior {
			case "fail":
				errNameExists(newName).write(w, r)
				return
			case "replace":
				if existing.Folder {
					errNameExists(newName).write(w, r)
					return
				}
				s.remove(d, existing, true)
			case "rename":
				newName = d.uniqueName(newParent, newName)
			}
		}
	}
	var fsCreated, fsModified *time.Time
	if fi := in.FileSystemInfo; fi != nil {
		fsCreated, fsModified = fi.CreatedDateTime, fi.LastModifiedDateTime
	}
	if fsCreated != nil {
		it.FSCreated = fsCreated.UTC()
	}
	if fsModified != nil {
		it.FSModified = fsModified.UTC()
	}
	switch {
	case moved:
		s.move(d, it, newParent, newName)
	case fsCreated != nil || fsModified != nil:
		s.touchMeta(it)
	}
	w.Header().Set("ETag", it.eTag())
	writeJSON(w, http.StatusOK, s.renderItem(r, d, it, false))
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, rt route) {
	s.deleteItem(w, r, rt, true)
}

func (s *Server) handlePermanentDelete(w http.ResponseWriter, r *http.Request, rt route) {
	s.deleteItem(w, r, rt, false)
}

func (s *Server) deleteItem(w http.ResponseWriter, r *http.Request, rt route, toRecycleBin bool) {
	w, unlock := s.lockReply(w)
	defer unlock()
	d, it, aerr := s.lookupLocked(rt)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	if aerr := checkIfMatch(r, it); aerr != nil {
		aerr.write(w, r)
		return
	}
	if it.ParentID == "" {
		writeError(w, r, http.StatusForbidden, codeAccessDenied, "The root folder cannot be deleted.", "")
		return
	}
	s.remove(d, it, toRecycleBin)
	w.WriteHeader(http.StatusNoContent)
}

// handleSearch answers search(q='text') below the addressed folder: every
// item whose name contains the text (case-insensitively), in path order,
// paged like children.
func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request, rt route) {
	top, after, hasAfter, aerr := s.pageParams(r)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	q := strings.ToLower(rt.searchQuery)
	if q == "" {
		q = strings.ToLower(r.URL.Query().Get("q"))
	}
	w, unlock := s.lockReply(w)
	defer unlock()
	d, it, aerr := s.lookupLocked(rt)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	type hit struct {
		key string
		it  *item
	}
	var hits []hit
	var walk func(x *item)
	walk = func(x *item) {
		for _, c := range d.sortedChildren(x) {
			if s.hiddenLocked(c) {
				continue
			}
			if strings.Contains(foldName(c.Name), q) {
				hits = append(hits, hit{strings.ToLower(s.pathOf(d, c)), c})
			}
			if c.Folder {
				walk(c)
			}
		}
	}
	walk(it)
	sort.Slice(hits, func(i, j int) bool { return hits[i].key < hits[j].key })
	start := 0
	if hasAfter {
		start = sort.Search(len(hits), func(i int) bool { return hits[i].key > after })
	}
	end := min(start+top, len(hits))
	page := wireCollection{Value: make([]any, 0, end-start)}
	for _, h := range hits[start:end] {
		page.Value = append(page.Value, s.renderItem(r, d, h.it, false))
	}
	if end < len(hits) {
		page.NextLink = nextLink(r, skipToken(hits[end-1].key))
	}
	writeJSON(w, http.StatusOK, page)
}
