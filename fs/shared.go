package fs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/onedrivefs/onedrivefs/remote"
)

// Shared folders: shortcuts in the user's drive to folders of other drives,
// and the virtual, read-only "Shared with me" folder at the root.
//
// Changes inside a shared folder are not in the delta of the user's drive
// (docs/graph-contract.md §11). Every shortcut whose children this mount has
// listed is watched: each poll round (Config.PollInterval) polls at most
// sharesPerPoll of them, round-robin, with the delta of the shared folder on
// its own drive (one request per share while nothing changed; its delta link
// is taken before the folder is first listed, so nothing is missed between
// the two). Drives without folder delta (Business, SharePoint) answer it
// with ErrNotSupported: those shares are relisted instead, the folders of
// the share whose listings are cached (the ones the kernel and the user
// are looking at), at most relistPerShare per turn (deeper ones follow the
// listing TTL). So a mount with N watched shares spends at most
// sharesPerPoll requests per poll interval on them (sharesPerPoll ×
// relistPerShare on Business drives), and sees a change in one within
// ceil(N/sharesPerPoll) intervals.

// sharesPerPoll bounds the shares polled per poll round, and
// relistPerShare the folders relisted per turn of a share without folder
// delta.
const (
	sharesPerPoll  = 4
	relistPerShare = 8
)

// errShareReadOnly: a change inside a folder shared with the user read-only.
var errShareReadOnly = errors.New("shared with you read-only")

// localCTagPrefix starts a cTag this mount made up for an item the service
// listed without one (sharedWithMe): a content-cache key, never sent.
const localCTagPrefix = "onedrivefs-local:"

// sharedDirID is the item id of the virtual "Shared with me" folder; no
// service id looks like it.
const sharedDirID = "onedrivefs:shared-with-me"

// shareState is the watched shares. GUARDED_BY(FS.mu)
type shareState struct {
	byShortcut map[string]*share // by the shortcut's item id
	cursor     int               // round-robin position of pollShares
	// links are the sharing links this mount created (share.go), by
	// lower-cased drive id + "/" + item id. Credentials: never logged.
	links map[string]string
}

// share is one shortcut to a folder of another drive.
type share struct {
	entry             *entry // the shortcut's entry
	driveID, remoteID string // its target
	// link is the target's folder delta link; "" until taken. listOnly:
	// the drive has no folder delta, the folder is relisted instead.
	link     string
	listOnly bool
	// role is the user's role on the target, once asked (roleKnown).
	role      remote.Role
	roleKnown bool
}

// watchShare registers shortcut dir as watched and takes its delta link,
// before its first listing: the first poll then reports every change made
// after that listing.
func (f *FS) watchShare(ctx context.Context, dir *entry) {
	it := dir.item.Load()
	drive, remoteID := f.serviceItem(it)
	f.mu.Lock()
	if f.shares.byShortcut == nil {
		f.shares.byShortcut = make(map[string]*share)
	}
	s := f.shares.byShortcut[it.ID]
	if s == nil || s.remoteID != remoteID {
		s = &share{entry: dir, driveID: drive, remoteID: remoteID}
		f.shares.byShortcut[it.ID] = s
	}
	need := s.link == "" && !s.listOnly
	f.mu.Unlock()
	if !need {
		return
	}
	// The role, for stat's permission bits and to refuse changes early.
	if _, err := f.shareRole(ctx, dir, s); err != nil {
		f.log.Debug("reading the role on a shared folder failed", "share", it.Name, "err", err)
	}
	page, err := f.driveClient(drive).FolderDelta(ctx, remoteID, "latest")
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case errors.Is(err, remote.ErrNotSupported):
		s.listOnly = true
	case err != nil:
		f.log.Debug("taking the delta link of a shared folder failed; the next poll takes it", "share", it.Name, "err", err)
	default:
		s.link = page.DeltaLink
	}
}

