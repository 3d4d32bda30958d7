package graphtest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The fake's own wire structs for Graph resources (docs/graph-contract.md §2,
// §3). They are written independently of the client's (package remote), so
// that a disagreement between the two shows up in tests.

// wireItem is a driveItem as the service renders it.
type wireItem struct {
	ID                   string           `json:"id"`
	Name                 string           `json:"name,omitempty"`
	Size                 int64            `json:"size"`
	ETag                 string           `json:"eTag,omitempty"`
	CTag                 string           `json:"cTag,omitempty"`
	CreatedDateTime      string           `json:"createdDateTime,omitempty"`
	LastModifiedDateTime string           `json:"lastModifiedDateTime,omitempty"`
	WebURL               string           `json:"webUrl,omitempty"`
	CreatedBy            *wireIdentitySet `json:"createdBy,omitempty"`
	LastModifiedBy       *wireIdentitySet `json:"lastModifiedBy,omitempty"`
	ParentReference      *wireItemRef     `json:"parentReference,omitempty"`
	File                 *wireFile        `json:"file,omitempty"`
	Folder               *wireFolder      `json:"folder,omitempty"`
	Root                 *struct{}        `json:"root,omitempty"`
	Package              *wirePackage     `json:"package,omitempty"`
	FileSystemInfo       *wireFSInfo      `json:"fileSystemInfo,omitempty"`
	Deleted              *wireDeleted     `json:"deleted,omitempty"`
	RemoteItem           *wireRemoteItem  `json:"remoteItem,omitempty"` // shortcuts and shares (shares.go)
	DownloadURL          string           `json:"@microsoft.graph.downloadUrl,omitempty"`
	// ContentDownloadURL replaces DownloadURL with FormOptions'
	// DownloadURLAnnotation "content" (the direct API's spelling).
	ContentDownloadURL string `json:"@content.downloadUrl,omitempty"`
	// Children is set by $expand=children (possibly to an empty list).
	Children         *[]any `json:"children,omitempty"`
	ChildrenNextLink string `json:"children@odata.nextLink,omitempty"`
}

type wireIdentitySet struct {
	User wireIdentity `json:"user"`
}

type wireIdentity struct {
	DisplayName string `json:"displayName,omitempty"`
	ID          string `json:"id,omitempty"`
	Email       string `json:"email,omitempty"`
}

// wireItemRef is a parentReference (itemReference).
type wireItemRef struct {
	DriveID   string `json:"driveId,omitempty"`
	DriveType string `json:"driveType,omitempty"`
	ID        string `json:"id,omitempty"`
	Name      string `json:"name,omitempty"`
	Path      string `json:"path,omitempty"`
}

type wireFile struct {
	MimeType string      `json:"mimeType,omitempty"`
	Hashes   *wireHashes `json:"hashes,omitempty"`
}

type wireHashes struct {
	QuickXorHash string `json:"quickXorHash,omitempty"`
	SHA256Hash   string `json:"sha256Hash,omitempty"`
}

type wireFolder struct {
	ChildCount int `json:"childCount"`
}

type wirePackage struct {
	Type string `json:"type"`
}

type wireFSInfo struct {
	CreatedDateTime      string `json:"createdDateTime,omitempty"`
	LastModifiedDateTime string `json:"lastModifiedDateTime,omitempty"`
}

type wireDeleted struct {
	State string `json:"state,omitempty"`
}

// wireDrive is a drive resource.
type wireDrive struct {
	ID        string           `json:"id"`
	DriveType string           `json:"driveType"`
	Name      string           `json:"name,omitempty"`
	Owner     *wireIdentitySet `json:"owner,omitempty"`
	Quota     wireQuota        `json:"quota"`
}

type wireQuota struct {
	Total     int64  `json:"total"`
	Used      int64  `json:"used"`
	Remaining int64  `json:"remaining"`
	Deleted   int64  `json:"deleted"`
	State     string `json:"state"`
	FileCount *int64 `json:"fileCount,omitempty"` // business only
}

// wireCollection is a page of a collection (children, delta, search).
type wireCollection struct {
	Value     []any  `json:"value"`
	NextLink  string `json:"@odata.nextLink,omitempty"`
	DeltaLink string `json:"@odata.deltaLink,omitempty"`
}

