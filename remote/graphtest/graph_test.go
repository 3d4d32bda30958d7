package graphtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// coreClient drives a fake over HTTP with a bearer token, following no
// redirect (as the contract asks of clients).
type coreClient struct {
	t     *testing.T
	s     *Server
	token string
	hc    *http.Client
}

func newCore(t *testing.T, opts Options) *coreClient {
	t.Helper()
	s := NewServer(opts)
	t.Cleanup(func() { _ = s.Close() })
	hc := *s.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &coreClient{t: t, s: s, token: s.IssueToken(), hc: &hc}
}

// req sends a request. path is absolute or relative to the Graph base;
// body is []byte, string, io.Reader, nil, or marshalled as JSON. hdr are
// key/value pairs; an "Authorization" key with value "" sends none.
func (c *coreClient) req(method, path string, body any, hdr ...string) *http.Response {
	c.t.Helper()
	u := path
	if !strings.HasPrefix(u, "http") {
		u = c.s.GraphURL() + path
	}
	var rd io.Reader
	isJSON := false
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	case io.Reader:
		rd = b
	default:
		raw, err := json.Marshal(b)
		require.NoError(c.t, err)
		rd, isJSON = bytes.NewReader(raw), true
	}
	r, err := http.NewRequest(method, u, rd)
	require.NoError(c.t, err)
	if isJSON {
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Authorization", "Bearer "+c.token)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			r.Header.Del(hdr[i])
			continue
		}
		if strings.EqualFold(hdr[i], "Host") {
			r.Host = hdr[i+1]
			continue
		}
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(r)
	require.NoError(c.t, err)
	return resp
}

// plain sends a request without Authorization (pre-authenticated URLs).
func (c *coreClient) plain(method, u string, body io.Reader, hdr ...string) *http.Response {
	c.t.Helper()
	return c.req(method, u, body, append([]string{"Authorization", ""}, hdr...)...)
}

// obj sends a request, checks the status and decodes a JSON object.
func (c *coreClient) obj(method, path string, body any, want int, hdr ...string) map[string]any {
	c.t.Helper()
	resp := c.req(method, path, body, hdr...)
	return c.decode(resp, want)
}

func (c *coreClient) decode(resp *http.Response, want int) map[string]any {
	c.t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	require.Equal(c.t, want, resp.StatusCode, "body: %s", raw)
	if len(raw) == 0 {
		return nil
	}
	var m map[string]any
	require.NoError(c.t, json.Unmarshal(raw, &m), "body: %s", raw)
	return m
}

// graphErr checks an error answer: status, code and (if not "") inner code.
func (c *coreClient) graphErr(resp *http.Response, status int, code, inner string) map[string]any {
	c.t.Helper()
	m := c.decode(resp, status)
	e, ok := m["error"].(map[string]any)
	require.True(c.t, ok, "error body: %v", m)
	assert.Equal(c.t, code, e["code"])
	if inner != "" {
		ie, _ := e["innerError"].(map[string]any)
		assert.Equal(c.t, inner, ie["code"], "innerError: %v", e)
	}
	return e
}

func (c *coreClient) rootID() string {
	c.t.Helper()
	info, ok := c.s.ItemByPath("/")
	require.True(c.t, ok)
	return info.ID
}

func (c *coreClient) mkdir(parentID, name string) map[string]any {
	c.t.Helper()
	return c.obj("POST", "/me/drive/items/"+url.PathEscape(parentID)+"/children",
		map[string]any{"name": name, "folder": map[string]any{}}, http.StatusCreated)
}

func str(m map[string]any, keys ...string) string {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[k]
	}
	switch v := cur.(type) {
	case string:
		return v
	case float64:
		return fmt.Sprint(int64(v))
	case nil:
		return ""
	}
	return fmt.Sprint(cur)
}

