package graphtest

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// This file holds the store primitives shared by every handler (both the
// item handlers and the copy/delta handlers). Unless stated otherwise each
// function must be called with s.mu held, and none of them does I/O.
//
// Change-sequence contract (delta): every item that is created, changed,
// moved or deleted is stamped (s.stamp: Seq = s.bumpSeq(), logged in the
// change log), and so is every ancestor whose size, cTag or eTag changed as
// a result. A deleted item (and every
// descendant of a deleted folder) leaves a tombstone carrying the sequence
// number of the deletion. Delta therefore reports, for a token holding
// sequence T, every live item with Seq > T and every tombstone with Seq > T.
// bumpSeq also marks the store dirty for the saver.

// apiError is a Graph error answer. Handlers build one and write it with
// write; store primitives return one when a request cannot be honoured.
type apiError struct {
	status  int
	code    string
	message string
	inner   string // innerError.code; "" for none
}

func (e *apiError) Error() string {
	if e.inner != "" {
		return fmt.Sprintf("%d %s/%s: %s", e.status, e.code, e.inner, e.message)
	}
	return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message)
}

// write sends e as a Graph error body.
func (e *apiError) write(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, e.status, e.code, e.message, e.inner)
}

func errNotFound() *apiError {
	return &apiError{http.StatusNotFound, codeItemNotFound, "The resource could not be found.", ""}
}

func errInvalid(message string) *apiError {
	return &apiError{http.StatusBadRequest, codeInvalidRequest, message, ""}
}

func errNameExists(name string) *apiError {
	return &apiError{http.StatusConflict, codeNameAlreadyExists,
		fmt.Sprintf("An item with the name %q already exists.", name), ""}
}

func errModified() *apiError {
	return &apiError{http.StatusPreconditionFailed, codeResourceModified,
		"The resource has changed since the caller last read it; usually an eTag mismatch.", ""}
}

func errQuota() *apiError {
	return &apiError{http.StatusInsufficientStorage, codeQuotaLimitReached,
		"Insufficient Space Available", ""}
}

// driveFor returns the drive a Graph route addresses: /me/drive (and the
// legacy /drive) is the default drive, /drives/{id} any drive the server owns
// (ids compare case-insensitively).
//
// A drive the caller cannot reach at all (users.go) is 404; the drive
// itself (GET /drives/{id}) needs access to its root, else 403.
func (s *Server) driveFor(rt route) (*drive, *apiError) {
	user := rt.user
	if user == "" {
		user = s.defaultUserID()
	}
	id := s.userDriveLocked(user)
	if !rt.me {
		id = rt.driveID
	}
	d := s.drives[strings.ToLower(id)]
	if d == nil || (!rt.me && !s.reachesDriveLocked(user, d)) {
		return nil, errNotFound()
	}
	if rt.driveOnly && s.roleLocked(user, d, d.Items[d.RootID]) == roleNone {
		return nil, errAccessDenied("The caller has access to some items of this drive only.")
	}
	return d, nil
}

// lookupID finds an item of d by id. Ids compare exactly, then
// case-insensitively (clients are known to lowercase drive ids).
func (d *drive) lookupID(id string) *item {
	if it := d.Items[id]; it != nil {
		return it
	}
	if it := d.Items[strings.ToUpper(id)]; it != nil {
		return it
	}
	return nil
}

// resolve returns the item a route addresses: its base (root or items/{id})
// followed by a case-insensitive walk of its `:/path:` segments. A route
// without an item address is a 400; a missing item (or a path through a
// file) is a 404. The caller's access to the item is checked (users.go):
// none is a 404 too, a write with read access only a 403. A path is only
// followed from a base the caller may read: another user's root:/path: is
// a 404 even where the path ends inside a share.
func (s *Server) resolve(d *drive, rt route) (*item, *apiError) {
	base, aerr := s.resolveBase(d, rt)
	if aerr != nil {
		return nil, aerr
	}
	if len(rt.path) > 0 {
		if aerr := s.authorizeLocked(s.routeUser(rt), d, base, false); aerr != nil {
			return nil, aerr
		}
	}
	it, aerr := s.walkVisible(d, base, rt.path)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := s.authorizeLocked(s.routeUser(rt), d, it, rt.write); aerr != nil {
		return nil, aerr
	}
	return it, nil
}

// routeUser is the caller of a route (the default user when unset).
func (s *Server) routeUser(rt route) string {
	if rt.user == "" {
		return s.defaultUserID()
	}
	return rt.user
}

// walkVisible is walk for API path lookups: items still hidden by
// FaultOptions.VisibilityDelay are not found. (Lookups by id see them: the
// creator knows the id.)
func (s *Server) walkVisible(d *drive, base *item, path []string) (*item, *apiError) {
	it := base
	for _, seg := range path {
		if !it.Folder {
			return nil, errNotFound()
		}
		it = d.child(it, seg)
		if it == nil || s.hiddenLocked(it) {
			return nil, errNotFound()
		}
	}
	return it, nil
}