// pollShares polls up to sharesPerPoll watched shares for changes, round-
// robin, and applies them.
func (f *FS) pollShares(ctx context.Context) {
	f.mu.Lock()
	var all []*share
	for _, s := range f.shares.byShortcut {
		if !s.entry.removed {
			all = append(all, s)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].entry.ino < all[j].entry.ino })
	var turn []*share
	for i := 0; i < len(all) && i < sharesPerPoll; i++ {
		turn = append(turn, all[(f.shares.cursor+i)%len(all)])
	}
	if len(all) > 0 {
		f.shares.cursor = (f.shares.cursor + len(turn)) % len(all)
	}
	f.mu.Unlock()
	for _, s := range turn {
		if ctx.Err() != nil {
			return
		}
		err := f.pollShare(ctx, s)
		switch {
		case err == nil || ctx.Err() != nil:
		case errors.Is(err, remote.ErrNotFound), errors.Is(err, remote.ErrForbidden):
			// Unshared, or deleted by its owner: no longer watched (listing
			// it again watches it again, if it comes back).
			f.log.Info("a shared folder is gone or no longer shared with you; it is not polled any more",
				"share", f.shareName(s), "err", err)
			f.mu.Lock()
			if f.shares.byShortcut[s.entry.item.Load().ID] == s {
				delete(f.shares.byShortcut, s.entry.item.Load().ID)
			}
			f.mu.Unlock()
			f.invalidateListing(s.entry.item.Load().ID)
		default:
			f.log.Warn("polling a shared folder for changes failed", "share", f.shareName(s), "err", err)
		}
	}
}

// pollShare applies the changes in one share since its delta link.
func (f *FS) pollShare(ctx context.Context, s *share) error {
	f.mu.Lock()
	link, listOnly, since := s.link, s.listOnly, f.seq
	f.mu.Unlock()
	if listOnly {
		return f.relistShare(ctx, s, since)
	}
	rc := f.driveClient(s.driveID)
	if link == "" {
		// No link yet (the first attempt failed): take one and drop the
		// listing, which may be older.
		page, err := rc.FolderDelta(ctx, s.remoteID, "latest")
		if errors.Is(err, remote.ErrNotSupported) {
			f.mu.Lock()
			s.listOnly = true
			f.mu.Unlock()
			return f.relistShare(ctx, s, since)
		}
		if err != nil {
			return err
		}
		f.mu.Lock()
		s.link = page.DeltaLink
		f.mu.Unlock()
		f.invalidateListing(s.entry.item.Load().ID)
		return nil
	}
	page, err := rc.FolderDelta(ctx, s.remoteID, link)
	if errors.Is(err, remote.ErrResyncRequired) {
		f.log.Info("a shared folder's changes must be read again; its listing is dropped", "share", f.shareName(s))
		f.invalidateListing(s.entry.item.Load().ID)
		page, err = rc.FolderDelta(ctx, s.remoteID, "latest")
	}
	if err != nil {
		return err
	}
	f.applyDelta(f.shareItems(s, page.Items), since)
	f.mu.Lock()
	s.link = page.DeltaLink
	f.mu.Unlock()
	return nil
}

// shareName is the name the shortcut of s shows under.
func (f *FS) shareName(s *share) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return s.entry.name
}

// relistShare polls a share of a drive without folder delta: the folders
// of the share whose listings are cached (the shared folder first, then
// those below it, breadth first, at most relistPerShare of them) are listed
// again, and what changed is applied as a delta would be (new, changed and
// vanished children).
func (f *FS) relistShare(ctx context.Context, s *share, since uint64) error {
	for _, dir := range f.cachedFoldersUnder(s.entry, relistPerShare) {
		f.mu.Lock()
		l := f.listingFSLocked(dir)
		var before []string
		if l != nil {
			for _, c := range l.children {
				if it := c.item.Load(); it != nil && !c.removed {
					before = append(before, it.ID)
				}
			}
		}
		f.mu.Unlock()
		if l == nil {
			continue // dropped meanwhile: the next access lists it
		}
		items, err := f.driveClient(s.driveID).Children(ctx, f.serviceFolderID(dir))
		if err != nil {
			return err
		}
		seen := make(map[string]bool, len(items))
		for _, it := range items {
			seen[it.ID] = true
		}
		for _, id := range before {
			if !seen[id] {
				items = append(items, &remote.Item{ID: id, Deleted: true})
			}
		}
		f.applyDelta(f.shareItems(s, items), since)
	}
	return nil
}

