package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Item is a driveItem: a file, a folder, the root, or (in delta) a deletion.
type Item struct {
	ID, Name, DriveID string
	ParentID          string
	ParentPath        string // e.g. "/drive/root:/Docs"; "" when the service omits it (delta)
	IsFolder          bool
	IsRoot            bool
	Deleted           bool // delta only: the item was deleted
	ChildCount        int
	Size              int64 // folders: total of descendants (may be negative on Business)
	ETag              string
	CTag              string // content tag; Business omits it for folders
	QuickXorHash      string // base64, as the service sends it; "" if not reported
	SHA256            string // hex, when reported
	MimeType          string
	Package           string    // "oneNote" etc. for packages (opaque to a file system); "" otherwise
	Created           time.Time // server times
	Modified          time.Time
	FSCreated         time.Time // fileSystemInfo, client-settable; zero if absent
	FSModified        time.Time
	WebURL            string
	// DownloadURL is pre-authenticated and short-lived; it may be "". It is a
	// credential: never log it.
	DownloadURL string

	// Shared-in items (a remoteItem facet, docs/graph-contract.md §11): the
	// item lives in drive RemoteDriveID as RemoteID, under RemoteParentID
	// (when the service says). Shortcut is set for a shortcut in this drive
	// ("Add shortcut to My files"), whose own ID is not RemoteID; its
	// content and children are reached through RemoteDriveID and RemoteID
	// (OnDrive), not through ID. Role is the signed-in user's role on the
	// remote item when known (RemoteTarget fills it in), "" otherwise.
	RemoteDriveID  string
	RemoteID       string
	RemoteParentID string
	Shortcut       bool
	Role           Role
}

// Quota of a drive, in bytes. State is normal, nearing, critical or exceeded.
type Quota struct {
	Total, Used, Remaining, Deleted int64
	State                           string
}

// Drive is a drive and its quota. An all-zero Quota means unknown.
// DriveType is personal, business or documentLibrary (a SharePoint
// library); Name is the drive's name ("OneDrive", a library's title) and
// Owner the display name of its owner (a user, or a library's site), when
// the service says.
type Drive struct {
	ID, DriveType string
	Name, Owner   string
	Quota         Quota
}

// IsBusiness reports whether the drive answers in the Business forms
// (docs/graph-contract.md §11): delta only at the root, no cTag on folders.
func (d *Drive) IsBusiness() bool { return d.DriveType != "" && d.DriveType != "personal" }

// maxJSONBody bounds a JSON reply (a page of 1,000 children is a few MB).
const maxJSONBody = 64 << 20

// childrenPageSize is what Children asks for per page ($top).
const childrenPageSize = 1000

// Drive returns the drive and its quota.
func (c *Client) Drive(ctx context.Context) (*Drive, error) {
	var w wireDrive
	if err := c.getJSON(ctx, "get drive", c.driveURL, &w); err != nil {
		return nil, err
	}
	return w.toDrive(), nil
}

// Root returns the drive's root folder.
func (c *Client) Root(ctx context.Context) (*Item, error) {
	return c.getItem(ctx, "get root", c.driveURL+"/root")
}

// Item returns the item with the given id.
func (c *Client) Item(ctx context.Context, id string) (*Item, error) {
	return c.getItem(ctx, "get item", c.itemURL(id))
}

// ItemByPath returns the item at a path relative to the drive root, e.g.
// "/Docs/a b.txt" ("" or "/" is the root).
func (c *Client) ItemByPath(ctx context.Context, path string) (*Item, error) {
	return c.getItem(ctx, "get item by path", c.pathURL(path))
}

// Child returns the child named name of the folder parentID. The service
// compares names case-insensitively.
func (c *Client) Child(ctx context.Context, parentID, name string) (*Item, error) {
	if err := checkName("get child", name); err != nil {
		return nil, err
	}
	return c.getItem(ctx, "get child", c.childURL(parentID, name))
}

