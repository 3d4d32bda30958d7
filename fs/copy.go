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
	"github.com/onedrivefs/onedrivefs/copyjob"
	"github.com/onedrivefs/onedrivefs/remote"
)

// copy_file_range: a copy inside the mount becomes a server-side copy. The
// rules (which call starts a copy, continuation calls answered without I/O,
// the size stat shows, callers that stop early, the fallback to copying
// bytes, never ENOSYS, interrupts) are written once, in
// docs/copy-semantics.md.

// serverCopy marks a file whose content is a server-side copy of src (size
// bytes, its item the file's), of which a copy_file_range caller has been
// answered the first answered bytes. It lives in file.copyIn, under
// file.mu.
type serverCopy struct {
	src      *entry
	size     int64
	answered int64
}

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
		return 0, f.errno(ctx, "copy_file_range", errIsDir, "ino", fn.e.ino)
	}
	r := copyRange{src: fn.e, dst: dst.e, offIn: int64(min(offIn, math.MaxInt64)),
		offOut: int64(min(offOut, math.MaxInt64)), n: int64(min(n, maxCopyAnswer))}
	r.hin, _ = fhIn.(*handle)
	r.hout, _ = fhOut.(*handle)
	got, err := f.copyFileRange(ctx, r)
	if got > 0 {
		// A short copy is an answer; the caller's next call gets the error.
		if err != nil {
			f.log.Debug("copy_file_range stopped early", "ino", fn.e.ino, "copied", got, "err", err)
		}
		return uint32(got), 0
	}
	return 0, f.errno(ctx, "copy_file_range", err, "ino", fn.e.ino, "off_in", offIn, "off_out", offOut, "len", n)
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
	return !r.src.removed && !r.dst.removed && r.dst.parent != nil && r.dst.parent.item != nil
}

// serverCopyInto has the service copy r.src to r.dst's folder and name,
// waits for the job and binds r.dst to the new item. fallback tells whether
// an error came before anything happened to the destination, so that the
// bytes may be copied instead.
func (f *FS) serverCopyInto(ctx context.Context, r copyRange) (got int64, fallback bool, err error) {
	it, err := f.sourceForCopy(ctx, r.src)
	if err != nil {
		return 0, true, err
	}
	if it.Size == 0 {
		return 0, true, errors.New("the source is empty")
	}
	f.mu.Lock()
	parent, name := r.dst.parent, r.dst.name
	if r.dst.removed || parent == nil || parent.item == nil {
		f.mu.Unlock()
		return 0, true, errRemoved
	}
	parentID := parent.item.ID
	srcPath, dstPath := f.pathOfFSLocked(r.src), f.pathOfFSLocked(r.dst)
	f.mu.Unlock()

	key := copyWaiterKey(parentID, name)
	f.addCopyWaiter(key)
	handedOff := false
	defer func() {
		if !handedOff {
			f.doneCopyWaiter(key)
		}
	}()
	monitor, err := f.startCopy(ctx, it.ID, remote.CopyRequest{
		DestParentID: parentID, Name: name, Conflict: remote.ConflictReplace})
	if err != nil {
		return 0, true, fmt.Errorf("starting the copy: %w", err)
	}
	job, err := f.copies.Add(copyjob.Spec{
		SourceID: it.ID, SourcePath: srcPath, DestParentID: parentID, DestName: name, DestPath: dstPath,
		MonitorURL: monitor, Size: it.Size, Origin: originCP,
	})
	if err != nil && !errors.Is(err, copyjob.ErrNotPersisted) {
		// The service copies anyway; with nobody waiting, the tracker's
		// OnDone (or the next listing) shows the result.
		return 0, true, fmt.Errorf("tracking the copy: %w", err)
	}
	job, err = f.copies.Wait(ctx, job.ID)
	if err != nil {
		if ctx.Err() != nil {
			handedOff = f.adoptLater(job.ID, r.src, r.dst, parent, key)
			f.log.Info("copy_file_range interrupted; the server-side copy goes on and its result will replace the destination",
				"job", job.ID, "destination", dstPath)
			return 0, false, ctx.Err()
		}
		return 0, false, err
	}
	if job.State != copyjob.StateCompleted {
		if job.Error != nil {
			return 0, true, job.Error
		}
		return 0, true, fmt.Errorf("the copy job ended %s", job.State)
	}
	got, err = f.adoptCopy(ctx, r.src, r.dst, parent, job, r.n)
	if err != nil && ctx.Err() != nil {
		handedOff = f.adoptLater(job.ID, r.src, r.dst, parent, key)
		return 0, false, ctx.Err()
	}
	return got, false, err
}

// startCopyTimeout bounds a copy request, which an interrupt does not cancel.
const startCopyTimeout = 30 * time.Second

// startCopy sends the copy request on a context that an interrupt of the
// FUSE request does not cancel (bounded by startCopyTimeout): once the
// request is sent the service may accept it, and a job the mount does not
// track would be a copy nobody watches. So an interrupted setxattr or cp
// either started nothing (EINTR came earlier, and the caller may simply try
// again) or started a job the tracker follows.
func (f *FS) startCopy(ctx context.Context, srcID string, r remote.CopyRequest) (string, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startCopyTimeout)
	defer cancel()
	return f.remote.StartCopy(ctx, srcID, r)
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
		var err error
		if st.dirty {
			err = f.syncLocked(ctx, src, st)
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
	if src.item == nil || src.removed {
		return nil, errors.New("the source is not on OneDrive")
	}
	return src.item, nil
}

