package remote_test

// Integration tests of content: downloads (full, ranged, sparse giants,
// verified, interrupted) and uploads (simple, session, resumed, restarted).

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
	"github.com/onedrivefs/onedrivefs/remote/quickxorhash"
)

func qxh(b []byte) string {
	sum := quickxorhash.Sum(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// ---- Downloads ----

func TestIntegrationDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	content := pattern(3<<20+17, 2)
	id := e.put("/dl.bin", content)
	emptyID := e.put("/empty.bin", nil)

	assert.Equal(t, content, e.download(id))

	cases := []struct {
		name     string
		off, len int64
		want     []byte
	}{
		{"head", 0, 100, content[:100]},
		{"middle", 1 << 20, 4096, content[1<<20 : 1<<20+4096]},
		{"to the end", 3 << 20, -1, content[3<<20:]},
		{"past the end", int64(len(content)) - 5, 100, content[len(content)-5:]},
		{"at the end", int64(len(content)), 10, nil},
		{"beyond the end", int64(len(content)) + 10, -1, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.fake.Stats().BytesDownloaded
			var buf bytes.Buffer
			n, err := e.client.Download(e.ctx, id, tc.off, tc.len, &buf)
			require.NoError(t, err)
			assert.Equal(t, int64(len(tc.want)), n)
			assert.Equal(t, len(tc.want), buf.Len())
			assert.True(t, bytes.Equal(tc.want, buf.Bytes()))
			assert.Equal(t, int64(len(tc.want)), e.fake.Stats().BytesDownloaded-before, "only the range crossed")
		})
	}

	assert.Empty(t, e.download(emptyID))

	// A folder has no content.
	dir := e.mkdir("/Dir")
	_, err := e.client.Download(e.ctx, dir, 0, -1, &bytes.Buffer{})
	require.Error(t, err)
	_, err = e.client.Download(e.ctx, "NOPE!1", 0, -1, &bytes.Buffer{})
	assert.ErrorIs(t, err, remote.ErrNotFound)
	e.rec.requireNoAuthOnPreauth(t)
}

func TestIntegrationDownloadSparseGiantTail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	const size = 5 << 30
	tail := []byte("the very end of a five-gibibyte file\n")
	id, err := e.fake.SparseFile("/giant.img", size, tail)
	require.NoError(t, err)

	it, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)
	assert.Equal(t, int64(size), it.Size)
	e.fake.ResetStats()

	var buf bytes.Buffer
	n, err := e.client.Download(e.ctx, id, size-int64(len(tail)), -1, &buf)
	require.NoError(t, err)
	assert.Equal(t, int64(len(tail)), n)
	assert.Equal(t, tail, buf.Bytes())

	buf.Reset()
	n, err = e.client.Download(e.ctx, id, size-4096-int64(len(tail)), 4096+8, &buf)
	require.NoError(t, err)
	assert.Equal(t, int64(4096+8), n)
	assert.Equal(t, make([]byte, 4096), buf.Bytes()[:4096])
	assert.Equal(t, tail[:8], buf.Bytes()[4096:])

	st := e.fake.Stats()
	assert.Equal(t, int64(len(tail)+4096+8), st.BytesDownloaded)
	assert.Equal(t, int64(2), st.Requests["download"])
}

