package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onedrivefs/onedrivefs/remote/quickxorhash"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sessionServer is a scripted upload-session endpoint: it keeps the bytes
// received in order, answers 202 with nextExpectedRanges, 201 with the item
// at the end, 416 to a fragment out of step, and lets a test break a given
// fragment PUT.
type sessionServer struct {
	t    *testing.T
	size int64

	mu         sync.Mutex
	data       []byte         // GUARDED_BY(mu): bytes committed, in order
	sessions   int            // GUARDED_BY(mu): sessions created
	puts       int            // GUARDED_BY(mu): fragment PUTs received
	starts     []int64        // GUARDED_BY(mu): start offset of every fragment PUT
	bytesRead  int64          // GUARDED_BY(mu): body bytes read from every fragment PUT
	statusGets int            // GUARDED_BY(mu)
	deletes    int            // GUARDED_BY(mu)
	created    map[string]any // GUARDED_BY(mu): the createUploadSession body
	done       bool           // GUARDED_BY(mu): the file was committed

	// onPut, if set, may take over fragment PUT number n (1-based, over all
	// sessions); it returns true if it replied.
	onPut func(w http.ResponseWriter, r *http.Request, n int, start, end int64) bool
	// itemHash, if set, replaces the hash reported for the committed file.
	itemHash string
}

func newSessionServer(t *testing.T, size int64) *sessionServer {
	return &sessionServer{t: t, size: size}
}

func (s *sessionServer) item() map[string]any {
	h := quickxorhash.Base64(s.data)
	if s.itemHash != "" {
		h = s.itemHash
	}
	it := itemJSON("up1", "big.bin", int64(len(s.data)))
	it["file"] = map[string]any{"hashes": map[string]any{"quickXorHash": h}}
	return it
}

func (s *sessionServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case strings.HasSuffix(path, "/createUploadSession"):
		requireBearer(s.t, r)
		require.Equal(s.t, http.MethodPost, r.Method)
		var body map[string]any
		require.NoError(s.t, json.NewDecoder(r.Body).Decode(&body))
		s.mu.Lock()
		s.sessions++
		n := s.sessions
		s.data = s.data[:0]
		s.created = body
		s.mu.Unlock()
		replyJSON(w, http.StatusOK, map[string]any{
			"uploadUrl":          fmt.Sprintf("http://%s/up/session%d?tempauth=secret", r.Host, n),
			"expirationDateTime": "2030-01-01T00:00:00Z",
			"nextExpectedRanges": []string{"0-"},
		})
	case strings.HasPrefix(path, "/up/"):
		requireNoAuth(s.t, r)
		s.serveSession(w, r)
	case path == drivePrefix+"/items/parent:/big.bin:":
		requireBearer(s.t, r)
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.done {
			graphError(w, http.StatusNotFound, "itemNotFound", "")
			return
		}
		replyJSON(w, http.StatusOK, s.item())
	default:
		s.t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
	}
}

func (s *sessionServer) serveSession(w http.ResponseWriter, r *http.Request) {
	current := fmt.Sprintf("/up/session%d", s.sessionCount())
	if r.URL.Path != current {
		graphError(w, http.StatusNotFound, "itemNotFound", "uploadSessionNotFound")
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.mu.Lock()
		s.statusGets++
		next := len(s.data)
		done := s.done
		s.mu.Unlock()
		if done {
			graphError(w, http.StatusNotFound, "itemNotFound", "uploadSessionNotFound")
			return
		}
		replyJSON(w, http.StatusOK, map[string]any{"nextExpectedRanges": []string{fmt.Sprintf("%d-", next)}})
	case http.MethodDelete:
		s.mu.Lock()
		s.deletes++
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		start, end, total := parseContentRange(s.t, r.Header.Get("Content-Range"))
		require.Equal(s.t, s.size, total, "the total never changes")
		require.Equal(s.t, strconv.FormatInt(end-start+1, 10), r.Header.Get("Content-Length"))
		s.mu.Lock()
		s.puts++
		n := s.puts
		s.starts = append(s.starts, start)
		s.mu.Unlock()
		if s.onPut != nil && s.onPut(w, r, n, start, end) {
			return
		}
		body, err := io.ReadAll(r.Body)
		require.NoError(s.t, err)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.bytesRead += int64(len(body))
		if start != int64(len(s.data)) {
			graphError(w, http.StatusRequestedRangeNotSatisfiable, "invalidRange", "fragmentOverlap")
			return
		}
		if end+1 != total && (end-start+1)%FragmentUnit != 0 {
			graphError(w, http.StatusBadRequest, "invalidRequest", "fragmentLengthMismatch")
			return
		}
		s.data = append(s.data, body...)
		if int64(len(s.data)) == total {
			s.done = true
			replyJSON(w, http.StatusCreated, s.item())
			return
		}
		replyJSON(w, http.StatusAccepted, map[string]any{
			"expirationDateTime": "2030-01-01T00:00:00Z",
			"nextExpectedRanges": []string{fmt.Sprintf("%d-", len(s.data))},
		})
	}
}