func TestGetDriveAndQuota(t *testing.T) {
	c := newCore(t, Options{QuotaTotal: 1000})
	d := c.obj("GET", "/me/drive", nil, 200)
	assert.Equal(t, "b7d2a1c3e4f50617", d["id"])
	assert.Equal(t, "personal", d["driveType"])
	assert.Equal(t, "1000", str(d, "quota", "total"))
	assert.Equal(t, "0", str(d, "quota", "used"))
	assert.Equal(t, "normal", str(d, "quota", "state"))

	_, err := c.s.PutFile("/a.bin", bytes.Repeat([]byte("x"), 950), time.Time{})
	require.NoError(t, err)
	d = c.obj("GET", "/drives/B7D2A1C3E4F50617", nil, 200)
	assert.Equal(t, "950", str(d, "quota", "used"))
	assert.Equal(t, "50", str(d, "quota", "remaining"))
	assert.Equal(t, "nearing", str(d, "quota", "state"))

	c.graphErr(c.req("GET", "/drives/0000000000000000", nil), 404, codeItemNotFound, "")
	c.graphErr(c.req("GET", "/me/drive", nil, "Authorization", "Bearer nope"), 401, codeInvalidAuthToken, "")
}

func TestAddressingForms(t *testing.T) {
	c := newCore(t, Options{})
	docs := c.mkdir(c.rootID(), "Docs")
	docsID := str(docs, "id")
	sub := c.obj("POST", "/me/drive/items/"+docsID+"/children",
		map[string]any{"name": "Sub Dir", "folder": map[string]any{}}, 201)
	for _, name := range []string{"a b.txt", "x#y.txt", "ünïcødé €.txt", "100%.txt", "plus+sign.txt"} {
		_, err := c.s.PutFile("/Docs/Sub Dir/"+name, []byte(name), time.Time{})
		require.NoError(t, err)
	}
	fileID := func(name string) string {
		info, ok := c.s.ItemByPath("/Docs/Sub Dir/" + name)
		require.True(t, ok, name)
		return info.ID
	}

	cases := []struct{ path, wantID string }{
		{"/me/drive/root", c.rootID()},
		{"/me/drive/items/root", c.rootID()},
		{"/drive/root", c.rootID()},
		{"/me/drive/items/" + docsID, docsID},
		{"/me/drive/root:/Docs", docsID},
		{"/me/drive/root:/Docs:", docsID},
		{"/me/drive/root:/docs/SUB%20DIR:", str(sub, "id")},  // case-insensitive
		{"/me/drive/root:/Docs%2FSub%20Dir", str(sub, "id")}, // %2F separates
		{"/me/drive/items/" + docsID + ":/Sub%20Dir:", str(sub, "id")},
		{"/me/drive/items/" + docsID + ":/Sub%20Dir/a%20b.txt:", fileID("a b.txt")},
		{"/me/drive/root:/Docs/Sub%20Dir/x%23y.txt:", fileID("x#y.txt")},
		{"/me/drive/root:/Docs/Sub%20Dir/" + url.PathEscape("ünïcødé €.txt") + ":", fileID("ünïcødé €.txt")},
		{"/me/drive/root:/Docs/Sub%20Dir/100%25.txt:", fileID("100%.txt")},
		{"/me/drive/root:/Docs/Sub%20Dir/plus+sign.txt:", fileID("plus+sign.txt")},
		{"/drives/b7d2a1c3e4f50617/items/" + strings.ToLower(docsID), docsID},
		{"/drives/b7d2a1c3e4f50617/root:/Docs", docsID},
	}
	for _, tc := range cases {
		m := c.obj("GET", tc.path, nil, 200)
		assert.Equal(t, tc.wantID, m["id"], tc.path)
	}
	for _, p := range []string{"/me/drive/root:/nope", "/me/drive/items/NOPE!1", "/me/drive/root:/Docs/Sub%20Dir/a%20b.txt/x"} {
		c.graphErr(c.req("GET", p, nil), 404, codeItemNotFound, "")
	}

	// Wire shape of a file.
	f := c.obj("GET", "/me/drive/root:/Docs/Sub%20Dir/a%20b.txt", nil, 200)
	assert.Equal(t, "a b.txt", f["name"])
	assert.Equal(t, "7", str(f, "size"))
	assert.Equal(t, "/drive/root:/Docs/Sub Dir", str(f, "parentReference", "path"))
	assert.Equal(t, str(sub, "id"), str(f, "parentReference", "id"))
	assert.Equal(t, "b7d2a1c3e4f50617", str(f, "parentReference", "driveId"))
	assert.Equal(t, qxOf([]byte("a b.txt")), str(f, "file", "hashes", "quickXorHash"))
	assert.Equal(t, "text/plain", str(f, "file", "mimeType"))
	assert.True(t, strings.HasSuffix(str(f, "lastModifiedDateTime"), "Z"))
	assert.True(t, strings.HasSuffix(str(f, "fileSystemInfo", "lastModifiedDateTime"), "Z"))
	assert.True(t, strings.HasPrefix(str(f, "@microsoft.graph.downloadUrl"), c.s.URL+"/download/"))
	assert.NotEmpty(t, f["eTag"])
	assert.NotEmpty(t, f["cTag"])
	f2 := c.obj("GET", "/drives/b7d2a1c3e4f50617/root:/Docs/Sub%20Dir/a%20b.txt", nil, 200)
	assert.Equal(t, "/drives/b7d2a1c3e4f50617/root:/Docs/Sub Dir", str(f2, "parentReference", "path"))

	root := c.obj("GET", "/me/drive/root", nil, 200)
	assert.NotNil(t, root["root"])
	assert.Equal(t, "", str(root, "parentReference", "id"))
	assert.Equal(t, "1", str(root, "folder", "childCount"))

	// If-None-Match with the current eTag → 304; with the one from before
	// a child was added (the folder changed) → 200.
	cur := c.obj("GET", "/me/drive/items/"+docsID, nil, 200)
	assert.NotEqual(t, docs["eTag"], cur["eTag"])
	resp := c.req("GET", "/me/drive/items/"+docsID, nil, "If-None-Match", str(cur, "eTag"))
	resp.Body.Close()
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	c.obj("GET", "/me/drive/items/"+docsID, nil, 200, "If-None-Match", str(docs, "eTag"))
}

