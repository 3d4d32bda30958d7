package remote_test

// Integration tests: the real client (package remote) against the real fake
// OneDrive (remote/graphtest), for every operation. Where
// docs/graph-contract.md allows several forms of a reply, the fake is switched
// to each of them.
//
// This file holds the shared harness (a fake, a client, a transport that
// records what crossed the wire) and the item operations; content, copy,
// delta and retry/auth have their own integration_*_test.go files.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// exchange is one request the client sent, as the recording transport saw
// it. Pre-authenticated URLs are reduced to their kind: their paths are
// credentials.
type exchange struct {
	Method string
	Kind   string // "graph", "download", "upload", "monitor", "oauth"
	Path   string // Graph path (without query); "" for pre-authenticated URLs
	Auth   bool   // an Authorization header was sent
	Sent   time.Time
	Done   time.Time
	Status int // 0 when no reply came
}

// recorder is an http.RoundTripper that records every exchange.
type recorder struct {
	base http.RoundTripper

	mu  sync.Mutex
	log []exchange // GUARDED_BY(mu)
}

func newRecorder() *recorder {
	// No keep-alives: a connection the fake drops must reach the client's
	// retry loop rather than be retried silently by net/http.
	return &recorder{base: &http.Transport{DisableKeepAlives: true}}
}

func kindOf(path string) string {
	for _, k := range []string{"download", "upload", "monitor"} {
		if strings.HasPrefix(path, "/"+k+"/") {
			return k
		}
	}
	if strings.HasPrefix(path, "/v1.0/") {
		return "graph"
	}
	return "oauth"
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	ex := exchange{Method: req.Method, Kind: kindOf(req.URL.Path), Auth: req.Header.Get("Authorization") != "",
		Sent: time.Now()}
	if ex.Kind == "graph" {
		ex.Path = req.URL.Path
	}
	resp, err := r.base.RoundTrip(req)
	ex.Done = time.Now()
	if err == nil {
		ex.Status = resp.StatusCode
	}
	r.mu.Lock()
	r.log = append(r.log, ex)
	r.mu.Unlock()
	return resp, err
}

func (r *recorder) exchanges() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]exchange(nil), r.log...)
}

// requireNoAuthOnPreauth fails unless every request to a download, upload
// or monitor URL went without an Authorization header.
func (r *recorder) requireNoAuthOnPreauth(t *testing.T) {
	t.Helper()
	for _, ex := range r.exchanges() {
		if ex.Kind == "download" || ex.Kind == "upload" || ex.Kind == "monitor" {
			assert.False(t, ex.Auth, "%s %s URL sent with Authorization", ex.Method, ex.Kind)
		}
	}
}

// env is a fake OneDrive and a client of it.
type env struct {
	t      *testing.T
	fake   *graphtest.Server
	client *remote.Client
	rec    *recorder
	ctx    context.Context
}

type envConfig struct {
	fake   graphtest.Options
	tokens oauth2.TokenSource // nil → a static token from IssueToken
	client func(*remote.Config)
}

// testRetry keeps back-off short; Retry-After waits are the service's and
// are honoured as they come.
var testRetry = remote.RetryPolicy{MaxAttempts: 6, BaseDelay: 10 * time.Millisecond, MaxDelay: 200 * time.Millisecond}

func newEnv(t *testing.T, ec envConfig) *env {
	t.Helper()
	fake := graphtest.NewServer(ec.fake)
	t.Cleanup(func() { _ = fake.Close() })
	e := &env{t: t, fake: fake, rec: newRecorder(), ctx: context.Background()}
	tokens := ec.tokens
	if tokens == nil {
		tokens = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: fake.IssueToken(), TokenType: "Bearer"})
	}
	cfg := remote.Config{
		GraphURL:  fake.GraphURL(),
		Tokens:    tokens,
		Transport: e.rec,
		Retry:     testRetry,
		Logger:    slog.New(slog.DiscardHandler),
	}
	if ec.client != nil {
		ec.client(&cfg)
	}
	c, err := remote.New(cfg)
	require.NoError(t, err)
	e.client = c
	return e
}

