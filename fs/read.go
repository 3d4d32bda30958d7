package fs

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/quickxorhash"
)

// The read path. A file with local changes is read from its staged copy. A
// file with none is read through the content cache (cache.Content), keyed
// by item id and cTag, so a changed file is never served from stale bytes:
//
//   - Replies are spliced from the cache's data file (an fd-backed
//     fuse.ReadResult): the bytes go from the page cache to /dev/fuse
//     without a copy through this process, warm or just downloaded.
//   - A sequential reader gets one stream: a single download from where its
//     run started toward the end of the file (cache.Stream), written to the
//     cache file as it arrives and paced by the handle's cache.Readahead,
//     whose window grows with the run. A seek stops the stream and shrinks
//     the window; the next sequential run starts a new one.
//   - A random read fetches just the bytes asked for.
//   - A handle reads one version: once it has read a version, reads of
//     another (the file changed on OneDrive) fail with ESTALE rather than
//     mix two versions, except a read from offset 0, which starts over on
//     the current one. Downloads are bound to the version being read
//     (remote.Client.DownloadVersion).
//   - A fully cached version is verified against its quickXorHash once: a
//     stream of the whole file hashes it as it arrives; otherwise it is read
//     back once in the background.

// headFetch is the least a read at offset 0 fetches when it does not start
// a stream: small files come in one request whatever the read size.
const headFetch = 256 << 10

// errStale: the handle's version of the file is gone from OneDrive and from
// the cache (the file changed while open); reopen it to read the new one.
var errStale = errors.New("file changed on OneDrive while open")

