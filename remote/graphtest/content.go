package graphtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// Content: downloads through pre-authenticated URLs, simple uploads, and the
// commit step shared with upload sessions (upload.go).
//
// Download URLs. GET …/content answers 302 with a Location
// base(r)/download/{grant}; file items also carry the same kind of URL as
// @microsoft.graph.downloadUrl. A grant names the drive, the item, the
// item's content version (cTag) at issue and an expiry
// (Options.DownloadURLLifetime); it is signed with a per-process key, so
// handing out URLs costs no memory however many listings are served (and
// URLs do not survive a restart). The download URL answers:
//   - 404 itemNotFound for a malformed or forged grant, or a deleted item;
//   - 410 Gone (code itemNotFound) once expired, or once the item's content
//     has changed since the grant: the fake never serves bytes other than
//     those the grant was issued for, and a client must fetch a fresh URL —
//     stricter than the service, which may keep serving the old version;
//   - otherwise the content through http.ServeContent: Range → 206 with
//     Content-Range (multiple ranges as multipart), If-None-Match/If-Range
//     against the eTag header, sent from the blob file (sendfile); with
//     FormOptions.DownloadIgnoresRange, Range and If-Range are ignored and
//     the whole body is sent with 200, as the service may.
//
// An Authorization header on the download URL is answered 401 before this
// code runs (rejectAuthorization in ServeHTTP).

// downloadURL returns a fresh pre-authenticated URL for the file it.
// Called with s.mu held (it reads it only).
func (s *Server) downloadURL(r *http.Request, d *drive, it *item) string {
	exp := s.now().Add(s.opts.DownloadURLLifetime).Unix()
	payload := strings.Join([]string{d.ID, it.ID, strconv.FormatInt(it.CTagVersion, 10), strconv.FormatInt(exp, 10)}, "\x00")
	return base(r) + "/download/" + base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + s.grantMAC(payload)
}