func (s *sessionServer) sessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// readPart reads n bytes of a PUT body and counts them.
func (s *sessionServer) readPart(r *http.Request, n int64) {
	got, _ := io.CopyN(io.Discard, r.Body, n)
	s.mu.Lock()
	s.bytesRead += got
	s.mu.Unlock()
}

// smallFragments makes even small files go through 320 KiB fragments.
func smallFragments(c *Config) {
	c.FragmentSize = FragmentUnit
	c.SimpleUploadLimit = 1
}

func parseContentRange(t *testing.T, v string) (start, end, total int64) {
	_, err := fmt.Sscanf(v, "bytes %d-%d/%d", &start, &end, &total)
	require.NoError(t, err, "Content-Range %q", v)
	return start, end, total
}

// A 50 MiB upload through a session, with a fragment broken mid-way, resumes
// from nextExpectedRanges without resending the fragments already received.
func TestUploadSessionResumesWithoutResending(t *testing.T) {
	const size = 50<<20 + 12345
	const fragment = 12 * FragmentUnit // 3.75 MiB → 14 fragments
	data := patternBytes(size)
	ss := newSessionServer(t, size)
	ss.onPut = func(w http.ResponseWriter, r *http.Request, n int, start, end int64) bool {
		if n != 5 {
			return false
		}
		ss.readPart(r, fragment/2) // half the fragment arrives, then the connection breaks
		breakConn()
		return true
	}
	env := newClientEnv(t, ss, func(c *Config) { c.FragmentSize = fragment })
	mtime := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	var progress []int64
	it, err := env.c.Upload(context.Background(), UploadRequest{
		ParentID: "parent", Name: "big.bin", Content: bytes.NewReader(data), Size: size,
		FSModified: mtime, Conflict: ConflictReplace,
		Progress: func(n int64) { progress = append(progress, n) },
	})
	require.NoError(t, err)
	assert.Equal(t, "up1", it.ID)
	assert.Equal(t, quickxorhash.Base64(data), it.QuickXorHash)

	ss.mu.Lock()
	defer ss.mu.Unlock()
	assert.True(t, bytes.Equal(data, ss.data), "content arrives intact")
	assert.Equal(t, int64(size+fragment/2), ss.bytesRead, "only the broken fragment is sent twice")
	assert.Equal(t, 1, ss.statusGets, "the session is asked once where to resume")
	assert.Equal(t, 1, ss.sessions)
	assert.Zero(t, ss.deletes)
	var want []int64
	for off := int64(0); off < size; off += fragment {
		want = append(want, off)
		if len(want) == 5 {
			want = append(want, off) // the broken one, resent
		}
	}
	assert.Equal(t, want, ss.starts)
	assert.Equal(t, map[string]any{"item": map[string]any{
		"@microsoft.graph.conflictBehavior": "replace",
		"fileSystemInfo":                    map[string]any{"lastModifiedDateTime": "2024-02-03T04:05:06Z"},
		"fileSize":                          float64(size),
	}}, ss.created)
	require.NotEmpty(t, progress)
	assert.Equal(t, int64(size), progress[len(progress)-1])
	for i := 1; i < len(progress); i++ {
		assert.GreaterOrEqual(t, progress[i], progress[i-1])
	}
}

// A fragment answered 416 (the service already had it) continues from the
// session's nextExpectedRanges.
func TestUploadSessionOutOfStep(t *testing.T) {
	const size = 3*FragmentUnit + 10
	data := patternBytes(size)
	ss := newSessionServer(t, size)
	ss.onPut = func(w http.ResponseWriter, r *http.Request, n int, start, end int64) bool {
		if n != 2 {
			return false
		}
		// Commit the fragment but answer as if it overlapped.
		body, _ := io.ReadAll(r.Body)
		ss.mu.Lock()
		ss.data = append(ss.data, body...)
		ss.bytesRead += int64(len(body))
		ss.mu.Unlock()
		graphError(w, http.StatusRequestedRangeNotSatisfiable, "invalidRange", "fragmentOverlap")
		return true
	}
	env := newClientEnv(t, ss, smallFragments)
	_, err := env.c.Upload(context.Background(), UploadRequest{ParentID: "parent", Name: "big.bin",
		Content: bytes.NewReader(data), Size: size})
	require.NoError(t, err)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	assert.Equal(t, []int64{0, FragmentUnit, 2 * FragmentUnit, 3 * FragmentUnit}, ss.starts, "nothing resent")
	assert.True(t, bytes.Equal(data, ss.data))
}

