package graphtest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeTree creates files (relative path → content) under dir.
func writeTree(dir string, files map[string]string) error {
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func blocksOf(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(path, &st))
	return st.Blocks
}

func TestSeedFromDirKeepsSparseFilesSparse(t *testing.T) {
	s := NewServer(Options{})
	defer s.Close()
	dir := t.TempDir()
	mtime := time.Date(2022, 3, 4, 5, 6, 7, 0, time.UTC)
	require.NoError(t, writeTree(dir, map[string]string{"docs/readme.md": "# hi\n", "empty": ""}))
	require.NoError(t, os.Chtimes(filepath.Join(dir, "docs/readme.md"), mtime, mtime))

	// A 2 GiB sparse file with data at 1 MiB and at the end.
	const size = 2 << 30
	big := filepath.Join(dir, "media", "big.bin")
	require.NoError(t, os.MkdirAll(filepath.Dir(big), 0o755))
	f, err := os.Create(big)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(size))
	_, err = f.WriteAt([]byte("middle"), 1<<20)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("THE END"), size-7)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	srcBlocks := blocksOf(t, big)
	require.Less(t, srcBlocks, int64(1024), "the test file system must support sparse files")

	require.NoError(t, s.SeedFromDir(dir))

	info, ok := s.ItemByPath("/media/big.bin")
	require.True(t, ok)
	assert.Equal(t, int64(size), info.Size)
	var q quickXor
	q.writeAt([]byte("middle"), 1<<20)
	q.writeAt([]byte("THE END"), size-7)
	q.setLength(size)
	assert.Equal(t, q.base64(), info.QuickXorHash)
	assert.Empty(t, info.SHA256, "not computed above shaLimit")
	blob, err := s.BlobPath("/media/big.bin")
	require.NoError(t, err)
	assert.LessOrEqual(t, blocksOf(t, blob), srcBlocks+16, "the blob stays sparse")
	st, err := os.Stat(blob)
	require.NoError(t, err)
	assert.Equal(t, int64(size), st.Size())

	readme, ok := s.ItemByPath("/DOCS/README.MD")
	require.True(t, ok)
	assert.True(t, readme.FSModified.Equal(mtime), "%v", readme.FSModified)
	sum := sha256.Sum256([]byte("# hi\n"))
	assert.Equal(t, strings.ToUpper(hex.EncodeToString(sum[:])), readme.SHA256)
	assert.Equal(t, qxOf([]byte("# hi\n")), readme.QuickXorHash)
	b, err := s.ReadFile("/docs/readme.md")
	require.NoError(t, err)
	assert.Equal(t, "# hi\n", string(b))
	e, ok := s.ItemByPath("/empty")
	require.True(t, ok)
	assert.Equal(t, int64(0), e.Size)
	assert.Equal(t, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", e.QuickXorHash)

	root, err := s.List("/")
	require.NoError(t, err)
	var names []string
	for _, it := range root {
		names = append(names, it.Name)
	}
	assert.Equal(t, []string{"docs", "empty", "media"}, names)
	rootInfo, _ := s.ItemByPath("/")
	assert.Equal(t, int64(size+5), rootInfo.Size)

	// Seeding again merges: same ids, content replaced.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docs/readme.md"), []byte("v2"), 0o644))
	require.NoError(t, s.SeedFromDir(dir))
	again, _ := s.ItemByPath("/docs/readme.md")
	assert.Equal(t, readme.ID, again.ID)
	assert.NotEqual(t, readme.CTag, again.CTag)
}

func TestSeedHelpers(t *testing.T) {
	s := NewServer(Options{})
	defer s.Close()
	id, err := s.MkdirAll("/a/b/c")
	require.NoError(t, err)
	id2, err := s.MkdirAll("/A/B/C")
	require.NoError(t, err)
	assert.Equal(t, id, id2)
	_, err = s.PutFile("/a/b/c/f", []byte("x"), time.Time{})
	require.NoError(t, err)
	_, err = s.MkdirAll("/a/b/c/f/g")
	require.Error(t, err)
	_, err = s.List("/a/b/c/f")
	require.Error(t, err)
	_, err = s.ReadFile("/nope")
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = s.PutFile("/bad|name", nil, time.Time{})
	require.Error(t, err)
	info, ok := s.ItemByID(id)
	require.True(t, ok)
	assert.Equal(t, "/a/b/c", info.Path)
	assert.Equal(t, 1, info.ChildCount)
}
