package fs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/remote"
)

// copy_file_range: a copy inside the mount becomes a server-side copy. The
// rules (which call starts a copy, continuation calls answered without I/O,
// the size stat shows, callers that stop early, the fallback to copying
// bytes, never ENOSYS, interrupts) are written once, in
// docs/copy-semantics.md.

// copyRange is one copy_file_range request.
type copyRange struct {
	src, dst      *entry
	hin, hout     *handle // nil when go-fuse passed no handle of ours
	offIn, offOut int64
	n             int64
}

// copyBufSize is the buffer of the data path.
const copyBufSize = 1 << 20

// maxCopyAnswer bounds one answer: FUSE answers in 32 bits (the kernel asks
// for at most 4294963200 bytes anyway).
const maxCopyAnswer = math.MaxUint32 &^ 4095

var _ gofs.NodeCopyFileRanger = (*fileNode)(nil)

// CopyFileRange implements copy_file_range(2) from this file to out.
func (fn *fileNode) CopyFileRange(ctx context.Context, fhIn gofs.FileHandle, offIn uint64, out *gofs.Inode,
	fhOut gofs.FileHandle, offOut uint64, n uint64, flags uint64) (uint32, syscall.Errno) {
	f := fn.fsys
	dst, ok := out.Operations().(*fileNode)
	if !ok {
		return 0, f.errno(ctx, "copy_file_range", errIsDir, "ino", fn.ent().ino)
	}
	r := copyRange{src: fn.ent(), dst: dst.ent(), offIn: int64(min(offIn, math.MaxInt64)),
		offOut: int64(min(offOut, math.MaxInt64)), n: int64(min(n, maxCopyAnswer))}
	r.hin, _ = fhIn.(*handle)
	r.hout, _ = fhOut.(*handle)
	got, err := f.copyFileRange(ctx, r)
	if got > 0 {
		// A short copy is an answer; the caller's next call gets the error.
		if err != nil {
			f.log.Debug("copy_file_range stopped early", "ino", fn.ent().ino, "copied", got, "err", err)
		}
		return uint32(got), 0
	}
	return 0, f.errno(ctx, "copy_file_range", err, "ino", fn.ent().ino, "off_in", offIn, "off_out", offOut, "len", n)
}

// copyFileRange copies r.n bytes of r.src at r.offIn to r.dst at r.offOut,
// server-side when it can (docs/copy-semantics.md), and returns how many bytes
// it copied.
func (f *FS) copyFileRange(ctx context.Context, r copyRange) (int64, error) {
	if err := f.checkWritable(); err != nil {
		return 0, err
	}
	if r.n <= 0 {
		return 0, nil
	}
	if got, ok := f.continueServerCopy(r); ok {
		return got, nil
	}
	if f.serverCopyCandidate(r) {
		got, fallback, err := f.serverCopyInto(ctx, r)
		switch {
		case err == nil:
			return got, nil
		case ctx.Err() != nil:
			return 0, ctx.Err()
		case !fallback:
			return 0, err
		}
		f.mu.Lock()
		src, dst := f.pathOfFSLocked(r.src), f.pathOfFSLocked(r.dst)
		f.mu.Unlock()
		f.log.Warn("server-side copy not possible; copying the bytes instead",
			"source", src, "destination", dst, "reason", err)
	}
	return f.copyBytes(ctx, r)
}

// continueServerCopy answers a call that continues a server-side copy into
// r.dst (same source, equal offsets, no gap) without I/O; ok is false for
// any other call.
func (f *FS) continueServerCopy(r copyRange) (got int64, ok bool) {
	st := f.fileOf(r.dst)
	if st == nil {
		return 0, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	c := st.copyIn
	if c == nil || c.src != r.src || r.offIn != r.offOut || r.offIn > c.answered {
		return 0, false
	}
	if r.offIn >= c.size {
		return 0, true
	}
	got = min(r.n, c.size-r.offIn)
	if end := r.offIn + got; end > c.answered {
		c.answered = end
		st.setCopiedAttr(true, end)
	}
	return got, true
}

// serverCopyCandidate reports whether r may start a server-side copy: both
// offsets 0, an empty destination that is not the source, in a folder the
// service knows.
func (f *FS) serverCopyCandidate(r copyRange) bool {
	if r.offIn != 0 || r.offOut != 0 || r.src == r.dst || r.src.isDir || r.dst.isDir || f.copies == nil {
		return false
	}
	if f.attrOf(r.dst).size != 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return !r.src.removed && !r.dst.removed && r.dst.parent != nil && r.dst.parent.item.Load() != nil
}

// serverCopyInto has the service copy r.src to r.dst's folder and name and
// returns once the job is accepted (pending.go). fallback tells whether an
// error came before anything happened to the destination, so that the bytes
// may be copied instead.
func (f *FS) serverCopyInto(ctx context.Context, r copyRange) (got int64, fallback bool, err error) {
	it, err := f.sourceForCopy(ctx, r.src)
	if err != nil {
		return 0, true, err
	}
	if it.Size == 0 {
		return 0, true, errors.New("the source is empty")
	}
	return f.startPendingCopy(ctx, r, it)
}

// startCopyTimeout bounds a copy request, which an interrupt does not cancel.
const startCopyTimeout = 30 * time.Second

// startCopy waits for a start slot of the tracker, then sends the copy
// request on a context that an interrupt of the
// FUSE request does not cancel (bounded by startCopyTimeout): once the
// request is sent the service may accept it, and a job the mount does not
// track would be a copy nobody watches. So an interrupted setxattr or cp
// either started nothing (EINTR came earlier, and the caller may simply try
// again) or started a job the tracker follows.
//
// The copy goes from src's drive into folder dest, which may be in another
// drive (drives.go): the service copies across drives when the destination
// names its drive. r.DestParentID is set here.
func (f *FS) startCopy(ctx context.Context, src *remote.Item, dest *entry, r remote.CopyRequest) (string, error) {
	srcDrive, srcID := f.serviceItem(src)
	destDrive := f.contentDrive(dest)
	r.DestParentID = f.serviceFolderID(dest)
	if destDrive != srcDrive {
		r.DestDriveID = f.driveIDOf(destDrive)
	}
	return f.postCopy(ctx, f.driveClient(srcDrive), srcID, r)
}

// postCopy sends POST …/items/{srcID}/copy through rc once the tracker
// gives a start slot, and returns the monitor URL. The rate of copy
// requests is bounded (a cp -r of thousands of files must not trip the
// service's throttling); waiting for a slot is interruptible, the request
// itself is not.
func (f *FS) postCopy(ctx context.Context, rc *remote.Client, srcID string, r remote.CopyRequest) (string, error) {
	if err := f.copies.WaitStartSlot(ctx); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startCopyTimeout)
	defer cancel()
	return rc.StartCopy(ctx, srcID, r)
}