func TestIntegrationDownloadVerified(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	content := pattern(1<<20+3, 3)
	id := e.put("/v.bin", content)
	it, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)
	assert.Equal(t, qxh(content), it.QuickXorHash, "quickXorHash agrees on both sides")
	info, _ := e.fake.ItemByID(id)
	assert.Equal(t, info.QuickXorHash, it.QuickXorHash)

	e.fake.ResetStats()
	var buf bytes.Buffer
	require.NoError(t, e.client.DownloadVerified(e.ctx, it, &buf))
	assert.Equal(t, content, buf.Bytes())
	st := e.fake.Stats()
	assert.Zero(t, st.Requests["content.get"], "the item's downloadUrl was used")
	assert.Equal(t, int64(1), st.Requests["download"])

	// Items from a listing carry usable download URLs too.
	kids, err := e.client.Children(e.ctx, e.rootID())
	require.NoError(t, err)
	require.Len(t, kids, 1)
	buf.Reset()
	require.NoError(t, e.client.DownloadVerified(e.ctx, kids[0], &buf))
	assert.Equal(t, content, buf.Bytes())

	// A wrong hash is caught.
	bad := *it
	bad.QuickXorHash = qxh([]byte("something else"))
	bad.DownloadURL = ""
	err = e.client.DownloadVerified(e.ctx, &bad, &bytes.Buffer{})
	assert.ErrorIs(t, err, remote.ErrHashMismatch)

	// The content changed after the item was read: the stale download URL
	// is refused by the fake (410), the client fetches a fresh one, and the
	// new bytes do not match the old hash.
	e.put("/v.bin", []byte("new content"))
	err = e.client.DownloadVerified(e.ctx, it, &bytes.Buffer{})
	assert.ErrorIs(t, err, remote.ErrHashMismatch)
	fresh, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)
	buf.Reset()
	require.NoError(t, e.client.DownloadVerified(e.ctx, fresh, &buf))
	assert.Equal(t, "new content", buf.String())

	// A folder has nothing to verify.
	dir, err := e.client.CreateFolder(e.ctx, e.rootID(), "dir", remote.ConflictFail)
	require.NoError(t, err)
	assert.ErrorIs(t, e.client.DownloadVerified(e.ctx, dir, &bytes.Buffer{}), remote.ErrNotSupported)
	e.rec.requireNoAuthOnPreauth(t)
}

func TestIntegrationDownloadExpiredURL(t *testing.T) {
	t.Parallel()
	clock := &shiftClock{}
	e := newEnv(t, envConfig{fake: graphtest.Options{Clock: clock.Now, DownloadURLLifetime: time.Minute}})
	id := e.put("/x.txt", []byte("expires"))
	assert.Equal(t, "expires", string(e.download(id)))
	// The client caches the URL for a few minutes; the fake expires it
	// after one: the refusal (410) makes the client fetch a new one.
	clock.Advance(2 * time.Minute)
	e.fake.ResetStats()
	assert.Equal(t, "expires", string(e.download(id)))
	st := e.fake.Stats()
	assert.Equal(t, int64(2), st.Requests["download"])
	assert.Equal(t, int64(1), st.Requests["content.get"])
}

// A download bound to a version never switches to another: when the URL it
// holds is refused because the content changed, it fails with
// ErrContentChanged instead of fetching the new content.
func TestIntegrationDownloadVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	v1 := pattern(1<<20, 5)
	id := e.put("/v.bin", v1)
	it, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)

	var buf bytes.Buffer
	n, err := e.client.DownloadVersion(e.ctx, id, it.CTag, 0, 4096, &buf)
	require.NoError(t, err)
	assert.Equal(t, int64(4096), n)
	assert.Equal(t, v1[:4096], buf.Bytes())

	e.fake.ResetStats()
	buf.Reset()
	_, err = e.client.DownloadVersion(e.ctx, id, it.CTag, 4096, 4096, &buf)
	require.NoError(t, err)
	assert.Equal(t, v1[4096:8192], buf.Bytes())
	st := e.fake.Stats()
	assert.Equal(t, int64(1), st.RequestsTotal, "the URL of the version is reused: %v", st.Requests)

	// The content changes on the service: the held URL is refused (410),
	// and the new URL is for another version.
	e.put("/v.bin", pattern(1<<20, 6))
	buf.Reset()
	n, err = e.client.DownloadVersion(e.ctx, id, it.CTag, 8192, 4096, &buf)
	assert.ErrorIs(t, err, remote.ErrContentChanged)
	assert.Zero(t, n)
	assert.Zero(t, buf.Len(), "no byte of the new version")

	// Plain Download follows the item to its new content.
	buf.Reset()
	_, err = e.client.Download(e.ctx, id, 0, 16, &buf)
	require.NoError(t, err)
	assert.Equal(t, pattern(1<<20, 6)[:16], buf.Bytes())
}

func TestIntegrationDownloadResumesAfterReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	content := pattern(4<<20, 4)
	id := e.put("/r.bin", content)
	e.fake.SetFaults(graphtest.FaultOptions{ResetEvery: 2, Ops: []string{"download"}})
	for range 3 {
		got := e.download(id)
		require.Equal(t, len(content), len(got))
		require.True(t, bytes.Equal(content, got))
	}
	st := e.fake.Stats()
	assert.GreaterOrEqual(t, st.Resets, int64(1))
	// The resumed requests asked only for the rest: at most half a body
	// more than three whole ones crossed.
	assert.LessOrEqual(t, st.BytesDownloaded, int64(3*len(content)+len(content)))
}

