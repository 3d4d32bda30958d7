package remote

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/onedrivefs/onedrivefs/remote/quickxorhash"
)

// Uploads (docs/graph-contract.md §3, §5). Files up to
// Config.SimpleUploadLimit go in one PUT; larger ones through an upload
// session: fragments of Config.FragmentSize bytes are PUT in order to the
// session's uploadUrl with the plain client. After a failed fragment the
// session is asked which bytes it still expects (nextExpectedRanges) and the
// upload goes on from there: fragments the service acknowledged are never sent
// again. A session the service has forgotten (404) is started afresh, a
// bounded number of times. On any other failure, including cancellation, the
// session is deleted.

const (
	maxSessionRestarts = 2
	cancelTimeout      = 30 * time.Second
)

// UploadRequest describes content to upload.
type UploadRequest struct {
	// ParentID and Name address a new file (or an existing one by name);
	// ItemID instead replaces the content of an existing item.
	ParentID, Name string
	ItemID         string
	// Content holds Size bytes. It is read at most once per attempt and
	// must not change during the upload.
	Content io.ReaderAt
	Size    int64
	// FSModified and FSCreated, when set, become the item's fileSystemInfo
	// (so the mtime survives the upload). An upload session carries them;
	// a simple PUT cannot, so it is followed by a PATCH.
	FSModified, FSCreated time.Time
	// IfMatch is the eTag the caller last saw; if the item changed since,
	// the upload fails with ErrPreconditionFailed. "" → unconditional.
	IfMatch string
	// Conflict applies when addressing by name; "" → the service's default.
	Conflict ConflictBehavior
	// Progress, if set, is called with the number of bytes the service has
	// acknowledged so far.
	Progress func(sent int64)
	// Hashed, if set, is called with the content's quickXorHash (base64, as
	// the service reports it) once every byte has been read to be sent,
	// before the service's answer: from then on the content may be stored
	// even if Upload fails (a lost reply, a cancelled wait). A caller that
	// sends other content later can recognise its own earlier attempt by it.
	Hashed func(quickXorHash string)
}

func (u *UploadRequest) validate() error {
	switch {
	case u.Size < 0:
		return fmt.Errorf("remote: upload: negative size %d", u.Size)
	case u.Size > 0 && u.Content == nil:
		return errors.New("remote: upload: no content")
	case u.ItemID == "" && u.ParentID == "":
		return errors.New("remote: upload: need ItemID or ParentID and Name")
	case u.ItemID != "" && u.ParentID != "":
		return errors.New("remote: upload: ItemID and ParentID are exclusive")
	case u.ParentID != "":
		return checkName("upload", u.Name)
	}
	return nil
}

func (u *UploadRequest) progress(n int64) {
	if u.Progress != nil {
		u.Progress(n)
	}
}

// uploadTarget is the URL of the item addressed, to which "/content" or
// "/createUploadSession" is appended.
func (c *Client) uploadTarget(u *UploadRequest) string {
	if u.ItemID != "" {
		return c.itemURL(u.ItemID)
	}
	return c.childURL(u.ParentID, u.Name)
}

// Upload sends the content and returns the resulting item. Files up to
// Config.SimpleUploadLimit (0 bytes included) are sent in one PUT, larger
// ones through an upload session; so is a file the service refuses as too
// large for one PUT (413), and from then on every file at least as large.
// A session declares the size, so that a file over quota is refused before
// any byte is sent. When the service reports a quickXorHash that differs
// from the bytes sent (or a different size), the item is returned together
// with an error matching ErrHashMismatch; when the content landed but the
// PATCH of its times after a simple PUT failed, with one matching
// ErrTimesNotSet.
// On other errors the item is nil and an unfinished session is deleted (a
// simple PUT whose replies were all lost may still have landed).
func (c *Client) Upload(ctx context.Context, u UploadRequest) (*Item, error) {
	if err := u.validate(); err != nil {
		return nil, err
	}
	if u.Size <= c.simple && !c.refusedAsTooLarge(u.Size) {
		item, err := c.uploadSimple(ctx, &u)
		var e *Error
		if err == nil || u.Size == 0 || !errors.As(err, &e) || e.StatusCode != http.StatusRequestEntityTooLarge {
			return item, err
		}
		// The service's cap is below ours (docs/graph-contract.md §3: 4 MB,
		// 4 MiB or 250 MB depending on the service and the year): nothing
		// was stored; send this file, and from now on files this large,
		// through a session.
		c.noteTooLarge(u.Size)
		c.log.Debug("the service refused a simple upload as too large; using an upload session", "size", u.Size)
	}
	return c.uploadSession(ctx, &u)
}