func TestCaseInsensitiveUniqueness(t *testing.T) {
	c := newCore(t, Options{})
	root := c.rootID()
	c.mkdir(root, "Folder")
	c.graphErr(c.req("POST", "/me/drive/root/children", map[string]any{"name": "FOLDER", "folder": map[string]any{}}),
		409, codeNameAlreadyExists, "")

	c.obj("PUT", "/me/drive/root:/a.txt:/content", "one", 201)
	// A simple upload to "A.txt" replaces a.txt (default replace), keeping
	// the stored name and id.
	before, _ := c.s.ItemByPath("/a.txt")
	m := c.obj("PUT", "/me/drive/root:/A.txt:/content", "two", 200)
	assert.Equal(t, before.ID, m["id"])
	assert.Equal(t, "a.txt", m["name"])
	// With fail, a case variant conflicts.
	c.graphErr(c.req("PUT", "/me/drive/root:/A.TXT:/content?@microsoft.graph.conflictBehavior=fail", "x"),
		409, codeNameAlreadyExists, "")
	list, err := c.s.List("/")
	require.NoError(t, err)
	assert.Len(t, list, 2)
}

func TestChildrenPaging(t *testing.T) {
	c := newCore(t, Options{})
	dirID, err := c.s.MkdirAll("/big")
	require.NoError(t, err)
	want := map[string]bool{}
	for i := 0; i < 450; i++ {
		name := fmt.Sprintf("f%04d.txt", i)
		want[name] = true
		_, err := c.s.PutFile("/big/"+name, nil, time.Time{})
		require.NoError(t, err)
	}
	// Through a proxy: links use X-Forwarded-Proto/Host.
	hdr := []string{"X-Forwarded-Host", "proxy.example:8443", "X-Forwarded-Proto", "https"}
	next := "/me/drive/items/" + dirID + "/children?$top=200&$select=id,name"
	seen := map[string]bool{}
	pages := 0
	for next != "" {
		m := c.obj("GET", next, nil, 200, hdr...)
		pages++
		vals := m["value"].([]any)
		for _, v := range vals {
			it := v.(map[string]any)
			assert.False(t, seen[it["name"].(string)], "duplicate %v", it["name"])
			seen[it["name"].(string)] = true
			assert.Nil(t, it["size"], "$select keeps only id and name")
		}
		link, _ := m["@odata.nextLink"].(string)
		if link == "" {
			next = ""
			continue
		}
		require.True(t, strings.HasPrefix(link, "https://proxy.example:8443/v1.0/me/drive/items/"), link)
		assert.Contains(t, link, "$top=200")
		assert.Contains(t, link, "$select=id,name")
		next = strings.Replace(link, "https://proxy.example:8443/v1.0", c.s.GraphURL(), 1)
		if pages == 1 {
			assert.Len(t, vals, 200)
			// $skipToken spelling is accepted too.
			alt := strings.Replace(next, "$skiptoken=", "$skipToken=", 1)
			m2 := c.obj("GET", alt, nil, 200)
			assert.Equal(t, fmt.Sprint(m2["value"].([]any)[0].(map[string]any)["name"]), "f0200.txt")
		}
	}
	assert.Equal(t, 3, pages)
	assert.Equal(t, want, seen)

	// Default page size 200 and the cap.
	m := c.obj("GET", "/me/drive/root:/big:/children", nil, 200)
	assert.Len(t, m["value"], 200)
	c2 := newCore(t, Options{MaxPageSize: 100})
	_, err = c2.s.MkdirAll("/d")
	require.NoError(t, err)
	for i := 0; i < 150; i++ {
		_, err := c2.s.PutFile(fmt.Sprintf("/d/%d", i), nil, time.Time{})
		require.NoError(t, err)
	}
	m = c2.obj("GET", "/me/drive/root:/d:/children?$top=1000", nil, 200)
	assert.Len(t, m["value"], 100)
	assert.True(t, strings.HasPrefix(m["@odata.nextLink"].(string), c2.s.URL+"/v1.0/me/drive/root:/d:/children?"))
	c2.graphErr(c2.req("GET", "/me/drive/root:/d:/children?$top=zero", nil), 400, codeInvalidRequest, "")
}

