package fs

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/quickxorhash"
)

// The read path: a file with no local changes is read through the content
// cache (cache.Content), keyed by item id and cTag, so a changed file is
// never served from stale bytes. Missing ranges are fetched with ranged
// downloads (at least minFetch bytes at a time); sequential reading starts a
// read-ahead on the background context; a fully cached version is verified
// against its quickXorHash once.

// read fills p from offset off.
func (h *handle) read(ctx context.Context, p []byte, off int64) (int, error) {
	st := h.st
	st.mu.Lock()
	if st.staged != nil {
		defer st.mu.Unlock()
		n, err := st.staged.File().ReadAt(p, off)
		if errors.Is(err, io.EOF) {
			err = nil
		}
		return n, err
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
			return 0, c.err
		}
	}
	st.mu.Unlock()
	it := h.e.item.Load()
	if pending != nil {
		it = pending.srcItem
		if off >= limit {
			return 0, nil
		}
		if off+int64(len(p)) > limit {
			p = p[:limit-off]
		}
		n, err := h.readServer(ctx, it, p, off)
		if err == nil || !errors.Is(err, remote.ErrNotFound) {
			return n, err
		}
		// The source version is gone: the copy's own item has the bytes.
		st.mu.Lock()
		err = st.waitCopyLocked(ctx)
		st.mu.Unlock()
		if err != nil {
			return 0, err
		}
		return h.read(ctx, p, off)
	}
	if it == nil || off >= it.Size || (limit >= 0 && off >= limit) {
		return 0, nil
	}
	if limit >= 0 && off+int64(len(p)) > limit {
		p = p[:limit-off]
	}
	return h.readServer(ctx, it, p, off)
}

// readServer reads the server's version it through the content cache,
// fetching what is missing and starting read-ahead on sequential access.
func (h *handle) readServer(ctx context.Context, it *remote.Item, p []byte, off int64) (int, error) {
	want := min(int64(len(p)), it.Size-off)
	p = p[:want]
	fetch := h.f.fetcher(it.ID)
	for attempt := 0; ; attempt++ {
		ce, err := h.cacheEntry(it)
		if err != nil {
			return 0, err
		}
		n, err := ce.ReadAt(p, off)
		switch {
		case err == nil || errors.Is(err, io.EOF):
			h.readahead(it, off, int64(n))
			if off+int64(n) >= it.Size {
				h.f.verifyInBackground(it)
			}
			return n, nil
		case errors.Is(err, cache.ErrNotPresent) && attempt < 4:
			ferr := ce.Fetch(ctx, off, max(want, minFetch), fetch)
			if ferr != nil && !errors.Is(ferr, cache.ErrDropped) {
				return 0, ferr
			}
			if errors.Is(ferr, cache.ErrDropped) {
				h.dropCacheEntry()
			}
		case errors.Is(err, cache.ErrDropped) && attempt < 4:
			h.dropCacheEntry()
		default:
			return n, err
		}
	}
}

// cacheEntry returns the handle's content-cache entry for it, opening it (or
// a newer version) as needed.
func (h *handle) cacheEntry(it *remote.Item) (*cache.Entry, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ce != nil && h.ce.Key() == keyOf(it) && h.ce.Size() == it.Size {
		return h.ce, nil
	}
	if h.ce != nil {
		_ = h.ce.Release()
		h.ce = nil
		h.ra.Reset()
	}
	ce, err := h.f.content.Open(keyOf(it), it.Size)
	if err != nil {
		return nil, err
	}
	h.ce = ce
	return ce, nil
}

func (h *handle) dropCacheEntry() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ce != nil {
		_ = h.ce.Release()
		h.ce = nil
	}
}

// readahead starts a background fetch of the range after a sequential read,
// at most one per handle. It runs on the filesystem's background context
// (never the request's) with its own cache handle, and stops at unmount.
func (h *handle) readahead(it *remote.Item, off, n int64) {
	r := h.ra.Next(off, n)
	if r.Len() <= 0 || r.Start >= it.Size {
		return
	}
	f := h.f
	if !h.raBusy.CompareAndSwap(false, true) {
		return
	}
	ce, err := f.content.Open(keyOf(it), it.Size)
	if err != nil {
		h.raBusy.Store(false)
		return
	}
	if ce.Present(r.Start, r.Len()) {
		_ = ce.Release()
		h.raBusy.Store(false)
		return
	}
	if !f.bg.Go(func(ctx context.Context) {
		defer h.raBusy.Store(false)
		defer ce.Release()
		if err := ce.Fetch(ctx, r.Start, r.Len(), f.fetcher(it.ID)); err != nil && ctx.Err() == nil {
			f.log.Debug("read-ahead failed", "id", it.ID, "err", err)
		}
	}) {
		_ = ce.Release()
		h.raBusy.Store(false)
	}
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

// fetcher returns the content cache's download function for item id.
func (f *FS) fetcher(id string) cache.FetchFunc {
	return func(ctx context.Context, off, n int64, w io.Writer) error {
		got, err := f.remote.Download(ctx, id, off, n, w)
		if err == nil && got != n {
			err = fmt.Errorf("download of %d bytes at %d returned %d: %w", n, off, got, io.ErrUnexpectedEOF)
		}
		return err
	}
}
