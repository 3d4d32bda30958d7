package graphtest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// session creates an upload session and returns its URL.
func (c *coreClient) session(path string, body any) string {
	c.t.Helper()
	m := c.obj("POST", path, body, http.StatusOK)
	assert.Equal(c.t, []any{"0-"}, m["nextExpectedRanges"])
	assert.NotEmpty(c.t, m["expirationDateTime"])
	u := str(m, "uploadUrl")
	require.True(c.t, strings.HasPrefix(u, c.s.URL+"/upload/"), u)
	return u
}

// frag PUTs data as the fragment starting at start of a total-byte upload,
// with no Authorization header.
func (c *coreClient) frag(u string, data []byte, start, total int64) *http.Response {
	c.t.Helper()
	return c.plain("PUT", u, bytes.NewReader(data),
		"Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+int64(len(data))-1, total))
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

func TestUploadSessionHappyPath(t *testing.T) {
	c := newCore(t, Options{})
	c.s.ResetStats()
	data := randomBytes(2*fragmentUnit+1000, 7)
	total := int64(len(data))
	mtime := "2018-05-06T07:08:09Z"
	c.graphErr(c.req("POST", "/me/drive/root:/up/big.bin:/createUploadSession", nil), 404, codeItemNotFound, "")
	_, err := c.s.MkdirAll("/up")
	require.NoError(t, err)

	u := c.session("/me/drive/root:/up/big.bin:/createUploadSession", map[string]any{
		"item": map[string]any{"@microsoft.graph.conflictBehavior": "fail", "name": "big.bin",
			"fileSystemInfo": map[string]any{"lastModifiedDateTime": mtime}, "fileSize": total},
	})
	m := c.decode(c.frag(u, data[:fragmentUnit], 0, total), http.StatusAccepted)
	assert.Equal(t, []any{fmt.Sprintf("%d-", fragmentUnit)}, m["nextExpectedRanges"])
	st := c.decode(c.plain("GET", u, nil), http.StatusOK)
	assert.Equal(t, m["nextExpectedRanges"], st["nextExpectedRanges"])
	_, ok := c.s.ItemByPath("/up/big.bin")
	assert.False(t, ok, "nothing visible before the last fragment")

	m = c.decode(c.frag(u, data[fragmentUnit:2*fragmentUnit], fragmentUnit, total), http.StatusAccepted)
	assert.Equal(t, []any{fmt.Sprintf("%d-", 2*fragmentUnit)}, m["nextExpectedRanges"])
	item := c.decode(c.frag(u, data[2*fragmentUnit:], 2*fragmentUnit, total), http.StatusCreated)
	assert.Equal(t, "big.bin", item["name"])
	assert.Equal(t, fmt.Sprint(total), str(item, "size"))
	assert.Equal(t, naiveQuickXor(data), str(item, "file", "hashes", "quickXorHash"))
	sum := sha256.Sum256(data)
	assert.Equal(t, strings.ToUpper(hex.EncodeToString(sum[:])), str(item, "file", "hashes", "sha256Hash"))
	assert.Equal(t, "2018-05-06T07:08:09.000Z", str(item, "fileSystemInfo", "lastModifiedDateTime"))
	got, err := c.s.ReadFile("/up/big.bin")
	require.NoError(t, err)
	assert.Equal(t, data, got)
	assert.Equal(t, total, c.s.Stats().BytesUploaded)
	// The session is gone once committed.
	c.graphErr(c.plain("GET", u, nil), 404, codeItemNotFound, "")

	// Replacing: a path to an existing file keeps its id (200), as does
	// items/{id}/createUploadSession.
	id := str(item, "id")
	for _, path := range []string{"/me/drive/root:/up/BIG.bin:/createUploadSession", "/me/drive/items/" + id + "/createUploadSession"} {
		u = c.session(path, map[string]any{"item": map[string]any{"fileSystemInfo": map[string]any{"lastModifiedDateTime": mtime}}})
		r := c.decode(c.frag(u, []byte("small"), 0, 5), http.StatusOK)
		assert.Equal(t, id, r["id"])
		assert.Equal(t, "big.bin", r["name"])
		assert.Equal(t, "5", str(r, "size"))
	}

	// onedriver puts the fields at the top level; rename on conflict.
	u = c.session("/me/drive/items/"+c.rootID()+":/"+url.PathEscape("odr file.txt")+":/createUploadSession",
		map[string]any{"name": "odr file.txt", "@microsoft.graph.conflictBehavior": "rename"})
	r := c.decode(c.frag(u, []byte("odr"), 0, 3), http.StatusCreated)
	assert.Equal(t, "odr file.txt", r["name"])
	u = c.session("/me/drive/root:/odr%20file.txt:/createUploadSession",
		map[string]any{"name": "odr file.txt", "@microsoft.graph.conflictBehavior": "rename"})
	r = c.decode(c.frag(u, []byte("odr"), 0, 3), http.StatusCreated)
	assert.Equal(t, "odr file 1.txt", r["name"])

	// The upload URL is built from the caller's base.
	m = c.obj("POST", "/me/drive/root:/x.bin:/createUploadSession", nil, 200, "X-Forwarded-Host", "up.example", "X-Forwarded-Proto", "https")
	assert.True(t, strings.HasPrefix(str(m, "uploadUrl"), "https://up.example/upload/"))
}

func TestUploadSessionFragmentRules(t *testing.T) {
	c := newCore(t, Options{})
	data := randomBytes(3*fragmentUnit, 9)
	total := int64(len(data))
	u := c.session("/me/drive/root:/f.bin:/createUploadSession", nil)

	// Not a multiple of 320 KiB and not the last fragment.
	c.graphErr(c.frag(u, data[:1000], 0, total), 400, codeInvalidRequest, "invalidFragmentLength")
	// Out of order.
	c.graphErr(c.frag(u, data[fragmentUnit:2*fragmentUnit], fragmentUnit, total), 416, codeInvalidRange, "fragmentOutOfOrder")
	// Content-Length different from the range.
	c.graphErr(c.plain("PUT", u, bytes.NewReader(data[:10]), "Content-Range", fmt.Sprintf("bytes 0-19/%d", total)),
		400, codeInvalidRequest, "fragmentLengthMismatch")
	// 60 MiB or more (refused before reading the body).
	c.graphErr(c.plain("PUT", u, bytes.NewReader(data[:10]), "Content-Range", fmt.Sprintf("bytes 0-%d/%d", fragmentLimit-1, int64(fragmentLimit)*2)),
		400, codeInvalidRequest, "maxFragmentLengthExceeded")
	// Bad Content-Range.
	for _, cr := range []string{"", "bytes 0-9/*", "bytes 9-0/10", "bytes 0-10/10", "0-9/10"} {
		c.graphErr(c.plain("PUT", u, bytes.NewReader(data[:10]), "Content-Range", cr), 400, codeInvalidRequest, "")
	}

	c.decode(c.frag(u, data[:fragmentUnit], 0, total), http.StatusAccepted)
	// Replay and overlap.
	c.graphErr(c.frag(u, data[:fragmentUnit], 0, total), 416, codeInvalidRange, "fragmentOverlap")
	c.graphErr(c.frag(u, data[fragmentUnit/2:fragmentUnit/2+fragmentUnit], fragmentUnit/2, total), 416, codeInvalidRange, "fragmentOverlap")
	// The total must not change.
	c.graphErr(c.frag(u, data[fragmentUnit:2*fragmentUnit], fragmentUnit, total+1), 400, codeInvalidRequest, "")
	// Authorization is refused on the upload URL.
	resp := c.req("PUT", u, bytes.NewReader(data[fragmentUnit:2*fragmentUnit]),
		"Content-Range", fmt.Sprintf("bytes %d-%d/%d", fragmentUnit, 2*fragmentUnit-1, total))
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// None of that moved the session.
	st := c.decode(c.plain("GET", u, nil), 200)
	assert.Equal(t, []any{fmt.Sprintf("%d-", fragmentUnit)}, st["nextExpectedRanges"])
	c.decode(c.frag(u, data[fragmentUnit:2*fragmentUnit], fragmentUnit, total), http.StatusAccepted)
	c.decode(c.frag(u, data[2*fragmentUnit:], 2*fragmentUnit, total), http.StatusCreated)
	got, err := c.s.ReadFile("/f.bin")
	require.NoError(t, err)
	assert.Equal(t, data, got)

	// A declared fileSize fixes the total.
	u = c.session("/me/drive/root:/g.bin:/createUploadSession", map[string]any{"item": map[string]any{"fileSize": 10}})
	c.graphErr(c.frag(u, []byte("abc"), 0, 3), 400, codeInvalidRequest, "")
}

func TestUploadSessionExpiryAndCancel(t *testing.T) {
	clk := newCoreClock()
	c := newCore(t, Options{Clock: clk.Now, UploadSessionLifetime: 10 * time.Minute})
	data := randomBytes(2*fragmentUnit, 3)
	total := int64(len(data))

	u := c.session("/me/drive/root:/e.bin:/createUploadSession", nil)
	clk.Advance(9 * time.Minute)
	c.decode(c.frag(u, data[:fragmentUnit], 0, total), http.StatusAccepted)
	clk.Advance(9 * time.Minute) // the accepted fragment extended the session
	st := c.decode(c.plain("GET", u, nil), 200)
	assert.Equal(t, []any{fmt.Sprintf("%d-", fragmentUnit)}, st["nextExpectedRanges"])
	clk.Advance(11 * time.Minute)
	c.graphErr(c.frag(u, data[fragmentUnit:], fragmentUnit, total), 404, codeItemNotFound, "")
	c.graphErr(c.plain("GET", u, nil), 404, codeItemNotFound, "")

	u = c.session("/me/drive/root:/e.bin:/createUploadSession", nil)
	c.decode(c.frag(u, data[:fragmentUnit], 0, total), http.StatusAccepted)
	resp := c.plain("DELETE", u, nil)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	c.graphErr(c.frag(u, data[fragmentUnit:], fragmentUnit, total), 404, codeItemNotFound, "")
	c.graphErr(c.plain("GET", u, nil), 404, codeItemNotFound, "")
	c.graphErr(c.plain("DELETE", u, nil), 404, codeItemNotFound, "")
	_, ok := c.s.ItemByPath("/e.bin")
	assert.False(t, ok)
	c.graphErr(c.plain("GET", c.s.URL+"/upload/unknown", nil), 404, codeItemNotFound, "")
}

func TestUploadSessionConflictsAndQuota(t *testing.T) {
	c := newCore(t, Options{QuotaTotal: 1 << 20})
	_, err := c.s.PutFile("/taken.txt", []byte("t"), time.Time{})
	require.NoError(t, err)
	c.graphErr(c.req("POST", "/me/drive/root:/taken.txt:/createUploadSession",
		map[string]any{"item": map[string]any{"@microsoft.graph.conflictBehavior": "fail"}}), 409, codeNameAlreadyExists, "")
	c.graphErr(c.req("POST", "/me/drive/root:/a.txt:/createUploadSession",
		map[string]any{"item": map[string]any{"name": "b.txt"}}), 400, codeInvalidRequest, "")
	c.graphErr(c.req("POST", "/me/drive/root:/big:/createUploadSession",
		map[string]any{"item": map[string]any{"fileSize": 2 << 20}}), 507, codeQuotaLimitReached, "")
	c.graphErr(c.req("POST", "/me/drive/root:/bad%3F:/createUploadSession", nil), 400, codeInvalidRequest, innerInvalidChars)

	// The name is taken while the session runs: fail → 409 at commit.
	u := c.session("/me/drive/root:/late.txt:/createUploadSession",
		map[string]any{"item": map[string]any{"@microsoft.graph.conflictBehavior": "fail"}})
	_, err = c.s.PutFile("/LATE.txt", []byte("first"), time.Time{})
	require.NoError(t, err)
	c.graphErr(c.frag(u, []byte("second"), 0, 6), 409, codeNameAlreadyExists, "")
	got, err := c.s.ReadFile("/late.txt")
	require.NoError(t, err)
	assert.Equal(t, "first", string(got))

	// If-Match at creation is checked at commit too.
	cur := c.obj("GET", "/me/drive/root:/taken.txt", nil, 200)
	u = c.session("/me/drive/root:/taken.txt:/createUploadSession", nil)
	u2 := c.obj("POST", "/me/drive/root:/taken.txt:/createUploadSession", nil, 200, "If-Match", str(cur, "eTag"))
	c.decode(c.frag(u, []byte("v2"), 0, 2), http.StatusOK)
	c.graphErr(c.frag(str(u2, "uploadUrl"), []byte("v3"), 0, 2), 412, codeResourceModified, "")
	c.graphErr(c.req("POST", "/me/drive/root:/taken.txt:/createUploadSession", nil, "If-Match", str(cur, "eTag")),
		412, codeResourceModified, "")
}

// TestUploadFragmentCutShort sends a fragment whose body stops half way
// (the client resets): the session must not advance.
func TestUploadFragmentCutShort(t *testing.T) {
	c := newCore(t, Options{})
	data := randomBytes(2*fragmentUnit, 5)
	total := int64(len(data))
	u := c.session("/me/drive/root:/cut.bin:/createUploadSession", nil)
	pu, err := url.Parse(u)
	require.NoError(t, err)

	conn, err := net.Dial("tcp", pu.Host)
	require.NoError(t, err)
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nContent-Range: bytes 0-%d/%d\r\n\r\n",
		pu.RequestURI(), pu.Host, fragmentUnit, fragmentUnit-1, total)
	_, _ = w.Write(data[:fragmentUnit/2])
	require.NoError(t, w.Flush())
	require.NoError(t, conn.Close())

	// The server notices the short body when it reads it; wait until the
	// session is no longer busy (a new fragment is then judged on its
	// merits, not as an overlap).
	require.Eventually(t, func() bool {
		resp := c.frag(u, data[:fragmentUnit], 0, total)
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusAccepted
	}, 10*time.Second, 20*time.Millisecond)
	c.decode(c.frag(u, data[fragmentUnit:], fragmentUnit, total), http.StatusCreated)
	got, err := c.s.ReadFile("/cut.bin")
	require.NoError(t, err)
	assert.Equal(t, data, got)
	info, _ := c.s.ItemByPath("/cut.bin")
	assert.Equal(t, naiveQuickXor(data), info.QuickXorHash)
}