// A session the service forgot (404) is replaced by a new one.
func TestUploadSessionRestartsWhenExpired(t *testing.T) {
	const size = 4*FragmentUnit + 1
	data := patternBytes(size)
	ss := newSessionServer(t, size)
	ss.onPut = func(w http.ResponseWriter, r *http.Request, n int, start, end int64) bool {
		if n != 3 {
			return false
		}
		_, _ = io.Copy(io.Discard, r.Body)
		graphError(w, http.StatusNotFound, "itemNotFound", "uploadSessionNotFound")
		return true
	}
	env := newClientEnv(t, ss, smallFragments)
	it, err := env.c.Upload(context.Background(), UploadRequest{ParentID: "parent", Name: "big.bin",
		Content: bytes.NewReader(data), Size: size})
	require.NoError(t, err)
	assert.Equal(t, quickxorhash.Base64(data), it.QuickXorHash)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	assert.Equal(t, 2, ss.sessions)
	assert.True(t, bytes.Equal(data, ss.data))
}

// The last fragment is committed but its reply is lost; the session is gone
// when asked, and the client finds the committed file.
func TestUploadSessionLastReplyLost(t *testing.T) {
	const size = 2*FragmentUnit + 77
	data := patternBytes(size)
	ss := newSessionServer(t, size)
	ss.onPut = func(w http.ResponseWriter, r *http.Request, n int, start, end int64) bool {
		if n != 3 {
			return false
		}
		body, _ := io.ReadAll(r.Body)
		ss.mu.Lock()
		ss.data = append(ss.data, body...)
		ss.done = true
		ss.mu.Unlock()
		breakConn()
		return true
	}
	env := newClientEnv(t, ss, smallFragments)
	it, err := env.c.Upload(context.Background(), UploadRequest{ParentID: "parent", Name: "big.bin",
		Content: bytes.NewReader(data), Size: size})
	require.NoError(t, err)
	assert.Equal(t, "up1", it.ID)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	assert.Equal(t, 1, ss.sessions, "no second upload")
	assert.Equal(t, 3, ss.puts)
}

func TestUploadSessionCancelledDeletesSession(t *testing.T) {
	const size = 4 * FragmentUnit
	data := patternBytes(size)
	ss := newSessionServer(t, size)
	env := newClientEnv(t, ss, smallFragments)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := env.c.Upload(ctx, UploadRequest{ParentID: "parent", Name: "big.bin",
		Content: bytes.NewReader(data), Size: size,
		Progress: func(n int64) {
			if n >= 2*FragmentUnit {
				cancel()
			}
		}})
	require.ErrorIs(t, err, context.Canceled)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	assert.Equal(t, 1, ss.deletes, "the abandoned session is deleted")
	assert.Equal(t, 2, ss.puts)
}

func TestUploadSessionPermanentFailureDeletesSession(t *testing.T) {
	const size = 2*FragmentUnit + 5
	ss := newSessionServer(t, size)
	ss.onPut = func(w http.ResponseWriter, r *http.Request, n int, start, end int64) bool {
		if n != 3 {
			return false
		}
		_, _ = io.Copy(io.Discard, r.Body)
		graphError(w, http.StatusConflict, "nameAlreadyExists", "")
		return true
	}
	env := newClientEnv(t, ss, smallFragments)
	_, err := env.c.Upload(context.Background(), UploadRequest{ParentID: "parent", Name: "big.bin",
		Content: bytes.NewReader(patternBytes(size)), Size: size, Conflict: ConflictFail})
	require.ErrorIs(t, err, ErrConflict)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	assert.Equal(t, 1, ss.deletes)
	assert.Equal(t, 3, ss.puts)
}

func TestUploadSessionHashMismatch(t *testing.T) {
	const size = FragmentUnit + 1
	ss := newSessionServer(t, size)
	ss.itemHash = quickxorhash.Base64([]byte("not what was sent"))
	env := newClientEnv(t, ss, smallFragments)
	it, err := env.c.Upload(context.Background(), UploadRequest{ParentID: "parent", Name: "big.bin",
		Content: bytes.NewReader(patternBytes(size)), Size: size})
	require.ErrorIs(t, err, ErrHashMismatch)
	require.NotNil(t, it, "the item is returned with the error")
}

