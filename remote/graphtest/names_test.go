package graphtest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// escapeAll percent-encodes every byte outside the unreserved set, so that
// any name survives as one path segment.
func escapeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func TestNamingRules(t *testing.T) {
	c := newCore(t, Options{})
	root := c.rootID()
	fileID, err := c.s.PutFile("/victim.txt", []byte("v"), time.Time{})
	require.NoError(t, err)
	longDir := strings.Repeat("d", 200)
	_, err = c.s.MkdirAll("/" + longDir)
	require.NoError(t, err)

	bad := []struct {
		name, inner, msg string
	}{
		{`a"b`, innerInvalidChars, msgIllegalChars},
		{"a*b", innerInvalidChars, msgIllegalChars},
		{"a:b", innerInvalidChars, msgIllegalChars},
		{"a<b", innerInvalidChars, msgIllegalChars},
		{"a>b", innerInvalidChars, msgIllegalChars},
		{"a?b", innerInvalidChars, msgIllegalChars},
		{`a\b`, innerInvalidChars, msgIllegalChars},
		{"a|b", innerInvalidChars, msgIllegalChars},
		{"a/b", innerInvalidChars, msgIllegalChars},
		{"a\x01b", innerInvalidChars, msgIllegalChars},
		{"a\tb", innerInvalidChars, msgIllegalChars},
		{"a\x7fb", innerInvalidChars, msgIllegalChars},
		{"trailing.", innerInvalidChars, msgTrailingChar},
		{"trailing ", innerInvalidChars, msgTrailingChar},
		{" leading", innerInvalidChars, msgLeadingSpace},
		{"~$lockfile.docx", innerInvalidChars, msgIllegalChars},
		{".lock", innerInvalidChars, msgReservedName},
		{"CON", innerInvalidChars, msgReservedName},
		{"con", innerInvalidChars, msgReservedName},
		{"PRN", innerInvalidChars, msgReservedName},
		{"Aux", innerInvalidChars, msgReservedName},
		{"NUL", innerInvalidChars, msgReservedName},
		{"COM0", innerInvalidChars, msgReservedName},
		{"com9", innerInvalidChars, msgReservedName},
		{"LPT1", innerInvalidChars, msgReservedName},
		{"lpt0", innerInvalidChars, msgReservedName},
		{"desktop.ini", innerInvalidChars, msgReservedName},
		{"Desktop.INI", innerInvalidChars, msgReservedName},
		{"_vti_", innerInvalidChars, msgReservedName},
		{"my_VTI_file", innerInvalidChars, msgReservedName},
		{strings.Repeat("n", 256), innerPathTooLong, msgNameTooLong},
	}
	for _, tc := range bad {
		label := fmt.Sprintf("%q", tc.name)
		if len(label) > 40 {
			label = label[:40]
		}
		t.Run(label, func(t *testing.T) {
			e := c.graphErr(c.req("POST", "/me/drive/items/"+root+"/children",
				map[string]any{"name": tc.name, "folder": map[string]any{}}), 400, codeInvalidRequest, tc.inner)
			assert.Equal(t, tc.msg, e["message"])

			if !strings.Contains(tc.name, "/") { // %2F is a separator in paths
				e = c.graphErr(c.req("PUT", "/me/drive/items/"+root+":/"+escapeAll(tc.name)+":/content", "x"),
					400, codeInvalidRequest, tc.inner)
				assert.Equal(t, tc.msg, e["message"])
			}

			e = c.graphErr(c.req("PATCH", "/me/drive/items/"+fileID, map[string]any{"name": tc.name}),
				400, codeInvalidRequest, tc.inner)
			assert.Equal(t, tc.msg, e["message"])
		})
	}
	list, err := c.s.List("/")
	require.NoError(t, err)
	assert.Len(t, list, 2, "nothing was created")

	// Allowed look-alikes.
	for _, name := range []string{"CON.txt", "COM10", "nul.d", "~tilde", "a~$b", "#hash", "100%", "a.b.c", "x" + strings.Repeat("y", 254)} {
		c.obj("POST", "/me/drive/items/"+root+"/children", map[string]any{"name": name, "folder": map[string]any{}}, 201)
		file := "f" + name[:min(len(name), 254)] // a different name, still ≤ 255
		c.obj("PUT", "/me/drive/items/"+root+":/"+escapeAll(file)+":/content", "x", 201)
	}

	// The whole path is limited to 400 characters.
	name := strings.Repeat("n", 200) // "ddd…/nnn…" = 401
	for _, resp := range []*http.Response{
		c.req("POST", "/me/drive/root:/"+longDir+":/children", map[string]any{"name": name, "folder": map[string]any{}}),
		c.req("PUT", "/me/drive/root:/"+longDir+"/"+name+":/content", "x"),
		c.req("PATCH", "/me/drive/items/"+fileID, map[string]any{"name": name, "parentReference": map[string]any{"path": "/drive/root:/" + longDir}}),
	} {
		c.graphErr(resp, 400, codeInvalidRequest, innerPathTooLong)
	}
	c.obj("POST", "/me/drive/root:/"+longDir+":/children", map[string]any{"name": name[:199], "folder": map[string]any{}}, 201)
}

func TestSeedSkipsForbiddenNames(t *testing.T) {
	s := NewServer(Options{})
	defer s.Close()
	dir := t.TempDir()
	require.NoError(t, writeTree(dir, map[string]string{
		"ok/fine.txt":   "1",
		"ok/bad?.txt":   "2",
		"desktop.ini":   "3",
		"trailing./x":   "4",
		"keep/CON.txt":  "5",
		"keep/sub/deep": "6",
	}))
	err := s.SeedFromDir(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ok/bad?.txt")
	assert.Contains(t, err.Error(), "desktop.ini")
	assert.Contains(t, err.Error(), "trailing.")
	for _, p := range []string{"/ok/fine.txt", "/keep/CON.txt", "/keep/sub/deep"} {
		_, ok := s.ItemByPath(p)
		assert.True(t, ok, p)
	}
	for _, p := range []string{"/ok/bad?.txt", "/desktop.ini", "/trailing./x"} {
		_, ok := s.ItemByPath(p)
		assert.False(t, ok, p)
	}
}
