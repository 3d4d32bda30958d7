package graphtest

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Upload sessions (docs/graph-contract.md §5).
//
// POST …/createUploadSession creates a session whose URL,
// base(r)/upload/{id}, takes the content in fragments: PUT with
// Content-Range "bytes a-b/total" and a Content-Length of b-a+1. The rules
// the fake enforces, with their answers:
//   - a malformed or missing Content-Range, total "*", b < a or b ≥ total:
//     400 invalidRequest;
//   - a fragment of 60 MiB or more: 400 invalidRequest,
//     maxFragmentLengthExceeded;
//   - Content-Length absent or not b-a+1: 400 invalidRequest,
//     innerError fragmentLengthMismatch;
//   - a fragment that is not a multiple of 320 KiB (327,680 bytes) and not
//     the last one: 400 invalidRequest, invalidFragmentLength;
//   - total different from the first fragment's (or from the fileSize given
//     at creation): 400 invalidRequest;
//   - a fragment starting before the next expected byte (overlap, replay):
//     416 invalidRange, fragmentOverlap; after it: 416 invalidRange,
//     fragmentOutOfOrder; a fragment while another one of the same session
//     is still being received: 416 invalidRange, fragmentOverlap;
//   - an unknown, cancelled or expired session: 404 itemNotFound.
// A session expires UploadSessionLifetime after its creation or its last
// accepted fragment (measured with the server clock). Intermediate fragments
// get 202 {expirationDateTime, nextExpectedRanges:["N-"]}; the last one
// commits the file: 201 + driveItem for a new file, 200 for a replaced one
// (FormOptions.UploadCreatedStatus and UploadReplacedStatus change them),
// 409 nameAlreadyExists when the name was taken meanwhile and the
// conflictBehavior is fail. GET on the URL reports the session, DELETE
// cancels it (204).
//
// Fragments stream to a temporary file in the blob directory, with the
// hashes computed on the way; a body cut short (client reset) leaves the
// session where it was, the partial bytes are dropped.
//
// createUploadSession accepts the body {"item":{…}} and, as onedriver sends
// it, the same fields at the top level. Addressing a path whose file exists
// updates that file, keeping its id, unless conflictBehavior says otherwise
// (rclone relies on it; the docs' default "fail" applies only when given
// explicitly). deferCommit is not supported (ignored). Sessions are not
// persisted across restarts.

const (
	fragmentUnit  = 320 << 10 // 327,680
	fragmentLimit = 60 << 20  // fragments must be smaller
)

type uploadSession struct {
	id       string
	target   uploadTarget
	conflict string // replace (default), fail, rename
	ifMatch  string
	fsInfo   *wireFSInfoIn
	fileSize int64 // declared at creation; -1 if not
	total    int64 // fixed by the first fragment; -1 before
	next     int64 // next expected byte
	tmpPath  string
	qx       quickXor
	sha      hash.Hash
	expires  time.Time
	busy     bool // a fragment is being received
}

type uploadSessionBody struct {
	Item        *wireItemIn `json:"item"`
	DeferCommit bool        `json:"deferCommit"`
	wireItemIn
}

type wireUploadSession struct {
	UploadURL          string   `json:"uploadUrl,omitempty"`
	ExpirationDateTime string   `json:"expirationDateTime"`
	NextExpectedRanges []string `json:"nextExpectedRanges"`
}

