package graphtest

import (
	"fmt"
	"strings"
	"time"
)

// drive is one drive the server owns. Its items are addressed by id; each
// folder indexes its children by folded (case-insensitive) name.
type drive struct {
	ID      string // as handed out (16 lower-case hex for personal drives)
	RootID  string
	Items   map[string]*item // by item id; guarded by Server.mu
	Deleted int64            // bytes moved to the recycle bin (quota.deleted)
	// Tombstones of deleted items, for delta; by item id.
	Tombstones map[string]*tombstone
	// DeltaFloor is the oldest sequence number a delta token may carry;
	// older tokens get 410 resyncRequired.
	DeltaFloor int64
}

// item is a driveItem in the fake's store. All fields are guarded by
// Server.mu.
type item struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	ParentID string `json:"parentId,omitempty"` // "" for the root
	Folder   bool   `json:"folder,omitempty"`
	Package  string `json:"package,omitempty"` // e.g. "oneNote"

	// Files: content. Blob names an immutable file in the blob store, shared
	// by copies. Size of a folder is the total of its descendants, kept up
	// to date on every change.
	Size         int64  `json:"size"`
	Blob         string `json:"blob,omitempty"`
	QuickXorHash string `json:"quickXorHash,omitempty"`
	SHA256       string `json:"sha256,omitempty"`
	MimeType     string `json:"mimeType,omitempty"`

	// ETagVersion advances on any change, CTagVersion on content changes
	// (for folders: when a descendant changes).
	ETagVersion int64 `json:"eTagVersion"`
	CTagVersion int64 `json:"cTagVersion"`

	Created    time.Time `json:"created"`
	Modified   time.Time `json:"modified"`
	FSCreated  time.Time `json:"fsCreated"`
	FSModified time.Time `json:"fsModified"`

	// Seq is the change sequence number of the last change (delta).
	Seq int64 `json:"seq"`

	// VisibleAt hides a new item from listings, path lookups and delta until
	// that time (FaultOptions.VisibilityDelay); zero → visible. Set on
	// creation from s.visibleAtLocked(); tested with s.hiddenLocked(it)
	// (faults.go).
	VisibleAt time.Time `json:"visibleAt,omitzero"`

	// Remote makes the item a shortcut to an item of another drive
	// (shares.go); nil for ordinary items.
	Remote *remoteRef `json:"remote,omitempty"`

	// children of a folder by folded name → id; rebuilt on load.
	children map[string]string
}

// tombstone remembers a deleted item for delta.
type tombstone struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	ParentID string `json:"parentId"`
	Folder   bool   `json:"folder"`
	Seq      int64  `json:"seq"`
}

func (it *item) eTag() string { return fmt.Sprintf("\"{%s},%d\"", it.ID, it.ETagVersion) }
func (it *item) cTag() string { return fmt.Sprintf("\"c:{%s},%d\"", it.ID, it.CTagVersion) }

// foldName is the key under which names are compared: OneDrive names are
// case-insensitive and case-preserving.
func foldName(name string) string { return strings.ToLower(name) }
