package graphtest

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// snapshotTree lists every item of the default drive by path.
func snapshotTree(t *testing.T, s *Server) map[string]ItemInfo {
	t.Helper()
	out := map[string]ItemInfo{}
	var walk func(p string)
	walk = func(p string) {
		kids, err := s.List(p)
		require.NoError(t, err)
		for _, k := range kids {
			out[k.Path] = k
			if k.IsFolder {
				walk(k.Path)
			}
		}
	}
	root, ok := s.ItemByPath("/")
	require.True(t, ok)
	out["/"] = root
	walk("/")
	return out
}

func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "blobs"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestPersistenceRoundTrip(t *testing.T) {
	dir := t.TempDir()
	opts := Options{DataDir: dir, OtherDriveIDs: []string{"1111222233334444"}}
	c := newCore(t, opts)
	_, err := c.s.PutFile("/docs/a.txt", []byte("alpha"), time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	_, err = c.s.SparseFile("/big.bin", 1<<30, []byte("end"))
	require.NoError(t, err)
	c.mkdir(c.rootID(), "empty dir")
	c.obj("PUT", "/me/drive/root:/docs/b.txt:/content", "beta", 201)
	c.obj("PUT", "/me/drive/root:/docs/b.txt:/content", "beta v2", 200) // old blob becomes garbage
	gone := c.obj("PUT", "/me/drive/root:/docs/gone.txt:/content", "gone", 201)
	resp := c.req("DELETE", "/me/drive/items/"+str(gone, "id"), nil)
	resp.Body.Close()
	c.obj("PUT", "/drives/1111222233334444/root:/other.txt:/content", "other drive", 201)
	before := snapshotTree(t, c.s)
	quota := c.obj("GET", "/me/drive", nil, 200)["quota"]
	require.NoError(t, c.s.Close())
	assert.Len(t, blobFiles(t, dir), 4, "a.txt, big.bin, b.txt v2, other.txt: garbage collected on save")

	c2 := newCore(t, opts)
	after := snapshotTree(t, c2.s)
	assert.Equal(t, before, after)
	assert.Equal(t, quota, c2.obj("GET", "/me/drive", nil, 200)["quota"])
	got, err := c2.s.ReadFile("/docs/b.txt")
	require.NoError(t, err)
	assert.Equal(t, "beta v2", string(got))
	m := c2.obj("GET", "/drives/1111222233334444/root:/other.txt", nil, 200)
	assert.Equal(t, "other drive", string(readAll(t, c2.plain("GET", str(m, "@microsoft.graph.downloadUrl"), nil))))
	blob, err := c2.s.BlobPath("/big.bin")
	require.NoError(t, err)
	assert.Less(t, blocksOf(t, blob), int64(1024), "still sparse")

	// Counters continue: a new item gets a fresh id, and the delta
	// tombstone of the deleted file survived.
	n := c2.mkdir(c2.rootID(), "new")
	for _, it := range before {
		assert.NotEqual(t, it.ID, n["id"])
	}
	c2.s.mu.Lock()
	d := c2.s.defaultDrive()
	_, hasTomb := d.Tombstones[str(gone, "id")]
	c2.s.mu.Unlock()
	assert.True(t, hasTomb)

	// The old token still works after the restart.
	resp = c2.req("GET", "/me/drive", nil)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
}

func TestAutoSave(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Options{DataDir: dir})
	require.NoError(t, err)
	s.StartAutoSave(10 * time.Millisecond)
	s.StartAutoSave(10 * time.Millisecond) // idempotent
	_, err = s.PutFile("/x", []byte("x"), time.Time{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		raw, err := os.ReadFile(filepath.Join(dir, stateFile))
		return err == nil && strings.Contains(string(raw), `"name":"x"`)
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, s.Close())
	s2, err := New(Options{DataDir: dir})
	require.NoError(t, err)
	defer s2.Close()
	got, err := s2.ReadFile("/x")
	require.NoError(t, err)
	assert.Equal(t, "x", string(got))
}

func TestTempDataDirRemoved(t *testing.T) {
	s := NewServer(Options{})
	dir := s.dataDir
	_, err := s.PutFile("/x", []byte("x"), time.Time{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = os.Stat(dir)
	assert.True(t, os.IsNotExist(err))
}
