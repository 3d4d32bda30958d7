package metastore

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote"
)

// rssFileKiB is this process's resident file-backed memory (RssFile).
func rssFileKiB(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "RssFile:" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	t.Skip("no RssFile in /proc/self/status")
	return 0
}

// ReleaseMapped takes the pages a walk of the store touched out of the
// process's resident memory, and the store reads the same afterwards.
func TestReleaseMappedDropsResidentPages(t *testing.T) {
	s := openTemp(t)
	const n = 20000
	require.NoError(t, s.Update(func(tx *Tx) error {
		if err := tx.Put(root()); err != nil {
			return err
		}
		for i := range n {
			it := file(fmt.Sprintf("F!%d", i), "R!1", fmt.Sprintf("file-%06d-%s.txt", i, strings.Repeat("x", 100)))
			if err := tx.Put(it); err != nil {
				return err
			}
		}
		return nil
	}))
	walk := func() int {
		count := 0
		require.NoError(t, s.View(func(tx *ReadTx) error {
			return tx.EachChild("R!1", func(*remote.Item) error { count++; return nil })
		}))
		return count
	}
	require.Equal(t, n, walk())
	fi, err := os.Stat(s.path)
	require.NoError(t, err)
	before := rssFileKiB(t)

	require.NoError(t, s.ReleaseMapped())
	after := rssFileKiB(t)
	t.Logf("measured: store %d KiB on disk; RssFile %d KiB → %d KiB", fi.Size()>>10, before, after)
	assert.Less(t, after, before-fi.Size()>>10/4, "at least a quarter of the store's pages left the resident set")
	assert.Equal(t, n, walk(), "the store reads the same after the release")
}