// ---- Simple uploads ----

func TestIntegrationSimpleUpload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	root := e.rootID()
	content := pattern(100_000, 5)
	mtime := time.Date(2018, 7, 8, 9, 10, 11, 0, time.UTC)

	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: "doc.txt",
		Content: bytes.NewReader(content), Size: int64(len(content)), FSModified: mtime, FSCreated: mtime})
	require.NoError(t, err)
	assert.Equal(t, "doc.txt", it.Name)
	assert.Equal(t, int64(len(content)), it.Size)
	assert.Equal(t, qxh(content), it.QuickXorHash)
	assert.True(t, mtime.Equal(it.FSModified), "mtime survives: %v", it.FSModified)
	info, ok := e.fake.ItemByPath("/doc.txt")
	require.True(t, ok)
	assert.Equal(t, it.ID, info.ID)
	assert.True(t, mtime.Equal(info.FSModified))
	assert.Equal(t, qxh(content), info.QuickXorHash)
	got, err := e.fake.ReadFile("/doc.txt")
	require.NoError(t, err)
	assert.Equal(t, content, got)

	// Replace by name (default conflict behaviour: replace) keeps the id;
	// without times, the mtime moves to now.
	it2, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: "DOC.txt",
		Content: strings.NewReader("short"), Size: 5})
	require.NoError(t, err)
	assert.Equal(t, it.ID, it2.ID)
	assert.Equal(t, "doc.txt", it2.Name)
	assert.Equal(t, int64(5), it2.Size)
	assert.NotEqual(t, it.CTag, it2.CTag)
	assert.True(t, it2.FSModified.After(mtime))

	// Replace by id, with If-Match.
	it3, err := e.client.Upload(e.ctx, remote.UploadRequest{ItemID: it.ID, Content: strings.NewReader("by id"),
		Size: 5, IfMatch: it2.ETag})
	require.NoError(t, err)
	assert.Equal(t, it.ID, it3.ID)
	_, err = e.client.Upload(e.ctx, remote.UploadRequest{ItemID: it.ID, Content: strings.NewReader("stale"),
		Size: 5, IfMatch: it2.ETag})
	assert.ErrorIs(t, err, remote.ErrPreconditionFailed)
	got, _ = e.fake.ReadFile("/doc.txt")
	assert.Equal(t, "by id", string(got))

	// Conflict behaviours by name.
	_, err = e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: "doc.txt",
		Content: strings.NewReader("x"), Size: 1, Conflict: remote.ConflictFail})
	assert.ErrorIs(t, err, remote.ErrConflict)
	ren, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: "doc.txt",
		Content: strings.NewReader("x"), Size: 1, Conflict: remote.ConflictRename})
	require.NoError(t, err)
	assert.Equal(t, "doc 1.txt", ren.Name)

	// Zero bytes.
	z, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: "zero", Size: 0})
	require.NoError(t, err)
	assert.Equal(t, int64(0), z.Size)
	assert.Equal(t, qxh(nil), z.QuickXorHash)

	// Exactly the simple-upload limit still goes in one PUT.
	e.fake.ResetStats()
	four := pattern(4<<20, 6)
	_, err = e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: "four.bin",
		Content: bytes.NewReader(four), Size: int64(len(four))})
	require.NoError(t, err)
	st := e.fake.Stats()
	assert.Equal(t, int64(1), st.Requests["upload.simple"])
	assert.Zero(t, st.Requests["upload.create"])

	// Missing parent.
	_, err = e.client.Upload(e.ctx, remote.UploadRequest{ParentID: "NOPE!1", Name: "x",
		Content: strings.NewReader("x"), Size: 1})
	assert.ErrorIs(t, err, remote.ErrNotFound)
}