func (c *Client) getItem(ctx context.Context, op, u string) (*Item, error) {
	var w wireItem
	if err := c.getJSON(ctx, op, u, &w); err != nil {
		return nil, err
	}
	return w.toItem(), nil
}

// Children returns every child of a folder, following the service's
// @odata.nextLink from page to page (1,000 items a page).
func (c *Client) Children(ctx context.Context, folderID string) ([]*Item, error) {
	var items []*Item
	u := c.itemURL(folderID) + "/children?$top=" + fmt.Sprint(childrenPageSize)
	_, err := c.pages(ctx, "children", u, func(p *wirePage) error {
		for i := range p.Value {
			items = append(items, p.Value[i].toItem())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// pages fetches u and the pages after it, calling fn for each, until a page
// has no nextLink. It returns the last page's deltaLink (delta only).
// nextLinks are followed verbatim, after checking that they point at the
// Graph host (the API client would send them the token).
func (c *Client) pages(ctx context.Context, op, u string, fn func(*wirePage) error) (deltaLink string, err error) {
	seen := map[string]bool{}
	for {
		var p wirePage
		if err := c.getJSON(ctx, op, u, &p); err != nil {
			return "", err
		}
		if err := fn(&p); err != nil {
			return "", err
		}
		if p.NextLink == "" {
			return p.DeltaLink, nil
		}
		next, err := resolveLink(u, p.NextLink)
		if err != nil {
			return "", fmt.Errorf("remote: %s: %w", op, err)
		}
		if err := c.sameHost(next); err != nil {
			return "", fmt.Errorf("remote: %s: nextLink: %w", op, err)
		}
		if seen[next] {
			return "", fmt.Errorf("remote: %s: the service repeated a nextLink", op)
		}
		seen[next] = true
		u = next
	}
}

// resolveLink resolves a link from a reply against the request's URL
// (links are absolute in practice; a relative one is tolerated).
func resolveLink(base, link string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	l, err := url.Parse(link)
	if err != nil {
		return "", fmt.Errorf("bad link from the service: %w", err)
	}
	if l.IsAbs() {
		return link, nil // verbatim: the service's encoding is kept
	}
	return b.ResolveReference(l).String(), nil
}

// CreateFolder creates the folder name in parentID. With ConflictFail (or
// the default, which is fail) an existing name gives ErrConflict — except
// when an earlier attempt of this same call may have created it (the reply
// was lost and the request repeated): then the existing folder is fetched
// and returned. ConflictRename is not repeated after an ambiguous failure
// (it could create a second folder): it returns ErrOutcomeUnknown.
func (c *Client) CreateFolder(ctx context.Context, parentID, name string, cb ConflictBehavior) (*Item, error) {
	if err := checkName("create folder", name); err != nil {
		return nil, err
	}
	mode := repeatable
	if cb == ConflictRename {
		mode = notRepeatable
	}
	body := wireCreateFolder{Name: name, ConflictBehavior: string(cb)}
	r, err := jsonRequest("create folder", http.MethodPost, c.itemURL(parentID)+"/children", body, mode)
	if err != nil {
		return nil, err
	}
	var w wireItem
	err = c.callJSON(ctx, r, &w)
	if err != nil && r.retried && errors.Is(err, ErrConflict) {
		if it, gerr := c.Child(ctx, parentID, name); gerr == nil && it.IsFolder {
			return it, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return w.toItem(), nil
}

// ItemUpdate changes an item; zero fields are left unchanged.
type ItemUpdate struct {
	Name       string // rename
	ParentID   string // move (same drive only; the real root id, not "root")
	FSModified time.Time
	FSCreated  time.Time
	// IfMatch is the eTag the caller last saw; if the item changed since,
	// the update fails with ErrPreconditionFailed. "" → unconditional.
	IfMatch string
	// Conflict is sent as ?@microsoft.graph.conflictBehavior= when set
	// (replace lets a rename or move overwrite an existing file).
	Conflict ConflictBehavior
}

func (u ItemUpdate) wire() wireUpdate {
	w := wireUpdate{Name: u.Name, FileSystemInfo: newFSInfo(u.FSCreated, u.FSModified)}
	if u.ParentID != "" {
		w.ParentReference = &wireItemRef{ID: u.ParentID}
	}
	return w
}

// Update renames or moves an item or sets its fileSystemInfo times (PATCH).
// An empty update returns the item unchanged. If the request had to be
// repeated after an ambiguous failure and then meets a 412 (its own first
// attempt changed the eTag), the item is fetched and returned when it
// already shows every requested change.
func (c *Client) Update(ctx context.Context, id string, u ItemUpdate) (*Item, error) {
	body := u.wire()
	if body.Name == "" && body.ParentReference == nil && body.FileSystemInfo == nil {
		return c.Item(ctx, id)
	}
	if u.Name != "" {
		if err := checkName("update item", u.Name); err != nil {
			return nil, err
		}
	}
	r, err := jsonRequest("update item", http.MethodPatch, c.itemURL(id)+conflictQuery(u.Conflict), body, repeatable)
	if err != nil {
		return nil, err
	}
	if u.IfMatch != "" {
		r.header.Set("If-Match", u.IfMatch)
	}
	var w wireItem
	err = c.callJSON(ctx, r, &w)
	if err != nil && r.retried && errors.Is(err, ErrPreconditionFailed) {
		if it, gerr := c.Item(ctx, id); gerr == nil && u.appliedTo(it) {
			return it, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return w.toItem(), nil
}

// appliedTo reports whether it already shows every change of u.
func (u ItemUpdate) appliedTo(it *Item) bool {
	return (u.Name == "" || u.Name == it.Name) &&
		(u.ParentID == "" || u.ParentID == it.ParentID) &&
		(u.FSModified.IsZero() || u.FSModified.Truncate(time.Second).Equal(it.FSModified.Truncate(time.Second))) &&
		(u.FSCreated.IsZero() || u.FSCreated.Truncate(time.Second).Equal(it.FSCreated.Truncate(time.Second)))
}

// Delete moves an item (a folder with all its content) to the recycle bin.
// ifMatch, when not "", is the eTag the caller last saw (else
// ErrPreconditionFailed). A 404 after the request was repeated following an
// ambiguous failure counts as success (the first attempt deleted it).
func (c *Client) Delete(ctx context.Context, id, ifMatch string) error {
	r := &request{op: "delete item", method: http.MethodDelete, url: c.itemURL(id), mode: repeatable}
	if ifMatch != "" {
		r.header = http.Header{"If-Match": {ifMatch}}
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		if r.retried && errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	if resp.StatusCode/100 != 2 {
		return errorFromResponse(r.op, resp, c.now())
	}
	drain(resp)
	return nil
}

// getJSON GETs u (repeatable) and decodes the JSON reply into out.
func (c *Client) getJSON(ctx context.Context, op, u string, out any) error {
	return c.callJSON(ctx, &request{op: op, method: http.MethodGet, url: u, mode: repeatable, buffer: true}, out)
}

// callJSON sends r and decodes a 2xx JSON reply into out.
func (c *Client) callJSON(ctx context.Context, r *request, out any) error {
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	return c.decodeReply(r.op, resp, out)
}

// decodeReply decodes a 2xx JSON reply into out and closes the body; any
// other status becomes an *Error.
func (c *Client) decodeReply(op string, resp *http.Response, out any) error {
	if resp.StatusCode/100 != 2 {
		return errorFromResponse(op, resp, c.now())
	}
	defer drain(resp)
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJSONBody)).Decode(out); err != nil {
		return fmt.Errorf("remote: %s: decoding the reply: %w", op, err)
	}
	return nil
}
