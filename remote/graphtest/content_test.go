package graphtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// coreClock is a settable clock for Options.Clock.
type coreClock struct {
	mu sync.Mutex
	t  time.Time
}

func newCoreClock() *coreClock { return &coreClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *coreClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *coreClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// location GETs …/content and returns the 302 Location.
func (c *coreClient) location(path string, hdr ...string) string {
	c.t.Helper()
	resp := c.req("GET", path, nil, hdr...)
	defer resp.Body.Close()
	require.Equal(c.t, http.StatusFound, resp.StatusCode)
	loc := resp.Header.Get("Location")
	require.NotEmpty(c.t, loc)
	return loc
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

func TestDownloadRedirectAndRanges(t *testing.T) {
	c := newCore(t, Options{})
	content := []byte("0123456789abcdefghij")
	id, err := c.s.PutFile("/dir/file.bin", content, time.Time{})
	require.NoError(t, err)
	c.s.ResetStats()

	loc := c.location("/me/drive/items/" + id + "/content")
	require.True(t, strings.HasPrefix(loc, c.s.URL+"/download/"), loc)
	loc2 := c.location("/me/drive/root:/dir/file.bin:/content", "X-Forwarded-Host", "files.example", "X-Forwarded-Proto", "https")
	assert.True(t, strings.HasPrefix(loc2, "https://files.example/download/"), loc2)

	resp := c.plain("GET", loc, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("ETag"))
	assert.Equal(t, content, readAll(t, resp))

	resp = c.plain("GET", loc, nil, "Range", "bytes=5-9")
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, "bytes 5-9/20", resp.Header.Get("Content-Range"))
	assert.Equal(t, "56789", string(readAll(t, resp)))

	resp = c.plain("GET", loc, nil, "Range", "bytes=-3")
	assert.Equal(t, "hij", string(readAll(t, resp)))
	st := c.s.Stats()
	assert.Equal(t, int64(20+5+3), st.BytesDownloaded)
	assert.Equal(t, int64(2), st.Requests[opContentGet])
	assert.Equal(t, int64(3), st.Requests[opDownload])

	resp = c.plain("GET", loc, nil, "Range", "bytes=0-1,18-19")
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	require.NoError(t, err)
	mr := multipart.NewReader(resp.Body, params["boundary"])
	var parts []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, _ := io.ReadAll(p)
		parts = append(parts, string(b))
	}
	resp.Body.Close()
	assert.Equal(t, []string{"01", "ij"}, parts)

	resp = c.plain("GET", loc, nil, "Range", "bytes=50-60")
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestedRangeNotSatisfiable, resp.StatusCode)

	// The downloadUrl of the item works the same way.
	m := c.obj("GET", "/me/drive/items/"+id, nil, 200)
	resp = c.plain("GET", str(m, "@microsoft.graph.downloadUrl"), nil, "Range", "bytes=19-")
	assert.Equal(t, "j", string(readAll(t, resp)))

	// An Authorization header on the pre-authenticated URL is refused.
	resp = c.req("GET", loc, nil)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// If-None-Match on …/content.
	resp = c.req("GET", "/me/drive/items/"+id+"/content", nil, "If-None-Match", str(m, "cTag"))
	resp.Body.Close()
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)

	// A folder has no content.
	c.graphErr(c.req("GET", "/me/drive/root:/dir:/content", nil), 400, codeInvalidRequest, "")
	// A forged grant.
	resp = c.plain("GET", c.s.URL+"/download/abc.def", nil)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestDownloadURLGoneAfterChangeOrExpiry(t *testing.T) {
	clk := newCoreClock()
	c := newCore(t, Options{Clock: clk.Now, DownloadURLLifetime: time.Minute})
	id, err := c.s.PutFile("/f", []byte("v1"), time.Time{})
	require.NoError(t, err)

	loc := c.location("/me/drive/items/" + id + "/content")
	_, err = c.s.PutFile("/f", []byte("v2"), time.Time{})
	require.NoError(t, err)
	resp := c.plain("GET", loc, nil)
	resp.Body.Close()
	assert.Equal(t, http.StatusGone, resp.StatusCode, "content changed since the grant")
	loc = c.location("/me/drive/items/" + id + "/content")
	assert.Equal(t, "v2", string(readAll(t, c.plain("GET", loc, nil))))

	// A metadata change does not invalidate the URL.
	c.obj("PATCH", "/me/drive/items/"+id, map[string]any{"name": "g"}, 200)
	assert.Equal(t, "v2", string(readAll(t, c.plain("GET", loc, nil))))

	clk.Advance(2 * time.Minute)
	resp = c.plain("GET", loc, nil)
	resp.Body.Close()
	assert.Equal(t, http.StatusGone, resp.StatusCode, "expired")

	loc = c.location("/me/drive/items/" + id + "/content")
	resp = c.req("DELETE", "/me/drive/items/"+id, nil)
	resp.Body.Close()
	resp = c.plain("GET", loc, nil)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "deleted")
}

