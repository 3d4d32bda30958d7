package fs

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCheckName(t *testing.T) {
	ok := []string{"a", "README.md", "with space", ".hidden", "x.tar.gz", "日本語", "a#b%c", "~tilde", "con.txt", strings.Repeat("a", 255)}
	for _, name := range ok {
		assert.NoError(t, checkName(name), name)
	}
	bad := map[string]string{
		"a:b":                    "character",
		`a"b`:                    "character",
		"a*b":                    "character",
		"a<b":                    "character",
		"a>b":                    "character",
		"a?b":                    "character",
		`a\b`:                    "character",
		"a|b":                    "character",
		" lead":                  "start with a space",
		"trail ":                 "end with a space",
		"dot.":                   "end with a dot",
		"~$lock.docx":            "~$",
		"x_vti_y":                "_vti_",
		"CON":                    "reserved",
		"nul":                    "reserved",
		"LPT9":                   "reserved",
		"desktop.ini":            "reserved",
		".lock":                  "reserved",
		"tab\there":              "control",
		strings.Repeat("a", 256): "longer",
		"\xff":                   "UTF-8",
	}
	for name, rule := range bad {
		err := checkName(name)
		var ne *nameError
		if assert.True(t, errors.As(err, &ne), name) {
			assert.Contains(t, ne.Rule, rule, name)
		}
		want := syscall.EINVAL
		if len(name) > maxNameBytes {
			want = syscall.ENAMETOOLONG
		}
		assert.Equal(t, want, errnoOf(err), name)
	}
}

func TestConflictName(t *testing.T) {
	at := mustTime(t, "2026-03-04T05:06:07Z")
	assert.Equal(t, "report (conflict 2026-03-04 050607).docx", conflictName("report.docx", at))
	assert.Equal(t, "Makefile (conflict 2026-03-04 050607)", conflictName("Makefile", at))
	assert.Equal(t, ".bashrc (conflict 2026-03-04 050607)", conflictName(".bashrc", at))
	assert.Equal(t, "a.tar (conflict 2026-03-04 050607).gz", conflictName("a.tar.gz", at))
	assert.NoError(t, checkName(conflictName(".bashrc", at)))
}