func TestSelectAndExpand(t *testing.T) {
	c := newCore(t, Options{PageSize: 2})
	_, err := c.s.PutFile("/p/one", []byte("1"), time.Time{})
	require.NoError(t, err)
	_, err = c.s.PutFile("/p/two", []byte("22"), time.Time{})
	require.NoError(t, err)
	_, err = c.s.PutFile("/p/three", []byte("333"), time.Time{})
	require.NoError(t, err)

	m := c.obj("GET", "/me/drive/root:/p?$select=name,size", nil, 200)
	assert.Equal(t, map[string]any{"id": m["id"], "name": "p", "size": float64(6)}, m)

	m = c.obj("GET", "/me/drive/root:/p?$expand=children", nil, 200)
	kids := m["children"].([]any)
	require.Len(t, kids, 2) // one page
	assert.Equal(t, "one", kids[0].(map[string]any)["name"])
	assert.NotEmpty(t, kids[0].(map[string]any)["file"])
	link := m["children@odata.nextLink"].(string)
	rest := c.obj("GET", link, nil, 200)
	assert.Equal(t, "two", rest["value"].([]any)[0].(map[string]any)["name"])

	m = c.obj("GET", "/me/drive/root:/p?$select=id,name&$expand=children($select=name)", nil, 200)
	assert.Nil(t, m["size"])
	kids = m["children"].([]any)
	assert.Equal(t, map[string]any{"id": kids[0].(map[string]any)["id"], "name": "one"}, kids[0])

	empty, err := c.s.MkdirAll("/empty")
	require.NoError(t, err)
	m = c.obj("GET", "/me/drive/items/"+empty+"?$expand=children", nil, 200)
	assert.Equal(t, []any{}, m["children"])
}

