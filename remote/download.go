package remote

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/onedrivefs/onedrivefs/remote/quickxorhash"
)

// Downloads (docs/graph-contract.md §3): GET …/items/{id}/content answers 302
// with a pre-authenticated URL; the bytes are fetched from there with the
// plain client (no Authorization header: it can make the host refuse), with a
// Range header. The URL is cached per item for a short while and fetched again
// when its host refuses it (401/403/404/410).

const (
	// downloadURLLifetime is how long a pre-authenticated URL is reused. The
	// documentation gives "a few minutes" to an hour; a refusal refetches it
	// anyway.
	downloadURLLifetime = 5 * time.Minute
	maxCachedURLs       = 4096
	copyBufferSize      = 256 << 10
)

type downloadURL struct {
	url     string
	cTag    string // the version the URL was issued for; "" when unknown (a 302)
	expires time.Time
}

// ErrContentChanged: a download bound to one version of an item's content
// (DownloadVersion) found another version on the service. Nothing of the
// other version was written.
var ErrContentChanged = errors.New("remote: the item's content changed on the service")

// downloadURLs caches pre-authenticated download URLs by item id.
type downloadURLs struct {
	mu      sync.Mutex
	entries map[string]downloadURL // GUARDED_BY(mu)
}

func (d *downloadURLs) get(id string, now time.Time) (string, bool) {
	e, ok := d.lookup(id, now)
	return e.url, ok
}

func (d *downloadURLs) lookup(id string, now time.Time) (downloadURL, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[id]
	if !ok || !now.Before(e.expires) {
		return downloadURL{}, false
	}
	return e, true
}

func (d *downloadURLs) put(id, u string, now time.Time) {
	d.putVersion(id, u, "", now)
}

func (d *downloadURLs) putVersion(id, u, cTag string, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.entries) >= maxCachedURLs {
		for k, e := range d.entries {
			if !now.Before(e.expires) {
				delete(d.entries, k)
			}
		}
		if len(d.entries) >= maxCachedURLs {
			clear(d.entries)
		}
	}
	d.entries[id] = downloadURL{url: u, cTag: cTag, expires: now.Add(downloadURLLifetime)}
}

func (d *downloadURLs) forget(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.entries, id)
}

// Download writes bytes [off, off+length) of the item's content to w
// (length < 0: to the end) and returns how many it wrote. The bytes are
// streamed, never held whole. A range starting at or past the end writes
// nothing and is not an error. A server that ignores Range (200) is
// handled by skipping and limiting. If the connection breaks mid-body, the
// rest of the range is requested again (bounded by RetryPolicy.MaxAttempts
// failures in a row without progress); an error writing to w is returned
// at once.
func (c *Client) Download(ctx context.Context, itemID string, off, length int64, w io.Writer) (int64, error) {
	return c.download(ctx, itemID, "", off, length, w)
}

// DownloadVersion is Download bound to the version of the content with
// cTag: the pre-authenticated URL it fetches from is taken from the item's
// metadata (@microsoft.graph.downloadUrl) together with its cTag, whenever
// it is (re)fetched, so that an URL refused after a change on the service
// is never replaced by one for the new content. When the item's cTag is no
// longer cTag it fails with ErrContentChanged, having written only bytes
// of the version asked for. A cached URL is used only when it is known to
// be for cTag.
func (c *Client) DownloadVersion(ctx context.Context, itemID, cTag string, off, length int64, w io.Writer) (int64, error) {
	if cTag == "" {
		return 0, fmt.Errorf("remote: download: empty cTag for %s", itemID)
	}
	return c.download(ctx, itemID, cTag, off, length, w)
}

func (c *Client) download(ctx context.Context, itemID, cTag string, off, length int64, w io.Writer) (int64, error) {
	if off < 0 {
		return 0, fmt.Errorf("remote: download: negative offset %d", off)
	}
	if length == 0 {
		return 0, nil
	}
	var written int64
	refetched := false
	failures := 0
	for {
		u, err := c.downloadURL(ctx, itemID, cTag, refetched)
		if err != nil {
			return written, err
		}
		remaining := int64(-1)
		if length > 0 {
			remaining = length - written
		}
		n, err := c.fetchRange(ctx, u, off+written, remaining, w)
		written += n
		if err == nil {
			return written, nil
		}
		var we *writeError
		var be *bodyError
		switch {
		case ctx.Err() != nil:
			return written, ctx.Err()
		case errors.As(err, &we):
			return written, we.err
		case errors.Is(err, ErrOffline):
			return written, err // the reply stopped coming and the service is gone (unanswered.go)
		case !refetched && preAuthRefused(err):
			// The URL expired or was revoked: get a new one, once.
			c.urls.forget(itemID)
			refetched = true
			continue
		case errors.As(err, &be) && transientNetError(be.err):
			if n > 0 {
				failures = 0
			}
			failures++
			if failures >= c.retry.MaxAttempts {
				return written, fmt.Errorf("remote: download: %w", err)
			}
			wait := c.backoff(failures)
			c.log.Debug("download interrupted; resuming", "written", written, "wait", wait, "err", err)
			if err := c.sleep(ctx, wait); err != nil {
				return written, err
			}
			continue
		}
		return written, err
	}
}

// preAuthRefused reports whether a pre-authenticated URL's host refused it
// in a way a fresh URL may cure.
func preAuthRefused(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusGone:
		return true
	}
	return false
}