// wireTime renders a time as the service does (UTC, literal Z).
func wireTime(t time.Time) string { return formatTime(t) }

// ownerIdentity is the owner of d: a user, or the site of a library
// (users.go).
func (s *Server) ownerIdentity(d *drive) *wireIdentitySet {
	return s.driveOwnerLocked(d)
}

// drivePathPrefix is how parentReference.path starts for this request:
// "/drives/{id}/root:" when the drive was addressed by id, else
// "/drive/root:".
func drivePathPrefix(r *http.Request, d *drive) string {
	if strings.HasPrefix(r.URL.Path, "/v1.0/drives/") {
		return "/drives/" + d.ID + "/root:"
	}
	return "/drive/root:"
}

// buildItem renders it as a driveItem (without $select applied). forDelta
// omits parentReference.path, as delta responses do (unless
// FormOptions.DeltaParentPath, on a personal drive). Called with s.mu held.
func (s *Server) buildItem(r *http.Request, d *drive, it *item, forDelta bool) *wireItem {
	b := base(r)
	w := &wireItem{
		ID:                   it.ID,
		Name:                 it.Name,
		Size:                 it.Size,
		ETag:                 it.eTag(),
		CTag:                 it.cTag(),
		CreatedDateTime:      wireTime(it.Created),
		LastModifiedDateTime: wireTime(it.Modified),
		WebURL:               b + "/web/" + url.PathEscape(it.ID),
		CreatedBy:            s.ownerIdentity(d),
		LastModifiedBy:       s.ownerIdentity(d),
		FileSystemInfo: &wireFSInfo{
			CreatedDateTime:      wireTime(it.FSCreated),
			LastModifiedDateTime: wireTime(it.FSModified),
		},
	}
	ref := &wireItemRef{DriveID: d.ID, DriveType: s.driveType(d)}
	if it.ParentID == "" {
		w.Root = &struct{}{}
	} else if parent := d.Items[it.ParentID]; parent != nil {
		ref.ID = parent.ID
		if parent.ParentID == "" {
			ref.Name = "root"
		} else {
			ref.Name = parent.Name
		}
		if !forDelta || (formsOf(r).DeltaParentPath && !s.isBusiness(d)) {
			ref.Path = drivePathPrefix(r, d) + s.pathOf(d, parent)
		}
	}
	w.ParentReference = ref
	switch {
	case it.Remote != nil:
		// A shortcut: its facets are in remoteItem (shares.go).
		w.RemoteItem = s.remoteItemLocked(r, *it.Remote)
		w.Size = w.RemoteItem.Size
	case it.Folder:
		w.Folder = &wireFolder{ChildCount: len(it.children)}
		if s.isBusiness(d) {
			w.CTag = "" // not returned for folders on Business
		}
	default:
		w.File = &wireFile{MimeType: it.MimeType, Hashes: &wireHashes{QuickXorHash: it.QuickXorHash, SHA256Hash: it.SHA256}}
		if w.File.MimeType == "" {
			w.File.MimeType = "application/octet-stream"
		}
		if it.Package == "" {
			if formsOf(r).DownloadURLAnnotation == annotationContent {
				w.ContentDownloadURL = s.downloadURL(r, d, it)
			} else {
				w.DownloadURL = s.downloadURL(r, d, it)
			}
		}
	}
	if it.Package != "" {
		w.Package = &wirePackage{Type: it.Package}
	}
	return w
}

// renderTombstone renders a deleted item for delta: id, name, the deleted
// facet, the file or folder facet and a parentReference without path.
func (s *Server) renderTombstone(d *drive, t *tombstone) *wireItem {
	w := &wireItem{
		ID:              t.ID,
		Name:            t.Name,
		Deleted:         &wireDeleted{},
		ParentReference: &wireItemRef{DriveID: d.ID, DriveType: s.driveType(d), ID: t.ParentID},
	}
	if t.Folder {
		w.Folder = &wireFolder{}
	} else {
		w.File = &wireFile{}
	}
	return w
}