// cachedFoldersUnder returns top and the folders below it whose listings
// are cached, breadth first, at most max of them.
func (f *FS) cachedFoldersUnder(top *entry, max int) []*entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*entry
	queue := []*entry{top}
	for len(queue) > 0 && len(out) < max {
		d := queue[0]
		queue = queue[1:]
		l := f.listingFSLocked(d)
		if l == nil || d.removed {
			continue
		}
		out = append(out, d)
		var subs []*entry
		for _, c := range l.children {
			if c.isDir && !c.removed {
				subs = append(subs, c)
			}
		}
		sort.Slice(subs, func(i, j int) bool { return subs[i].ino < subs[j].ino })
		queue = append(queue, subs...)
	}
	return out
}

// shareItems turns a share's delta items into the mount's terms: the
// shared folder itself is the shortcut's entry (its children's parent id is
// the shortcut's), and is not itself an item of the tree.
func (f *FS) shareItems(s *share, items []*remote.Item) []*remote.Item {
	scID := s.entry.item.Load().ID
	out := make([]*remote.Item, 0, len(items))
	for _, it := range items {
		if it.ID == s.remoteID {
			continue
		}
		if it.ParentID == s.remoteID || it.DriveID == "" {
			cp := *it
			if cp.ParentID == s.remoteID {
				cp.ParentID = scID
			}
			if cp.DriveID == "" {
				cp.DriveID = s.driveID
			}
			it = &cp
		}
		out = append(out, it)
	}
	return out
}

// shareRootFSLocked returns the entry at or above e that makes e part of
// something shared with the user: a shortcut, or the virtual "Shared with
// me" folder; nil for items of the user's own drive. Requires FS.mu.
func (f *FS) shareRootFSLocked(e *entry) *entry {
	for p := e; p != nil && p != f.root; p = p.parent {
		if p == f.sharedDir {
			return p
		}
		if it := p.item.Load(); it != nil && it.Shortcut {
			return p
		}
	}
	return nil
}

// readOnlyShareFSLocked reports whether e is in the virtual "Shared with
// me" folder, or in a share whose role is known to be read-only (stat shows
// it without write permission). Requires FS.mu.
func (f *FS) readOnlyShareFSLocked(e *entry) bool {
	root := f.shareRootFSLocked(e)
	switch {
	case root == nil:
		return false
	case root == f.sharedDir, !root.isDir:
		return true
	}
	s := f.shares.byShortcut[root.item.Load().ID]
	return s != nil && s.roleKnown && !s.role.CanWrite()
}

// checkShareWritable refuses a change to the content of e (a file's bytes
// or times, a folder's children) when e is in a folder shared with the user
// read-only, or in the virtual "Shared with me" folder, before anything is
// accepted: a write the service would refuse is never staged or journaled.
// The role is asked once per share (two requests) and remembered.
func (f *FS) checkShareWritable(ctx context.Context, e *entry) error {
	f.mu.Lock()
	root := f.shareRootFSLocked(e)
	var s *share
	var name string
	if root != nil && root != f.sharedDir {
		s = f.shares.byShortcut[root.item.Load().ID]
		name = root.name
	}
	f.mu.Unlock()
	switch {
	case root == nil:
		return nil
	case root == f.sharedDir:
		return fmt.Errorf("%q is read-only (add an item as a shortcut to change it): %w", f.sharedName, errReadOnly)
	case !root.isDir:
		// A shortcut to a single file: its content lives in the owner's
		// drive, in a folder the user may not see, where a conflict copy
		// could not go. Read it, copy it; change the copy.
		return fmt.Errorf("%q is a shortcut to a file shared with you; it is read-only here: %w", name, errShareReadOnly)
	}
	role, err := f.shareRole(ctx, root, s)
	if err != nil {
		// The service decides, and answers 403 if it must.
		f.log.Debug("reading the role on a shared folder failed", "share", name, "err", err)
		return nil
	}
	if !role.CanWrite() {
		return fmt.Errorf("%q is shared with you read-only (role %s): %w", name, role, errShareReadOnly)
	}
	return nil
}