func (s *Server) grantMAC(payload string) string {
	m := hmac.New(sha256.New, s.grantKey)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

type downloadGrant struct {
	driveID, itemID string
	cTagVersion     int64
	expires         time.Time
}

// parseGrant checks a grant's signature and decodes it.
func (s *Server) parseGrant(tok string) (downloadGrant, bool) {
	enc, mac, ok := strings.Cut(tok, ".")
	if !ok {
		return downloadGrant{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || !hmac.Equal([]byte(mac), []byte(s.grantMAC(string(raw)))) {
		return downloadGrant{}, false
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 4 {
		return downloadGrant{}, false
	}
	ver, err1 := strconv.ParseInt(parts[2], 10, 64)
	exp, err2 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil {
		return downloadGrant{}, false
	}
	return downloadGrant{driveID: parts[0], itemID: parts[1], cTagVersion: ver, expires: time.Unix(exp, 0)}, true
}

func errGone(message string) *apiError {
	return &apiError{http.StatusGone, codeItemNotFound, message, ""}
}

// handleGetContent answers GET …/content with a 302 to a download URL.
func (s *Server) handleGetContent(w http.ResponseWriter, r *http.Request, rt route) {
	s.mu.Lock()
	d, it, aerr := s.lookupLocked(rt)
	if aerr != nil {
		s.mu.Unlock()
		aerr.write(w, r)
		return
	}
	if it.Folder || it.Package != "" || it.Remote != nil {
		s.mu.Unlock()
		errInvalid("Only files have content to download.").write(w, r)
		return
	}
	etag := it.eTag()
	if h := r.Header.Get("If-None-Match"); h != "" && matchesTag(h, it, true) {
		s.mu.Unlock()
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	loc := s.downloadURL(r, d, it)
	s.mu.Unlock()
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusFound)
}

// serveDownload serves a pre-authenticated download URL.
func (s *Server) serveDownload(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r)
		return
	}
	g, ok := s.parseGrant(rt.rest)
	if !ok {
		errNotFound().write(w, r)
		return
	}
	if s.now().After(g.expires) {
		errGone("The download URL has expired.").write(w, r)
		return
	}
	s.mu.Lock()
	var it *item
	if d := s.drives[strings.ToLower(g.driveID)]; d != nil {
		it = d.Items[g.itemID]
	}
	if it == nil {
		s.mu.Unlock()
		errNotFound().write(w, r)
		return
	}
	if it.CTagVersion != g.cTagVersion {
		s.mu.Unlock()
		errGone("The content changed since this download URL was issued.").write(w, r)
		return
	}
	blob, name, etag, modified := it.Blob, it.Name, it.eTag(), it.Modified
	s.mu.Unlock()

	var content io.ReadSeeker = bytes.NewReader(nil)
	if blob != "" {
		f, err := s.blobs.open(blob)
		if err != nil {
			// Replaced and collected between the check and the open.
			errGone("The content changed since this download URL was issued.").write(w, r)
			return
		}
		defer f.Close()
		content = f
	}
	if formsOf(r).DownloadIgnoresRange {
		r.Header.Del("Range")
		r.Header.Del("If-Range")
	}
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Content-Type", "application/octet-stream")
	cw := &countingWriter{ResponseWriter: w, add: s.addDownloadBytes, hold: func() bool { return s.awaitNetwork(r) }}
	http.ServeContent(cw, r, name, modified, content)
	cw.finish()
}

// countingWriter counts the content bytes of a download in the server's
// stats: the body of a 200 or 206, not the text of an error such as
// ServeContent's 416. The count must be in the stats before the client can
// have read the end of the body (tests read the stats as soon as a download
// returns), so the declared Content-Length is counted before the first body
// byte is sent, and finish corrects it when the body was cut short (an
// injected reset). Without a Content-Length the body is chunked and its end
// is only sent after the handler returns, so each write is counted as it
// happens. The sendfile path of the underlying ResponseWriter (ReadFrom) is
// kept.
type countingWriter struct {
	http.ResponseWriter
	add func(int64) // adds to Stats.BytesDownloaded
	// hold, between chunks of the body, waits while the network is
	// blackholed and reports whether the body may go on (network.go): a
	// silent network stops a download mid-stream too. nil: never holds.
	hold     func() bool
	status   int
	started  bool
	declared int64 // the Content-Length counted in advance; -1 when none
	n        int64 // content bytes written
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

// start is called before the first body byte: it reports whether the body
// is content, counting its declared length in advance.
func (c *countingWriter) start() bool {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.status != http.StatusOK && c.status != http.StatusPartialContent {
		return false
	}
	if !c.started {
		c.started = true
		c.declared = -1
		if cl, err := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64); err == nil && cl >= 0 {
			c.declared = cl
			c.add(cl)
		}
	}
	return true
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if !c.start() {
		return c.ResponseWriter.Write(p)
	}
	if c.hold != nil && !c.hold() {
		return 0, errNetworkGone
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	if c.declared < 0 {
		c.add(int64(n))
	}
	return n, err
}

func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	content := c.start()
	var n int64
	var err error
	if content && c.hold != nil {
		n, err = c.readFromHeld(src)
	} else if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.ResponseWriter}, src)
	}
	if content {
		c.n += n
		if c.declared < 0 {
			c.add(n)
		}
	}
	return n, err
}

// finish takes back what was counted in advance but not sent. It runs
// before the handler returns, so before a cut connection is closed.
func (c *countingWriter) finish() {
	if c.declared > c.n {
		c.add(c.n - c.declared)
	}
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// heldChunk is how much of a download's body goes out between two looks
// at the network.
const heldChunk = 1 << 20

// errNetworkGone ends a body whose network went away (refused, closed, or
// the client gave up waiting through a blackhole).
var errNetworkGone = errors.New("graphtest: the network went away mid-body")

// readFromHeld copies src (ServeContent's limited reader over the blob's
// file) in chunks, holding between them while the network is blackholed.
// Each chunk keeps a single *io.LimitedReader over the file, so that the
// connection still sends it with sendfile.
func (c *countingWriter) readFromHeld(src io.Reader) (int64, error) {
	w := io.Writer(struct{ io.Writer }{c.ResponseWriter})
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		w = struct {
			io.ReaderFrom
			io.Writer
		}{rf, c.ResponseWriter}
	}
	lr, limited := src.(*io.LimitedReader)
	var n int64
	for {
		if !c.hold() {
			return n, errNetworkGone
		}
		var chunk io.Reader
		if limited {
			if lr.N <= 0 {
				return n, nil
			}
			chunk = &io.LimitedReader{R: lr.R, N: min(lr.N, heldChunk)}
		} else {
			chunk = io.LimitReader(src, heldChunk)
		}
		m, err := io.Copy(w, chunk)
		n += m
		if limited {
			lr.N -= m
		}
		if err != nil || m < heldChunk {
			return n, err
		}
	}
}