// renderItem renders it with the request's $select applied. Called with
// s.mu held; delta (forDelta) reuses it.
func (s *Server) renderItem(r *http.Request, d *drive, it *item, forDelta bool) any {
	return applySelect(r, s.buildItem(r, d, it, forDelta))
}

// selection parses $select: nil means everything.
func selection(r *http.Request) map[string]bool {
	q := r.URL.Query()
	v := q.Get("$select")
	if v == "" {
		v = q.Get("select")
	}
	if v == "" {
		return nil
	}
	sel := map[string]bool{"id": true}
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			sel[f] = true
		}
	}
	return sel
}

// applySelect filters v's top-level properties to those named by $select
// (id always). children (from $expand) stays when present. Without $select,
// v is returned as is.
func applySelect(r *http.Request, v any) any {
	sel := selection(r)
	if sel == nil {
		return v
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return v
	}
	for k := range m {
		if !sel[k] && k != "children" && k != "children@odata.nextLink" {
			delete(m, k)
		}
	}
	return m
}

// buildDrive renders a drive with its quota: used is the total size of the
// live files; deleted the bytes in the recycle bin (DELETE adds to it,
// EmptyRecycleBin clears it); remaining = total - used - deleted. Called
// with s.mu held.
func (s *Server) buildDrive(d *drive) *wireDrive {
	total := s.opts.QuotaTotal
	used := s.usedBytes(d)
	remaining := s.remainingBytes(d)
	q := wireQuota{Total: total, Used: used, Remaining: remaining, Deleted: d.Deleted, State: quotaState(total, remaining)}
	if s.isBusiness(d) {
		var n int64
		for _, it := range d.Items {
			if !it.Folder {
				n++
			}
		}
		q.FileCount = &n
	}
	return &wireDrive{ID: d.ID, DriveType: s.driveType(d), Name: s.driveMetaLocked(d).Name, Owner: s.ownerIdentity(d), Quota: q}
}

// quotaState: exceeded when nothing remains, critical under 1% left,
// nearing under 10%, else normal (OD quota.md).
func quotaState(total, remaining int64) string {
	switch {
	case remaining <= 0:
		return "exceeded"
	case remaining*100 < total:
		return "critical"
	case remaining*10 < total:
		return "nearing"
	}
	return "normal"
}

// Request bodies.

// wireFSInfoIn is a fileSystemInfo in a request (times are optional).
type wireFSInfoIn struct {
	CreatedDateTime      *time.Time `json:"createdDateTime,omitempty"`
	LastModifiedDateTime *time.Time `json:"lastModifiedDateTime,omitempty"`
}

// wireItemIn is the driveItem-shaped body of create-folder, PATCH and the
// `item` of createUploadSession, with both conflictBehavior spellings.
type wireItemIn struct {
	Name            *string        `json:"name"`
	Folder          *struct{}      `json:"folder"`
	File            *struct{}      `json:"file"`
	ParentReference *wireItemRefIn `json:"parentReference"`
	FileSystemInfo  *wireFSInfoIn  `json:"fileSystemInfo"`
	FileSize        *int64         `json:"fileSize"`
	ConflictGraph   string         `json:"@microsoft.graph.conflictBehavior"`
	ConflictLegacy  string         `json:"@name.conflictBehavior"`
	// RemoteItem in a POST …/children body asks for a shortcut (shares.go).
	RemoteItem *wireRemoteItemIn `json:"remoteItem"`
}

type wireItemRefIn struct {
	DriveID string `json:"driveId"`
	ID      string `json:"id"`
	Path    string `json:"path"`
}

// conflictBehavior returns the conflictBehavior a request asks for: in the
// body (either spelling), else in the query string, validated; def when
// none is given.
func (in *wireItemIn) conflictBehavior(r *http.Request, def string) (string, *apiError) {
	v := in.ConflictGraph
	if v == "" {
		v = in.ConflictLegacy
	}
	if v == "" {
		v = conflictQuery(r)
	}
	return parseConflict(v, def)
}

// conflictQuery returns the conflictBehavior given in the query string
// (either spelling), or "".
func conflictQuery(r *http.Request) string {
	q := r.URL.Query()
	if v := q.Get("@microsoft.graph.conflictBehavior"); v != "" {
		return v
	}
	return q.Get("@name.conflictBehavior")
}