// downloadURL returns the item's pre-authenticated URL, cached unless
// fresh. With a cTag, the URL must be for that version (see
// DownloadVersion).
func (c *Client) downloadURL(ctx context.Context, itemID, cTag string, fresh bool) (string, error) {
	if !fresh {
		if e, ok := c.urls.lookup(itemID, c.now()); ok && (cTag == "" || e.cTag == cTag) {
			return e.url, nil
		}
	}
	if cTag != "" {
		it, err := c.Item(ctx, itemID)
		if err != nil {
			return "", err
		}
		if it.CTag != cTag {
			return "", fmt.Errorf("%w: %s has cTag %s, the download was for %s", ErrContentChanged, itemID, it.CTag, cTag)
		}
		if it.DownloadURL != "" {
			c.urls.putVersion(itemID, it.DownloadURL, cTag, c.now())
			return it.DownloadURL, nil
		}
		// No URL in the metadata: fall back to the redirect, which is for
		// the version just checked unless it changes in between.
	}
	r := &request{op: "get download URL", method: http.MethodGet, url: c.itemURL(itemID) + "/content", mode: repeatable}
	resp, err := c.do(ctx, r)
	if err != nil {
		return "", err
	}
	defer drain(resp)
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || loc == "" {
		return "", fmt.Errorf("%w: download: expected a redirect to the content, got %d", ErrNotSupported, resp.StatusCode)
	}
	u, err := resolveLink(r.url, loc)
	if err != nil {
		return "", fmt.Errorf("remote: download: %w", err)
	}
	c.urls.put(itemID, u, c.now())
	return u, nil
}

// fetchRange GETs [off, off+length) (length < 0: to the end) from a
// pre-authenticated URL into w.
func (c *Client) fetchRange(ctx context.Context, u string, off, length int64, w io.Writer) (int64, error) {
	r := &request{op: "download", method: http.MethodGet, url: u, plain: true, mode: repeatable}
	if off > 0 || length > 0 {
		rng := "bytes=" + strconv.FormatInt(off, 10) + "-"
		if length > 0 {
			rng += strconv.FormatInt(off+length-1, 10)
		}
		r.header = http.Header{"Range": {rng}}
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		if errors.Is(err, ErrInvalidRange) {
			return 0, nil // at or past the end
		}
		return 0, err
	}
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != off {
			return 0, fmt.Errorf("remote: download: asked for bytes from %d, got Content-Range %q", off, resp.Header.Get("Content-Range"))
		}
	case http.StatusOK:
		// The Range header was ignored: skip to off.
		if off > 0 {
			_, err := io.CopyN(io.Discard, resp.Body, off)
			if err == io.EOF {
				return 0, nil // the file is shorter than off
			}
			if err != nil {
				return 0, &bodyError{err}
			}
		}
	default:
		return 0, errorFromResponse(r.op, resp, c.now())
	}
	if length > 0 {
		body = io.LimitReader(body, length)
	}
	buf := make([]byte, copyBufferSize)
	n, err := io.CopyBuffer(writerOnly{w}, readerOnly{body}, buf)
	var we *writeError
	if err != nil && !errors.As(err, &we) {
		err = &bodyError{err}
	}
	return n, err
}

// bodyError marks a failure while reading a reply's body (after its
// headers arrived), which Download resumes from where it stopped.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "remote: download: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// contentRangeStart parses the start of "bytes a-b/total".
func contentRangeStart(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return 0, false
	}
	a, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	return n, err == nil
}

// writeError marks a failure of the caller's writer, which must not be
// mistaken for a network failure and retried.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// writerOnly hides ReaderFrom and tags write errors.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		return n, &writeError{err}
	}
	return n, nil
}

// readerOnly hides WriterTo, so that io.CopyBuffer uses writerOnly.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }

// DownloadVerified writes the item's whole content to w and checks its size
// and, when the item carries one, its quickXorHash: a mismatch gives an
// error matching ErrHashMismatch (w has then received bad bytes; the caller
// discards them). The item's DownloadURL is used when present. Folders and
// packages have no content: ErrNotSupported.
func (c *Client) DownloadVerified(ctx context.Context, item *Item, w io.Writer) error {
	if item.IsFolder || item.Package != "" {
		return fmt.Errorf("%w: %q has no content to download", ErrNotSupported, item.Name)
	}
	if item.DownloadURL != "" {
		if _, ok := c.urls.get(item.ID, c.now()); !ok {
			c.urls.putVersion(item.ID, item.DownloadURL, item.CTag, c.now())
		}
	}
	h := quickxorhash.New()
	n, err := c.Download(ctx, item.ID, 0, -1, io.MultiWriter(w, h))
	if err != nil {
		return err
	}
	if n != item.Size {
		return fmt.Errorf("%w: %q: received %d bytes, the item has %d", ErrHashMismatch, item.Name, n, item.Size)
	}
	if item.QuickXorHash == "" {
		return nil
	}
	if sum := h.Sum(nil); !sameHash(item.QuickXorHash, sum) {
		return fmt.Errorf("%w: %q: received %s, the service reports %s", ErrHashMismatch, item.Name,
			base64.StdEncoding.EncodeToString(sum), item.QuickXorHash)
	}
	return nil
}

// sameHash compares a base64 quickXorHash from the service with a digest.
func sameHash(b64 string, sum []byte) bool {
	want, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	return err == nil && bytes.Equal(want, sum)
}
