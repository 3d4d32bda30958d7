package remote_test

// Integration tests of ambiguous failures: the service acted, but its reply
// was lost (the recording transport drops it). The client repeats what is
// safe to repeat and must recognise its own earlier success in the fake's
// answer to the repeat (409, 412, 404, 416 or a vanished session); what is
// not safe to repeat it reports as ErrOutcomeUnknown.

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

func TestIntegrationLostReplyCreateFolder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	root := e.rootID()
	e.rec.loseReplies("graph", http.MethodPost, "/children", 1)
	f, err := e.client.CreateFolder(e.ctx, root, "Once", remote.ConflictFail)
	require.NoError(t, err, "the repeat's 409 is the first attempt's success")
	list, err := e.fake.List("/")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, list[0].ID, f.ID)
	assert.Equal(t, int64(2), e.fake.Stats().Requests["folder.create"])

	// With rename, a repeat could create "Twice 1": not repeated.
	e.rec.loseReplies("graph", http.MethodPost, "/children", 1)
	_, err = e.client.CreateFolder(e.ctx, root, "Twice", remote.ConflictRename)
	require.ErrorIs(t, err, remote.ErrOutcomeUnknown)
	list, _ = e.fake.List("/")
	assert.Len(t, list, 2)
}

func TestIntegrationLostReplyUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	id := e.put("/a.txt", []byte("a"))
	cur, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)
	mtime := time.Date(2020, 2, 2, 2, 2, 2, 0, time.UTC)
	e.rec.loseReplies("graph", http.MethodPatch, "", 1)
	it, err := e.client.Update(e.ctx, id, remote.ItemUpdate{Name: "b.txt", FSModified: mtime, IfMatch: cur.ETag})
	require.NoError(t, err, "the repeat's 412 is the first attempt's success")
	assert.Equal(t, "b.txt", it.Name)
	assert.True(t, mtime.Equal(it.FSModified))
	assert.Equal(t, int64(2), e.fake.Stats().Requests["item.update"])

	// A 412 that is not ours stays an error.
	e.rec.loseReplies("graph", http.MethodPatch, "", 1)
	e.put("/b.txt", []byte("changed behind our back"))
	_, err = e.client.Update(e.ctx, id, remote.ItemUpdate{Name: "c.txt", IfMatch: it.ETag})
	assert.ErrorIs(t, err, remote.ErrPreconditionFailed)
}

func TestIntegrationLostReplyDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	id := e.put("/a.txt", []byte("a"))
	e.rec.loseReplies("graph", http.MethodDelete, "", 1)
	require.NoError(t, e.client.Delete(e.ctx, id, ""), "the repeat's 404 is the first attempt's success")
	_, ok := e.fake.ItemByID(id)
	assert.False(t, ok)
	assert.Equal(t, int64(2), e.fake.Stats().Requests["item.delete"])
}

func TestIntegrationLostReplySimpleUpload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	root := e.rootID()
	// New file with conflictBehavior fail: the repeat meets 409.
	e.rec.loseReplies("graph", http.MethodPut, "/content", 1)
	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: root, Name: "a.txt",
		Content: strings.NewReader("first"), Size: 5, Conflict: remote.ConflictFail})
	require.NoError(t, err)
	assert.Equal(t, qxh([]byte("first")), it.QuickXorHash)

	// Replacement with If-Match: the repeat meets 412.
	e.rec.loseReplies("graph", http.MethodPut, "/content", 1)
	it2, err := e.client.Upload(e.ctx, remote.UploadRequest{ItemID: it.ID,
		Content: strings.NewReader("second"), Size: 6, IfMatch: it.ETag})
	require.NoError(t, err)
	assert.Equal(t, it.ID, it2.ID)
	got, _ := e.fake.ReadFile("/a.txt")
	assert.Equal(t, "second", string(got))
	assert.Equal(t, int64(4), e.fake.Stats().Requests["upload.simple"])
}

func TestIntegrationLostFragmentReply(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{client: func(c *remote.Config) { c.FragmentSize = 4 * remote.FragmentUnit }})
	content := pattern(5<<20, 18) // 4 fragments
	// The second fragment lands but its reply is lost: the repeat would
	// overlap (416); the client asks the session and goes on from there,
	// without sending the fragment again.
	e.rec.loseReplies("upload", http.MethodPut, "", 2)
	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "f.bin",
		Content: bytes.NewReader(content), Size: int64(len(content))})
	require.NoError(t, err)
	assert.Equal(t, qxh(content), it.QuickXorHash)
	st := e.fake.Stats()
	assert.Equal(t, int64(len(content)), st.BytesUploaded, "no byte sent twice")
	assert.Equal(t, int64(4), st.Requests["upload.fragment"])
	assert.Equal(t, int64(1), st.Requests["upload.status"])

	// The last fragment's reply is lost: the session is gone (it
	// completed); the client finds the file holding exactly its bytes.
	e.fake.ResetStats()
	content2 := pattern(5<<20, 19)
	e.rec.loseReplies("upload", http.MethodPut, "", 4)
	it2, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "f.bin",
		Content: bytes.NewReader(content2), Size: int64(len(content2))})
	require.NoError(t, err)
	assert.Equal(t, it.ID, it2.ID)
	assert.Equal(t, qxh(content2), it2.QuickXorHash)
	st = e.fake.Stats()
	assert.Equal(t, int64(len(content2)), st.BytesUploaded)
	assert.Equal(t, int64(1), st.Requests["upload.create"])
}

func TestIntegrationLostCopyReply(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fake: graphtest.Options{Copy: graphtest.CopyOptions{MonitorStyle: "200"}}})
	id := e.put("/a.txt", []byte("a"))
	e.rec.loseReplies("graph", http.MethodPost, "/copy", 1)
	_, err := e.client.StartCopy(e.ctx, id, remote.CopyRequest{Name: "b.txt"})
	require.ErrorIs(t, err, remote.ErrOutcomeUnknown)
	st := e.fake.Stats()
	assert.Equal(t, int64(1), st.Requests["copy.start"], "not repeated")
	assert.Equal(t, int64(1), st.CopyJobsStarted, "the service did act")
	// The caller can find the destination.
	_, err = e.client.ItemByPath(e.ctx, "/b.txt")
	require.NoError(t, err)
}

func TestIntegrationSimpleUploadCapLowerThanClient(t *testing.T) {
	t.Parallel()
	// The service's simple-upload cap is not certain (graph-contract.md §3:
	// 4 MB in older documents, 4 MiB in rclone, 250 MB today). A service
	// whose cap is below the client's answers 413; the client must still
	// get the file there, through a session.
	e := newEnv(t, envConfig{fake: graphtest.Options{SimpleUploadLimit: 1 << 20}})
	content := pattern(3<<20, 20)
	mtime := time.Date(2016, 6, 6, 6, 6, 6, 0, time.UTC)
	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "mid.bin",
		Content: bytes.NewReader(content), Size: int64(len(content)), FSModified: mtime})
	require.NoError(t, err)
	assert.Equal(t, qxh(content), it.QuickXorHash)
	assert.True(t, mtime.Equal(it.FSModified))
	got, err := e.fake.ReadFile("/mid.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(content, got))
}