func TestSimpleUpload(t *testing.T) {
	data := []byte("hello world")
	var hits hitCounter
	mtime := time.Date(2022, 1, 2, 3, 4, 5, 0, time.UTC)
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requireBearer(t, r)
		switch r.Method {
		case http.MethodPut:
			hits.inc("put")
			assert.Equal(t, drivePrefix+"/items/parent:/small%20file.txt:/content?@microsoft.graph.conflictBehavior=replace", r.RequestURI)
			assert.Equal(t, "etag-old", r.Header.Get("If-Match"))
			body, _ := io.ReadAll(r.Body)
			assert.Equal(t, data, body)
			it := itemJSON("s1", "small file.txt", int64(len(body)))
			it["file"] = map[string]any{"hashes": map[string]any{"quickXorHash": quickxorhash.Base64(body)}}
			replyJSON(w, http.StatusCreated, it)
		case http.MethodPatch:
			hits.inc("patch")
			assert.Equal(t, drivePrefix+"/items/s1", r.URL.Path)
			var body map[string]any
			require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
			assert.Equal(t, map[string]any{"fileSystemInfo": map[string]any{"lastModifiedDateTime": "2022-01-02T03:04:05Z"}}, body)
			it := itemJSON("s1", "small file.txt", int64(len(data)))
			it["fileSystemInfo"] = map[string]any{"lastModifiedDateTime": "2022-01-02T03:04:05Z"}
			replyJSON(w, http.StatusOK, it)
		}
	}))
	it, err := env.c.Upload(context.Background(), UploadRequest{ParentID: "parent", Name: "small file.txt",
		Content: bytes.NewReader(data), Size: int64(len(data)), IfMatch: "etag-old",
		Conflict: ConflictReplace, FSModified: mtime})
	require.NoError(t, err)
	assert.Equal(t, mtime, it.FSModified)
	assert.Equal(t, 1, hits.get("put"))
	assert.Equal(t, 1, hits.get("patch"))
}

func TestSimpleUploadEmptyAndReplaceByID(t *testing.T) {
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requireBearer(t, r)
		require.Equal(t, http.MethodPut, r.Method)
		assert.Equal(t, drivePrefix+"/items/ID!9/content", r.RequestURI)
		assert.Equal(t, "0", r.Header.Get("Content-Length"))
		it := itemJSON("ID!9", "empty", 0)
		it["file"] = map[string]any{"hashes": map[string]any{"quickXorHash": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}}
		replyJSON(w, http.StatusOK, it)
	}))
	it, err := env.c.Upload(context.Background(), UploadRequest{ItemID: "ID!9"})
	require.NoError(t, err)
	assert.Equal(t, "ID!9", it.ID)
}

// A simple PUT whose first attempt landed (reply lost) meets 412 when
// repeated; the client finds its own content there.
func TestSimpleUploadAfterLostReply(t *testing.T) {
	data := []byte("abc")
	var hits hitCounter
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			_, _ = io.Copy(io.Discard, r.Body)
			if hits.inc("put") == 1 {
				breakConn()
			}
			graphError(w, http.StatusPreconditionFailed, "resourceModified", "")
		case http.MethodGet:
			it := itemJSON("f", "f", 3)
			it["file"] = map[string]any{"hashes": map[string]any{"quickXorHash": quickxorhash.Base64(data)}}
			replyJSON(w, http.StatusOK, it)
		}
	}))
	it, err := env.c.Upload(context.Background(), UploadRequest{ItemID: "f", IfMatch: "e1",
		Content: bytes.NewReader(data), Size: 3})
	require.NoError(t, err)
	assert.Equal(t, "f", it.ID)
	assert.Equal(t, 2, hits.get("put"))
}

func TestUploadValidation(t *testing.T) {
	env := newClientEnv(t, http.NotFoundHandler())
	ctx := context.Background()
	_, err := env.c.Upload(ctx, UploadRequest{Name: "x", Size: 0})
	assert.Error(t, err)
	_, err = env.c.Upload(ctx, UploadRequest{ParentID: "p", Name: "x", Size: 5})
	assert.Error(t, err)
	_, err = env.c.Upload(ctx, UploadRequest{ParentID: "p", ItemID: "i", Size: 0})
	assert.Error(t, err)
	// Names that cannot be one path segment are refused before anything is
	// sent (the server here would answer 404).
	for _, name := range []string{"", ".", "..", "a/b"} {
		_, err = env.c.Upload(ctx, UploadRequest{ParentID: "p", Name: name, Size: 0})
		assert.ErrorIs(t, err, ErrInvalidName, "%q", name)
		_, err = env.c.Child(ctx, "p", name)
		assert.ErrorIs(t, err, ErrInvalidName, "%q", name)
		_, err = env.c.CreateFolder(ctx, "p", name, ConflictFail)
		assert.ErrorIs(t, err, ErrInvalidName, "%q", name)
	}

	_, err = New(Config{GraphURL: "http://x/v1.0", Tokens: &rotatingTokens{}, FragmentSize: FragmentUnit + 1})
	assert.Error(t, err)
	_, err = New(Config{GraphURL: "http://x/v1.0", Tokens: &rotatingTokens{}, FragmentSize: 192 * FragmentUnit})
	assert.Error(t, err, "60 MiB is too large")
	_, err = New(Config{GraphURL: "not a url", Tokens: &rotatingTokens{}})
	assert.Error(t, err)
	_, err = New(Config{GraphURL: "http://x/v1.0"})
	assert.Error(t, err, "tokens are required")
}

