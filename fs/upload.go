package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
)

// Sending a file's content to the service, with the one conflict rule that
// live uploads (file.go) and journal replay (writeback.go) share.
//
// The rule: local content replaces the service's item only if the item
// still holds the content the local change was based on (its cTag). An eTag
// that moved while the cTag did not is a metadata change (a rename, new
// times) and not a conflict. Otherwise the service's version stays and the
// local content is saved beside it as "name (conflict YYYY-MM-DD HHMMSS).ext".
// An item that already holds exactly the local bytes (an earlier attempt
// landed and its reply was lost) needs nothing.
//
// Nothing is ever dropped because the service lost its place: a file deleted
// on the service while it had local changes is created again under its name;
// a folder deleted on the service is created again (by name, from the root
// down) for the files journaled into it; and if a file now stands where a
// folder of the path should be, the content goes to /onedrivefs-recovered/
// under its original path. Each of these is logged.

// recoveredFolder is the root folder where content whose path cannot be
// re-created is saved.
const recoveredFolder = "onedrivefs-recovered"

// sendTarget says where local content goes.
type sendTarget struct {
	// itemID is the item the content replaces ("" for a new file), with the
	// eTag and cTag of the version the local change was based on.
	itemID, baseETag, baseCTag string
	// knownCTag, when set, is the item's cTag as this mount last saw it: a
	// different one is a conflict without asking the service.
	knownCTag string
	// parentID and name place a new file (or a conflict copy); dirPath is the
	// folder's path from the root ("" for the root, "a/b"), used to re-create
	// it when it is gone.
	parentID, name, dirPath string
}

// sendResult is what send did.
type sendResult struct {
	// sent holds the content now: the replaced or new item, or the
	// conflict copy (conflict set).
	sent     *remote.Item
	conflict bool
	// recreated: the item or its folder was gone and was created again;
	// newParent is then the folder the item now lives in.
	recreated bool
	newParent *remote.Item
}

// send uploads size bytes of content with modification time mtime to t,
// following the rule above.
func (f *FS) send(ctx context.Context, content io.ReaderAt, size int64, mtime time.Time, t sendTarget) (sendResult, error) {
	req := remote.UploadRequest{Content: content, Size: size, FSModified: mtime}
	if t.itemID != "" && t.knownCTag != "" && t.knownCTag != t.baseCTag {
		return f.sendConflict(ctx, req, t)
	}
	if t.itemID != "" {
		req.ItemID, req.IfMatch = t.itemID, t.baseETag
		got, err := f.remote.Upload(ctx, req)
		if errors.Is(err, remote.ErrPreconditionFailed) {
			cur, gerr := f.remote.Item(ctx, t.itemID)
			switch {
			case errors.Is(gerr, remote.ErrNotFound):
				err = gerr
			case gerr != nil:
				return sendResult{}, gerr
			case sameContent(content, size, cur):
				return sendResult{sent: cur}, nil
			case t.baseCTag == "" || cur.CTag != t.baseCTag:
				return f.sendConflict(ctx, req, t)
			default:
				req.IfMatch = cur.ETag
				got, err = f.remote.Upload(ctx, req)
			}
		}
		if !errors.Is(err, remote.ErrNotFound) {
			if err != nil {
				return sendResult{}, err
			}
			return sendResult{sent: got}, nil
		}
		f.log.Warn("a file changed here was deleted on OneDrive; creating it again", "name", t.name, "folder", "/"+t.dirPath)
		t.itemID = ""
		res, err := f.sendNew(ctx, req, t)
		res.recreated = true
		return res, err
	}
	return f.sendNew(ctx, req, t)
}

// sendNew creates a new file at t's folder and name; a name taken meanwhile
// is a conflict unless its item holds the same bytes.
func (f *FS) sendNew(ctx context.Context, req remote.UploadRequest, t sendTarget) (sendResult, error) {
	var res sendResult
	parentID := t.parentID
	for attempt := 0; ; attempt++ {
		req.ItemID, req.IfMatch = "", ""
		req.ParentID, req.Name, req.Conflict = parentID, t.name, remote.ConflictFail
		got, err := f.remote.Upload(ctx, req)
		switch {
		case err == nil:
			res.sent = got
			return res, nil
		case errors.Is(err, remote.ErrConflict):
			cur, cerr := f.remote.Child(ctx, parentID, t.name)
			if cerr == nil && sameContent(req.Content, req.Size, cur) {
				res.sent = cur
				return res, nil
			}
			t.parentID = parentID
			cres, err := f.sendConflict(ctx, req, t)
			cres.recreated, cres.newParent = res.recreated, res.newParent
			return cres, err
		case errors.Is(err, remote.ErrNotFound) && attempt == 0:
			// The folder is gone: create it again (or the recovery folder).
			p, perr := f.recreateFolder(ctx, t.dirPath)
			if perr != nil {
				return res, fmt.Errorf("the folder of %q is gone and could not be created again: %w", t.name, perr)
			}
			parentID, res.recreated, res.newParent = p.ID, true, p
		default:
			return res, err
		}
	}
}

