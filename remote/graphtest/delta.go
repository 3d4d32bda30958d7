package graphtest

import (
	"cmp"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Delta (docs/graph-contract.md §6).
//
// A delta token is the change sequence number the client has seen: a
// request with token T reports every item of the scope whose Seq > T in its
// latest state, then the tombstones of items deleted after T, and ends with
// a deltaLink holding the current sequence number. Without a token it
// enumerates every item of the scope. Items come parents first (by depth in
// the tree); tombstones come before live items, so that a name freed by a
// deletion is free before an item that reuses it arrives. A token older
// than the drive's DeltaFloor (raised by ExpireDeltaTokens and by tombstone
// pruning) gets 410 Gone, resyncRequired.
//
// A round longer than one page is computed once, when its first page is
// asked for: the ordered list of item ids is kept in a cursor, and each page
// renders its items as they are when the page is served. The nextLink names
// the cursor; if the cursor has been forgotten (the server keeps a few, and
// none across a restart), the round starts again from its token — delta
// allows duplicates, so a client loses nothing.
//
// Items hidden by FaultOptions.VisibilityDelay are left out, and the
// round's deltaLink stops short of their sequence numbers, so that they
// are reported once they become visible.

// maxDeltaCursors bounds the rounds kept in memory.
const maxDeltaCursors = 32

// deltaState holds the cursors of multi-page delta rounds. Guarded by
// Server.mu.
type deltaState struct {
	cursors map[string]*deltaCursor
	order   []string // cursor ids, oldest first
}

// deltaCursor is a delta round being paged through.
type deltaCursor struct {
	driveID string
	from    int64    // the round's token; -1 for a full enumeration
	upTo    int64    // the token its deltaLink carries
	entries []string // item ids, rendered as they are when a page is served
}

func (ds *deltaState) add(id string, c *deltaCursor) {
	if ds.cursors == nil {
		ds.cursors = map[string]*deltaCursor{}
	}
	ds.cursors[id] = c
	ds.order = append(ds.order, id)
	for len(ds.order) > maxDeltaCursors {
		delete(ds.cursors, ds.order[0])
		ds.order = ds.order[1:]
	}
}

// Delta token forms. Tokens are opaque to clients; the fake's are base64 of
// "seq:N" (a deltaLink) or "page:CURSOR:OFFSET:FROM" (a nextLink).
func seqToken(n int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("seq:" + strconv.FormatInt(n, 10)))
}

func pageToken(cursor string, offset int, from int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("page:" + cursor + ":" + strconv.Itoa(offset) + ":" + strconv.FormatInt(from, 10)))
}

// parsedToken is a decoded delta token.
type parsedToken struct {
	full   bool  // no token: enumerate everything
	latest bool  // token=latest
	from   int64 // changes after this sequence number (-1: full)
	cursor string
	offset int
}

func parseDeltaToken(tok string) (parsedToken, bool) {
	switch tok {
	case "":
		return parsedToken{full: true, from: -1}, true
	case "latest":
		return parsedToken{latest: true}, true
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return parsedToken{}, false
	}
	parts := strings.Split(string(raw), ":")
	switch {
	case len(parts) == 2 && parts[0] == "seq":
		n, err := strconv.ParseInt(parts[1], 10, 64)
		return parsedToken{from: n}, err == nil && n >= 0
	case len(parts) == 4 && parts[0] == "page":
		off, err1 := strconv.Atoi(parts[2])
		from, err2 := strconv.ParseInt(parts[3], 10, 64)
		return parsedToken{from: from, full: from < 0, cursor: parts[1], offset: off}, err1 == nil && err2 == nil && off >= 0
	}
	return parsedToken{}, false
}

// deltaTokenOf returns the token of a delta request: ?token=X, or the
// delta(token='X') path form (route.rest holds "token='X'").
func deltaTokenOf(r *http.Request, rt route) string {
	if tok := r.URL.Query().Get("token"); tok != "" {
		return tok
	}
	arg := strings.TrimSpace(rt.rest)
	if arg == "" {
		return ""
	}
	if dec, err := url.PathUnescape(arg); err == nil {
		arg = dec
	}
	if k, v, ok := strings.Cut(arg, "="); ok && strings.EqualFold(strings.TrimSpace(k), "token") {
		arg = v
	}
	return strings.Trim(strings.TrimSpace(arg), "'\"")
}