// errNotAdopted: a finished copy's item could not be bound to the
// destination's entry, which changed meanwhile; it is revealed as a new
// entry instead.
var errNotAdopted = errors.New("the destination changed while it was being copied")

// adoptCopy binds dst, a file of folder parent, to the item job j created:
// dst's local placeholder (staged content, journal record) is dropped, and
// an item it replaced forgotten. answer ≥ 0 is a waiting caller's request
// length: dst is marked as a server copy of src answered that much (at most
// the size), which is returned. answer < 0 is the background adoption
// after an interrupted caller: dst becomes the whole copy.
func (f *FS) adoptCopy(ctx context.Context, src, dst, parent *entry, j copyjob.Job, answer int64) (int64, error) {
	it, err := f.copiedItem(ctx, j)
	if err != nil {
		return 0, fmt.Errorf("reading the copied item: %w", err)
	}
	st := f.ensureFile(dst)
	st.mu.Lock()
	defer st.mu.Unlock()
	size, _, _ := st.localAttr()
	f.mu.Lock()
	if answer >= 0 && dst.removed && !parent.removed {
		// The kernel holds dst's lock during the call, so nobody unlinked
		// it: the delta poll saw the replaced item go. It is still here.
		dst.removed, dst.parent = false, parent
	}
	removed, old := dst.removed, dst.item
	f.mu.Unlock()
	if removed || (st.dirty && size > 0) || (answer < 0 && st.copyIn != nil) {
		return 0, errNotAdopted
	}
	f.discardLocalLocked(st)
	f.mu.Lock()

	f.bindFSLocked(dst, it)
	name := dst.name
	f.mu.Unlock()
	st.baseCTag, st.baseETag = it.CTag, it.ETag
	if old != nil && old.ID != it.ID {
		f.content.Remove(old.ID)
	}
	if answer < 0 {
		f.notes.aliases(parent, name)
		f.notes.content(dst)
		return 0, nil
	}
	got := min(answer, it.Size)
	st.copyIn = &serverCopy{src: src, size: it.Size, answered: got}
	st.setCopiedAttr(true, got)
	return got, nil
}

// adoptLater hands a job whose caller was interrupted to a background
// goroutine, which binds the result to dst when the job completes (or
// reveals it beside a dst changed meanwhile). It reports whether the
// goroutine took over the waiter registration key.
func (f *FS) adoptLater(id string, src, dst, parent *entry, key string) bool {
	fl := f.ensureFile(dst)
	fl.mu.Lock()
	fl.copiesPending++
	fl.mu.Unlock()
	started := f.bg.Go(func(ctx context.Context) {
		defer f.doneCopyWaiter(key)
		defer func() {
			// The empty placeholder waited for the copy; if the copy did not
			// replace it, it is sent now (when nobody has it open).
			fl.mu.Lock()
			fl.copiesPending--
			if fl.copiesPending == 0 && fl.dirty && fl.handles.Load() == 0 {
				if err := f.finishLocked(ctx, dst, fl); err != nil && ctx.Err() == nil {
					f.log.Warn("sending a file after an interrupted copy failed", "path", f.pathOf(dst), "err", err)
				}
			}
			fl.mu.Unlock()
		}()
		j, err := f.copies.Wait(ctx, id)
		if err != nil || j.State != copyjob.StateCompleted {
			return
		}
		_, err = f.adoptCopy(ctx, src, dst, parent, j, -1)
		if errors.Is(err, errNotAdopted) {
			var it *remote.Item
			if it, err = f.copiedItem(ctx, j); err == nil {
				f.revealItem(it)
			}
		}
		if err != nil && ctx.Err() == nil {
			f.log.Warn("showing the result of an interrupted copy failed; it shows up at the next listing",
				"job", id, "err", err)
			f.forgetDestination(j.DestParentID, j.DestName)
		}
	})
	if !started {
		fl.mu.Lock()
		fl.copiesPending--
		fl.mu.Unlock()
	}
	return started
}

// dropCopyLocked forgets that st is a partly answered server copy. Caller
// holds st.mu.
func (f *FS) dropCopyLocked(st *file) {
	if st.copyIn != nil {
		st.copyIn = nil
		st.setCopiedAttr(false, 0)
	}
}

// settleCopyLocked ends a server-copy mark before the file is sent,
// written or truncated: a copy answered whole is just the file; one
// answered in part is cut to the answered bytes, staged (downloaded from
// the copy) and marked dirty, so that the service's item ends as exactly
// what the caller copied. Caller holds st.mu.
func (f *FS) settleCopyLocked(ctx context.Context, e *entry, st *file) error {
	c := st.copyIn
	if c == nil {
		return nil
	}
	f.mu.Lock()
	it := e.item
	f.mu.Unlock()
	if c.answered >= c.size || it == nil || st.staged != nil {
		f.dropCopyLocked(st)
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
	st.staged, st.committed, st.dirty = sf, false, true
	st.baseCTag, st.baseETag = it.CTag, it.ETag
	st.setLocalAttr(true, c.answered, itemMtime(it))
	f.log.Info("a copy_file_range caller copied only the start of the file; the destination keeps exactly those bytes",
		"path", f.pathOf(e), "copied", c.answered, "size", c.size)
	f.dropCopyLocked(st)
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
