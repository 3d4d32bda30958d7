package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/onedrivefs/onedrivefs/cache"
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
	// unconfirmed is content earlier attempts may have stored without the
	// mount learning of it (a reply lost, a wait cancelled): an item found
	// holding one of them is this mount's own version, not a change made
	// elsewhere.
	unconfirmed []cache.ContentRef
	// driveID is the drive of the item and the folder ("" for the mounted
	// drive; drives.go): parentID is the folder's id there.
	driveID string
}

// maxUnconfirmed bounds the unconfirmed contents remembered per file.
const maxUnconfirmed = 4

// heldBy reports whether item holds one of the contents of list.
func heldBy(list []cache.ContentRef, item *remote.Item) bool {
	if item == nil || item.IsFolder || item.QuickXorHash == "" {
		return false
	}
	for _, c := range list {
		if c.Size == item.Size && c.QuickXorHash == item.QuickXorHash {
			return true
		}
	}
	return false
}

// withUnconfirmed returns list with c added (newest last, bounded).
func withUnconfirmed(list []cache.ContentRef, c cache.ContentRef) []cache.ContentRef {
	if c.QuickXorHash == "" {
		return list
	}
	out := make([]cache.ContentRef, 0, len(list)+1)
	for _, o := range list {
		if o != c {
			out = append(out, o)
		}
	}
	out = append(out, c)
	if len(out) > maxUnconfirmed {
		out = out[len(out)-maxUnconfirmed:]
	}
	return out
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
	// attempted, when send fails, is the content an attempt may have
	// stored all the same (see sendTarget.unconfirmed); zero if none got
	// that far.
	attempted cache.ContentRef
}