func TestCreateFolderConflictBehaviors(t *testing.T) {
	c := newCore(t, Options{})
	for _, key := range []string{"@microsoft.graph.conflictBehavior", "@name.conflictBehavior"} {
		t.Run(key, func(t *testing.T) {
			parent := str(c.mkdir(c.rootID(), "p"+fmt.Sprint(len(key))), "id")
			path := "/me/drive/items/" + parent + "/children"
			first := c.obj("POST", path, map[string]any{"name": "x.d", "folder": map[string]any{}, key: "fail"}, 201)
			_, err := c.s.PutFile("/p"+fmt.Sprint(len(key))+"/x.d/inside", []byte("abc"), time.Time{})
			require.NoError(t, err)

			c.graphErr(c.req("POST", path, map[string]any{"name": "X.D", "folder": map[string]any{}, key: "fail"}),
				409, codeNameAlreadyExists, "")
			// No behavior: fail.
			c.graphErr(c.req("POST", path, map[string]any{"name": "x.d", "folder": map[string]any{}}),
				409, codeNameAlreadyExists, "")

			r1 := c.obj("POST", path, map[string]any{"name": "x.d", "folder": map[string]any{}, key: "rename"}, 201)
			assert.Equal(t, "x 1.d", r1["name"])
			r2 := c.obj("POST", path, map[string]any{"name": "x.d", "folder": map[string]any{}, key: "rename"}, 201)
			assert.Equal(t, "x 2.d", r2["name"])

			rep := c.obj("POST", path, map[string]any{"name": "x.d", "folder": map[string]any{}, key: "replace"}, 201)
			assert.NotEqual(t, first["id"], rep["id"])
			assert.Equal(t, "0", str(rep, "folder", "childCount"))
		})
	}
	// Query-string spelling.
	c.obj("POST", "/me/drive/root/children", map[string]any{"name": "q", "folder": map[string]any{}}, 201)
	m := c.obj("POST", "/me/drive/root/children?@microsoft.graph.conflictBehavior=rename",
		map[string]any{"name": "q", "folder": map[string]any{}}, 201)
	assert.Equal(t, "q 1", m["name"])
	c.graphErr(c.req("POST", "/me/drive/root/children", map[string]any{"name": "z"}), 400, codeInvalidRequest, "")
	c.graphErr(c.req("POST", "/me/drive/root/children",
		map[string]any{"name": "z", "folder": map[string]any{}, "@microsoft.graph.conflictBehavior": "bogus"}),
		400, codeInvalidRequest, "")
}