// put seeds a file in the fake and returns its id.
func (e *env) put(path string, content []byte) string {
	e.t.Helper()
	id, err := e.fake.PutFile(path, content, time.Time{})
	require.NoError(e.t, err)
	return id
}

func (e *env) mkdir(path string) string {
	e.t.Helper()
	id, err := e.fake.MkdirAll(path)
	require.NoError(e.t, err)
	return id
}

func (e *env) rootID() string {
	e.t.Helper()
	info, ok := e.fake.ItemByPath("/")
	require.True(e.t, ok)
	return info.ID
}

// download returns the whole content of an item through the client.
func (e *env) download(id string) []byte {
	e.t.Helper()
	var buf bytes.Buffer
	_, err := e.client.Download(e.ctx, id, 0, -1, &buf)
	require.NoError(e.t, err)
	return buf.Bytes()
}

// pattern returns n bytes of a non-repeating-looking pattern.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// shiftClock is real time plus an offset the test moves forward; the fake
// uses it to make sessions, jobs and tokens age without waiting.
type shiftClock struct{ offset atomic.Int64 }

func (c *shiftClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *shiftClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// ---- Drive and quota ----

func TestIntegrationDriveAndQuota(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fake: graphtest.Options{QuotaTotal: 1 << 30}})
	d, err := e.client.Drive(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, e.fake.DefaultDriveID(), d.ID)
	assert.Equal(t, "personal", d.DriveType)
	assert.Equal(t, remote.Quota{Total: 1 << 30, Used: 0, Remaining: 1 << 30, Deleted: 0, State: "normal"}, d.Quota)

	// An upload moves used and remaining.
	content := pattern(1<<20, 1)
	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "one.bin",
		Content: bytes.NewReader(content), Size: int64(len(content))})
	require.NoError(t, err)
	d, err = e.client.Drive(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1<<20), d.Quota.Used)
	assert.Equal(t, int64(1<<30-1<<20), d.Quota.Remaining)

	// A delete moves the bytes to the recycle bin: used goes down, deleted
	// up, remaining stays (the bin counts against the quota).
	require.NoError(t, e.client.Delete(e.ctx, it.ID, ""))
	d, err = e.client.Drive(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(0), d.Quota.Used)
	assert.Equal(t, int64(1<<20), d.Quota.Deleted)
	assert.Equal(t, int64(1<<30-1<<20), d.Quota.Remaining)

	e.fake.EmptyRecycleBin()
	d, err = e.client.Drive(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, remote.Quota{Total: 1 << 30, Remaining: 1 << 30, State: "normal"}, d.Quota)

	// Business drives are reported as such.
	b := newEnv(t, envConfig{fake: graphtest.Options{DriveType: "business", DriveID: "b!xYz_business-Drive"}})
	d, err = b.client.Drive(b.ctx)
	require.NoError(t, err)
	assert.Equal(t, "business", d.DriveType)
	assert.Equal(t, "b!xYz_business-Drive", d.ID)
}

func TestIntegrationAddressByDriveID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	e.put("/Docs/a.txt", []byte("hello"))
	c, err := remote.New(remote.Config{GraphURL: e.fake.GraphURL(), DriveID: e.fake.DefaultDriveID(),
		Tokens: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: e.fake.IssueToken()}), Transport: e.rec})
	require.NoError(t, err)
	it, err := c.ItemByPath(e.ctx, "/Docs/a.txt")
	require.NoError(t, err)
	assert.Equal(t, "/drives/"+e.fake.DefaultDriveID()+"/root:/Docs", it.ParentPath)
	var buf bytes.Buffer
	_, err = c.Download(e.ctx, it.ID, 0, -1, &buf)
	require.NoError(t, err)
	assert.Equal(t, "hello", buf.String())
	d, err := c.Drive(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, e.fake.DefaultDriveID(), d.ID)
}

// ---- Items: by id, by path, child ----