// resolveBase returns the item a route's path is relative to.
func (s *Server) resolveBase(d *drive, rt route) (*item, *apiError) {
	switch {
	case rt.rootBase:
		return d.Items[d.RootID], nil
	case rt.itemID != "":
		it := d.lookupID(rt.itemID)
		if it == nil {
			return nil, errNotFound()
		}
		return it, nil
	}
	return nil, errInvalid("Invalid request: no item addressed.")
}

// walk follows path segments from base, case-insensitively, seeing every
// item (the inspection helpers use it).
func (d *drive) walk(base *item, path []string) (*item, *apiError) {
	it := base
	for _, seg := range path {
		if !it.Folder {
			return nil, errNotFound()
		}
		it = d.child(it, seg)
		if it == nil {
			return nil, errNotFound()
		}
	}
	return it, nil
}

// child returns parent's child called name (case-insensitively), or nil.
func (d *drive) child(parent *item, name string) *item {
	if parent == nil || parent.children == nil {
		return nil
	}
	id, ok := parent.children[foldName(name)]
	if !ok {
		return nil
	}
	return d.Items[id]
}

// sortedChildren returns parent's children ordered by folded name, which is
// the order listings and their skip tokens use.
func (d *drive) sortedChildren(parent *item) []*item {
	keys := make([]string, 0, len(parent.children))
	for k := range parent.children {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*item, 0, len(keys))
	for _, k := range keys {
		if c := d.Items[parent.children[k]]; c != nil {
			out = append(out, c)
		}
	}
	return out
}

// newItemID returns a fresh item id in the Personal style, DRIVEIDUPPER!N.
func (s *Server) newItemID(d *drive) string {
	s.nextID++
	return fmt.Sprintf("%s!%d", strings.ToUpper(d.ID), s.nextID)
}

// bumpSeq advances and returns the change sequence, and marks the store
// dirty.
func (s *Server) bumpSeq() int64 {
	s.seq++
	s.dirty = true
	return s.seq
}

// pathOf returns the path of it below the drive root: "" for the root,
// "/a/b" otherwise (names as stored, case preserved).
func (s *Server) pathOf(d *drive, it *item) string {
	var segs []string
	for cur := it; cur != nil && cur.ParentID != ""; cur = d.Items[cur.ParentID] {
		segs = append(segs, cur.Name)
	}
	var b strings.Builder
	for i := len(segs) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(segs[i])
	}
	return b.String()
}

// isAncestor reports whether a is it or one of its ancestors.
func (d *drive) isAncestor(a, it *item) bool {
	for cur := it; cur != nil; cur = d.Items[cur.ParentID] {
		if cur == a {
			return true
		}
		if cur.ParentID == "" {
			break
		}
	}
	return false
}

// usedBytes is the total size of the live files of d (the root's size).
func (s *Server) usedBytes(d *drive) int64 {
	if root := d.Items[d.RootID]; root != nil {
		return root.Size
	}
	return 0
}

// remainingBytes is what quota allows to be added to d: total minus used
// minus the recycle bin (deleted), never negative.
func (s *Server) remainingBytes(d *drive) int64 {
	r := s.opts.QuotaTotal - s.usedBytes(d) - d.Deleted
	if r < 0 {
		return 0
	}
	return r
}

// touchAncestors records that the contents of parent changed: parent and
// every ancestor above it get sizeDelta added to their size, a new eTag and
// cTag, and a new sequence number.
func (s *Server) touchAncestors(d *drive, parent *item, sizeDelta int64) {
	for cur := parent; cur != nil; cur = d.Items[cur.ParentID] {
		cur.Size += sizeDelta
		cur.ETagVersion++
		cur.CTagVersion++
		s.stamp(cur)
		if cur.ParentID == "" {
			break
		}
	}
}

// insert adds it (a new item, not yet in any drive) under parent, which must
// be a folder without a child of the same folded name (the caller checks
// names and conflicts). It fills in a missing ID, the server times
// (Created/Modified = now), missing fileSystemInfo times (now), tag versions
// and Seq, references it.Blob, and updates parent's index and the sizes,
// tags and sequence numbers of every ancestor. A zero VisibleAt is set from
// FaultOptions.VisibilityDelay. Folders are inserted empty;
// insert their children afterwards (copies do so, at completion).
func (s *Server) insert(d *drive, parent *item, it *item) {
	now := s.now().UTC()
	if it.ID == "" {
		it.ID = s.newItemID(d)
	}
	it.ParentID = parent.ID
	it.Created, it.Modified = now, now
	if it.FSCreated.IsZero() {
		it.FSCreated = now
	}
	if it.FSModified.IsZero() {
		it.FSModified = now
	}
	it.ETagVersion, it.CTagVersion = 1, 1
	if it.VisibleAt.IsZero() {
		it.VisibleAt = s.visibleAtLocked()
	}
	if it.Folder {
		it.Size = 0
		it.children = map[string]string{}
	} else if it.Blob != "" {
		s.blobs.ref(it.Blob)
	}
	s.stamp(it)
	d.Items[it.ID] = it
	delete(d.Tombstones, it.ID)
	if parent.children == nil {
		parent.children = map[string]string{}
	}
	parent.children[foldName(it.Name)] = it.ID
	s.touchAncestors(d, parent, it.Size)
}