func TestPatchRenameMoveMtime(t *testing.T) {
	c := newCore(t, Options{})
	a := c.mkdir(c.rootID(), "A")
	b := c.mkdir(c.rootID(), "B")
	fid, err := c.s.PutFile("/A/f.txt", []byte("hello"), time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC))
	require.NoError(t, err)
	f := c.obj("GET", "/me/drive/items/"+fid, nil, 200)
	assert.Equal(t, "2020-01-02T03:04:05.000Z", str(f, "fileSystemInfo", "lastModifiedDateTime"))

	// Rename.
	r := c.obj("PATCH", "/me/drive/items/"+fid, map[string]any{"name": "g.txt"}, 200)
	assert.Equal(t, "g.txt", r["name"])
	assert.NotEqual(t, f["eTag"], r["eTag"])
	assert.Equal(t, f["cTag"], r["cTag"], "a rename is not a content change")

	// Stale If-Match → 412; current → 200.
	c.graphErr(c.req("PATCH", "/me/drive/items/"+fid, map[string]any{"name": "h.txt"}, "If-Match", str(f, "eTag")),
		412, codeResourceModified, "")
	// Move by parent id with a new mtime, If-Match current.
	mt := "2021-06-07T08:09:10Z"
	r = c.obj("PATCH", "/me/drive/items/"+fid, map[string]any{
		"parentReference": map[string]any{"id": str(b, "id")},
		"fileSystemInfo":  map[string]any{"lastModifiedDateTime": mt},
	}, 200, "If-Match", str(r, "eTag"))
	assert.Equal(t, "/drive/root:/B", str(r, "parentReference", "path"))
	assert.Equal(t, "2021-06-07T08:09:10.000Z", str(r, "fileSystemInfo", "lastModifiedDateTime"))
	_, ok := c.s.ItemByPath("/B/g.txt")
	assert.True(t, ok)
	infoA, _ := c.s.ItemByPath("/A")
	infoB, _ := c.s.ItemByPath("/B")
	assert.Equal(t, int64(0), infoA.Size)
	assert.Equal(t, int64(5), infoB.Size)

	// Move by path, and If-Match: *.
	r = c.obj("PATCH", "/me/drive/items/"+fid, map[string]any{
		"parentReference": map[string]any{"path": "/drive/root:/A"}, "name": "k.txt",
	}, 200, "If-Match", "*")
	assert.Equal(t, "k.txt", r["name"])
	assert.Equal(t, str(a, "id"), str(r, "parentReference", "id"))

	// Only mtime.
	r2 := c.obj("PATCH", "/me/drive/items/"+fid, map[string]any{
		"fileSystemInfo": map[string]any{"lastModifiedDateTime": "2019-01-01T00:00:00Z"}}, 200)
	assert.NotEqual(t, r["eTag"], r2["eTag"])
	assert.Equal(t, r["cTag"], r2["cTag"])

	// Refusals.
	c.graphErr(c.req("PATCH", "/me/drive/items/"+fid, map[string]any{"parentReference": map[string]any{"id": "root"}}),
		400, codeInvalidRequest, "")
	c.graphErr(c.req("PATCH", "/me/drive/items/"+str(a, "id"), map[string]any{"parentReference": map[string]any{"id": str(a, "id")}}),
		400, codeInvalidRequest, "")
	sub := c.mkdir(str(a, "id"), "sub")
	c.graphErr(c.req("PATCH", "/me/drive/items/"+str(a, "id"), map[string]any{"parentReference": map[string]any{"id": str(sub, "id")}}),
		400, codeInvalidRequest, "")
	c.graphErr(c.req("PATCH", "/me/drive/items/"+fid, map[string]any{"parentReference": map[string]any{"driveId": "1111111111111111", "id": str(b, "id")}}),
		400, codeInvalidRequest, "")
	c.graphErr(c.req("PATCH", "/me/drive/items/"+fid, map[string]any{"name": "SUB"}), 409, codeNameAlreadyExists, "")
	c.graphErr(c.req("PATCH", "/me/drive/root", map[string]any{"name": "x"}), 400, codeInvalidRequest, "")

	// Case-only rename of itself is fine.
	r = c.obj("PATCH", "/me/drive/items/"+fid, map[string]any{"name": "K.TXT"}, 200)
	assert.Equal(t, "K.TXT", r["name"])
	// ODR style: replace an existing file by rename.
	_, err = c.s.PutFile("/A/other.txt", []byte("o"), time.Time{})
	require.NoError(t, err)
	r = c.obj("PATCH", "/me/drive/items/"+fid, map[string]any{"name": "other.txt", "@microsoft.graph.conflictBehavior": "replace"}, 200, "If-Match", "*")
	assert.Equal(t, fid, r["id"])
	list, err := c.s.List("/A")
	require.NoError(t, err)
	assert.Len(t, list, 2) // other.txt (was K.TXT) and sub
}