func TestSparseFiveGiBFile(t *testing.T) {
	c := newCore(t, Options{})
	const size = 5 << 30
	tail := []byte("tail of a very big file")
	id, err := c.s.SparseFile("/video/big.mkv", size, tail)
	require.NoError(t, err)

	m := c.obj("GET", "/me/drive/root:/video/big.mkv", nil, 200)
	assert.Equal(t, id, m["id"])
	assert.Equal(t, fmt.Sprint(int64(size)), str(m, "size"))
	var q quickXor
	q.writeAt(tail, size-int64(len(tail)))
	q.setLength(size)
	assert.Equal(t, q.base64(), str(m, "file", "hashes", "quickXorHash"))

	loc := c.location("/me/drive/items/" + id + "/content")
	resp := c.plain("GET", loc, nil, "Range", fmt.Sprintf("bytes=%d-", size-int64(len(tail))))
	assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
	assert.Equal(t, fmt.Sprintf("bytes %d-%d/%d", size-len(tail), size-1, int64(size)), resp.Header.Get("Content-Range"))
	assert.Equal(t, tail, readAll(t, resp))
	resp = c.plain("GET", loc, nil, "Range", "bytes=1000-1003")
	assert.Equal(t, []byte{0, 0, 0, 0}, readAll(t, resp))

	d := c.obj("GET", "/me/drive", nil, 200)
	assert.Equal(t, fmt.Sprint(int64(size)), str(d, "quota", "used"))
	blob, err := c.s.BlobPath("/video/big.mkv")
	require.NoError(t, err)
	assert.Less(t, blocksOf(t, blob), int64(1024))
}

func TestSimpleUpload(t *testing.T) {
	c := newCore(t, Options{SimpleUploadLimit: 1000, QuotaTotal: 5000})
	c.s.ResetStats()
	docs := c.mkdir(c.rootID(), "docs")
	docsID := str(docs, "id")

	body := []byte("hello, simple upload")
	m := c.obj("PUT", "/me/drive/items/"+docsID+":/new.txt:/content", body, 201)
	id := str(m, "id")
	assert.Equal(t, "new.txt", m["name"])
	assert.Equal(t, qxOf(body), str(m, "file", "hashes", "quickXorHash"))
	sum := sha256.Sum256(body)
	assert.Equal(t, strings.ToUpper(hex.EncodeToString(sum[:])), str(m, "file", "hashes", "sha256Hash"))
	assert.Equal(t, int64(len(body)), c.s.Stats().BytesUploaded)

	// Replace by id keeps the id: 200, new cTag, fileSystemInfo reset to now.
	old := c.obj("PATCH", "/me/drive/items/"+id, map[string]any{"fileSystemInfo": map[string]any{"lastModifiedDateTime": "2001-01-01T00:00:00Z"}}, 200)
	r := c.obj("PUT", "/me/drive/items/"+id+"/content", "v2", 200)
	assert.Equal(t, id, r["id"])
	assert.NotEqual(t, old["cTag"], r["cTag"])
	assert.NotEqual(t, "2001-01-01T00:00:00.000Z", str(r, "fileSystemInfo", "lastModifiedDateTime"))
	got, err := c.s.ReadFile("/docs/new.txt")
	require.NoError(t, err)
	assert.Equal(t, "v2", string(got))

	// By path from the root, replace by default.
	r = c.obj("PUT", "/me/drive/root:/docs/new.txt:/content", "v3", 200)
	assert.Equal(t, id, r["id"])
	// conflictBehavior.
	c.graphErr(c.req("PUT", "/me/drive/root:/docs/new.txt:/content?@microsoft.graph.conflictBehavior=fail", "x"), 409, codeNameAlreadyExists, "")
	r = c.obj("PUT", "/me/drive/root:/docs/new.txt:/content?@microsoft.graph.conflictBehavior=rename", "x", 201)
	assert.Equal(t, "new 1.txt", r["name"])
	// If-Match.
	c.graphErr(c.req("PUT", "/me/drive/items/"+id+"/content", "x", "If-Match", str(old, "eTag")), 412, codeResourceModified, "")
	cur := c.obj("GET", "/me/drive/items/"+id, nil, 200)
	c.obj("PUT", "/me/drive/items/"+id+"/content", "v4", 200, "If-Match", str(cur, "eTag"))

	// The size cap: exactly the limit is fine, one more byte is 413, with
	// or without a Content-Length.
	c.obj("PUT", "/me/drive/root:/limit.bin:/content", bytes.Repeat([]byte("a"), 1000), 201)
	c.graphErr(c.req("PUT", "/me/drive/root:/over.bin:/content", bytes.Repeat([]byte("a"), 1001)), 413, "requestTooLarge", "")
	c.graphErr(c.req("PUT", "/me/drive/root:/over.bin:/content", io.MultiReader(bytes.NewReader(make([]byte, 1001)))), 413, "requestTooLarge", "")
	_, ok := c.s.ItemByPath("/over.bin")
	assert.False(t, ok)

	// Missing parent, folder target, quota.
	c.graphErr(c.req("PUT", "/me/drive/root:/nope/x.txt:/content", "x"), 404, codeItemNotFound, "")
	c.graphErr(c.req("PUT", "/me/drive/items/"+docsID+"/content", "x"), 400, codeInvalidRequest, "")
	c.graphErr(c.req("PUT", "/me/drive/root:/docs:/content", "x"), 409, codeNameAlreadyExists, "")
	for i := 0; i < 3; i++ {
		c.obj("PUT", fmt.Sprintf("/me/drive/root:/fill%d:/content", i), bytes.Repeat([]byte("z"), 1000), 201)
	}
	c.graphErr(c.req("PUT", "/me/drive/root:/more:/content", bytes.Repeat([]byte("z"), 1000)), 507, codeQuotaLimitReached, "")
	// Empty file.
	e := c.obj("PUT", "/me/drive/root:/empty:/content", nil, 201)
	assert.Equal(t, "0", str(e, "size"))
	assert.Equal(t, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", str(e, "file", "hashes", "quickXorHash"))
	loc := c.location("/me/drive/items/" + str(e, "id") + "/content")
	assert.Empty(t, readAll(t, c.plain("GET", loc, nil)))
}