func TestIntegrationItemByIDPathAndChild(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	id, err := e.fake.PutFile("/Docs/report.txt", []byte("twelve bytes"), mtime)
	require.NoError(t, err)
	docs, _ := e.fake.ItemByPath("/Docs")

	root, err := e.client.Root(e.ctx)
	require.NoError(t, err)
	assert.True(t, root.IsRoot)
	assert.True(t, root.IsFolder)
	assert.Equal(t, "", root.ParentID)
	assert.Equal(t, e.rootID(), root.ID)
	assert.Equal(t, e.fake.DefaultDriveID(), root.DriveID)

	byID, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)
	info, _ := e.fake.ItemByID(id)
	assert.Equal(t, "report.txt", byID.Name)
	assert.Equal(t, int64(12), byID.Size)
	assert.False(t, byID.IsFolder)
	assert.Equal(t, docs.ID, byID.ParentID)
	assert.Equal(t, "/drive/root:/Docs", byID.ParentPath)
	assert.Equal(t, info.ETag, byID.ETag)
	assert.Equal(t, info.CTag, byID.CTag)
	assert.Equal(t, info.QuickXorHash, byID.QuickXorHash)
	assert.NotEmpty(t, byID.QuickXorHash)
	assert.Equal(t, info.SHA256, byID.SHA256)
	assert.Equal(t, "text/plain", byID.MimeType)
	assert.True(t, mtime.Equal(byID.FSModified), "FSModified %v", byID.FSModified)
	assert.True(t, mtime.Equal(byID.FSCreated), "FSCreated %v", byID.FSCreated)
	assert.False(t, byID.Modified.IsZero())
	assert.Equal(t, time.UTC, byID.Modified.Location())
	assert.NotEmpty(t, byID.DownloadURL)
	assert.NotEmpty(t, byID.WebURL)

	byPath, err := e.client.ItemByPath(e.ctx, "/Docs/report.txt")
	require.NoError(t, err)
	assert.Equal(t, id, byPath.ID)
	// Names compare case-insensitively.
	byPath, err = e.client.ItemByPath(e.ctx, "docs/REPORT.TXT")
	require.NoError(t, err)
	assert.Equal(t, id, byPath.ID)
	child, err := e.client.Child(e.ctx, docs.ID, "Report.txt")
	require.NoError(t, err)
	assert.Equal(t, id, child.ID)
	assert.Equal(t, "report.txt", child.Name, "case preserved")

	folder, err := e.client.ItemByPath(e.ctx, "/Docs")
	require.NoError(t, err)
	assert.True(t, folder.IsFolder)
	assert.Equal(t, 1, folder.ChildCount)
	assert.Equal(t, int64(12), folder.Size)
	root2, err := e.client.ItemByPath(e.ctx, "/")
	require.NoError(t, err)
	assert.Equal(t, root.ID, root2.ID)

	_, err = e.client.Item(e.ctx, "NOPE!999")
	assert.ErrorIs(t, err, remote.ErrNotFound)
	_, err = e.client.ItemByPath(e.ctx, "/Docs/missing.txt")
	assert.ErrorIs(t, err, remote.ErrNotFound)
	_, err = e.client.Child(e.ctx, docs.ID, "missing.txt")
	assert.ErrorIs(t, err, remote.ErrNotFound)
	// A path through a file.
	_, err = e.client.ItemByPath(e.ctx, "/Docs/report.txt/x")
	assert.ErrorIs(t, err, remote.ErrNotFound)
}