// refusedAsTooLarge reports whether a simple upload of size bytes is known
// to exceed the service's cap.
func (c *Client) refusedAsTooLarge(size int64) bool {
	n := c.tooLarge.Load()
	return n > 0 && size >= n
}

// noteTooLarge records that the service refused a simple upload of size
// bytes.
func (c *Client) noteTooLarge(size int64) {
	for {
		n := c.tooLarge.Load()
		if (n > 0 && n <= size) || c.tooLarge.CompareAndSwap(n, size) {
			return
		}
	}
}

func (c *Client) uploadSimple(ctx context.Context, u *UploadRequest) (*Item, error) {
	h := quickxorhash.New()
	if u.Size > 0 {
		if _, err := io.Copy(h, io.NewSectionReader(u.Content, 0, u.Size)); err != nil {
			return nil, fmt.Errorf("remote: upload: reading the content: %w", err)
		}
	}
	sum := h.Sum(nil)
	if u.Hashed != nil {
		u.Hashed(base64.StdEncoding.EncodeToString(sum))
	}
	r := &request{
		op: "upload", method: http.MethodPut, url: c.uploadTarget(u) + "/content" + conflictQuery(u.Conflict),
		mode: repeatable, buffer: true, size: u.Size,
		header: http.Header{"Content-Type": {"application/octet-stream"}},
		body:   func() io.Reader { return io.NewSectionReader(u.Content, 0, u.Size) },
	}
	if u.IfMatch != "" {
		r.header.Set("If-Match", u.IfMatch)
	}
	var w wireItem
	var item *Item
	err := c.callJSON(ctx, r, &w)
	switch {
	case err == nil:
		item = w.toItem()
	case r.retried && (errors.Is(err, ErrPreconditionFailed) || errors.Is(err, ErrConflict)):
		// Our own first attempt may have landed before its reply was lost.
		item = c.committed(ctx, u, sum)
		if item == nil {
			return nil, err
		}
	default:
		return nil, err
	}
	u.progress(u.Size)
	if err := checkUploaded(item, u.Size, sum); err != nil {
		return item, err
	}
	if !u.FSModified.IsZero() || !u.FSCreated.IsZero() {
		updated, err := c.Update(ctx, item.ID, ItemUpdate{FSModified: u.FSModified, FSCreated: u.FSCreated})
		if err != nil {
			return item, fmt.Errorf("%w: %w", ErrTimesNotSet, err)
		}
		return updated, nil
	}
	return item, nil
}

// committed returns the addressed item if it already holds exactly the
// content whose hash is sum, else nil.
func (c *Client) committed(ctx context.Context, u *UploadRequest, sum []byte) *Item {
	var it *Item
	var err error
	if u.ItemID != "" {
		it, err = c.Item(ctx, u.ItemID)
	} else {
		it, err = c.Child(ctx, u.ParentID, u.Name)
	}
	if err != nil || it.Size != u.Size || it.QuickXorHash == "" || !sameHash(it.QuickXorHash, sum) {
		return nil
	}
	return it
}