// A simple upload whose content is stored but whose times cannot be set
// returns the new item with ErrTimesNotSet; the Hashed callback has named
// the content before the service answered.
func TestIntegrationSimpleUploadTimesNotSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	content := pattern(10_000, 3)
	mtime := time.Date(2019, 2, 3, 4, 5, 6, 0, time.UTC)
	e.fake.SetFaults(graphtest.FaultOptions{ThrottleFor: time.Hour, Ops: []string{"item.update"}})
	var hashed string
	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "t.bin",
		Content: bytes.NewReader(content), Size: int64(len(content)), FSModified: mtime,
		Hashed: func(h string) { hashed = h }})
	require.ErrorIs(t, err, remote.ErrTimesNotSet)
	require.NotNil(t, it, "the stored item comes with the error")
	assert.Equal(t, qxh(content), it.QuickXorHash)
	assert.Equal(t, qxh(content), hashed)
	info, ok := e.fake.ItemByPath("/t.bin")
	require.True(t, ok)
	assert.Equal(t, info.ETag, it.ETag, "the item is the stored version")
}

// A session upload reports the content's hash to Hashed once every byte
// was read to be sent.
func TestIntegrationSessionUploadHashed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{client: func(c *remote.Config) { c.FragmentSize = 4 * remote.FragmentUnit }})
	content := pattern(3<<20+777, 9)
	var hashed string
	_, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "s.bin",
		Content: bytes.NewReader(content), Size: int64(len(content)), Hashed: func(h string) { hashed = h }})
	require.NoError(t, err)
	assert.Equal(t, qxh(content), hashed)
}

// ---- Upload sessions ----

func TestIntegrationSessionUpload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{client: func(c *remote.Config) { c.FragmentSize = 4 * remote.FragmentUnit }})
	root := e.rootID()
	content := pattern(5<<20+12345, 7)
	mtime := time.Date(2017, 1, 2, 3, 4, 5, 0, time.UTC)
	var mu sync.Mutex
	var progress []int64
	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: "big.bin",
		Content: bytes.NewReader(content), Size: int64(len(content)), FSModified: mtime,
		Progress: func(n int64) { mu.Lock(); progress = append(progress, n); mu.Unlock() }})
	require.NoError(t, err)
	assert.Equal(t, int64(len(content)), it.Size)
	assert.Equal(t, qxh(content), it.QuickXorHash)
	assert.True(t, mtime.Equal(it.FSModified), "mtime carried by the session: %v", it.FSModified)
	got, err := e.fake.ReadFile("/big.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(content, got))
	info, _ := e.fake.ItemByPath("/big.bin")
	assert.Equal(t, info.QuickXorHash, it.QuickXorHash)

	st := e.fake.Stats()
	frags := (int64(len(content)) + 4*remote.FragmentUnit - 1) / (4 * remote.FragmentUnit)
	assert.Equal(t, frags, st.Requests["upload.fragment"])
	assert.Equal(t, int64(1), st.Requests["upload.create"])
	assert.Equal(t, int64(len(content)), st.BytesUploaded)
	require.NotEmpty(t, progress)
	assert.Equal(t, int64(len(content)), progress[len(progress)-1])
	assert.Zero(t, st.Requests["item.update"], "no PATCH needed after a session")

	// Replacing by id through a session keeps the id; If-Match is honoured.
	content2 := pattern(5<<20, 8)
	it2, err := e.client.Upload(e.ctx, remote.UploadRequest{ItemID: it.ID, Content: bytes.NewReader(content2),
		Size: int64(len(content2)), IfMatch: it.ETag})
	require.NoError(t, err)
	assert.Equal(t, it.ID, it2.ID)
	assert.Equal(t, qxh(content2), it2.QuickXorHash)
	_, err = e.client.Upload(e.ctx, remote.UploadRequest{ItemID: it.ID, Content: bytes.NewReader(content2),
		Size: int64(len(content2)), IfMatch: it.ETag})
	assert.ErrorIs(t, err, remote.ErrPreconditionFailed)

	// Conflict behaviours by name through a session.
	_, err = e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: "big.bin",
		Content: bytes.NewReader(content2), Size: int64(len(content2)), Conflict: remote.ConflictFail})
	assert.ErrorIs(t, err, remote.ErrConflict)
	ren, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: "big.bin",
		Content: bytes.NewReader(content2), Size: int64(len(content2)), Conflict: remote.ConflictRename})
	require.NoError(t, err)
	assert.Equal(t, "big 1.bin", ren.Name)
	// Replace by name (the default) keeps the id.
	rep, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: "big.bin",
		Content: bytes.NewReader(content), Size: int64(len(content))})
	require.NoError(t, err)
	assert.Equal(t, it.ID, rep.ID)
	e.rec.requireNoAuthOnPreauth(t)
}