func TestIntegrationPathEncoding(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	names := []string{
		"with space.txt",
		"hash#tag.txt",
		"100% sure.txt",
		"%20 literal.txt",
		"plus+sign.txt",
		"paren (1).txt",
		"(leading) and [brackets] {braces}.txt",
		"Ünïcödé – 日本語 🎉.txt",
		"amp & semi; eq= at@ dollar$ comma,.txt",
		"quote ' bang! tilde~ caret^ back`tick.txt",
		"a.b.c",
	}
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			content := []byte(fmt.Sprintf("content %d", i))
			dir := "/Dir (" + name + ")"
			id := e.put(dir+"/"+name, content)
			dirInfo, _ := e.fake.ItemByPath(dir)

			it, err := e.client.ItemByPath(e.ctx, dir+"/"+name)
			require.NoError(t, err)
			assert.Equal(t, id, it.ID)
			assert.Equal(t, name, it.Name)

			it, err = e.client.Child(e.ctx, dirInfo.ID, name)
			require.NoError(t, err)
			assert.Equal(t, id, it.ID)

			// Upload by name, then read back through the fake.
			up := []byte("uploaded " + name)
			it, err = e.client.Upload(e.ctx, remote.UploadRequest{ParentID: dirInfo.ID, Name: "new " + name,
				Content: bytes.NewReader(up), Size: int64(len(up))})
			require.NoError(t, err)
			assert.Equal(t, "new "+name, it.Name)
			got, err := e.fake.ReadFile(dir + "/new " + name)
			require.NoError(t, err)
			assert.Equal(t, up, got)

			// Create a folder with the name and find it by path.
			f, err := e.client.CreateFolder(e.ctx, dirInfo.ID, "sub "+name, remote.ConflictFail)
			require.NoError(t, err)
			assert.Equal(t, "sub "+name, f.Name)
			f2, err := e.client.ItemByPath(e.ctx, dir+"/sub "+name)
			require.NoError(t, err)
			assert.Equal(t, f.ID, f2.ID)
		})
	}
}

// ---- Children ----

func TestIntegrationChildrenPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	const n = 2500
	want := map[string]bool{}
	for i := range n {
		name := fmt.Sprintf("file %04d.txt", i)
		e.put("/Big/"+name, nil)
		want[name] = true
	}
	big, _ := e.fake.ItemByPath("/Big")
	e.fake.ResetStats()

	kids, err := e.client.Children(e.ctx, big.ID)
	require.NoError(t, err)
	assert.Len(t, kids, n)
	seen := map[string]bool{}
	for _, k := range kids {
		assert.False(t, seen[k.Name], "duplicate %q", k.Name)
		seen[k.Name] = true
		assert.Equal(t, big.ID, k.ParentID)
	}
	assert.Equal(t, want, seen)
	st := e.fake.Stats()
	assert.Equal(t, int64(3), st.Requests["children.list"], "1,000 a page: 3 requests")
	assert.Equal(t, int64(3), st.RequestsTotal)

	// An empty folder, and a folder with a few children in one page.
	emptyID := e.mkdir("/Empty")
	kids, err = e.client.Children(e.ctx, emptyID)
	require.NoError(t, err)
	assert.Empty(t, kids)

	e.put("/Small/b.txt", []byte("b"))
	e.mkdir("/Small/A")
	small, _ := e.fake.ItemByPath("/Small")
	kids, err = e.client.Children(e.ctx, small.ID)
	require.NoError(t, err)
	require.Len(t, kids, 2)
	assert.Equal(t, "A", kids[0].Name)
	assert.True(t, kids[0].IsFolder)
	assert.Equal(t, "b.txt", kids[1].Name)
	assert.NotEmpty(t, kids[1].DownloadURL)

	_, err = e.client.Children(e.ctx, "NOPE!1")
	assert.ErrorIs(t, err, remote.ErrNotFound)
}

func TestIntegrationChildrenSmallPages(t *testing.T) {
	t.Parallel()
	// A service whose pages are smaller than asked for (MaxPageSize caps
	// $top): the client follows every nextLink.
	e := newEnv(t, envConfig{fake: graphtest.Options{MaxPageSize: 7}})
	for i := range 30 {
		e.put(fmt.Sprintf("/F/%02d", i), nil)
	}
	f, _ := e.fake.ItemByPath("/F")
	e.fake.ResetStats()
	kids, err := e.client.Children(e.ctx, f.ID)
	require.NoError(t, err)
	require.Len(t, kids, 30)
	for i, k := range kids {
		assert.Equal(t, fmt.Sprintf("%02d", i), k.Name)
	}
	assert.Equal(t, int64(5), e.fake.Stats().Requests["children.list"])
}

// ---- Create folder ----

