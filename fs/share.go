package fs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
)

// Sharing links from the shell:
//
//	setfattr -n user.onedrive.share -v view PATH     # or edit; "view 2027-01-31" expires
//	getfattr --only-values -n user.onedrive.share PATH
//
// The setxattr creates the link on the service (POST …/createLink on the
// item's own drive: a shortcut's target for a shortcut) and the getxattr
// prints the link this mount created last for the item, or else one the
// service lists among the item's permissions. A link is a credential for
// whoever holds it: it is never logged. It needs write access: in a folder
// shared with the user read-only the answer is EACCES.

// xattrShare is the sharing-link attribute. It is not listed (reading it
// may cost a request, and cp -a must not copy it).
const xattrShare = "user.onedrive.share"

// parseShareValue reads the attribute's value: "view" or "edit", then
// optionally the link's expiry, as a date (2027-01-31, the end of which is
// UTC midnight) or an RFC 3339 time.
func parseShareValue(v string) (remote.LinkRequest, error) {
	fields := strings.Fields(strings.TrimRight(v, "\x00\n"))
	var lr remote.LinkRequest
	if len(fields) == 0 || len(fields) > 2 {
		return lr, fmt.Errorf("share link %q: want \"view\" or \"edit\", then optionally an expiry date: %w", truncateForLog(v), errInvalid)
	}
	switch t := remote.LinkType(strings.ToLower(fields[0])); t {
	case remote.LinkView, remote.LinkEdit:
		lr.Type = t
	default:
		return lr, fmt.Errorf("share link type %q: want view or edit: %w", truncateForLog(fields[0]), errInvalid)
	}
	if len(fields) == 2 {
		exp, err := ParseExpiry(fields[1])
		if err != nil {
			return lr, fmt.Errorf("share link expiry: %v: %w", err, errInvalid)
		}
		lr.Expires = exp
	}
	return lr, nil
}

// ParseExpiry reads a link's expiry: a date (YYYY-MM-DD, midnight UTC at
// its start) or an RFC 3339 time.
func ParseExpiry(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2027-01-31) nor an RFC 3339 time", s)
	}
	return t, nil
}

// shareTarget returns the drive and id of the item a link to e is made on.
func (f *FS) shareTarget(e *entry) (drive, id string, err error) {
	if f.isSharedDir(e) {
		return "", "", fmt.Errorf("%q is the mount's own folder: %w", f.sharedName, errNotSupported)
	}
	it := e.item.Load()
	if it == nil {
		return "", "", fmt.Errorf("the file is not on OneDrive yet: %w", errNoXattr)
	}
	if e == f.root {
		return "", "", fmt.Errorf("the root folder cannot be shared by link: %w", errInvalid)
	}
	drive, id = f.serviceItem(it)
	return drive, id, nil
}

// createShareLink creates a sharing link to e as the attribute's value asks,
// and remembers it for getShareXattr.
func (f *FS) createShareLink(ctx context.Context, e *entry, value []byte) error {
	lr, err := parseShareValue(string(value))
	if err != nil {
		return err
	}
	drive, id, err := f.shareTarget(e)
	if errors.Is(err, errNoXattr) {
		return errRemoved
	}
	if err != nil {
		return err
	}
	if err := f.checkShareWritable(ctx, e); err != nil {
		return fmt.Errorf("a link needs write access: %w", err)
	}
	p, err := f.driveClient(drive).CreateLink(ctx, id, lr)
	if err != nil {
		return fmt.Errorf("creating a %s link: %w", lr.Type, err)
	}
	f.mu.Lock()
	if f.shares.links == nil {
		f.shares.links = make(map[string]string)
	}
	f.shares.links[strings.ToLower(drive)+"/"+id] = p.Link.WebURL
	f.mu.Unlock()
	f.log.Info("sharing link created", "path", f.pathOf(e), "type", lr.Type, "expires", lr.Expires)
	return nil
}

// shareLink returns the link to e this mount created last, or else a link
// the service lists for it; errNoXattr when it has none.
func (f *FS) shareLink(ctx context.Context, e *entry) (string, error) {
	drive, id, err := f.shareTarget(e)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	link := f.shares.links[strings.ToLower(drive)+"/"+id]
	f.mu.Unlock()
	if link != "" {
		return link, nil
	}
	perms, err := f.driveClient(drive).Permissions(ctx, id)
	if err != nil {
		return "", fmt.Errorf("reading the item's links: %w", err)
	}
	for _, want := range []remote.LinkType{remote.LinkView, remote.LinkEdit, ""} {
		for _, p := range perms {
			if p.Link != nil && p.Link.WebURL != "" && (want == "" || p.Link.Type == want) &&
				p.InheritedFromID == "" {
				return p.Link.WebURL, nil
			}
		}
	}
	return "", errNoXattr
}

// getShareXattr answers getxattr(2) of user.onedrive.share.
func (f *FS) getShareXattr(ctx context.Context, e *entry, dest []byte) (uint32, syscall.Errno) {
	link, err := f.shareLink(ctx, e)
	if errors.Is(err, errNoXattr) {
		return 0, errnoOf(err)
	}
	if err != nil {
		return 0, f.errno(ctx, "getxattr", err, "attr", xattrShare)
	}
	return copyOut(dest, []byte(link))
}