// readResult answers a FUSE read of len(dest) bytes at off.
func (h *handle) readResult(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, error) {
	st := h.st
	st.mu.Lock()
	if st.staged != nil {
		defer st.mu.Unlock()
		h.unpin() // the handle now follows the local content
		if err := st.fillLocked(ctx, off, int64(len(dest))); err != nil {
			return nil, err
		}
		n, err := st.staged.File().ReadAt(dest, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return fuse.ReadResultData(dest[:n]), nil
	}
	// A server-side copy whose caller was answered part of it shows only
	// those bytes (copy.go); one still pending is read from the source
	// version it copies (pending.go).
	limit := int64(-1)
	var pending *serverCopy
	if c := st.copyIn; c != nil {
		limit = c.answered
		if c.pending() {
			pending = c
		} else if c.err != nil {
			st.mu.Unlock()
			return nil, c.err
		}
	}
	st.mu.Unlock()
	it := h.e.item.Load()
	if pending != nil {
		it = pending.srcItem
		if off >= limit {
			return fuse.ReadResultData(nil), nil
		}
		if off+int64(len(dest)) > limit {
			dest = dest[:limit-off]
		}
		rr, err := h.readServer(ctx, it, false, min(int64(len(dest)), it.Size-off), off)
		if err == nil || !(errors.Is(err, remote.ErrNotFound) || errors.Is(err, remote.ErrContentChanged)) {
			return rr, err
		}
		// The source version is gone: the copy's own item has the bytes.
		st.mu.Lock()
		err = st.waitCopyLocked(ctx)
		st.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return h.readResult(ctx, dest, off)
	}
	it, pinned := h.version(it, off)
	if it == nil || off >= it.Size || (limit >= 0 && off >= limit) {
		return fuse.ReadResultData(nil), nil
	}
	if limit >= 0 && off+int64(len(dest)) > limit {
		dest = dest[:limit-off]
	}
	return h.readServer(ctx, it, pinned, min(int64(len(dest)), it.Size-off), off)
}

// read fills p from offset off, for callers inside the filesystem (the byte
// path of copy_file_range).
func (h *handle) read(ctx context.Context, p []byte, off int64) (int, error) {
	rr, err := h.readResult(ctx, p, off)
	if err != nil {
		return 0, err
	}
	defer rr.Done()
	b, status := rr.Bytes(p)
	if !status.Ok() {
		return 0, syscall.Errno(status)
	}
	return copy(p, b), nil
}

// readServer reads want bytes at off of the server's version it through the
// content cache, fetching what is missing. pinned: it is a version the
// file no longer has (see version).
func (h *handle) readServer(ctx context.Context, it *remote.Item, pinned bool, want, off int64) (fuse.ReadResult, error) {
	h.ra.Next(off, want)
	sequential := h.ra.Streamable()
	dropped := false
	for attempt := 0; ; attempt++ {
		ce, err := h.cacheEntry(it, off, dropped)
		if err != nil {
			return nil, err
		}
		dropped = false
		sp, err := ce.Span(off, int(want))
		if err == nil && int64(sp.Len) < want {
			sp.Release()
			err = cache.ErrNotPresent
		}
		switch {
		case err == nil:
			if off+want >= it.Size {
				h.f.verifyInBackground(it)
			}
			return spanResult{sp}, nil
		case errors.Is(err, io.EOF):
			return fuse.ReadResultData(nil), nil
		case errors.Is(err, cache.ErrNotPresent) && attempt < 4:
			n := want
			if sequential {
				h.stream(ce, it, off)
			} else if off == 0 {
				n = max(want, headFetch) // a small file in one request
			}
			ferr := ce.Fetch(ctx, off, n, h.f.fetcherFor(it))
			switch {
			case errors.Is(ferr, cache.ErrDropped):
				dropped = true
			case errors.Is(ferr, remote.ErrContentChanged):
				return nil, fmt.Errorf("%w: %w", errStale, ferr)
			case ferr != nil:
				return nil, ferr
			}
		case errors.Is(err, cache.ErrDropped) && attempt < 4:
			dropped = true
		default:
			return nil, err
		}
		if dropped && pinned {
			// The old version's entry went (another reader opened the
			// new one): reopening it would drop the new one in turn.
			return nil, fmt.Errorf("%w: its cached bytes were dropped", errStale)
		}
	}
}

// stream starts the handle's stream from off unless one is running: a
// single download toward the end of the file, paced by the handle's
// Readahead, on the filesystem's background context. Random access or the
// release of the handle stops it (Readahead.Stop).
func (h *handle) stream(ce *cache.Entry, it *remote.Item, off int64) {
	f := h.f
	ctx, cancel := context.WithCancel(f.bg.ctx)
	token, ok := h.ra.Attach(cancel)
	if !ok {
		cancel()
		return
	}
	s, err := ce.StartStream(ctx, off, h.ra)
	if err != nil || s == nil {
		h.ra.Detach(token)
		cancel()
		return
	}
	fetch := f.fetcherFor(it)
	var hw *hashingWriter
	if off == 0 && it.QuickXorHash != "" {
		// A stream of the whole file is hashed as it arrives, so that
		// the version needs no read-back to be verified.
		hw = &hashingWriter{h: quickxorhash.New()}
		inner := fetch
		fetch = func(ctx context.Context, off, n int64, w io.Writer) error {
			hw.w = w
			return inner(ctx, off, n, hw)
		}
	}
	if !f.bg.Go(func(context.Context) {
		defer cancel()
		defer h.ra.Detach(token)
		err := s.Run(fetch)
		if err != nil && ctx.Err() == nil {
			f.log.Debug("read stream ended early", "id", it.ID, "from", off, "err", err)
		}
		if err == nil && hw != nil && hw.n == it.Size {
			f.verified(ce, it, base64.StdEncoding.EncodeToString(hw.h.Sum(nil)))
		}
	}) {
		s.Abandon()
		h.ra.Detach(token)
		cancel()
	}
}

// hashingWriter hashes the bytes its writer accepted.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

// verified records the outcome of hashing a whole version as it was
// downloaded into ce: a match marks it verified, a mismatch drops it.
func (f *FS) verified(ce *cache.Entry, it *remote.Item, got string) {
	if got != it.QuickXorHash {
		f.log.Warn("downloaded content failed verification and was dropped", "id", it.ID,
			"err", fmt.Errorf("quickXorHash %s, the service says %s: %w", got, it.QuickXorHash, remote.ErrHashMismatch))
		ce.Discard()
		return
	}
	if err := ce.MarkVerified(); err != nil && !errors.Is(err, cache.ErrReleased) {
		f.log.Debug("marking a verified download", "id", it.ID, "err", err)
	}
}

// spanResult is a fuse.ReadResult backed by the content cache's data file:
// go-fuse writes the reply from the file's read-only mapping (the page
// cache) to /dev/fuse after Read returns, one copy in the kernel; when the
// file could not be mapped, it splices or preads it from the descriptor
// (an fd-backed result). The span keeps the file open and mapped until
// Done.
type spanResult struct{ sp *cache.Span }

func (r spanResult) Seekable() (fd uintptr, off int64, sz int) {
	return r.sp.Fd(), r.sp.Off, r.sp.Len
}

func (r spanResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	if r.sp.Data != nil {
		return r.sp.Data, fuse.OK
	}
	return fuse.ReadResultFd(r.sp.Fd(), r.sp.Off, r.sp.Len).Bytes(buf)
}

// Slices hands go-fuse the reply as the mapping's bytes, which it writes to
// /dev/fuse before calling Done (go-fuse calls Done right after Bytes, before
// the write, for a result that is not a slice list, which would let the
// mapping go while the kernel still reads it).
func (r spanResult) Slices() ([][]byte, fuse.Status) {
	if r.sp.Data != nil {
		return [][]byte{r.sp.Data}, fuse.OK
	}
	b, st := r.Bytes(make([]byte, r.sp.Len))
	if st.Ok() && len(b) != r.sp.Len {
		return nil, fuse.EIO // the header already says Len bytes
	}
	return [][]byte{b}, st
}

func (r spanResult) Size() int { return r.sp.Len }

func (r spanResult) Done() { r.sp.Release() }

// version returns the version a read at off is served from: the one the
// handle has been reading, while it reads on (off != 0) after the file
// changed; it otherwise. The old version's bytes are served while they are
// cached; fetching more of it fails (errStale), as the service no longer
// has it.
func (h *handle) version(it *remote.Item, off int64) (_ *remote.Item, pinned bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if it == nil || h.ce == nil || off == 0 {
		return it, false
	}
	k := h.ce.Key()
	if k == keyOf(it) && h.ce.Size() == it.Size {
		return it, false
	}
	return &remote.Item{ID: k.ID, CTag: k.CTag, Size: h.ce.Size(), Name: it.Name}, true
}

// cacheEntry returns the handle's content-cache entry for it, opening it as
// needed. The handle keeps reading the version it has read (see the top of
// this file): a read of another version fails with errStale unless it
// starts at offset 0. dropped reopens the same version after its entry was
// dropped (it failed verification, say).
func (h *handle) cacheEntry(it *remote.Item, off int64, dropped bool) (*cache.Entry, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ce != nil {
		same := h.ce.Key() == keyOf(it) && h.ce.Size() == it.Size
		if same && !dropped {
			return h.ce, nil
		}
		if !same && off != 0 {
			return nil, fmt.Errorf("%w: it was %s, it is now %s", errStale, h.ce.Key().CTag, it.CTag)
		}
		_ = h.ce.Release()
		h.ce = nil
		if !same {
			h.ra.Reset()
		}
	}
	ce, err := h.f.content.Open(keyOf(it), it.Size)
	if err != nil {
		return nil, err
	}
	h.ce = ce
	return ce, nil
}

// unpin forgets the version the handle was reading (its reads now come
// from local content).
func (h *handle) unpin() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ce != nil {
		_ = h.ce.Release()
		h.ce = nil
		h.ra.Reset()
	}
}