func TestIntegrationCreateFolder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	root := e.rootID()

	f, err := e.client.CreateFolder(e.ctx, root, "Projects", remote.ConflictDefault)
	require.NoError(t, err)
	assert.True(t, f.IsFolder)
	assert.Equal(t, "Projects", f.Name)
	assert.Equal(t, root, f.ParentID)
	info, ok := e.fake.ItemByPath("/Projects")
	require.True(t, ok)
	assert.Equal(t, f.ID, info.ID)

	// Default and fail: 409 → ErrConflict (compared case-insensitively).
	for _, cb := range []remote.ConflictBehavior{remote.ConflictDefault, remote.ConflictFail} {
		_, err = e.client.CreateFolder(e.ctx, root, "PROJECTS", cb)
		require.Error(t, err)
		assert.ErrorIs(t, err, remote.ErrConflict)
		var re *remote.Error
		require.ErrorAs(t, err, &re)
		assert.Equal(t, http.StatusConflict, re.StatusCode)
		assert.Equal(t, "nameAlreadyExists", re.Code)
		assert.NotEmpty(t, re.RequestID)
	}

	// Rename: "Projects 1", then "Projects 2".
	r1, err := e.client.CreateFolder(e.ctx, root, "Projects", remote.ConflictRename)
	require.NoError(t, err)
	assert.Equal(t, "Projects 1", r1.Name)
	r2, err := e.client.CreateFolder(e.ctx, root, "Projects", remote.ConflictRename)
	require.NoError(t, err)
	assert.Equal(t, "Projects 2", r2.Name)

	// Replace: the old folder (with its content) is replaced by an empty one.
	e.put("/Projects/old.txt", []byte("old"))
	rep, err := e.client.CreateFolder(e.ctx, root, "Projects", remote.ConflictReplace)
	require.NoError(t, err)
	assert.NotEqual(t, f.ID, rep.ID)
	assert.Equal(t, 0, rep.ChildCount)
	_, err = e.client.Item(e.ctx, f.ID)
	assert.ErrorIs(t, err, remote.ErrNotFound)

	// A folder in a folder, and in a missing parent.
	sub, err := e.client.CreateFolder(e.ctx, rep.ID, "Sub", remote.ConflictFail)
	require.NoError(t, err)
	assert.Equal(t, rep.ID, sub.ParentID)
	_, err = e.client.CreateFolder(e.ctx, "NOPE!1", "X", remote.ConflictFail)
	assert.ErrorIs(t, err, remote.ErrNotFound)
}

// ---- Update: rename, move, times, If-Match ----

func TestIntegrationUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	id := e.put("/A/file.txt", []byte("content"))
	bID := e.mkdir("/B")
	orig, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)

	// Rename keeps the cTag, changes the eTag.
	it, err := e.client.Update(e.ctx, id, remote.ItemUpdate{Name: "renamed.txt"})
	require.NoError(t, err)
	assert.Equal(t, "renamed.txt", it.Name)
	assert.Equal(t, orig.CTag, it.CTag)
	assert.NotEqual(t, orig.ETag, it.ETag)
	_, ok := e.fake.ItemByPath("/A/renamed.txt")
	assert.True(t, ok)

	// Move, with fileSystemInfo carried along.
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	ctime := time.Date(2019, 6, 7, 8, 9, 10, 0, time.UTC)
	it, err = e.client.Update(e.ctx, id, remote.ItemUpdate{ParentID: bID, FSModified: mtime, FSCreated: ctime})
	require.NoError(t, err)
	assert.Equal(t, bID, it.ParentID)
	assert.Equal(t, "/drive/root:/B", it.ParentPath)
	assert.True(t, mtime.Equal(it.FSModified), "%v", it.FSModified)
	assert.True(t, ctime.Equal(it.FSCreated), "%v", it.FSCreated)
	info, ok := e.fake.ItemByPath("/B/renamed.txt")
	require.True(t, ok)
	assert.True(t, mtime.Equal(info.FSModified))

	// Set mtime alone (sub-second precision survives to the millisecond).
	mtime2 := time.Date(2022, 12, 31, 23, 59, 58, 123_000_000, time.UTC)
	it, err = e.client.Update(e.ctx, id, remote.ItemUpdate{FSModified: mtime2})
	require.NoError(t, err)
	assert.True(t, mtime2.Equal(it.FSModified), "%v", it.FSModified)
	assert.True(t, ctime.Equal(it.FSCreated), "created unchanged")
	again, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)
	assert.True(t, mtime2.Equal(again.FSModified))

	// Rename and move at once.
	it, err = e.client.Update(e.ctx, id, remote.ItemUpdate{Name: "back.txt", ParentID: e.rootID()})
	require.NoError(t, err)
	assert.Equal(t, "back.txt", it.Name)
	assert.Equal(t, e.rootID(), it.ParentID)

	// If-Match: the current eTag passes, a stale one is 412.
	cur, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)
	it, err = e.client.Update(e.ctx, id, remote.ItemUpdate{Name: "etag-ok.txt", IfMatch: cur.ETag})
	require.NoError(t, err)
	assert.Equal(t, "etag-ok.txt", it.Name)
	assert.NotEqual(t, cur.ETag, it.ETag, "a rename gives a new eTag")
	_, err = e.client.Update(e.ctx, id, remote.ItemUpdate{Name: "etag-stale.txt", IfMatch: cur.ETag})
	assert.ErrorIs(t, err, remote.ErrPreconditionFailed)
	_, ok = e.fake.ItemByPath("/etag-ok.txt")
	assert.True(t, ok, "the stale update changed nothing")

	// Conflicts: a taken name fails; replace overwrites a file.
	e.put("/taken.txt", []byte("other"))
	_, err = e.client.Update(e.ctx, id, remote.ItemUpdate{Name: "Taken.txt"})
	assert.ErrorIs(t, err, remote.ErrConflict)
	it, err = e.client.Update(e.ctx, id, remote.ItemUpdate{Name: "taken.txt", Conflict: remote.ConflictReplace})
	require.NoError(t, err)
	assert.Equal(t, "taken.txt", it.Name)
	got, err := e.fake.ReadFile("/taken.txt")
	require.NoError(t, err)
	assert.Equal(t, "content", string(got))

	// Case-only rename of the item itself is not a conflict.
	it, err = e.client.Update(e.ctx, id, remote.ItemUpdate{Name: "TAKEN.txt"})
	require.NoError(t, err)
	assert.Equal(t, "TAKEN.txt", it.Name)

	// A folder cannot move below itself; missing items are ErrNotFound.
	sub := e.mkdir("/B/Sub")
	_, err = e.client.Update(e.ctx, bID, remote.ItemUpdate{ParentID: sub})
	require.Error(t, err)
	var re *remote.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusBadRequest, re.StatusCode)
	_, err = e.client.Update(e.ctx, "NOPE!1", remote.ItemUpdate{Name: "x"})
	assert.ErrorIs(t, err, remote.ErrNotFound)

	// An empty update returns the item unchanged.
	it, err = e.client.Update(e.ctx, id, remote.ItemUpdate{})
	require.NoError(t, err)
	assert.Equal(t, "TAKEN.txt", it.Name)
}

// ---- Delete ----

func TestIntegrationDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	fileID := e.put("/D/f.txt", []byte("x"))
	e.put("/D/sub/g.txt", []byte("yy"))
	dirID, _ := e.fake.ItemByPath("/D")

	cur, err := e.client.Item(e.ctx, fileID)
	require.NoError(t, err)
	// A stale eTag: 412, nothing deleted.
	_, err = e.client.Update(e.ctx, fileID, remote.ItemUpdate{FSModified: time.Now().Truncate(time.Second)})
	require.NoError(t, err)
	err = e.client.Delete(e.ctx, fileID, cur.ETag)
	assert.ErrorIs(t, err, remote.ErrPreconditionFailed)
	_, ok := e.fake.ItemByID(fileID)
	assert.True(t, ok)

	cur, err = e.client.Item(e.ctx, fileID)
	require.NoError(t, err)
	require.NoError(t, e.client.Delete(e.ctx, fileID, cur.ETag))
	_, ok = e.fake.ItemByID(fileID)
	assert.False(t, ok)
	_, err = e.client.Item(e.ctx, fileID)
	assert.ErrorIs(t, err, remote.ErrNotFound)

	// A non-empty folder goes with its content.
	require.NoError(t, e.client.Delete(e.ctx, dirID.ID, ""))
	_, ok = e.fake.ItemByPath("/D/sub/g.txt")
	assert.False(t, ok)

	err = e.client.Delete(e.ctx, dirID.ID, "")
	assert.ErrorIs(t, err, remote.ErrNotFound)
	err = e.client.Delete(e.ctx, e.rootID(), "")
	assert.ErrorIs(t, err, remote.ErrForbidden)
}