// sendConflict saves the local content beside the service's version under a
// conflict name.
func (f *FS) sendConflict(ctx context.Context, req remote.UploadRequest, t sendTarget) (sendResult, error) {
	req.ItemID, req.IfMatch = "", ""
	req.ParentID, req.Name, req.Conflict = t.parentID, conflictName(t.name, f.now()), remote.ConflictRename
	got, err := f.remote.Upload(ctx, req)
	if errors.Is(err, remote.ErrNotFound) {
		p, perr := f.recreateFolder(ctx, t.dirPath)
		if perr != nil {
			return sendResult{}, perr
		}
		req.ParentID = p.ID
		got, err = f.remote.Upload(ctx, req)
	}
	if err != nil {
		return sendResult{}, err
	}
	f.log.Warn("file changed on OneDrive since it was changed here: kept the OneDrive version, saved the local one beside it",
		"name", t.name, "saved_as", got.Name)
	return sendResult{sent: got, conflict: true}, nil
}

// recreateFolder returns the folder at dirPath ("a/b", "" for the root),
// creating the folders of the path that are missing, and putting them in
// the tree. If a file holds a folder's name on the way, the folder is made
// under /onedrivefs-recovered/ instead, with the same path.
func (f *FS) recreateFolder(ctx context.Context, dirPath string) (*remote.Item, error) {
	it, err := f.ensureFolderPath(ctx, dirPath)
	if errors.Is(err, errNotDir) {
		rp := path.Join(recoveredFolder, dirPath)
		f.log.Warn("a file stands where a folder of the path was; saving into the recovery folder",
			"path", "/"+dirPath, "recovery_path", "/"+rp)
		return f.ensureFolderPath(ctx, rp)
	}
	return it, err
}

// ensureFolderPath walks dirPath from the root on the service, creating each
// missing folder; errNotDir if a file holds one of the names.
func (f *FS) ensureFolderPath(ctx context.Context, dirPath string) (*remote.Item, error) {
	f.mu.Lock()
	cur := f.root.item.Load()
	f.mu.Unlock()
	for _, name := range strings.Split(dirPath, "/") {
		if name == "" {
			continue
		}
		next, err := f.remote.Child(ctx, cur.ID, name)
		if errors.Is(err, remote.ErrNotFound) {
			next, err = f.remote.CreateFolder(ctx, cur.ID, name, remote.ConflictFail)
			if errors.Is(err, remote.ErrConflict) { // created meanwhile
				next, err = f.remote.Child(ctx, cur.ID, name)
			}
			if err == nil {
				f.log.Info("created a folder again on OneDrive for content that was still to be sent", "name", next.Name)
				f.mu.Lock()
				if p := f.byID[cur.ID]; p != nil {
					f.placeFSLocked(f.setItemFSLocked(next), p, next.Name)
				}
				f.mu.Unlock()
			}
		}
		if err != nil {
			return nil, err
		}
		if !next.IsFolder {
			return nil, fmt.Errorf("%q is a file: %w", name, errNotDir)
		}
		cur = next
	}
	return cur, nil
}

// conflictName returns "name (conflict YYYY-MM-DD HHMMSS).ext" for t.
func conflictName(name string, t time.Time) string {
	ext := path.Ext(name)
	base := strings.TrimSuffix(name, ext)
	if base == "" || len(ext) > 16 || strings.ContainsRune(ext, ' ') {
		base, ext = name, ""
	}
	return fmt.Sprintf("%s (conflict %s)%s", base, t.Format("2006-01-02 150405"), ext)
}

// sameContent reports whether item holds exactly the size bytes of r,
// compared by quickXorHash (an item without a hash never matches).
func sameContent(r io.ReaderAt, size int64, item *remote.Item) bool {
	if item == nil || item.IsFolder || item.Size != size || item.QuickXorHash == "" {
		return false
	}
	got, err := quickXorHashOf(io.NewSectionReader(r, 0, size))
	return err == nil && got == item.QuickXorHash
}