// send uploads size bytes of content with modification time mtime to t,
// following the rule above.
func (f *FS) send(ctx context.Context, content io.ReaderAt, size int64, mtime time.Time, t sendTarget) (res sendResult, err error) {
	var attempted cache.ContentRef
	defer func() {
		if err != nil {
			res.attempted = attempted
		}
	}()
	req := remote.UploadRequest{Content: content, Size: size, FSModified: mtime,
		Hashed: func(h string) { attempted = cache.ContentRef{Size: size, QuickXorHash: h} }}
	if t.itemID != "" && t.knownCTag != "" && t.knownCTag != t.baseCTag && len(t.unconfirmed) == 0 {
		return f.sendConflict(ctx, req, t)
	}
	if t.itemID != "" {
		req.ItemID, req.IfMatch = t.itemID, t.baseETag
		got, err := f.upload(ctx, t.driveID, req)
		if errors.Is(err, remote.ErrPreconditionFailed) {
			cur, gerr := f.driveClient(t.driveID).Item(ctx, t.itemID)
			switch {
			case errors.Is(gerr, remote.ErrNotFound):
				err = gerr
			case gerr != nil:
				return sendResult{}, gerr
			case sameContent(content, size, cur):
				return sendResult{sent: cur}, nil
			case heldBy(t.unconfirmed, cur):
				// An earlier attempt of this mount landed unannounced: the
				// item is the local change's own base.
				f.log.Debug("an earlier upload had landed; sending over it", "name", t.name)
				req.IfMatch = cur.ETag
				got, err = f.upload(ctx, t.driveID, req)
			case t.baseCTag == "" || cur.CTag != t.baseCTag:
				return f.sendConflict(ctx, req, t)
			default:
				req.IfMatch = cur.ETag
				got, err = f.upload(ctx, t.driveID, req)
			}
		}
		if t.driveID != "" && errors.Is(err, remote.ErrForbidden) {
			// No longer writable in its share: sendNew finds the same and
			// saves the content into the user's own drive.
			t.itemID = ""
			res, err := f.sendNew(ctx, req, t)
			res.recreated = true
			return res, err
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
		got, err := f.upload(ctx, t.driveID, req)
		switch {
		case err == nil:
			res.sent = got
			return res, nil
		case errors.Is(err, remote.ErrConflict):
			cur, cerr := f.driveClient(t.driveID).Child(ctx, parentID, t.name)
			if cerr == nil && sameContent(req.Content, req.Size, cur) {
				res.sent = cur
				return res, nil
			}
			if cerr == nil && heldBy(t.unconfirmed, cur) {
				// This mount's own earlier attempt created it: replace it.
				req.ParentID, req.Name, req.Conflict = "", "", ""
				req.ItemID, req.IfMatch = cur.ID, cur.ETag
				if got, err = f.upload(ctx, t.driveID, req); err == nil {
					res.sent = got
					return res, nil
				}
				return res, err
			}
			t.parentID = parentID
			cres, err := f.sendConflict(ctx, req, t)
			cres.recreated, cres.newParent = res.recreated, res.newParent
			return cres, err
		case errors.Is(err, remote.ErrNotFound) && attempt == 0 && t.driveID == "":
			// The folder is gone: create it again (or the recovery folder).
			p, perr := f.recreateFolder(ctx, t.dirPath)
			if perr != nil {
				return res, fmt.Errorf("the folder of %q is gone and could not be created again: %w", t.name, perr)
			}
			parentID, res.recreated, res.newParent = p.ID, true, p
		case lostShare(err) && attempt == 0 && t.driveID != "":
			// A folder of another drive is gone, or no longer shared with
			// the user: nothing can be created there. The content goes to
			// the user's own drive, under the recovery folder.
			p, perr := f.recoverFromShare(ctx, t, err)
			if perr != nil {
				return res, perr
			}
			t.driveID = ""
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
	got, err := f.upload(ctx, t.driveID, req)
	var newParent *remote.Item
	switch {
	case errors.Is(err, remote.ErrNotFound) && t.driveID == "":
		p, perr := f.recreateFolder(ctx, t.dirPath)
		if perr != nil {
			return sendResult{}, perr
		}
		req.ParentID = p.ID
		got, err = f.upload(ctx, t.driveID, req)
	case lostShare(err) && t.driveID != "":
		p, perr := f.recoverFromShare(ctx, t, err)
		if perr != nil {
			return sendResult{}, perr
		}
		req.ParentID, newParent = p.ID, p
		got, err = f.upload(ctx, "", req)
	}
	if err != nil {
		return sendResult{}, err
	}
	f.log.Warn("file changed on OneDrive since it was changed here: kept the OneDrive version, saved the local one beside it",
		"name", t.name, "saved_as", got.Name)
	return sendResult{sent: got, conflict: true, recreated: newParent != nil, newParent: newParent}, nil
}

// lostShare reports an answer that says a folder of another drive cannot
// take the content any more: it is gone (404), or no longer shared with the
// user, or shared read-only now (403).
func lostShare(err error) bool {
	return errors.Is(err, remote.ErrNotFound) || errors.Is(err, remote.ErrForbidden)
}

// recoverFromShare returns the folder of the user's own drive where content
// meant for t's folder in another drive goes when that folder cannot take
// it (why): /onedrivefs-recovered/ and the folder's path in the mount,
// created as needed. It is logged.
func (f *FS) recoverFromShare(ctx context.Context, t sendTarget, why error) (*remote.Item, error) {
	rp := path.Join(recoveredFolder, t.dirPath)
	f.log.Warn("a shared folder cannot take a file any more (gone, or no longer shared with you); saving it into your own drive",
		"name", t.name, "path", "/"+t.dirPath, "recovery_path", "/"+rp, "err", why)
	p, err := f.ensureFolderPath(ctx, rp)
	if err != nil {
		return nil, fmt.Errorf("the shared folder of %q cannot take it and the recovery folder could not be made: %w", t.name, err)
	}
	return p, nil
}

// timesRetryTimeout bounds the second try at setting an uploaded file's
// times; it runs even if the caller gave up, since the content is stored.
const timesRetryTimeout = 5 * time.Second

// upload sends req. Content that was stored although setting its times
// failed counts as sent: the times are tried once more, and if that fails
// too the file keeps the service's time there (the mount still shows the
// local one), which the next upload corrects. Treating it as a failure would
// leave the mount believing in the version before it, and make its next
// upload look like a conflict.
//
// drive is the drive the request goes to ("" for the mounted one; drives.go).
func (f *FS) upload(ctx context.Context, drive string, req remote.UploadRequest) (*remote.Item, error) {
	rc := f.driveClient(drive)
	got, err := rc.Upload(ctx, req)
	if got == nil || !errors.Is(err, remote.ErrTimesNotSet) {
		return got, err
	}
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timesRetryTimeout)
	defer cancel()
	updated, uerr := rc.Update(tctx, got.ID, remote.ItemUpdate{FSModified: req.FSModified, FSCreated: req.FSCreated})
	if uerr != nil {
		f.log.Warn("the content was sent but its modification time could not be set on OneDrive",
			"name", truncateForLog(got.Name), "err", uerr)
		return got, nil
	}
	return updated, nil
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
				p := f.byID[cur.ID]
				if p != nil {
					f.placeFSLocked(f.setItemFSLocked(next), p, next.Name)
				}
				f.mu.Unlock()
				if p == nil {
					f.storePut(next) // a folder not in memory (evict.go): its listing comes from the store
				}
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