// dropCacheEntry releases the handle's cache entry and stops its stream (the
// handle is being released).
func (h *handle) dropCacheEntry() {
	h.ra.Stop()
	h.unpin()
}

// verifyInBackground checks the quickXorHash of a fully cached version once:
// a mismatch drops the cached bytes (the next read downloads them again)
// and is logged.
func (f *FS) verifyInBackground(it *remote.Item) {
	if it.QuickXorHash == "" {
		return
	}
	ce, err := f.content.Open(keyOf(it), it.Size)
	if err != nil {
		return
	}
	if !ce.Complete() || ce.Verified() {
		_ = ce.Release()
		return
	}
	if !f.bg.Go(func(context.Context) {
		defer ce.Release()
		err := ce.Verify(func(r io.Reader) error {
			got, err := quickXorHashOf(r)
			if err != nil {
				return err
			}
			if got != it.QuickXorHash {
				return fmt.Errorf("quickXorHash %s, the service says %s: %w", got, it.QuickXorHash, remote.ErrHashMismatch)
			}
			return nil
		})
		if err != nil {
			f.log.Warn("cached content failed verification and was dropped", "id", it.ID, "err", err)
		}
	}) {
		_ = ce.Release()
	}
}

// quickXorHashOf returns the quickXorHash of r's bytes in the service's
// spelling (base64).
func quickXorHashOf(r io.Reader) (string, error) {
	h := quickxorhash.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// fetcher returns the content cache's download function for item id of
// drive rc, whatever its version.
func (f *FS) fetcher(rc *remote.Client, id string) cache.FetchFunc {
	return func(ctx context.Context, off, n int64, w io.Writer) error {
		got, err := rc.Download(ctx, id, off, n, w)
		return checkFetched(off, n, got, err)
	}
}

// fetcherFor returns the content cache's download function for the version
// of it: bytes of another version are never written under its key. The
// bytes come from the item's own drive (drives.go).
func (f *FS) fetcherFor(it *remote.Item) cache.FetchFunc {
	drive, id := f.serviceItem(it)
	rc := f.driveClient(drive)
	if it.CTag == "" || id != it.ID || strings.HasPrefix(it.CTag, localCTagPrefix) {
		return f.fetcher(rc, id)
	}
	cTag := it.CTag
	return func(ctx context.Context, off, n int64, w io.Writer) error {
		got, err := rc.DownloadVersion(ctx, id, cTag, off, n, w)
		return checkFetched(off, n, got, err)
	}
}

func checkFetched(off, n, got int64, err error) error {
	if err == nil && got != n {
		err = fmt.Errorf("download of %d bytes at %d returned %d: %w", n, off, got, io.ErrUnexpectedEOF)
	}
	return err
}
