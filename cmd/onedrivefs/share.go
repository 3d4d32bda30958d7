package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/onedrivefs/onedrivefs/fs"
)

// The share command talks to a running mount through the item's
// user.onedrive.share attribute (fs/share.go), as any script could.

const shareDescription = `Create a sharing link to PATH, a file or folder in an onedrivefs mount, and
print it. The link is a view link (anyone holding it may read), or with --edit
an edit link (anyone holding it may change the item); --expires makes it stop
working at a date (2027-01-31) or time (RFC 3339). OneDrive returns the same
link again when an identical one exists.

A link needs write access to the item: in a folder shared with you read-only,
the command fails with "permission denied". Keep the link private: whoever
holds it gets in. The same works from a shell:
  setfattr -n user.onedrive.share -v view PATH
  getfattr --only-values -n user.onedrive.share PATH`

// xattrShare is the mount's sharing-link attribute.
const xattrShare = "user.onedrive.share"

func newShareCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "share [--edit] [--expires DATE] PATH",
		Short: "create a sharing link to a file or folder in a mount, and print it",
		Long:  shareDescription,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("exactly one PATH is needed, not %d arguments", len(args))
			}
			return nil
		},
	}
	edit := c.Flags().Bool("edit", false, "an edit link (default: a view link)")
	expires := c.Flags().String("expires", "", "when the link stops working: a `DATE` (2027-01-31) or an RFC 3339 time")
	c.RunE = func(c *cobra.Command, args []string) error {
		value := "view"
		if *edit {
			value = "edit"
		}
		if *expires != "" {
			if _, err := fs.ParseExpiry(*expires); err != nil {
				return usagef("--expires: %v", err)
			}
			value += " " + *expires
		}
		path, err := filepath.Abs(args[0])
		if err != nil {
			return err
		}
		if real, err := filepath.EvalSymlinks(path); err == nil {
			path = real
		}
		if _, err := mountRootOf(path); err != nil {
			return err
		}
		if err := setxattrRetry(path, xattrShare, []byte(value)); err != nil {
			return shareError(err, args[0])
		}
		link, err := getxattr(path, xattrShare)
		if err != nil {
			return fmt.Errorf("the link was created but cannot be read back: %w", err)
		}
		fmt.Fprintln(e.stdout, string(link))
		return nil
	}
	return c
}

// shareError explains a refused link.
func shareError(err error, path string) error {
	switch {
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s: permission denied: a link needs write access, and this item is shared with you read-only", path)
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%s does not exist, or is not on OneDrive yet", path)
	case errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("%s: OneDrive cannot share this by link (the mount's log says why)", path)
	case errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%s: this mount cannot create sharing links (%v)", path, err)
	}
	return fmt.Errorf("creating a link to %s: %w", path, err)
}
