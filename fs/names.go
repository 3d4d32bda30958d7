package fs

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// OneDrive's naming rules, checked locally before a request is sent, so
// that the user gets EINVAL and a log line naming the rule instead of a 400
// from the service. This is the only place the rules live.

// maxNameBytes is the longest name the Linux VFS passes (NAME_MAX).
const maxNameBytes = 255

// maxPathChars is the longest path the service accepts: the item's path
// below the drive's root ("a/b/c", no leading slash), in Unicode code
// points.
const maxPathChars = 400

// forbiddenNameChars are the characters the service refuses in a name.
const forbiddenNameChars = `"*:<>?/\|`

// reservedNames are refused as whole names, compared case-insensitively.
var reservedNames = []string{
	".lock", "desktop.ini", "con", "prn", "aux", "nul",
	"com0", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8", "com9",
	"lpt0", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
}

// nameError is a name the service would refuse; Rule says which rule.
type nameError struct {
	Name string
	Rule string
	// tooLong: ENAMETOOLONG rather than EINVAL.
	tooLong bool
}

func (e *nameError) Error() string {
	return fmt.Sprintf("OneDrive does not allow the name %q: %s", truncateForLog(e.Name), e.Rule)
}

// Unwrap lets errnoOf map a nameError through the sentinels.
func (e *nameError) Unwrap() error {
	if e.tooLong {
		return errNameTooLong
	}
	return errInvalid
}

// checkName returns a *nameError if OneDrive would refuse name for a new
// item, else nil.
func checkName(name string) error {
	bad := func(rule string) error { return &nameError{Name: name, Rule: rule} }
	switch {
	case name == "" || name == "." || name == "..":
		return bad("empty, . and .. are not names")
	case len(name) > maxNameBytes:
		return checkNameLen(name)
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	}
	if i := strings.IndexAny(name, forbiddenNameChars); i >= 0 {
		return bad(fmt.Sprintf("the character %q is not allowed (none of %s)", name[i], forbiddenNameChars))
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return bad("control characters are not allowed")
		}
	}
	switch {
	case strings.HasPrefix(name, " "):
		return bad("a name cannot start with a space")
	case strings.HasSuffix(name, " "):
		return bad("a name cannot end with a space")
	case strings.HasSuffix(name, "."):
		return bad("a name cannot end with a dot")
	case strings.HasPrefix(name, "~$"):
		return bad("a name cannot start with ~$")
	case strings.Contains(strings.ToLower(name), "_vti_"):
		return bad("a name cannot contain _vti_")
	}
	for _, r := range reservedNames {
		if strings.EqualFold(name, r) {
			return bad("the name is reserved")
		}
	}
	return nil
}

// checkNameLen refuses a name longer than NAME_MAX with ENAMETOOLONG: every
// operation that takes a name checks it first (the kernel passes FUSE names
// of up to 1024 bytes).
func checkNameLen(name string) error {
	if len(name) > maxNameBytes {
		return &nameError{Name: name, Rule: fmt.Sprintf("longer than %d bytes", maxNameBytes), tooLong: true}
	}
	return nil
}

// checkPathLen refuses a path (its names from the root down) longer than
// the service allows, with ENAMETOOLONG: refused when the item is created
// or moved, before any data is accepted for it.
func checkPathLen(names []string) error {
	p := strings.Join(names, "/")
	if n := utf8.RuneCountInString(p); n > maxPathChars {
		return &nameError{Name: names[len(names)-1], tooLong: true,
			Rule: fmt.Sprintf("the path would be %d characters long; OneDrive allows %d", n, maxPathChars)}
	}
	return nil
}

// truncateForLog bounds a caller-supplied string in a log line.
func truncateForLog(s string) string {
	const max = 256
	if len(s) <= max {
		return s
	}
	return s[:max] + fmt.Sprintf("…(%d bytes)", len(s))
}

// foldName is the key under which names are compared: OneDrive names are
// case-insensitive and case-preserving.
func foldName(name string) string { return strings.ToLower(name) }