// sourceForCopy returns the service's item for src once it holds src's
// content: unsent writes are sent first. A source whose content is not on
// the service (an upload that failed, a partial server copy) cannot be
// copied there.
func (f *FS) sourceForCopy(ctx context.Context, src *entry) (*remote.Item, error) {
	if st := f.fileOf(src); st != nil {
		st.mu.Lock()
		if c := st.copyIn; c != nil && c.answered < c.size {
			st.mu.Unlock()
			return nil, errors.New("the source is a copy still being made")
		}
		if c := pendingCopyLocked(st); c != nil {
			// A copy of a pending copy is a copy of the version it copies.
			st.mu.Unlock()
			return c.srcItem, nil
		}
		var err error
		if st.dirty {
			err = st.syncLocked(ctx)
		}
		dirty := st.dirty
		st.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("sending the source's unsent changes: %w", err)
		}
		if dirty {
			return nil, errors.New("the source has changes that could not be sent to OneDrive yet")
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if src.item.Load() == nil || src.removed {
		return nil, errors.New("the source is not on OneDrive")
	}
	return src.item.Load(), nil
}

// dropCopyLocked forgets fl's server-copy mark. Requires fl.mu.
func (fl *file) dropCopyLocked() {
	if fl.copyIn != nil {
		fl.copyIn = nil
		fl.setCopiedAttr(false, 0)
	}
}

// settleCopyLocked ends a server-copy mark before the file is sent,
// written or truncated: it waits for a pending copy first; then a copy
// answered whole is just the file; one answered in part is cut to the
// answered bytes (staged from the copy, or cut in the staged bytes of a
// copy completed by bytes) and marked dirty, so that the service's item
// ends as exactly what the caller copied. Requires fl.mu.
func (fl *file) settleCopyLocked(ctx context.Context) error {
	if err := fl.waitCopyLocked(ctx); err != nil {
		return err
	}
	return fl.trimCopyLocked(ctx)
}

// trimCopyLocked is settleCopyLocked once no copy is pending. Requires
// fl.mu.
func (fl *file) trimCopyLocked(ctx context.Context) error {
	f, e := fl.fs, fl.e
	c := fl.copyIn
	if c == nil {
		return nil
	}
	if c.answered >= c.size {
		fl.dropCopyLocked()
		return nil
	}
	if fl.staged != nil {
		if err := fl.staged.File().Truncate(c.answered); err != nil {
			return err
		}
		fl.cutBaseLocked(c.answered)
		_, mtime, _ := fl.localAttr()
		fl.dirty = true
		fl.setLocalAttr(true, c.answered, mtime)
		fl.dropCopyLocked()
		return nil
	}
	it := e.item.Load()
	if it == nil {
		fl.dropCopyLocked()
		return nil
	}
	sf, err := f.staging.Stage(cache.NewRecordID())
	if err != nil {
		return err
	}
	if err := f.copyServerContent(ctx, it, c.answered, sf); err != nil {
		f.abandonStaged(sf)
		return err
	}
	fl.staged, fl.committed, fl.dirty = sf, false, true
	fl.baseCTag, fl.baseETag = it.CTag, it.ETag
	fl.setLocalAttr(true, c.answered, itemMtime(it))
	f.log.Info("a copy_file_range caller copied only the start of the file; the destination keeps exactly those bytes",
		"path", f.pathOf(e), "copied", c.answered, "size", c.size)
	fl.dropCopyLocked()
	return nil
}

// copyBytes is the data path: it reads r.src and writes r.dst, through
// their handles (or new ones), until r.n bytes are copied, the source ends,
// or ctx is cancelled.
func (f *FS) copyBytes(ctx context.Context, r copyRange) (int64, error) {
	hin, hout := r.hin, r.hout
	if hin == nil {
		h, err := f.open(ctx, r.src, false)
		if err != nil {
			return 0, err
		}
		defer h.release(ctx)
		hin = h
	}
	if hout == nil {
		h, err := f.open(ctx, r.dst, false)
		if err != nil {
			return 0, err
		}
		defer h.release(ctx)
		hout = h
	}
	buf := make([]byte, min(r.n, copyBufSize))
	var done int64
	for done < r.n {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		want := min(int64(len(buf)), r.n-done)
		n, err := hin.read(ctx, buf[:want], r.offIn+done)
		if err != nil {
			return done, err
		}
		if n == 0 {
			break // the source ends
		}
		w, err := hout.write(ctx, buf[:n], r.offOut+done)
		done += int64(w)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