// shareRole returns the user's role on the target of shortcut sc.
func (f *FS) shareRole(ctx context.Context, sc *entry, s *share) (remote.Role, error) {
	f.mu.Lock()
	if s != nil && s.roleKnown {
		r := s.role
		f.mu.Unlock()
		return r, nil
	}
	f.mu.Unlock()
	drive, id := f.serviceItem(sc.item.Load())
	role, err := f.driveClient(drive).MyRole(ctx, id)
	if err != nil {
		return remote.RoleNone, err
	}
	if role == remote.RoleNone {
		// No permission names the user (access through a group or a site):
		// let the service decide.
		role = remote.RoleWrite
	}
	if s != nil {
		f.mu.Lock()
		s.role, s.roleKnown = role, true
		f.mu.Unlock()
	}
	return role, nil
}

// The virtual "Shared with me" folder.

// initSharedDir creates the virtual folder's entry (Config.SharedWithMe
// names it; "" turns it off). Called by start.
func (f *FS) initSharedDirFSLocked() {
	if f.sharedName == "" {
		return
	}
	e := &entry{ino: f.nextIno, isDir: true, parent: f.root, name: f.sharedName}
	f.nextIno++
	now := f.now()
	e.item.Store(&remote.Item{ID: sharedDirID, Name: f.sharedName, IsFolder: true, Created: now, Modified: now})
	f.byIno[e.ino] = e
	f.byID[sharedDirID] = e
	f.sharedDir = e
}

// isSharedDir reports whether dir is the virtual folder.
func (f *FS) isSharedDir(dir *entry) bool {
	return dir != nil && dir == f.sharedDir
}

// addSharedDirFSLocked puts the virtual folder into the root's listing l,
// unless an item of the drive holds its name. Requires FS.mu.
func (f *FS) addSharedDirFSLocked(dir *entry, l *dirListing) {
	if f.sharedDir == nil || dir != f.root {
		return
	}
	k := foldName(f.sharedName)
	if _, taken := l.children[k]; !taken {
		l.children[k] = f.sharedDir
	}
}

// sharedWithMe lists what others shared with the user and they did not add
// as a shortcut, as items of their own drives (the service's entries carry
// the item in their remoteItem facet).
func (f *FS) sharedWithMe(ctx context.Context) ([]*remote.Item, error) {
	rootList, err := f.heldListing(ctx, f.root, false)
	if err != nil {
		return nil, err
	}
	shortcuts := map[string]bool{}
	for _, c := range rootList.children {
		if it := c.item.Load(); it != nil && it.Shortcut && !c.removed {
			shortcuts[strings.ToLower(it.RemoteDriveID)+"/"+it.RemoteID] = true
		}
	}
	f.mu.Unlock()
	shared, err := f.remote.SharedWithMe(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*remote.Item, 0, len(shared))
	for _, s := range shared {
		if s.RemoteID == "" || s.RemoteDriveID == "" || shortcuts[strings.ToLower(s.RemoteDriveID)+"/"+s.RemoteID] {
			continue
		}
		it := *s
		it.ID, it.DriveID, it.ParentID = s.RemoteID, s.RemoteDriveID, sharedDirID
		it.RemoteDriveID, it.RemoteID, it.RemoteParentID, it.Shortcut = "", "", "", false
		if it.CTag == "" && !it.IsFolder {
			// The list carries no cTag: the content cache keys the version by
			// what it does carry, so a changed file is not served from the
			// cache (fetcherFor downloads such items by id).
			it.CTag = fmt.Sprintf("%s%d:%d:%s", localCTagPrefix, it.Size, it.Modified.UnixNano(), it.QuickXorHash)
		}
		out = append(out, &it)
	}
	return out, nil
}

// checkChildWritable refuses removing or renaming name in dir when dir's
// children are read-only to the user (checkShareWritable), or when name is
// the virtual "Shared with me" folder itself.
func (f *FS) checkChildWritable(ctx context.Context, dir *entry, name string) error {
	if dir == f.root && f.sharedDir != nil && foldName(name) == foldName(f.sharedName) {
		f.mu.Lock()
		l := f.listingFSLocked(f.root)
		virtual := l == nil || l.children[foldName(name)] == f.sharedDir
		f.mu.Unlock()
		if virtual {
			return fmt.Errorf("%q is the mount's own folder: %w", f.sharedName, errReadOnly)
		}
	}
	return f.checkShareWritable(ctx, dir)
}