func TestIntegrationSessionUploadResumesAfterFragmentReset(t *testing.T) {
	t.Parallel()
	const size = 50 << 20
	const fragment = 32 * remote.FragmentUnit // 10 MiB: five fragments
	e := newEnv(t, envConfig{client: func(c *remote.Config) { c.FragmentSize = fragment }})
	content := pattern(size, 9)
	e.fake.SetFaults(graphtest.FaultOptions{ResetEvery: 3, Ops: []string{"upload.fragment"}})

	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "fifty.bin",
		Content: bytes.NewReader(content), Size: size})
	require.NoError(t, err)
	assert.Equal(t, int64(size), it.Size)
	assert.Equal(t, qxh(content), it.QuickXorHash)
	info, _ := e.fake.ItemByPath("/fifty.bin")
	assert.Equal(t, qxh(content), info.QuickXorHash)

	st := e.fake.Stats()
	assert.GreaterOrEqual(t, st.Resets, int64(1), "a fragment was cut")
	// Each reset costs one resent fragment, never the earlier ones.
	assert.Equal(t, int64(5)+st.Resets, st.Requests["upload.fragment"])
	assert.LessOrEqual(t, st.BytesUploaded, int64(size+fragment))
	assert.GreaterOrEqual(t, st.Requests["upload.status"], st.Resets, "the session was asked where to resume")
	assert.Equal(t, int64(1), st.Requests["upload.create"], "the same session went on")
	e.rec.requireNoAuthOnPreauth(t)
}

func TestIntegrationSessionRestartsAfterExpiry(t *testing.T) {
	t.Parallel()
	clock := &shiftClock{}
	e := newEnv(t, envConfig{
		fake:   graphtest.Options{Clock: clock.Now, UploadSessionLifetime: time.Minute},
		client: func(c *remote.Config) { c.FragmentSize = 4 * remote.FragmentUnit },
	})
	content := pattern(6<<20, 10)
	var once sync.Once
	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "restart.bin",
		Content: bytes.NewReader(content), Size: int64(len(content)),
		Progress: func(n int64) {
			if n > 0 && n < int64(len(content)) {
				// The session expires between two fragments.
				once.Do(func() { clock.Advance(2 * time.Minute) })
			}
		}})
	require.NoError(t, err)
	assert.Equal(t, qxh(content), it.QuickXorHash)
	got, err := e.fake.ReadFile("/restart.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(content, got))
	st := e.fake.Stats()
	assert.Equal(t, int64(2), st.Requests["upload.create"], "a second session was started")
}

func TestIntegrationSessionUploadQuota(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fake: graphtest.Options{QuotaTotal: 6 << 20}})
	content := pattern(8<<20, 11)
	_, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "too-big.bin",
		Content: bytes.NewReader(content), Size: int64(len(content))})
	assert.ErrorIs(t, err, remote.ErrQuotaExceeded)
	_, ok := e.fake.ItemByPath("/too-big.bin")
	assert.False(t, ok)
	// The session declared the file's size: refused before any byte
	// crossed (docs/graph-contract.md §5).
	st := e.fake.Stats()
	assert.Zero(t, st.BytesUploaded)
	assert.Zero(t, st.Requests["upload.fragment"])
}

func TestIntegrationSessionUploadCancelled(t *testing.T) {
	t.Parallel()
	// A cancelled upload deletes its session (DELETE {uploadUrl}, without
	// the token), even though its context is done.
	e := newEnv(t, envConfig{client: func(c *remote.Config) { c.FragmentSize = 4 * remote.FragmentUnit }})
	content := pattern(5<<20, 21)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	_, err := e.client.Upload(ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "cancelled.bin",
		Content: bytes.NewReader(content), Size: int64(len(content)),
		Progress: func(n int64) {
			if n > 0 {
				cancel()
			}
		}})
	require.ErrorIs(t, err, context.Canceled)
	st := e.fake.Stats()
	assert.Equal(t, int64(1), st.Requests["upload.cancel"])
	_, ok := e.fake.ItemByPath("/cancelled.bin")
	assert.False(t, ok)
	cancelled := false
	for _, ex := range e.rec.exchanges() {
		if ex.Kind == "upload" && ex.Method == http.MethodDelete {
			cancelled = true
			assert.Equal(t, http.StatusNoContent, ex.Status)
		}
	}
	assert.True(t, cancelled)
	e.rec.requireNoAuthOnPreauth(t)
}
