package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onedrivefs/onedrivefs/remote/quickxorhash"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// contentServer serves items' content the way the service does: the API's
// …/content answers 302 to a pre-authenticated URL, which serves ranges and
// refuses any Authorization header.
type contentServer struct {
	t     *testing.T
	files map[string][]byte // item id → content
	hits  hitCounter
	// preauth, if set, handles a pre-authenticated request instead of the
	// default (http.ServeContent); n is the request's number for that item.
	preauth func(w http.ResponseWriter, r *http.Request, id string, n int) bool
	mu      sync.Mutex
	ranges  []string // GUARDED_BY(mu): Range headers seen on pre-authenticated URLs
}

func (s *contentServer) seenRanges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func (s *contentServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id, ok := strings.CutPrefix(r.URL.Path, "/preauth/"); ok {
		requireNoAuth(s.t, r)
		n := s.hits.inc("preauth " + id)
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.mu.Unlock()
		if r.URL.Query().Get("sig") != "secret" {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if s.preauth != nil && s.preauth(w, r, id, n) {
			return
		}
		http.ServeContent(w, r, id, time.Time{}, bytes.NewReader(s.files[id]))
		return
	}
	requireBearer(s.t, r)
	id, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, drivePrefix+"/items/"), "/content")
	if !ok {
		s.t.Errorf("unexpected %s", r.URL.Path)
		return
	}
	n := s.hits.inc("content " + id)
	w.Header().Set("Location", fmt.Sprintf("http://%s/preauth/%s?sig=secret&n=%d", r.Host, id, n))
	w.WriteHeader(http.StatusFound)
}

func patternBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7 % 251)
	}
	return b
}

func TestDownloadRange(t *testing.T) {
	data := patternBytes(100_000)
	cs := &contentServer{t: t, files: map[string][]byte{"f1": data}}
	env := newClientEnv(t, cs)
	ctx := context.Background()

	var buf bytes.Buffer
	n, err := env.c.Download(ctx, "f1", 1000, 5000, &buf)
	require.NoError(t, err)
	assert.Equal(t, int64(5000), n)
	assert.Equal(t, data[1000:6000], buf.Bytes())

	buf.Reset()
	n, err = env.c.Download(ctx, "f1", 99_000, -1, &buf)
	require.NoError(t, err)
	assert.Equal(t, int64(1000), n)
	assert.Equal(t, data[99_000:], buf.Bytes())

	buf.Reset()
	n, err = env.c.Download(ctx, "f1", 99_500, 5000, &buf) // runs past the end
	require.NoError(t, err)
	assert.Equal(t, int64(500), n)
	assert.Equal(t, data[99_500:], buf.Bytes())

	n, err = env.c.Download(ctx, "f1", 100_000, 10, &buf) // at the end
	require.NoError(t, err)
	assert.Equal(t, int64(0), n)

	assert.Equal(t, []string{"bytes=1000-5999", "bytes=99000-", "bytes=99500-104499", "bytes=100000-100009"}, cs.seenRanges())
	assert.Equal(t, 1, cs.hits.get("content f1"), "the pre-authenticated URL is reused while fresh")
}

func TestDownloadURLRefetchedWhenStale(t *testing.T) {
	data := patternBytes(5000)
	cs := &contentServer{t: t, files: map[string][]byte{"f1": data}}
	cs.preauth = func(w http.ResponseWriter, r *http.Request, id string, n int) bool {
		if r.URL.Query().Get("n") == "1" && n > 1 {
			http.Error(w, "expired", http.StatusForbidden) // the first URL has expired
			return true
		}
		return false
	}
	env := newClientEnv(t, cs)
	ctx := context.Background()
	var buf bytes.Buffer
	_, err := env.c.Download(ctx, "f1", 0, 10, &buf)
	require.NoError(t, err)
	buf.Reset()
	_, err = env.c.Download(ctx, "f1", 10, 10, &buf)
	require.NoError(t, err)
	assert.Equal(t, data[10:20], buf.Bytes())
	assert.Equal(t, 2, cs.hits.get("content f1"))

	// The cache lifetime also expires URLs.
	env.clock.advanceTo(env.clock.Now().Add(downloadURLLifetime))
	_, err = env.c.Download(ctx, "f1", 0, 1, &buf)
	require.NoError(t, err)
	assert.Equal(t, 3, cs.hits.get("content f1"))
}

