package remote

// Wire types: JSON as the service sends and receives it
// (docs/graph-contract.md §2–§7), and their conversion to the package's own
// types. Nothing outside this file should depend on the JSON shape.

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// wireTime is a timestamp as the service writes it: UTC ISO-8601 with a
// literal Z and any number of fraction digits. Parsing also tolerates an
// offset or a missing zone (read as UTC); "" and null are the zero time.
type wireTime struct{ time.Time }

const wireTimeLayout = "2006-01-02T15:04:05.999999999Z"

func (t *wireTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil || s == "" {
		t.Time = time.Time{}
		return nil // null, a number or garbage: treat as absent rather than fail the whole item
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	t.Time = time.Time{}
	return nil
}

func (t wireTime) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.UTC().Format(wireTimeLayout))
}

// wireItem is a driveItem.
type wireItem struct {
	ID                   string          `json:"id"`
	Name                 string          `json:"name"`
	Size                 int64           `json:"size"`
	ETag                 string          `json:"eTag"`
	CTag                 string          `json:"cTag"`
	WebURL               string          `json:"webUrl"`
	CreatedDateTime      wireTime        `json:"createdDateTime"`
	LastModifiedDateTime wireTime        `json:"lastModifiedDateTime"`
	ParentReference      *wireItemRef    `json:"parentReference"`
	File                 *wireFile       `json:"file"`
	Folder               *wireFolder     `json:"folder"`
	Package              *wirePackage    `json:"package"`
	Root                 *struct{}       `json:"root"`
	Deleted              *struct{}       `json:"deleted"`
	FileSystemInfo       *wireFSInfo     `json:"fileSystemInfo"`
	RemoteItem           *wireRemoteItem `json:"remoteItem"`
	// Graph and the direct OneDrive API spell the download URL differently.
	GraphDownloadURL   string `json:"@microsoft.graph.downloadUrl"`
	ContentDownloadURL string `json:"@content.downloadUrl"`
}

type wireItemRef struct {
	DriveID   string `json:"driveId,omitempty"`
	DriveType string `json:"driveType,omitempty"`
	ID        string `json:"id,omitempty"`
	Name      string `json:"name,omitempty"`
	Path      string `json:"path,omitempty"`
}

type wireFile struct {
	MimeType string      `json:"mimeType"`
	Hashes   *wireHashes `json:"hashes"`
}

type wireHashes struct {
	QuickXorHash string `json:"quickXorHash"`
	SHA1Hash     string `json:"sha1Hash"`
	SHA256Hash   string `json:"sha256Hash"`
}

type wireFolder struct {
	ChildCount int `json:"childCount"`
}

type wirePackage struct {
	Type string `json:"type"`
}

type wireFSInfo struct {
	CreatedDateTime      *wireTime `json:"createdDateTime,omitempty"`
	LastModifiedDateTime *wireTime `json:"lastModifiedDateTime,omitempty"`
}

// wireRemoteItem is a shared-in item's remoteItem facet: where the item
// really lives (drive and item id) and its file or folder facet.
type wireRemoteItem struct {
	ID              string       `json:"id"`
	Name            string       `json:"name"`
	Size            int64        `json:"size"`
	File            *wireFile    `json:"file"`
	Folder          *wireFolder  `json:"folder"`
	ParentReference *wireItemRef `json:"parentReference"`
}

// wirePage is a page of a collection: children, or delta with its links.
type wirePage struct {
	Value     []wireItem `json:"value"`
	NextLink  string     `json:"@odata.nextLink"`
	DeltaLink string     `json:"@odata.deltaLink"`
}

type wireDrive struct {
	ID        string           `json:"id"`
	DriveType string           `json:"driveType"`
	Name      string           `json:"name"`
	Owner     *wireIdentitySet `json:"owner"`
	Quota     *wireQuota       `json:"quota"`
}

// wireIdentitySet is an identitySet: a user, or for a library the group or
// site that owns it.
type wireIdentitySet struct {
	User  *wireIdentity `json:"user"`
	Group *wireIdentity `json:"group"`
}

type wireIdentity struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Email       string `json:"email"`
}

// name is the identity's display name, "" when there is none.
func (s *wireIdentitySet) name() string {
	switch {
	case s == nil:
		return ""
	case s.User != nil:
		return s.User.DisplayName
	case s.Group != nil:
		return s.Group.DisplayName
	}
	return ""
}