func TestDeleteRecursiveAndQuota(t *testing.T) {
	c := newCore(t, Options{})
	_, err := c.s.PutFile("/d/x/1.bin", make([]byte, 100), time.Time{})
	require.NoError(t, err)
	_, err = c.s.PutFile("/d/2.bin", make([]byte, 50), time.Time{})
	require.NoError(t, err)
	keep, err := c.s.PutFile("/keep.bin", make([]byte, 7), time.Time{})
	require.NoError(t, err)
	q := c.obj("GET", "/me/drive", nil, 200)["quota"].(map[string]any)
	assert.Equal(t, float64(157), q["used"])
	root := c.obj("GET", "/me/drive/root", nil, 200)

	d := c.obj("GET", "/me/drive/root:/d", nil, 200)
	c.graphErr(c.req("DELETE", "/me/drive/items/"+str(d, "id"), nil, "If-Match", `"{bogus},1"`), 412, codeResourceModified, "")
	resp := c.req("DELETE", "/me/drive/items/"+str(d, "id"), nil, "If-Match", str(d, "eTag"))
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	c.graphErr(c.req("GET", "/me/drive/root:/d/x/1.bin", nil), 404, codeItemNotFound, "")
	_, ok := c.s.ItemByPath("/d/x")
	assert.False(t, ok)

	q = c.obj("GET", "/me/drive", nil, 200)["quota"].(map[string]any)
	assert.Equal(t, float64(7), q["used"])
	assert.Equal(t, float64(150), q["deleted"])
	assert.Equal(t, float64((1<<40)-157), q["remaining"])
	root2 := c.obj("GET", "/me/drive/root", nil, 200)
	assert.NotEqual(t, root["cTag"], root2["cTag"])

	// permanentDelete is not counted in deleted.
	resp = c.req("POST", "/me/drive/items/"+keep+"/permanentDelete", nil)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	q = c.obj("GET", "/me/drive", nil, 200)["quota"].(map[string]any)
	assert.Equal(t, float64(0), q["used"])
	assert.Equal(t, float64(150), q["deleted"])

	c.graphErr(c.req("DELETE", "/me/drive/root", nil), 403, codeAccessDenied, "")
	c.graphErr(c.req("DELETE", "/me/drive/items/"+keep, nil), 404, codeItemNotFound, "")
}

func TestSearch(t *testing.T) {
	c := newCore(t, Options{})
	for _, p := range []string{"/a/Report.docx", "/b/report-2.txt", "/b/other"} {
		_, err := c.s.PutFile(p, []byte("x"), time.Time{})
		require.NoError(t, err)
	}
	m := c.obj("GET", "/me/drive/root/search(q='report')", nil, 200)
	var names []string
	for _, v := range m["value"].([]any) {
		names = append(names, v.(map[string]any)["name"].(string))
	}
	assert.Equal(t, []string{"Report.docx", "report-2.txt"}, names)
}

func TestBusinessShapeAndOddRequests(t *testing.T) {
	c := newCore(t, Options{DriveType: "business"})
	_, err := c.s.PutFile("/d/f.txt", []byte("x"), time.Time{})
	require.NoError(t, err)
	d := c.obj("GET", "/me/drive/root:/d", nil, 200)
	assert.Nil(t, d["cTag"], "no cTag on Business folders")
	assert.NotEmpty(t, d["eTag"])
	f := c.obj("GET", "/me/drive/root:/d/f.txt", nil, 200)
	assert.NotEmpty(t, f["cTag"])
	assert.Equal(t, "business", str(f, "parentReference", "driveType"))
	drv := c.obj("GET", "/me/drive", nil, 200)
	assert.Equal(t, "1", str(drv, "quota", "fileCount"))

	c.graphErr(c.req("PUT", "/me/drive/root:/d", nil), 405, codeInvalidRequest, "")
	c.graphErr(c.req("GET", "/me/drive/root/bogus", nil), 400, codeInvalidRequest, "")
	c.graphErr(c.req("GET", "/me/drive/root:/d/f.txt:/children", nil, "Authorization", ""), 401, codeInvalidAuthToken, "")
	m := c.obj("GET", "/me/drive/root:/d/f.txt:/children", nil, 200)
	assert.Equal(t, []any{}, m["value"])
}