// checkUploaded compares the item the service reports with what was sent.
func checkUploaded(it *Item, size int64, sum []byte) error {
	if it.Size != size {
		return fmt.Errorf("%w: %q: sent %d bytes, the service reports %d", ErrHashMismatch, it.Name, size, it.Size)
	}
	if it.QuickXorHash != "" && !sameHash(it.QuickXorHash, sum) {
		return fmt.Errorf("%w: %q: sent %s, the service reports %s", ErrHashMismatch, it.Name,
			base64.StdEncoding.EncodeToString(sum), it.QuickXorHash)
	}
	return nil
}

// errSessionGone: the service no longer knows the upload session (404).
var errSessionGone = errors.New("remote: upload session expired")

// sessionUpload is one file's trip through one or more upload sessions.
type sessionUpload struct {
	c   *Client
	req *UploadRequest

	// mu guards the fields below: fragment bodies are read by the HTTP
	// transport's own goroutine, which may still read after the request
	// has returned (RoundTrip's contract).
	mu sync.Mutex
	// hash covers the first hashed bytes of the content, in order. Bytes
	// are hashed once, as the transport first reads them to send them (one
	// pass over the content, not one to hash and one to send), so the
	// digest is of what was sent even when fragments are resent or the
	// session restarts.
	hash   hash.Hash
	hashed int64
	// fragment counts the fragment requests that have returned; a body of
	// an earlier one reads nothing more (see fragmentBody.Read).
	fragment int64
	// readErr is the first failure to read the content for a fragment: the
	// upload stops there (it is not a network failure to resume after).
	readErr error
}

func (c *Client) uploadSession(ctx context.Context, u *UploadRequest) (*Item, error) {
	up := &sessionUpload{c: c, req: u, hash: quickxorhash.New()}
	defer up.reportHashed()
	for restarts := 0; ; restarts++ {
		uploadURL, err := c.createUploadSession(ctx, u)
		if err != nil {
			return nil, err
		}
		item, err := up.send(ctx, uploadURL)
		if err == nil {
			sum, herr := up.sum()
			if herr != nil {
				return item, herr
			}
			return item, checkUploaded(item, u.Size, sum)
		}
		if errors.Is(err, errSessionGone) && restarts < maxSessionRestarts && ctx.Err() == nil {
			c.log.Debug("upload session expired; starting a new one", "restarts", restarts+1)
			continue
		}
		if !errors.Is(err, errSessionGone) {
			c.cancelUploadSession(ctx, uploadURL)
		}
		return nil, err
	}
}

// createUploadSession returns a new session's uploadUrl. Repeating the POST
// is harmless (an unused session expires), so it is retried freely.
func (c *Client) createUploadSession(ctx context.Context, u *UploadRequest) (string, error) {
	body := wireCreateSession{Item: wireSessionItem{
		ConflictBehavior: string(u.Conflict),
		FileSystemInfo:   newFSInfo(u.FSCreated, u.FSModified),
		FileSize:         u.Size,
	}}
	r, err := jsonRequest("create upload session", http.MethodPost, c.uploadTarget(u)+"/createUploadSession", body, repeatable)
	if err != nil {
		return "", err
	}
	if u.IfMatch != "" {
		r.header.Set("If-Match", u.IfMatch)
	}
	var s wireUploadSession
	if err := c.callJSON(ctx, r, &s); err != nil {
		return "", err
	}
	if s.UploadURL == "" {
		return "", fmt.Errorf("%w: create upload session: the reply has no uploadUrl", ErrNotSupported)
	}
	return resolveLink(r.url, s.UploadURL)
}

