package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
)

const waitDescription = `Wait until everything pending at or under PATH (a file or a folder inside an
onedrivefs mount) has reached OneDrive: the server-side copies cp started that
have not completed yet, and changes the mount keeps in its journal. Progress is
shown on a terminal. The exit status is 0 once everything is on OneDrive, 1
with the reason when something cannot be sent now (OneDrive unreachable, for
instance: the changes stay in the journal and nothing is lost).

It asks the mount itself (an fsync of PATH), so it works as well from a script:

  cp -r photos photos-2024 && onedrivefs wait photos-2024`

// waitRefresh is how often wait reads the mount's progress.
const waitRefresh = 250 * time.Millisecond

// pendingDoc is the user.onedrive.pending attribute.
type pendingDoc struct {
	Copies      int   `json:"copies"`
	CopyBytes   int64 `json:"copyBytes"`
	Uploads     int   `json:"uploads"`
	UploadBytes int64 `json:"uploadBytes"`
}

func newWaitCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "wait [flags] PATH",
		Short: "wait until the copies and changes under PATH are on OneDrive",
		Long:  waitDescription,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("exactly one PATH is needed, not %d arguments", len(args))
			}
			return nil
		},
	}
	quiet := c.Flags().BoolP("quiet", "q", false, "print nothing but errors")
	c.RunE = func(c *cobra.Command, args []string) error {
		ctx := c.Context()
		p, err := filepath.Abs(args[0])
		if err != nil {
			return err
		}
		if _, err := getxattr(p, xattrPending); err != nil {
			return fmt.Errorf("%s is not inside an onedrivefs mount (or the mount is too old for wait): %w", p, err)
		}
		done := make(chan error, 1)
		go func() { done <- fsyncPath(p) }()
		tty := isTerminal(e.stdout) && !*quiet
		tick := time.NewTicker(waitRefresh)
		defer tick.Stop()
		shown := ""
		for {
			select {
			case err := <-done:
				if tty && shown != "" {
					fmt.Fprint(e.stdout, "\r\033[K")
				}
				if err != nil {
					return fmt.Errorf("not everything under %s is on OneDrive yet: %w", args[0], err)
				}
				if !*quiet {
					fmt.Fprintf(e.stdout, "everything under %s is on OneDrive\n", args[0])
				}
				return nil
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
				if !tty {
					continue
				}
				if line := pendingLine(p); line != shown {
					fmt.Fprint(e.stdout, "\r\033[K"+line)
					shown = line
				}
			}
		}
	}
	return c
}

// fsyncPath fsyncs a file or a folder: in an onedrivefs mount that waits for
// its pending copies and sends its journaled changes.
func fsyncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// pendingLine describes what is pending under p, for the progress line.
func pendingLine(p string) string {
	b, err := getxattr(p, xattrPending)
	if err != nil {
		return ""
	}
	var d pendingDoc
	if json.Unmarshal(b, &d) != nil {
		return ""
	}
	return fmt.Sprintf("waiting: %d copies (%s), %d uploads (%s)",
		d.Copies, humanBytes(d.CopyBytes), d.Uploads, humanBytes(d.UploadBytes))
}