// countingReaderAt counts the bytes read from it and fails every read that
// reaches failAt (when failAt > 0).
type countingReaderAt struct {
	r      io.ReaderAt
	failAt int64
	err    error

	mu   sync.Mutex
	read int64 // GUARDED_BY(mu)
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if c.failAt > 0 && off+int64(len(p)) > c.failAt {
		return 0, c.err
	}
	n, err := c.r.ReadAt(p, off)
	c.mu.Lock()
	c.read += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *countingReaderAt) bytesRead() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read
}

// The content is read once: the bytes sent are hashed as they go, not in a
// pass of their own.
func TestUploadSessionReadsContentOnce(t *testing.T) {
	const size = 5*FragmentUnit + 99
	data := patternBytes(size)
	ss := newSessionServer(t, size)
	env := newClientEnv(t, ss, smallFragments)
	content := &countingReaderAt{r: bytes.NewReader(data)}
	it, err := env.c.Upload(context.Background(), UploadRequest{ParentID: "parent", Name: "big.bin",
		Content: content, Size: size})
	require.NoError(t, err, "the client's hash matches the service's")
	assert.Equal(t, quickxorhash.Base64(data), it.QuickXorHash)
	assert.Equal(t, int64(size), content.bytesRead())
}

// A reply that comes before the fragment's body was read (here a 500 at
// once) leaves the hash right: the transport may go on reading that body
// after the reply, and those reads neither race with the resent fragment
// nor hash anything twice.
func TestUploadSessionReplyBeforeBody(t *testing.T) {
	const size = 4*FragmentUnit + 3
	data := patternBytes(size)
	ss := newSessionServer(t, size)
	ss.onPut = func(w http.ResponseWriter, r *http.Request, n int, start, end int64) bool {
		if n != 3 {
			return false
		}
		w.Header().Set("Connection", "close")
		graphError(w, http.StatusInternalServerError, "generalException", "")
		return true
	}
	env := newClientEnv(t, ss, smallFragments)
	it, err := env.c.Upload(context.Background(), UploadRequest{ParentID: "parent", Name: "big.bin",
		Content: bytes.NewReader(data), Size: size})
	require.NoError(t, err, "the client's hash matches the service's")
	assert.Equal(t, quickxorhash.Base64(data), it.QuickXorHash)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	assert.True(t, bytes.Equal(data, ss.data))
	assert.Equal(t, 1, ss.statusGets)
	assert.Equal(t, []int64{0, FragmentUnit, 2 * FragmentUnit, 2 * FragmentUnit, 3 * FragmentUnit, 4 * FragmentUnit}, ss.starts)
}

// Failing to read the content ends the upload at once: it is not a network
// failure to resume after, and the session is deleted.
func TestUploadSessionContentReadError(t *testing.T) {
	const size = 4 * FragmentUnit
	errDisk := errors.New("disk on fire")
	ss := newSessionServer(t, size)
	ss.onPut = func(w http.ResponseWriter, r *http.Request, n int, start, end int64) bool {
		if n != 2 {
			return false
		}
		_, _ = io.Copy(io.Discard, r.Body) // cut short by the client
		graphError(w, http.StatusBadRequest, "invalidRequest", "")
		return true
	}
	env := newClientEnv(t, ss, smallFragments)
	content := &countingReaderAt{r: bytes.NewReader(patternBytes(size)), failAt: FragmentUnit + 1, err: errDisk}
	_, err := env.c.Upload(context.Background(), UploadRequest{ParentID: "parent", Name: "big.bin",
		Content: content, Size: size})
	require.ErrorIs(t, err, errDisk)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	assert.Zero(t, ss.statusGets, "no resuming")
	assert.Equal(t, 1, ss.sessions)
	assert.Equal(t, 1, ss.deletes, "the session is deleted")
	assert.False(t, ss.done)
}