// ---- Naming rules ----

func TestIntegrationInvalidNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	root := e.rootID()
	fileID := e.put("/ok.txt", []byte("ok"))
	bad := []string{
		"colon:name", "star*", "quest?ion", "pipe|", "lt<", "gt>", `quote"`, `back\slash`,
		"trailing.", "trailing ", " leading", "~$lock.docx", "CON", "nul", "COM1", "LPT9",
		"desktop.ini", ".lock", "my_vti_folder", "ctl\x01char", strings.Repeat("n", 256),
		"slash/inside", "", ".", "..",
	}
	for _, name := range bad {
		t.Run(fmt.Sprintf("%.20q", name), func(t *testing.T) {
			_, err := e.client.CreateFolder(e.ctx, root, name, remote.ConflictFail)
			assert.ErrorIs(t, err, remote.ErrInvalidName, "create folder")

			_, err = e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: name,
				Content: strings.NewReader("x"), Size: 1})
			assert.ErrorIs(t, err, remote.ErrInvalidName, "upload")

			if name != "" {
				_, err = e.client.Update(e.ctx, fileID, remote.ItemUpdate{Name: name})
				assert.ErrorIs(t, err, remote.ErrInvalidName, "rename")

				_, err = e.client.Child(e.ctx, root, name)
				assert.True(t, err != nil && (errors.Is(err, remote.ErrInvalidName) || errors.Is(err, remote.ErrNotFound)),
					"child lookup: %v", err)
			}
		})
	}
	// Nothing was created.
	list, err := e.fake.List("/")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "ok.txt", list[0].Name)

	// A path longer than 400 characters.
	deep := e.mkdir("/" + strings.Repeat("d", 200) + "/" + strings.Repeat("e", 190))
	_, err = e.client.CreateFolder(e.ctx, deep, strings.Repeat("f", 20), remote.ConflictFail)
	assert.ErrorIs(t, err, remote.ErrInvalidName)
	var re *remote.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "pathIsTooLong", re.InnerCode)
}

func TestIntegrationBusinessDrive(t *testing.T) {
	t.Parallel()
	const driveID = "b!Xy_z-0123456789AbCdEf_business"
	e := newEnv(t, envConfig{
		fake:   graphtest.Options{DriveType: "business", DriveID: driveID},
		client: func(c *remote.Config) { c.DriveID = driveID },
	})
	root, err := e.client.Root(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, driveID, root.DriveID)
	f, err := e.client.CreateFolder(e.ctx, root.ID, "Team", remote.ConflictFail)
	require.NoError(t, err)
	assert.Empty(t, f.CTag, "Business folders carry no cTag")
	assert.NotEmpty(t, f.ETag)
	up, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: f.ID, Name: "plan.txt",
		Content: strings.NewReader("plan"), Size: 4})
	require.NoError(t, err)
	assert.NotEmpty(t, up.CTag)
	it, err := e.client.ItemByPath(e.ctx, "/Team/plan.txt")
	require.NoError(t, err)
	assert.Equal(t, up.ID, it.ID)
	assert.Equal(t, "/drives/"+driveID+"/root:/Team", it.ParentPath)
	kids, err := e.client.Children(e.ctx, f.ID)
	require.NoError(t, err)
	require.Len(t, kids, 1)
	assert.Equal(t, "plan", string(e.download(up.ID)))
	d, err := e.client.Drive(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, "business", d.DriveType)
	assert.Equal(t, int64(4), d.Quota.Used)
	delta, err := e.client.Delta(e.ctx, "")
	require.NoError(t, err)
	assert.Len(t, delta.Items, 3)
	assert.True(t, strings.Contains(delta.DeltaLink, "/drives/"), "the link keeps the drive addressing")
	_, err = e.client.Delta(e.ctx, delta.DeltaLink)
	require.NoError(t, err)
}