// deltaLink is the absolute delta URL of the request's scope with token tok
// ("" for none), keeping the request's other query parameters. The token is
// in the query (?token=X) or, with FormOptions.DeltaLinkForm "path", in the
// path (delta(token='X')).
func deltaLink(r *http.Request, rt route, scope string, tok string) string {
	pathForm := formsOf(r).DeltaLinkForm == deltaLinkPath
	var b strings.Builder
	b.WriteString(base(r))
	if rt.me {
		b.WriteString("/v1.0/me/drive")
	} else {
		b.WriteString("/v1.0/drives/" + pathSegment(rt.driveID))
	}
	if scope == "" {
		b.WriteString("/root/delta")
	} else {
		b.WriteString("/items/" + pathSegment(scope) + "/delta")
	}
	q := r.URL.Query()
	q.Del("token")
	switch {
	case tok == "":
	case pathForm:
		// Tokens are base64url (or "latest"): nothing to quote or escape.
		b.WriteString("(token='" + tok + "')")
	default:
		q.Set("token", tok)
	}
	if len(q) > 0 {
		b.WriteString("?" + q.Encode())
	}
	return b.String()
}

// handleDelta serves GET …/root/delta and …/items/{id}/delta (a folder's
// subtree), with ?token= or the delta(token='…') form.
func (s *Server) handleDelta(w http.ResponseWriter, r *http.Request, rt route) {
	tok, ok := parseDeltaToken(deltaTokenOf(r, rt))
	if !ok {
		errInvalid("Invalid delta token.").write(w, r)
		return
	}
	top, _, _, aerr := s.pageParams(r)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, scope, aerr := s.lookupLocked(rt)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	if !scope.Folder {
		errInvalid("Delta is only supported on folders.").write(w, r)
		return
	}
	if scope.ParentID != "" && s.isBusiness(d) {
		// Business and SharePoint drives track changes for the whole drive only.
		errInvalid("Delta is only supported on the root folder of this drive.").write(w, r)
		return
	}
	scopeID := ""
	if scope.ParentID != "" {
		scopeID = scope.ID
	}
	if !tok.full && !tok.latest && (tok.from < d.DeltaFloor || tok.from > s.seq) {
		w.Header().Set("Location", deltaLink(r, rt, scopeID, ""))
		writeError(w, r, http.StatusGone, codeResyncRequired,
			"Resync required. Replace any local items with the server's version (including deletes) if you're sure that the service was up to date with your local changes when you last sync'd. Upload any local changes that the server doesn't know about.",
			"resyncChangesApplyDifferences")
		return
	}
	if tok.latest {
		_, upTo := s.deltaChangesLocked(d, scope, s.seq)
		writeJSON(w, http.StatusOK, wireCollection{Value: []any{}, DeltaLink: deltaLink(r, rt, scopeID, seqToken(upTo))})
		return
	}
	cur := s.delta.cursors[tok.cursor]
	if cur == nil || cur.driveID != d.ID {
		// A new round, or a forgotten cursor: start (again) from the token.
		entries, upTo := s.deltaChangesLocked(d, scope, tok.from)
		cur = &deltaCursor{driveID: d.ID, from: tok.from, upTo: upTo, entries: entries}
		tok.offset = 0
		if len(entries) > top {
			tok.cursor = randomToken(12)
			s.delta.add(tok.cursor, cur)
		}
	}
	start := min(tok.offset, len(cur.entries))
	end := min(start+top, len(cur.entries))
	page := wireCollection{Value: make([]any, 0, end-start)}
	for _, e := range cur.entries[start:end] {
		if v := s.renderDeltaEntryLocked(r, d, e); v != nil {
			page.Value = append(page.Value, v)
		}
	}
	if end < len(cur.entries) {
		page.NextLink = deltaLink(r, rt, scopeID, pageToken(tok.cursor, end, cur.from))
	} else {
		page.DeltaLink = deltaLink(r, rt, scopeID, seqToken(cur.upTo))
	}
	writeJSON(w, http.StatusOK, page)
}