// wireUser is the signed-in user (GET /me).
type wireUser struct {
	ID                string `json:"id"`
	DisplayName       string `json:"displayName"`
	Mail              string `json:"mail"`
	UserPrincipalName string `json:"userPrincipalName"`
}

// wireSite is a SharePoint site.
type wireSite struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	WebURL      string `json:"webUrl"`
}

// wirePermission is a permission of an item: a grant or a sharing link.
type wirePermission struct {
	ID                 string           `json:"id"`
	Roles              []string         `json:"roles"`
	GrantedTo          *wireIdentitySet `json:"grantedTo"`
	GrantedToV2        *wireIdentitySet `json:"grantedToV2"`
	InheritedFrom      *wireItemRef     `json:"inheritedFrom"`
	Link               *wireSharingLink `json:"link"`
	ShareID            string           `json:"shareId"`
	ExpirationDateTime wireTime         `json:"expirationDateTime"`
}

type wireSharingLink struct {
	Type   string `json:"type"`
	Scope  string `json:"scope"`
	WebURL string `json:"webUrl"`
}

type wireInvite struct {
	Recipients     []wireRecipient `json:"recipients"`
	Roles          []string        `json:"roles"`
	RequireSignIn  bool            `json:"requireSignIn"`
	SendInvitation bool            `json:"sendInvitation"`
}

type wireRecipient struct {
	Email string `json:"email"`
}

type wireCreateLink struct {
	Type               string    `json:"type"`
	Scope              string    `json:"scope,omitempty"`
	ExpirationDateTime *wireTime `json:"expirationDateTime,omitempty"`
}

// wireCreateShortcut is the body that adds a shortcut to a shared item
// (POST …/children).
type wireCreateShortcut struct {
	Name             string           `json:"name"`
	RemoteItem       wireRemoteTarget `json:"remoteItem"`
	ConflictBehavior string           `json:"@microsoft.graph.conflictBehavior,omitempty"`
}

type wireRemoteTarget struct {
	ID              string      `json:"id"`
	ParentReference wireItemRef `json:"parentReference"`
}

type wireQuota struct {
	Total     int64  `json:"total"`
	Used      int64  `json:"used"`
	Remaining int64  `json:"remaining"`
	Deleted   int64  `json:"deleted"`
	State     string `json:"state"`
}

// wireErrorBody is an error reply: {"error":{…}}.
type wireErrorBody struct {
	Error *wireErrorDetail `json:"error"`
}

type wireErrorDetail struct {
	Code       string           `json:"code"`
	Message    string           `json:"message"`
	InnerError *wireInnerError  `json:"innerError"` // also matches "innererror"
	Details    []wireErrorShort `json:"details"`
}

type wireInnerError struct {
	Code       string          `json:"code"`
	RequestID  string          `json:"request-id"`
	Date       string          `json:"date"`
	InnerError *wireInnerError `json:"innerError"`
}

type wireErrorShort struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target"`
}

// wireUploadSession is the reply to createUploadSession, to a fragment that
// is not the last (202) and to GET {uploadUrl}.
type wireUploadSession struct {
	UploadURL          string   `json:"uploadUrl"`
	ExpirationDateTime wireTime `json:"expirationDateTime"`
	NextExpectedRanges []string `json:"nextExpectedRanges"`
}

// wireJobStatus is an asyncJobStatus from a copy monitor URL, in all the
// shapes seen (docs/graph-contract.md §4).
type wireJobStatus struct {
	Operation          string           `json:"operation"`
	Status             string           `json:"status"`
	StatusDescription  string           `json:"statusDescription"`
	PercentageComplete *float64         `json:"percentageComplete"`
	PercentComplete    *float64         `json:"percentComplete"` // SharePoint
	ResourceID         string           `json:"resourceId"`
	ResourceLocation   string           `json:"resourceLocation"`
	Error              *wireErrorDetail `json:"error"`
	ErrorCode          string           `json:"errorCode"` // undocumented, seen on failures
}

// Request bodies.

type wireCreateFolder struct {
	Name             string   `json:"name"`
	Folder           struct{} `json:"folder"`
	ConflictBehavior string   `json:"@microsoft.graph.conflictBehavior,omitempty"`
}

