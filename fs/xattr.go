package fs

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"syscall"
)

// Extended attributes. Every item shows read-only metadata under
// user.onedrive.*, listed by `getfattr -d`; the server-side copy attributes
// (user.onedrive.copy, .copy.status, .copy.jobs) are in copyxattr.go.
// Nothing else can be stored:
// OneDrive keeps no extended attributes, so setting one fails with ENOTSUP,
// which cp -p/-a and install treat as "not supported here" and go on;
// security.* and system.* (ACLs, SELinux labels) read as absent (ENODATA).

// xattrPrefix is the namespace of the metadata attributes.
const xattrPrefix = "user.onedrive."

// xattrPending is the JSON of what is still to reach the service at or
// beneath an item: copies not completed and changes not sent
// (pendingSummary); `onedrivefs wait` reads it for its progress. It is
// read by name only, not listed (getfattr -d and cp -a would copy it).
const xattrPending = "user.onedrive.pending"

// metaXattrs returns the metadata attributes of e that have a value, in a
// stable order.
func (f *FS) metaXattrs(e *entry) [][2]string {
	it := e.item.Load()
	if it == nil {
		return nil
	}
	var out [][2]string
	add := func(name, value string) {
		if value != "" {
			out = append(out, [2]string{xattrPrefix + name, value})
		}
	}
	add("id", it.ID)
	add("etag", it.ETag)
	add("ctag", it.CTag)
	if !e.isDir {
		add("quickxorhash", it.QuickXorHash)
	}
	add("weburl", it.WebURL)
	return out
}

// getxattr returns the value of attribute name of e.
func (f *FS) getxattr(e *entry, name string) ([]byte, error) {
	switch name {
	case xattrCopyStatus:
		return f.copyStatus(e)
	case xattrCopyJobs:
		if e != f.root {
			return nil, errNoXattr
		}
		return f.copyJobsJSON()
	case xattrPending:
		return json.Marshal(f.pendingUnder(e))
	case xattrStatus:
		if e != f.root {
			return nil, errNoXattr
		}
		return f.statusJSON()
	case xattrPin:
		if f.isPinned(e) { // pin.go
			return []byte("1"), nil
		}
		return []byte("0"), nil
	}
	for _, kv := range f.metaXattrs(e) {
		if kv[0] == name {
			return []byte(kv[1]), nil
		}
	}
	return nil, errNoXattr
}

// listxattr returns the names of e's readable attributes, each followed by
// a NUL.
func (f *FS) listxattr(e *entry) []byte {
	var b []byte
	for _, kv := range f.metaXattrs(e) {
		b = append(b, kv[0]...)
		b = append(b, 0)
	}
	if f.hasCopyStatus(e) {
		b = append(b, xattrCopyStatus...)
		b = append(b, 0)
	}
	if e == f.root {
		b = append(b, xattrCopyJobs...)
		b = append(b, 0)
		b = append(b, xattrStatus...)
		b = append(b, 0)
	}
	return b
}

// setxattr refuses every attribute but the copy trigger (copyxattr.go): the
// metadata ones are read-only, and OneDrive stores no others.
func (f *FS) setxattr(name string) error {
	if strings.HasPrefix(name, xattrPrefix) {
		return errNotPermitted
	}
	return errNotSupported
}

// copyOut copies v into dest as getxattr(2) and listxattr(2) expect: with an
// empty dest, only the size is asked for.
func copyOut(dest, v []byte) (uint32, syscall.Errno) {
	if len(dest) == 0 {
		return uint32(len(v)), 0
	}
	if len(dest) < len(v) {
		return uint32(len(v)), errnoOf(errXattrRange)
	}
	return uint32(copy(dest, v)), 0
}

// Getxattr implements getxattr(2).
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if attr == xattrShare {
		return n.fsys.getShareXattr(ctx, n.ent(), dest) // share.go
	}
	v, err := n.fsys.getxattr(n.ent(), attr)
	if errors.Is(err, errNoXattr) {
		return 0, errnoOf(err) // ENODATA is an answer, not a failure: not logged
	}
	if err != nil {
		return 0, n.fsys.errno(ctx, "getxattr", err, "attr", attr)
	}
	if len(dest) == 0 && (attr == xattrCopyStatus || attr == xattrCopyJobs || attr == xattrPending || attr == xattrStatus) {
		// The value changes between the size query and the read that
		// follows it: leave room for it to grow.
		return uint32(min(len(v)+statusSlack, maxXattrValue+statusSlack)), 0
	}
	return copyOut(dest, v)
}

// Listxattr implements listxattr(2).
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return copyOut(dest, n.fsys.listxattr(n.ent()))
}

// Setxattr implements setxattr(2): user.onedrive.copy starts a server-side
// copy; every other attribute is refused.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	f := n.fsys
	if attr == xattrCopy {
		return f.errno(ctx, "copy", f.startXattrCopy(ctx, n.ent(), data), "ino", n.ent().ino, "dest", truncateForLog(string(data)))
	}
	if attr == xattrShare {
		return f.errno(ctx, "share", f.createShareLink(ctx, n.ent(), data), "ino", n.ent().ino)
	}
	if attr == xattrPin {
		return f.errno(ctx, "pin", f.setPin(ctx, n.ent(), data), "ino", n.ent().ino)
	}
	return f.errno(ctx, "setxattr", f.setxattr(attr), "attr", attr)
}

// Removexattr implements removexattr(2).
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if _, err := n.fsys.getxattr(n.ent(), attr); err == nil {
		return syscall.EPERM
	}
	return syscall.ENODATA
}