// renderDeltaEntryLocked renders an entry as it is now: a live item, or the
// tombstone of a deleted one; nil when there is nothing left to say.
func (s *Server) renderDeltaEntryLocked(r *http.Request, d *drive, id string) any {
	if it := d.Items[id]; it != nil {
		if s.hiddenLocked(it) {
			return nil
		}
		return s.renderItem(r, d, it, true)
	}
	if t := d.Tombstones[id]; t != nil {
		w := s.renderTombstone(d, t)
		w.Deleted = &wireDeleted{State: "deleted"}
		return w
	}
	return nil
}

// deltaChangesLocked lists the changes in scope after sequence from (-1:
// everything, without tombstones): tombstones first, then live items by
// depth, then sequence. It also returns the token the round ends with: the
// current sequence number, or just below the first change still hidden by
// VisibilityDelay. Called with s.mu held.
//
// It costs the size of the answer, not of the drive: a full enumeration
// walks the scope's subtree breadth first (depth comes with the walk), and
// changes after a token come from the change log (changelog.go).
func (s *Server) deltaChangesLocked(d *drive, scope *item, from int64) ([]string, int64) {
	upTo := s.seq
	now := s.now()
	hidden := func(it *item) bool { return !it.VisibleAt.IsZero() && now.Before(it.VisibleAt) }
	type entry struct {
		depth int
		seq   int64
		id    string
	}
	var live []entry
	if from < 0 {
		level := []*item{scope}
		for depth := 0; len(level) > 0; depth++ {
			var next []*item
			for _, it := range level {
				if hidden(it) {
					upTo = min(upTo, it.Seq-1)
				} else {
					live = append(live, entry{depth, it.Seq, it.ID})
				}
				for _, cid := range it.children {
					if c := d.Items[cid]; c != nil {
						next = append(next, c)
					}
				}
			}
			level = next
		}
	} else {
		wholeDrive := scope.ParentID == ""
		depth := map[string]int{}
		var depthOf func(it *item) int
		depthOf = func(it *item) int {
			if n, ok := depth[it.ID]; ok {
				return n
			}
			n := 0
			if p := d.Items[it.ParentID]; p != nil && it.ParentID != "" {
				n = depthOf(p) + 1
			}
			depth[it.ID] = n
			return n
		}
		for _, e := range s.changes.since(from) {
			it := e.it
			if d.Items[it.ID] != it || (!wholeDrive && !d.isAncestor(scope, it)) {
				continue // another drive's, or out of scope
			}
			if hidden(it) {
				upTo = min(upTo, it.Seq-1)
				continue
			}
			live = append(live, entry{depthOf(it), it.Seq, it.ID})
		}
	}
	slices.SortFunc(live, func(a, b entry) int {
		if c := cmp.Compare(a.depth, b.depth); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq) // sequence numbers are unique
	})
	var tombs []*tombstone
	if from >= 0 {
		wholeDrive := scope.ParentID == ""
		for _, t := range d.Tombstones {
			if t.Seq > from && d.Items[t.ID] == nil && (wholeDrive || s.tombInScope(d, t, scope)) {
				tombs = append(tombs, t)
			}
		}
		slices.SortFunc(tombs, func(a, b *tombstone) int {
			return cmp.Or(cmp.Compare(a.Seq, b.Seq), strings.Compare(a.ID, b.ID))
		})
	}
	entries := make([]string, 0, len(tombs)+len(live))
	for _, t := range tombs {
		entries = append(entries, t.ID)
	}
	for _, e := range live {
		entries = append(entries, e.id)
	}
	return entries, upTo
}

// tombInScope reports whether a deleted item was below scope, following its
// parent through live items and other tombstones.
func (s *Server) tombInScope(d *drive, t *tombstone, scope *item) bool {
	parent := t.ParentID
	for range 10000 { // bounded: a corrupt chain must not loop
		if parent == scope.ID {
			return true
		}
		if it := d.Items[parent]; it != nil {
			return d.isAncestor(scope, it)
		}
		pt := d.Tombstones[parent]
		if pt == nil {
			return false
		}
		parent = pt.ParentID
	}
	return false
}

// ExpireDeltaTokens makes every delta token handed out so far stale: the
// next request with one gets 410 Gone, resyncRequired.
func (s *Server) ExpireDeltaTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	floor := s.bumpSeq()
	for _, d := range s.drives {
		d.DeltaFloor = floor
	}
	s.delta = deltaState{}
}
