package fs

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/onedrivefs/onedrivefs/copyjob"
	"github.com/onedrivefs/onedrivefs/remote"
)

// The extended-attribute trigger of server-side copies,
//
//	setfattr -n user.onedrive.copy -v DEST PATH
//
// and the status attributes user.onedrive.copy.status (on PATH) and
// user.onedrive.copy.jobs (on the root). How DEST is resolved, the errors,
// and the JSON documents are in docs/copy-semantics.md.

// Names of the copy attributes.
const (
	xattrCopy       = "user.onedrive.copy"
	xattrCopyStatus = "user.onedrive.copy.status"
	xattrCopyJobs   = "user.onedrive.copy.jobs"
)

// Bounds of the status attributes' values: the kernel refuses values above
// 64 KiB (XATTR_SIZE_MAX), so the jobs list keeps the newest jobs that fit;
// statusSlack pads the size answered to a size query.
const (
	maxXattrValue = 60 << 10
	statusSlack   = 512
)

// startXattrCopy starts a server-side copy of src to dest (the attribute's
// value) and returns once the service has accepted it.
func (f *FS) startXattrCopy(ctx context.Context, src *entry, value []byte) error {
	if err := f.checkWritable(); err != nil {
		return err
	}
	if f.copies == nil {
		return fmt.Errorf("no copy-job tracker: %w", errNotSupported)
	}
	dest := strings.TrimRight(string(value), "\x00")
	parent, name, err := f.resolveCopyDest(ctx, src, dest)
	if err != nil {
		return err
	}
	if err := f.checkShareWritable(ctx, parent); err != nil { // shared.go
		return err
	}
	it, err := f.sourceForCopy(ctx, src)
	if err != nil {
		return err
	}
	f.mu.Lock()
	parentID := parent.item.Load().ID
	srcPath := f.pathOfFSLocked(src)
	dstPath := path.Join(f.pathOfFSLocked(parent), name)
	f.mu.Unlock()
	if !f.reserveDest(parentID, name) {
		return fmt.Errorf("copy destination %q: another copy into it is running: %w", dstPath, errExists)
	}
	monitor, err := f.startCopy(ctx, it, parent, remote.CopyRequest{Name: name, Conflict: remote.ConflictFail})
	if srcDrive, _ := f.serviceItem(it); errors.Is(err, remote.ErrOffline) && srcDrive == "" && f.contentDrive(parent) == "" {
		// Journaled offline within the mounted drive only (the offline
		// journal names items of the mounted drive).
		f.releaseDest(parentID, name)
		return f.copyOffline(it, srcPath, parentID, name, dstPath) // offline.go
	}
	if err != nil {
		f.releaseDest(parentID, name)
		if errors.Is(err, remote.ErrOffline) {
			return notKeptOffline(err) // offline_attr.go
		}
		if f.refusedCrossDrive(it, parent, err) { // drives.go
			return fmt.Errorf("OneDrive does not copy between these two drives (cp copies the bytes instead): %v: %w", err, errCrossMount)
		}
		return err
	}
	j, err := f.copies.Add(copyjob.Spec{
		SourceID: it.ID, SourcePath: srcPath, DestParentID: parentID, DestName: name, DestPath: dstPath,
		MonitorURL: monitor, Size: it.Size, IsFolder: it.IsFolder || it.IsRoot, Origin: originXattr,
	})
	if err != nil && !errors.Is(err, copyjob.ErrNotPersisted) {
		f.releaseDest(parentID, name)
		return err // the service copies anyway: the next listing shows it
	}
	f.log.Info("server-side copy started", "job", j.ID, "source", srcPath, "destination", dstPath)
	return nil
}

