package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// xattrPin is the mount's pin attribute (fs/pin.go).
const xattrPin = "user.onedrive.pin"

const pinDescription = `Keep files available offline: every file at or under each PATH (a file or a
folder inside an onedrivefs mount) is downloaded whole into the mount's cache
now, and kept there outside the cache's size budget, so that it stays readable
while OneDrive is unreachable. Files added to a pinned folder later are kept
once read, or at the next mount. It returns once everything is downloaded.

It sets the attribute user.onedrive.pin to 1, as
'setfattr -n user.onedrive.pin -v 1 PATH' does; 'getfattr -n user.onedrive.pin
PATH' reads the pinned state, and 'onedrivefs status' lists the pins.`

const unpinDescription = `Stop keeping each PATH available offline (user.onedrive.pin = 0): its files
go back under the cache's size budget, evicted when room is needed.`

func newPinCmd(e *env) *cobra.Command {
	return pinCommand(e, "pin", "keep files available offline", pinDescription, "1")
}

func newUnpinCmd(e *env) *cobra.Command {
	return pinCommand(e, "unpin", "stop keeping files available offline", unpinDescription, "0")
}

func pinCommand(e *env, name, short, long, value string) *cobra.Command {
	return &cobra.Command{
		Use:   name + " PATH...",
		Short: short,
		Long:  long,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("at least one PATH is needed")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			for _, a := range args {
				p, err := filepath.Abs(a)
				if err != nil {
					return err
				}
				if err := unix.Setxattr(p, xattrPin, []byte(value), 0); err != nil {
					return fmt.Errorf("%s %s (is it inside an onedrivefs mount?): %w", name, p, err)
				}
				fmt.Fprintf(e.stdout, "%s: %s\n", name, p)
			}
			return nil
		},
	}
}