// send uploads the content through one session, from the start.
func (up *sessionUpload) send(ctx context.Context, uploadURL string) (*Item, error) {
	c, size := up.c, up.req.Size
	next := int64(0)
	failures := 0
	for {
		end := min(next+c.fragment, size)
		item, expected, err := up.putFragment(ctx, uploadURL, next, end)
		if err == nil {
			if item != nil {
				up.req.progress(size)
				return item, nil
			}
			if expected < 0 {
				expected = end
			}
			if expected > next {
				failures = 0
			}
			next = expected
			up.req.progress(next)
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, ErrNotFound) {
			return nil, errSessionGone
		}
		up.mu.Lock()
		readErr := up.readErr
		up.mu.Unlock()
		if readErr != nil {
			return nil, readErr // the content, not the network: no resuming
		}
		if !fragmentRetryable(err) {
			return nil, err
		}
		failures++
		if failures >= c.retry.MaxAttempts {
			return nil, err
		}
		if !errors.Is(err, ErrInvalidRange) {
			wait := c.backoff(failures)
			c.log.Debug("upload fragment failed; resuming", "offset", next, "wait", wait, "err", err)
			if err := c.sleep(ctx, wait); err != nil {
				return nil, err
			}
		}
		resume, item, err := up.resumePoint(ctx, uploadURL, end == size)
		if err != nil || item != nil {
			return item, err
		}
		if resume > next {
			failures = 0
		}
		next = resume
	}
}

// resumePoint asks the session which byte it expects next. When the failed
// fragment was the last one, the session may have completed (and vanished)
// before its reply was lost: the item is then looked up and returned if it
// holds exactly the bytes sent.
func (up *sessionUpload) resumePoint(ctx context.Context, uploadURL string, wasLast bool) (int64, *Item, error) {
	c := up.c
	var s wireUploadSession
	r := &request{op: "upload session status", method: http.MethodGet, url: uploadURL, plain: true, mode: repeatable, buffer: true}
	// committed looks for the item holding exactly the whole content.
	committed := func() (*Item, error) {
		sum, err := up.sum()
		if err != nil {
			return nil, err
		}
		return c.committed(ctx, up.req, sum), nil
	}
	if err := c.callJSON(ctx, r, &s); err != nil {
		if errors.Is(err, ErrNotFound) {
			if wasLast {
				if it, err := committed(); it != nil || err != nil {
					return 0, it, err
				}
			}
			return 0, nil, errSessionGone
		}
		return 0, nil, err
	}
	next := firstRangeStart(s.NextExpectedRanges)
	if next < 0 {
		// Nothing more expected, yet no item was returned: look for it.
		if it, err := committed(); it != nil || err != nil {
			return 0, it, err
		}
		return 0, nil, errSessionGone
	}
	up.mu.Lock()
	hashed := up.hashed
	up.mu.Unlock()
	if next > hashed {
		return 0, nil, fmt.Errorf("remote: upload session expects byte %d, but only %d were sent", next, hashed)
	}
	return next, nil, nil
}

// reportHashed passes the content's hash to the request's Hashed callback
// if every byte was read to be sent (the last fragment may have landed).
func (up *sessionUpload) reportHashed() {
	if up.req.Hashed == nil {
		return
	}
	up.mu.Lock()
	complete := up.hashed >= up.req.Size
	var sum []byte
	if complete {
		sum = up.hash.Sum(nil)
	}
	up.mu.Unlock()
	if complete {
		up.req.Hashed(base64.StdEncoding.EncodeToString(sum))
	}
}

// sum returns the digest of the whole content, hashing what no fragment
// body has read.
func (up *sessionUpload) sum() ([]byte, error) {
	up.mu.Lock()
	defer up.mu.Unlock()
	if err := up.hashToLocked(up.req.Size); err != nil {
		return nil, err
	}
	return up.hash.Sum(nil), nil
}

// hashToLocked feeds the content up to end into the hash (once per byte).
// Caller holds up.mu.
func (up *sessionUpload) hashToLocked(end int64) error {
	if end <= up.hashed {
		return nil
	}
	n, err := io.Copy(up.hash, io.NewSectionReader(up.req.Content, up.hashed, end-up.hashed))
	up.hashed += n
	if err == nil && up.hashed < end {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("remote: upload: reading the content: %w", err)
	}
	return nil
}

