package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// A mount that keeps far fewer entries in memory than the drive holds
// (ONEDRIVEFS_MAX_ENTRIES) drops them and builds them again from the store:
// find lists everything twice with the same inode numbers, files read their
// bytes, and a rename and a write in a folder whose entries were dropped
// reach the service.
func TestMountBoundedTree(t *testing.T) {
	const folders, files = 8, 20
	env := newMountEnv(t, graphtest.Options{})
	for d := range folders {
		for i := range files {
			_, err := env.srv.PutFile(fmt.Sprintf("/d%d/f%d.txt", d, i), fmt.Appendf(nil, "d%d f%d\n", d, i), time.Time{})
			require.NoError(t, err)
		}
	}
	env.environ = []string{"ONEDRIVEFS_MAX_ENTRIES=30"}
	env.mount()

	walk := func() string { return env.sh(`find . -printf '%i %p\n' | sort -k2`) }
	first := walk()
	assert.Len(t, lines(first), 1+folders+folders*files, "every folder and file, and the root")
	eventually(t, 10*time.Second, func() bool { return strings.Contains(env.stderr.String(), "dropped entries from memory") },
		"the daemon drops entries past its bound")
	listings := env.srv.Stats().Requests["children.list"]
	second := walk()
	assert.Equal(t, first, second, "the same names and inode numbers")
	assert.Equal(t, listings, env.srv.Stats().Requests["children.list"], "nothing listed again: the store answers")

	for _, p := range []string{"d0/f0.txt", "d3/f17.txt", "d7/f19.txt"} {
		want, err := env.srv.ReadFile("/" + p)
		require.NoError(t, err)
		assert.Equal(t, string(want), env.sh(`cat "`+p+`"`), p)
	}

	// d0's entries were dropped long ago (the walk ended in d7).
	env.sh(`mv "d0/f1.txt" "d0/renamed.txt" && printf 'new bytes' > "d1/f2.txt"`)
	_, ok := env.srv.ItemByPath("/d0/f1.txt")
	assert.False(t, ok, "the old name is gone on the service")
	got, err := env.srv.ReadFile("/d0/renamed.txt")
	require.NoError(t, err)
	assert.Equal(t, "d0 f1\n", string(got))
	got, err = env.srv.ReadFile("/d1/f2.txt")
	require.NoError(t, err)
	assert.Equal(t, "new bytes", string(got))

	third := walk()
	assert.Equal(t, sortedByPath(strings.Replace(first, "./d0/f1.txt", "./d0/renamed.txt", 1)), sortedByPath(third),
		"the renamed file keeps its inode number")
}

// sortedByPath sorts find's "INO PATH" lines by path.
func sortedByPath(s string) string {
	ls := lines(s)
	byPath := func(l string) string { _, p, _ := strings.Cut(l, " "); return p }
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && byPath(ls[j]) < byPath(ls[j-1]); j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
	return strings.Join(ls, "\n") + "\n"
}