func TestDownloadServerIgnoresRange(t *testing.T) {
	data := patternBytes(20_000)
	cs := &contentServer{t: t, files: map[string][]byte{"f1": data}}
	cs.preauth = func(w http.ResponseWriter, r *http.Request, id string, n int) bool {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(data)
		return true
	}
	env := newClientEnv(t, cs)
	var buf bytes.Buffer
	n, err := env.c.Download(context.Background(), "f1", 3000, 4000, &buf)
	require.NoError(t, err)
	assert.Equal(t, int64(4000), n)
	assert.Equal(t, data[3000:7000], buf.Bytes())

	buf.Reset()
	n, err = env.c.Download(context.Background(), "f1", 30_000, 10, &buf)
	require.NoError(t, err)
	assert.Zero(t, n)
}

// A body cut short is resumed from the first byte not received.
func TestDownloadResumesAfterBrokenBody(t *testing.T) {
	data := patternBytes(300_000)
	cs := &contentServer{t: t, files: map[string][]byte{"f1": data}}
	cs.preauth = func(w http.ResponseWriter, r *http.Request, id string, n int) bool {
		if n != 1 {
			return false
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(data[:123_456])
		w.(http.Flusher).Flush()
		breakConn()
		return true
	}
	env := newClientEnv(t, cs)
	var buf bytes.Buffer
	n, err := env.c.Download(context.Background(), "f1", 0, -1, &buf)
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), n)
	assert.True(t, bytes.Equal(data, buf.Bytes()))
	assert.Equal(t, []string{"", "bytes=123456-"}, cs.seenRanges())
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestDownloadWriterErrorNotRetried(t *testing.T) {
	cs := &contentServer{t: t, files: map[string][]byte{"f1": patternBytes(1000)}}
	env := newClientEnv(t, cs)
	boom := errors.New("disk full")
	_, err := env.c.Download(context.Background(), "f1", 0, -1, failingWriter{boom})
	require.ErrorIs(t, err, boom)
	assert.Equal(t, 1, cs.hits.get("preauth f1"))
}

func TestDownloadVerified(t *testing.T) {
	data := patternBytes(70_000)
	cs := &contentServer{t: t, files: map[string][]byte{"f1": data}}
	env := newClientEnv(t, cs)
	ctx := context.Background()
	item := &Item{ID: "f1", Name: "f1.bin", Size: int64(len(data)), QuickXorHash: quickxorhash.Base64(data)}

	var buf bytes.Buffer
	require.NoError(t, env.c.DownloadVerified(ctx, item, &buf))
	assert.True(t, bytes.Equal(data, buf.Bytes()))

	bad := *item
	bad.QuickXorHash = quickxorhash.Base64([]byte("something else"))
	require.ErrorIs(t, env.c.DownloadVerified(ctx, &bad, &bytes.Buffer{}), ErrHashMismatch)

	short := *item
	short.Size++
	require.ErrorIs(t, env.c.DownloadVerified(ctx, &short, &bytes.Buffer{}), ErrHashMismatch)

	folder := &Item{ID: "d", IsFolder: true}
	require.ErrorIs(t, env.c.DownloadVerified(ctx, folder, &bytes.Buffer{}), ErrNotSupported)
}

// An item's own DownloadURL (from a listing) is used without asking the API.
func TestDownloadVerifiedUsesItemDownloadURL(t *testing.T) {
	data := patternBytes(1234)
	cs := &contentServer{t: t, files: map[string][]byte{"f2": data}}
	env := newClientEnv(t, cs)
	item := &Item{ID: "f2", Size: int64(len(data)), QuickXorHash: quickxorhash.Base64(data),
		DownloadURL: env.srv.URL + "/preauth/f2?sig=secret"}
	var buf bytes.Buffer
	require.NoError(t, env.c.DownloadVerified(context.Background(), item, &buf))
	assert.Equal(t, data, buf.Bytes())
	assert.Equal(t, 0, cs.hits.get("content f2"))
}

// Neither errors nor logs show a pre-authenticated URL.
func TestPreauthenticatedURLsNotLeaked(t *testing.T) {
	cs := &contentServer{t: t, files: map[string][]byte{"f1": patternBytes(10)}}
	cs.preauth = func(w http.ResponseWriter, r *http.Request, id string, n int) bool {
		breakConn()
		return true
	}
	var logs bytes.Buffer
	env := newClientEnv(t, cs, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	_, err := env.c.Download(context.Background(), "f1", 0, -1, &bytes.Buffer{})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "secret")
	assert.NotContains(t, err.Error(), "/preauth/")
	assert.NotEmpty(t, logs.String(), "the retries were logged")
	assert.NotContains(t, logs.String(), "secret")
	assert.NotContains(t, logs.String(), "/preauth/")
}