// remove deletes it and, for a folder, everything below it. Each removed
// item leaves a tombstone with the deletion's sequence number. When
// toRecycleBin is true (DELETE) the removed file bytes are added to
// quota.deleted; permanentDelete passes false. The root cannot be removed
// (the caller refuses). Blob references are dropped.
func (s *Server) remove(d *drive, it *item, toRecycleBin bool) {
	parent := d.Items[it.ParentID]
	size := it.Size
	seq := s.bumpSeq()
	var drop func(x *item)
	drop = func(x *item) {
		if x.Folder {
			for _, cid := range x.children {
				if c := d.Items[cid]; c != nil {
					drop(c)
				}
			}
		} else if x.Blob != "" {
			s.blobs.unref(x.Blob)
		}
		delete(d.Items, x.ID)
		s.dropPermissionsLocked(d, x.ID)
		x.Seq = 0 // its entries in the change log are dead
		d.Tombstones[x.ID] = &tombstone{ID: x.ID, Name: x.Name, ParentID: x.ParentID, Folder: x.Folder, Seq: seq}
	}
	drop(it)
	if toRecycleBin {
		d.Deleted += size
	}
	if parent != nil {
		delete(parent.children, foldName(it.Name))
		s.touchAncestors(d, parent, -size)
	}
}

// move renames it and/or moves it under newParent (the caller has checked
// names, conflicts, cycles and that newParent is a folder of the same
// drive). Both the old and the new ancestor chains are touched. The item
// gets a new eTag (not a new cTag) and sequence number.
func (s *Server) move(d *drive, it *item, newParent *item, newName string) {
	oldParent := d.Items[it.ParentID]
	delete(oldParent.children, foldName(it.Name))
	if oldParent != newParent {
		s.touchAncestors(d, oldParent, -it.Size)
	}
	it.Name = newName
	it.ParentID = newParent.ID
	if newParent.children == nil {
		newParent.children = map[string]string{}
	}
	newParent.children[foldName(newName)] = it.ID
	if oldParent != newParent {
		s.touchAncestors(d, newParent, it.Size)
	} else {
		s.touchAncestors(d, newParent, 0)
	}
	s.touchMeta(it)
}

// touchMeta records a metadata-only change of it (rename, fileSystemInfo):
// new eTag, Modified = now, new sequence number. Ancestors are not touched.
func (s *Server) touchMeta(it *item) {
	it.ETagVersion++
	it.Modified = s.now().UTC()
	s.stamp(it)
}

// contentUpdate describes new content for a file.
type contentUpdate struct {
	blob blobInfo
	// fsModified/fsCreated, when non-nil, set fileSystemInfo; otherwise
	// lastModified resets to now (as the service does on a content change
	// without fileSystemInfo).
	fsModified *time.Time
	fsCreated  *time.Time
}

// touchContent replaces the content of the file it: new blob (referenced;
// the old one is released), size, hashes, new eTag and cTag, Modified = now,
// fileSystemInfo as given or lastModified = now, and the ancestors' sizes
// and tags.
func (s *Server) touchContent(d *drive, it *item, u contentUpdate) {
	now := s.now().UTC()
	old := it.Blob
	if u.blob.Name != "" {
		s.blobs.ref(u.blob.Name)
	}
	if old != "" {
		s.blobs.unref(old)
	}
	delta := u.blob.Size - it.Size
	it.Blob = u.blob.Name
	it.Size = u.blob.Size
	it.QuickXorHash = u.blob.QuickXorHash
	it.SHA256 = u.blob.SHA256
	it.ETagVersion++
	it.CTagVersion++
	it.Modified = now
	if u.fsModified != nil {
		it.FSModified = u.fsModified.UTC()
	} else {
		it.FSModified = now
	}
	if u.fsCreated != nil {
		it.FSCreated = u.fsCreated.UTC()
	}
	s.stamp(it)
	if parent := d.Items[it.ParentID]; parent != nil {
		s.touchAncestors(d, parent, delta)
	}
}

// newDrive returns an empty drive with a root folder. Called with s.mu held
// (or before the server is shared).
func (s *Server) newDrive(id string) *drive {
	d := &drive{ID: id, Items: map[string]*item{}, Tombstones: map[string]*tombstone{}}
	now := s.now().UTC()
	root := &item{Name: "root", Folder: true, children: map[string]string{},
		Created: now, Modified: now, FSCreated: now, FSModified: now,
		ETagVersion: 1, CTagVersion: 1}
	root.ID = s.newItemID(d)
	s.stamp(root)
	d.RootID = root.ID
	d.Items[root.ID] = root
	return d
}

// uniqueName returns name if parent has no child of that folded name, else
// "stem N.ext" with the lowest N ≥ 1 that is free (conflictBehavior
// rename).
func (d *drive) uniqueName(parent *item, name string) string {
	if d.child(parent, name) == nil {
		return name
	}
	stem, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		stem, ext = name[:i], name[i:]
	}
	for n := 1; ; n++ {
		cand := fmt.Sprintf("%s %d%s", stem, n, ext)
		if d.child(parent, cand) == nil {
			return cand
		}
	}
}