// errFragmentOver: a fragment body read after its request returned.
var errFragmentOver = errors.New("remote: upload fragment body read after its request ended")

// fragmentBody is the body of one attempt at sending content [off, end):
// it reads the content and hashes the bytes not yet hashed as it goes.
type fragmentBody struct {
	up       *sessionUpload
	fragment int64 // up.fragment when the request was made
	off, end int64
}

func (b *fragmentBody) Read(p []byte) (int, error) {
	if b.off >= b.end {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), b.end-b.off)]
	up := b.up
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.fragment != b.fragment {
		return 0, errFragmentOver
	}
	// Bytes a request was not seen to read (none in practice: a session
	// never expects more than was sent) are hashed first, so the hash
	// stays in order.
	if err := up.hashToLocked(b.off); err != nil {
		return 0, err
	}
	n, err := up.req.Content.ReadAt(p, b.off)
	if end := b.off + int64(n); end > up.hashed {
		up.hash.Write(p[up.hashed-b.off : n])
		up.hashed = end
	}
	b.off += int64(n)
	switch {
	case err == io.EOF && b.off == b.end:
		err = nil
	case err == io.EOF || (err == nil && n < len(p)):
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		err = fmt.Errorf("remote: upload: reading the content: %w", err)
		up.readErr = err
	}
	return n, err
}

// putFragment sends bytes [start, end). It returns the item when the
// service completed the upload, else the next byte it expects (-1 when the
// reply does not say).
func (up *sessionUpload) putFragment(ctx context.Context, uploadURL string, start, end int64) (*Item, int64, error) {
	c, size := up.c, up.req.Size
	up.mu.Lock()
	fragment := up.fragment
	up.mu.Unlock()
	r := &request{
		op: "upload fragment", method: http.MethodPut, url: uploadURL, plain: true,
		mode: notRepeatable, buffer: true, size: end - start,
		header: http.Header{"Content-Range": {"bytes " + strconv.FormatInt(start, 10) + "-" +
			strconv.FormatInt(end-1, 10) + "/" + strconv.FormatInt(size, 10)}},
		body: func() io.Reader { return &fragmentBody{up: up, fragment: fragment, off: start, end: end} },
	}
	resp, err := c.do(ctx, r)
	up.mu.Lock()
	up.fragment++ // the transport may still read a body it was given: not any more
	readErr := up.readErr
	up.mu.Unlock()
	if readErr != nil {
		if err == nil {
			drain(resp)
		}
		return nil, 0, readErr
	}
	if err != nil {
		return nil, 0, err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
		var w wireItem
		if err := c.decodeReply(r.op, resp, &w); err != nil {
			return nil, 0, err
		}
		return w.toItem(), 0, nil
	case http.StatusAccepted:
		var s wireUploadSession
		if err := c.decodeReply(r.op, resp, &s); err != nil {
			return nil, 0, err
		}
		return nil, firstRangeStart(s.NextExpectedRanges), nil
	}
	return nil, 0, errorFromResponse(r.op, resp, c.now())
}

// fragmentRetryable reports whether a failed fragment is worth resuming
// after: broken connections, 416 (out of step with the session) and server
// errors other than throttling (already waited out by do) and 507.
func fragmentRetryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode == http.StatusRequestedRangeNotSatisfiable ||
			(e.StatusCode >= 500 && !isThrottleStatus(e.StatusCode) && e.StatusCode != http.StatusInsufficientStorage)
	}
	return transientNetError(err)
}

// cancelUploadSession deletes a session that will not be finished, even if
// ctx is already cancelled (on its own short deadline).
func (c *Client) cancelUploadSession(ctx context.Context, uploadURL string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
	defer cancel()
	r := &request{op: "cancel upload session", method: http.MethodDelete, url: uploadURL, plain: true, mode: repeatable}
	resp, err := c.do(ctx, r)
	if err != nil {
		c.log.Debug("cancelling the upload session failed", "err", err)
		return
	}
	drain(resp)
}
