package remote

import (
	"fmt"
	"strings"
)

// Addressing items (docs/graph-contract.md §1): by id, …/items/{id}; by path,
// …/root:/a/b: or …/items/{parentId}:/{name}:. Each path segment is
// percent-encoded on its own, so that a name can hold any character the
// service allows ('#', '%', '?', spaces, non-ASCII…).

// escapeSegment percent-encodes s for use as one URL path segment: RFC 3986
// unreserved characters, sub-delims and '@' are kept, everything else
// (including '/', ':', '%', '#', '?', space and every non-ASCII byte of the
// UTF-8 encoding) becomes %XX. ':' is encoded although pchar allows it,
// because the service reads ':' as the switch between id and path syntax.
func escapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keepInSegment(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xF])
	}
	return b.String()
}

func keepInSegment(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', // unreserved
		'!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', // sub-delims
		'@':
		return true
	}
	return false
}

// checkName refuses, before anything is sent, a name that cannot be a single
// path segment: "", ".", "..", or one holding a '/'. The service reads an
// encoded slash (%2F) as a separator (docs/graph-contract.md §1), so such a
// name would silently address another item (Upload{Name: "a/b"} would write
// into folder a). The error matches ErrInvalidName. Every other naming rule is
// the service's to enforce; its refusals match ErrInvalidName too.
func checkName(op, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("%w: %s: %q cannot be the name of an item", ErrInvalidName, op, name)
	}
	return nil
}

// escapePath encodes a slash-separated path segment by segment. Empty
// segments (leading, trailing or doubled slashes) are dropped.
func escapePath(p string) string {
	var parts []string
	for _, seg := range strings.Split(p, "/") {
		if seg != "" {
			parts = append(parts, escapeSegment(seg))
		}
	}
	return strings.Join(parts, "/")
}

// itemURL is …/items/{id}.
func (c *Client) itemURL(id string) string {
	return c.driveURL + "/items/" + escapeSegment(id)
}

// childURL is …/items/{parentID}:/{name}: — the child named name of parentID.
func (c *Client) childURL(parentID, name string) string {
	return c.itemURL(parentID) + ":/" + escapeSegment(name) + ":"
}

// pathURL is …/root:/{path}: for a path relative to the drive root, or
// …/root for "" and "/".
func (c *Client) pathURL(p string) string {
	enc := escapePath(p)
	if enc == "" {
		return c.driveURL + "/root"
	}
	return c.driveURL + "/root:/" + enc + ":"
}