// resolveCopyDest turns a copy destination into the folder and name the
// copy goes to (docs/copy-semantics.md).
func (f *FS) resolveCopyDest(ctx context.Context, src *entry, dest string) (*entry, string, error) {
	if dest == "" {
		return nil, "", fmt.Errorf("empty copy destination: %w", errInvalid)
	}
	f.mu.Lock()
	isRoot := src == f.root
	srcName := src.name
	base := "/"
	if src.parent != nil {
		base = f.pathOfFSLocked(src.parent)
	}
	removed := src.removed || (!isRoot && src.parent == nil)
	mountDir := f.mountDir
	f.mu.Unlock()
	switch {
	case isRoot:
		return nil, "", fmt.Errorf("the root folder cannot be copied: %w", errInvalid)
	case removed:
		return nil, "", errRemoved
	}

	into := strings.HasSuffix(dest, "/")
	var rel string
	if strings.HasPrefix(dest, "/") {
		clean := path.Clean(dest)
		switch {
		case mountDir == "":
			return nil, "", fmt.Errorf("copy destination %q: %w", dest, errCrossMount)
		case clean == mountDir:
			rel = "/"
		case strings.HasPrefix(clean, mountDir+"/"):
			rel = strings.TrimPrefix(clean, mountDir)
		default:
			return nil, "", fmt.Errorf("copy destination %q is not in this mount (%s): %w", dest, mountDir, errCrossMount)
		}
	} else {
		joined := path.Join(strings.TrimPrefix(base, "/"), dest)
		if joined == ".." || strings.HasPrefix(joined, "../") {
			return nil, "", fmt.Errorf("copy destination %q leaves the mount: %w", dest, errCrossMount)
		}
		rel = "/" + joined
	}
	var segs []string
	for _, s := range strings.Split(rel, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	if len(segs) == 0 {
		into = true
	}

	dir := f.root
	walk := segs
	if !into {
		walk = segs[:len(segs)-1]
	}
	for _, s := range walk {
		c, err := f.lookup(ctx, dir, s)
		if err != nil {
			return nil, "", err
		}
		if !c.isDir {
			return nil, "", fmt.Errorf("%q in the copy destination is a file: %w", s, errNotDir)
		}
		dir = c
	}
	name := srcName
	if !into {
		last := segs[len(segs)-1]
		c, err := f.lookup(ctx, dir, last)
		switch {
		case errors.Is(err, errNoEntry):
			name = last
		case err != nil:
			return nil, "", err
		case c.isDir:
			dir = c // an existing folder: into it
		default:
			return nil, "", fmt.Errorf("copy destination %q: %w", dest, errExists)
		}
		if err := f.checkNewPath(ctx, dir, name); err != nil {
			return nil, "", err
		}
	}
	if _, err := f.lookup(ctx, dir, name); err == nil {
		return nil, "", fmt.Errorf("copy destination %q: %w", path.Join(dest, name), errExists)
	} else if !errors.Is(err, errNoEntry) {
		return nil, "", err
	}
	if src.isDir && f.isAncestor(src, dir) {
		return nil, "", fmt.Errorf("copying a folder into itself: %w", errInvalid)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if dir.item.Load() == nil || dir.removed {
		return nil, "", errRemoved
	}
	return dir, name, nil
}

// copyStatus returns the status JSON of the newest copy job started from e.
func (f *FS) copyStatus(e *entry) ([]byte, error) {
	if f.copies == nil {
		return nil, errNoXattr
	}
	f.mu.Lock()
	id := e.itemIDFSLocked()
	f.mu.Unlock()
	j, ok := f.copies.LatestForSource(id)
	if !ok {
		return nil, errNoXattr
	}
	f.hurry(j)
	return j.StatusJSON()
}

// hasCopyStatus reports whether e has a copy status to show.
func (f *FS) hasCopyStatus(e *entry) bool {
	_, err := f.copyStatus(e)
	return err == nil
}

// copyJobsJSON returns the status JSON array of the mount's copy jobs, newest
// first, as many as fit in an attribute value.
func (f *FS) copyJobsJSON() ([]byte, error) {
	var jobs []copyjob.Job
	if f.copies != nil {
		jobs = f.copies.Jobs()
	}
	for {
		b, err := copyjob.StatusListJSON(jobs)
		if err != nil || len(b) <= maxXattrValue || len(jobs) == 0 {
			return b, err
		}
		jobs = jobs[:len(jobs)*3/4] // keep the newest
	}
}

// hurry has a running job polled promptly for a while (as if a caller
// waited on it): someone reading its status (`onedrivefs cp --wait`, a
// script) is waiting for its end, and the tracker's back-off must not make
// them wait longer than the job.
func (f *FS) hurry(j copyjob.Job) {
	if j.State.Terminal() {
		return
	}
	f.bg.Go(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, hurryFor)
		defer cancel()
		_, _ = f.copies.Wait(ctx, j.ID)
	})
}

// hurryFor is how long a status read keeps its job polled promptly.
const hurryFor = 2 * time.Second