func (s *Server) handleCreateUploadSession(w http.ResponseWriter, r *http.Request, rt route) {
	var body uploadSessionBody
	if aerr := decodeBody(r, &body, true); aerr != nil {
		aerr.write(w, r)
		return
	}
	in := body.Item
	if in == nil {
		in = &body.wireItemIn
	}
	conflict, aerr := in.conflictBehavior(r, "replace")
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	tmp, err := s.blobs.tempFile()
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, codeGeneralException, "Cannot create the upload session.", "")
		return
	}
	tmp.Close()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp.Name())
		}
	}()

	w, unlock := s.lockReply(w)
	defer unlock()
	s.pruneSessionsLocked()
	d, aerr := s.driveFor(rt)
	var tgt uploadTarget
	var existing *item
	if aerr == nil {
		tgt, existing, aerr = s.resolveUploadTarget(d, rt)
	}
	if aerr == nil && in.Name != nil {
		want := tgt.name
		if tgt.byID {
			want = existing.Name
		}
		if *in.Name != want {
			aerr = errInvalid("Name specified in the path doesn't match the name in the request body.")
		}
	}
	if aerr == nil {
		aerr = precheckUpload(existing, conflict, r.Header.Get("If-Match"), r.Header.Get("If-None-Match"))
	}
	if aerr == nil && in.FileSize != nil {
		room := s.remainingBytes(d)
		if existing != nil && !existing.Folder && conflict == "replace" {
			room += existing.Size
		}
		if *in.FileSize > room {
			aerr = errQuota()
		}
	}
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	sess := &uploadSession{
		id:       randomToken(24),
		target:   tgt,
		conflict: conflict,
		ifMatch:  r.Header.Get("If-Match"),
		fsInfo:   in.FileSystemInfo,
		fileSize: -1,
		total:    -1,
		tmpPath:  tmp.Name(),
		sha:      sha256.New(),
		expires:  s.now().Add(s.opts.UploadSessionLifetime),
	}
	if in.FileSize != nil {
		sess.fileSize = *in.FileSize
	}
	s.sessions[sess.id] = sess
	ok = true
	writeJSON(w, http.StatusOK, wireUploadSession{
		UploadURL:          base(r) + "/upload/" + sess.id,
		ExpirationDateTime: wireTime(sess.expires),
		NextExpectedRanges: []string{"0-"},
	})
}

// pruneSessionsLocked drops expired sessions that are not receiving.
func (s *Server) pruneSessionsLocked() {
	now := s.now()
	for id, sess := range s.sessions {
		if !sess.busy && now.After(sess.expires) {
			delete(s.sessions, id)
			_ = os.Remove(sess.tmpPath)
		}
	}
}

// sessionLocked returns a live session, dropping it if it has expired.
func (s *Server) sessionLocked(id string) *uploadSession {
	sess := s.sessions[id]
	if sess == nil {
		return nil
	}
	if !sess.busy && s.now().After(sess.expires) {
		delete(s.sessions, id)
		_ = os.Remove(sess.tmpPath)
		return nil
	}
	return sess
}

func (sess *uploadSession) status() wireUploadSession {
	return wireUploadSession{
		ExpirationDateTime: wireTime(sess.expires),
		NextExpectedRanges: []string{strconv.FormatInt(sess.next, 10) + "-"},
	}
}