// uploadTarget is where an upload lands: an existing file by id, or a name
// in a parent folder (path addressing), resolved again at commit.
type uploadTarget struct {
	driveID  string
	byID     bool
	itemID   string // byID: the file replaced
	parentID string // path form
	name     string // path form
}

// resolveUploadTarget resolves the target of a content PUT or an upload
// session: `…:/path/name:` → (parent, name), which may or may not exist;
// items/{id} → that file. It returns the existing item, if any. Called with
// s.mu held.
func (s *Server) resolveUploadTarget(d *drive, rt route) (uploadTarget, *item, *apiError) {
	tgt := uploadTarget{driveID: d.ID}
	if rt.hasPath && len(rt.path) > 0 {
		base, aerr := s.resolveBase(d, rt)
		if aerr == nil {
			aerr = s.authorizeLocked(s.routeUser(rt), d, base, false) // paths start where the caller can read
		}
		if aerr != nil {
			return tgt, nil, aerr
		}
		parent, aerr := s.walkVisible(d, base, rt.path[:len(rt.path)-1])
		if aerr != nil {
			return tgt, nil, aerr
		}
		if !parent.Folder || parent.Remote != nil {
			return tgt, nil, errInvalid("The parent of the uploaded item is not a folder.")
		}
		if aerr := s.authorizeLocked(s.routeUser(rt), d, parent, true); aerr != nil {
			return tgt, nil, aerr
		}
		tgt.parentID, tgt.name = parent.ID, rt.path[len(rt.path)-1]
		if aerr := s.checkNewPath(d, parent, tgt.name); aerr != nil {
			return tgt, nil, aerr
		}
		return tgt, d.child(parent, tgt.name), nil
	}
	it, aerr := s.resolve(d, rt)
	if aerr != nil {
		return tgt, nil, aerr
	}
	if it.Folder || it.Remote != nil {
		return tgt, nil, errInvalid("Cannot upload content to a folder.")
	}
	tgt.byID, tgt.itemID = true, it.ID
	return tgt, it, nil
}

// precheckUpload refuses early what the commit would refuse anyway, before
// any byte is received. existing is the current target, if any.
func precheckUpload(existing *item, conflict, ifMatch, ifNoneMatch string) *apiError {
	if existing == nil {
		if ifMatch != "" {
			return errModified()
		}
		return nil
	}
	if ifMatch != "" && !matchesETag(ifMatch, existing) {
		return errModified()
	}
	if ifNoneMatch != "" && matchesETag(ifNoneMatch, existing) {
		return errModified()
	}
	switch {
	case conflict == "fail", conflict == "replace" && existing.Folder:
		return errNameExists(existing.Name)
	}
	return nil
}