type wireUpdate struct {
	Name            string       `json:"name,omitempty"`
	ParentReference *wireItemRef `json:"parentReference,omitempty"`
	FileSystemInfo  *wireFSInfo  `json:"fileSystemInfo,omitempty"`
}

type wireCreateSession struct {
	Item wireSessionItem `json:"item"`
}

type wireSessionItem struct {
	ConflictBehavior string      `json:"@microsoft.graph.conflictBehavior,omitempty"`
	FileSystemInfo   *wireFSInfo `json:"fileSystemInfo,omitempty"`
	// FileSize lets the service check the quota before any byte is sent
	// (507 at creation rather than at the last fragment).
	FileSize int64 `json:"fileSize,omitempty"`
}

type wireCopy struct {
	ParentReference *wireItemRef `json:"parentReference,omitempty"`
	Name            string       `json:"name,omitempty"`
	ChildrenOnly    bool         `json:"childrenOnly,omitempty"`
}

// newFSInfo returns a fileSystemInfo with the non-zero times, or nil.
func newFSInfo(created, modified time.Time) *wireFSInfo {
	if created.IsZero() && modified.IsZero() {
		return nil
	}
	fi := &wireFSInfo{}
	if !created.IsZero() {
		fi.CreatedDateTime = &wireTime{created}
	}
	if !modified.IsZero() {
		fi.LastModifiedDateTime = &wireTime{modified}
	}
	return fi
}

// toItem converts a driveItem to an Item.
func (w *wireItem) toItem() *Item {
	it := &Item{
		ID:          w.ID,
		Name:        w.Name,
		Size:        w.Size,
		ETag:        w.ETag,
		CTag:        w.CTag,
		WebURL:      w.WebURL,
		Created:     w.CreatedDateTime.Time,
		Modified:    w.LastModifiedDateTime.Time,
		IsRoot:      w.Root != nil,
		Deleted:     w.Deleted != nil,
		DownloadURL: w.GraphDownloadURL,
	}
	if it.DownloadURL == "" {
		it.DownloadURL = w.ContentDownloadURL
	}
	if p := w.ParentReference; p != nil {
		it.DriveID = p.DriveID
		it.ParentID = p.ID
		it.ParentPath = p.Path
	}
	file, folder := w.File, w.Folder
	if r := w.RemoteItem; r != nil {
		if file == nil && folder == nil {
			file, folder = r.File, r.Folder
		}
		it.RemoteID = r.ID
		if r.ParentReference != nil {
			it.RemoteDriveID = r.ParentReference.DriveID
			it.RemoteParentID = r.ParentReference.ID
		}
		// An item of a drive with a remoteItem facet is a shortcut to it
		// (SharedWithMe, whose entries are in no drive, clears this).
		it.Shortcut = true
		if it.Size == 0 {
			it.Size = r.Size
		}
	}
	if folder != nil {
		it.IsFolder = true
		it.ChildCount = folder.ChildCount
	}
	if file != nil {
		it.MimeType = file.MimeType
		if h := file.Hashes; h != nil {
			it.QuickXorHash = h.QuickXorHash
			it.SHA256 = h.SHA256Hash
		}
	}
	if w.Package != nil {
		it.Package = w.Package.Type
		if it.Package == "" {
			it.Package = "unknown"
		}
	}
	if fi := w.FileSystemInfo; fi != nil {
		if fi.CreatedDateTime != nil {
			it.FSCreated = fi.CreatedDateTime.Time
		}
		if fi.LastModifiedDateTime != nil {
			it.FSModified = fi.LastModifiedDateTime.Time
		}
	}
	return it
}

func (w *wireDrive) toDrive() *Drive {
	d := &Drive{ID: w.ID, DriveType: w.DriveType, Name: w.Name, Owner: w.Owner.name()}
	if q := w.Quota; q != nil {
		d.Quota = Quota{Total: q.Total, Used: q.Used, Remaining: q.Remaining, Deleted: q.Deleted, State: q.State}
	}
	return d
}

// firstRangeStart returns the start of the first of nextExpectedRanges
// ("26-", "26-99"), or -1 when there is none.
func firstRangeStart(ranges []string) int64 {
	if len(ranges) == 0 {
		return -1
	}
	s, _, _ := strings.Cut(strings.TrimSpace(ranges[0]), "-")
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}