// serveUploadFragment serves the upload URL: PUT a fragment, GET the
// status, DELETE to cancel.
func (s *Server) serveUploadFragment(w http.ResponseWriter, r *http.Request, rt route) {
	id, _, _ := strings.Cut(rt.rest, "?")
	switch r.Method {
	case http.MethodGet:
		s.mu.Lock()
		sess := s.sessionLocked(id)
		var st wireUploadSession
		if sess != nil {
			st = sess.status()
		}
		s.mu.Unlock()
		if sess == nil {
			errNotFound().write(w, r)
			return
		}
		writeJSON(w, http.StatusOK, st)
	case http.MethodDelete:
		s.mu.Lock()
		sess := s.sessionLocked(id)
		if sess != nil {
			delete(s.sessions, id)
			if !sess.busy {
				_ = os.Remove(sess.tmpPath)
			}
		}
		s.mu.Unlock()
		if sess == nil {
			errNotFound().write(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		s.putFragment(w, r, id)
	default:
		methodNotAllowed(w, r)
	}
}

// parseContentRange parses "bytes a-b/total".
func parseContentRange(v string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(strings.TrimSpace(rest), "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(a, 10, 64)
	end, err2 = strconv.ParseInt(b, 10, 64)
	total, err3 = strconv.ParseInt(tot, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || start < 0 || end < start || total <= end {
		return 0, 0, 0, false
	}
	return start, end, total, true
}

func errFragment(status int, code, inner, message string) *apiError {
	return &apiError{status, code, message, inner}
}

// checkFragment validates a fragment against the session. Called with s.mu
// held.
func (sess *uploadSession) checkFragment(start, end, total, contentLength int64) *apiError {
	length := end - start + 1
	switch {
	case length >= fragmentLimit:
		return errFragment(http.StatusBadRequest, codeInvalidRequest, "maxFragmentLengthExceeded",
			"A fragment must be smaller than 60 MiB.")
	case contentLength != length:
		return errFragment(http.StatusBadRequest, codeInvalidRequest, "fragmentLengthMismatch",
			fmt.Sprintf("Content-Length %d does not match the Content-Range length %d.", contentLength, length))
	case sess.total >= 0 && total != sess.total, sess.total < 0 && sess.fileSize >= 0 && total != sess.fileSize:
		return errInvalid("The total size in Content-Range changed during the upload session.")
	case sess.busy || start < sess.next:
		return errFragment(http.StatusRequestedRangeNotSatisfiable, codeInvalidRange, "fragmentOverlap",
			fmt.Sprintf("The fragment overlaps bytes already received; next expected: %d-.", sess.next))
	case start > sess.next:
		return errFragment(http.StatusRequestedRangeNotSatisfiable, codeInvalidRange, "fragmentOutOfOrder",
			fmt.Sprintf("The fragment is out of order; next expected: %d-.", sess.next))
	case length%fragmentUnit != 0 && end != total-1:
		return errFragment(http.StatusBadRequest, codeInvalidRequest, "invalidFragmentLength",
			"Fragments other than the last must be a multiple of 320 KiB (327,680 bytes).")
	}
	return nil
}

func (s *Server) putFragment(w http.ResponseWriter, r *http.Request, id string) {
	start, end, total, ok := parseContentRange(r.Header.Get("Content-Range"))
	if !ok {
		errInvalid("Missing or invalid Content-Range: expected \"bytes start-end/total\".").write(w, r)
		return
	}
	s.mu.Lock()
	sess := s.sessionLocked(id)
	if sess == nil {
		s.mu.Unlock()
		errNotFound().write(w, r)
		return
	}
	if aerr := sess.checkFragment(start, end, total, r.ContentLength); aerr != nil {
		s.mu.Unlock()
		aerr.write(w, r)
		return
	}
	sess.busy = true
	sess.total = total
	qx := sess.qx
	sha, err := cloneHash(sess.sha)
	tmpPath := sess.tmpPath
	s.mu.Unlock()

	length := end - start + 1
	var n int64
	if err == nil {
		n, err = writeFragment(tmpPath, start, io.LimitReader(r.Body, length), &qx, sha)
	}
	s.addUploadBytes(n)

	s.mu.Lock()
	sess.busy = false
	live := s.sessions[id] == sess
	if !live {
		// Cancelled while receiving.
		s.mu.Unlock()
		_ = os.Remove(tmpPath)
		errNotFound().write(w, r)
		return
	}
	if err != nil || n != length {
		s.mu.Unlock()
		_ = os.Truncate(tmpPath, start)
		errInvalid("The fragment was not received completely.").write(w, r)
		return
	}
	sess.next = end + 1
	sess.qx, sess.sha = qx, sha
	sess.expires = s.now().Add(s.opts.UploadSessionLifetime)
	if sess.next < total {
		st := sess.status()
		s.mu.Unlock()
		writeJSON(w, http.StatusAccepted, st)
		return
	}
	delete(s.sessions, id)
	s.mu.Unlock()

	blob, err := s.blobs.adopt(tmpPath, blobInfo{Size: total, QuickXorHash: qx.base64(), SHA256: shaHex(sha)})
	if err != nil {
		_ = os.Remove(tmpPath)
		writeError(w, r, http.StatusInternalServerError, codeGeneralException, "Cannot store the upload.", "")
		return
	}
	s.mu.Lock()
	it, created, aerr := s.commitUpload(sess.target, blob, sess.conflict, sess.ifMatch, sess.fsInfo)
	if aerr != nil {
		s.mu.Unlock()
		s.blobs.discard(blob.Name)
		aerr.write(w, r)
		return
	}
	d := s.drives[strings.ToLower(sess.target.driveID)]
	body := s.renderItem(r, d, it, false)
	etag := it.eTag()
	s.mu.Unlock()
	w.Header().Set("ETag", etag)
	writeJSON(w, formsOf(r).uploadStatus(created), body)
}

// writeFragment writes src at offset off of the file at path, hashing the
// bytes into qx and sha; it returns the number of bytes written.
func writeFragment(path string, off int64, src io.Reader, qx *quickXor, sha hash.Hash) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return 0, err
	}
	n, err := io.Copy(io.MultiWriter(f, qx, sha), src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// cloneHash copies a hash's running state.
func cloneHash(h hash.Hash) (hash.Hash, error) {
	c, ok := h.(hash.Cloner)
	if !ok {
		return nil, fmt.Errorf("%T cannot be cloned", h)
	}
	return c.Clone()
}