// commitUpload puts new content in place: replaces the target file (keeping
// its id) or creates a new one, according to conflict ("replace", "fail",
// "rename") and ifMatch. Returns the item and whether it was created.
// Called with s.mu held; on error the caller discards the blob.
func (s *Server) commitUpload(tgt uploadTarget, blob blobInfo, conflict, ifMatch string, fs *wireFSInfoIn) (*item, bool, *apiError) {
	d := s.drives[strings.ToLower(tgt.driveID)]
	if d == nil {
		return nil, false, errNotFound()
	}
	var fsCreated, fsModified *time.Time
	if fs != nil {
		fsCreated, fsModified = fs.CreatedDateTime, fs.LastModifiedDateTime
	}
	replace := func(it *item) (*item, bool, *apiError) {
		if ifMatch != "" && !matchesETag(ifMatch, it) {
			return nil, false, errModified()
		}
		if blob.Size-it.Size > s.remainingBytes(d) {
			return nil, false, errQuota()
		}
		it.MimeType = mimeType(it.Name)
		s.touchContent(d, it, contentUpdate{blob: blob, fsCreated: fsCreated, fsModified: fsModified})
		return it, false, nil
	}
	if tgt.byID {
		it := d.Items[tgt.itemID]
		if it == nil {
			return nil, false, errNotFound()
		}
		return replace(it)
	}
	parent := d.Items[tgt.parentID]
	if parent == nil || !parent.Folder {
		return nil, false, errNotFound()
	}
	name := tgt.name
	if existing := d.child(parent, name); existing != nil {
		switch {
		case conflict == "rename":
			name = d.uniqueName(parent, name)
			if aerr := s.checkNewPath(d, parent, name); aerr != nil {
				return nil, false, aerr
			}
		case conflict == "replace" && !existing.Folder:
			return replace(existing)
		default:
			return nil, false, errNameExists(existing.Name)
		}
	} else if ifMatch != "" {
		return nil, false, errModified()
	}
	if blob.Size > s.remainingBytes(d) {
		return nil, false, errQuota()
	}
	it := &item{Name: name, Blob: blob.Name, Size: blob.Size, QuickXorHash: blob.QuickXorHash,
		SHA256: blob.SHA256, MimeType: mimeType(name)}
	if fsCreated != nil {
		it.FSCreated = fsCreated.UTC()
	}
	if fsModified != nil {
		it.FSModified = fsModified.UTC()
	}
	s.insert(d, parent, it)
	return it, true, nil
}

// mimeType guesses a file's type from its extension, as the service does.
func mimeType(name string) string {
	t := mime.TypeByExtension(strings.ToLower(path.Ext(name)))
	if t == "" {
		return "application/octet-stream"
	}
	if i := strings.IndexByte(t, ';'); i >= 0 {
		t = t[:i]
	}
	return t
}

// handlePutContent is the simple upload: PUT …/content with the bytes as
// body, up to Options.SimpleUploadLimit (413 above). conflictBehavior comes
// from the query (default replace). 201 with the new item, 200 when an
// existing file was replaced (FormOptions.UploadCreatedStatus and
// UploadReplacedStatus change them).
func (s *Server) handlePutContent(w http.ResponseWriter, r *http.Request, rt route) {
	conflict, aerr := parseConflict(conflictQuery(r), "replace")
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	limit := s.opts.SimpleUploadLimit
	tooLarge := &apiError{http.StatusRequestEntityTooLarge, "requestTooLarge",
		fmt.Sprintf("The request body exceeds the simple upload limit of %d bytes; use an upload session.", limit), ""}
	if r.ContentLength > limit {
		tooLarge.write(w, r)
		return
	}
	ifMatch, ifNoneMatch := r.Header.Get("If-Match"), r.Header.Get("If-None-Match")
	s.mu.Lock()
	d, aerr := s.driveFor(rt)
	var tgt uploadTarget
	var existing *item
	if aerr == nil {
		tgt, existing, aerr = s.resolveUploadTarget(d, rt)
	}
	if aerr == nil {
		aerr = precheckUpload(existing, conflict, ifMatch, ifNoneMatch)
	}
	if aerr == nil && r.ContentLength > s.remainingBytes(d) {
		aerr = errQuota()
	}
	s.mu.Unlock()
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	blob, err := s.blobs.create(io.LimitReader(r.Body, limit+1))
	if err != nil {
		errInvalid("Could not read the request body.").write(w, r)
		return
	}
	s.addUploadBytes(blob.Size)
	if blob.Size > limit {
		s.blobs.discard(blob.Name)
		tooLarge.write(w, r)
		return
	}
	s.mu.Lock()
	it, created, aerr := s.commitUpload(tgt, blob, conflict, ifMatch, nil)
	if aerr != nil {
		s.mu.Unlock()
		s.blobs.discard(blob.Name)
		aerr.write(w, r)
		return
	}
	body := s.renderItem(r, d, it, false)
	etag := it.eTag()
	s.mu.Unlock()
	w.Header().Set("ETag", etag)
	writeJSON(w, formsOf(r).uploadStatus(created), body)
}
