package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/onedrivefs/onedrivefs/fs"
)

// xattrStatus is the mount root's status attribute (fs/status.go).
const xattrStatus = "user.onedrive.status"

const statusDescription = `Show the state of the onedrivefs mount on MOUNTPOINT (any path inside it
will do), or of every onedrivefs mount when none is given: online or not (as
the last request of its poll loop found OneDrive), the files waiting to be sent and
their sizes, the records in the local journal, the server-side copy jobs
still running, the last poll and the drive's quota.

--json prints the mount's own document, the value of the extended attribute
user.onedrive.status on its root (getfattr -n user.onedrive.status MOUNTPOINT
reads the same), one document per mount.`

func newStatusCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "status [flags] [MOUNTPOINT]",
		Short: "show a mount's state: online, pending uploads, copy jobs, quota",
		Long:  statusDescription,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("at most one MOUNTPOINT, not %d", len(args))
			}
			return nil
		},
	}
	asJSON := c.Flags().Bool("json", false, "print the status as JSON")
	c.RunE = func(c *cobra.Command, args []string) error {
		var roots []string
		if len(args) == 1 {
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			if real, err := filepath.EvalSymlinks(dir); err == nil {
				dir = real
			}
			root, err := mountRootOf(dir)
			if err != nil {
				return err
			}
			roots = []string{root}
		} else {
			var err error
			if roots, err = onedrivefsMounts(); err != nil {
				return err
			}
			if len(roots) == 0 {
				fmt.Fprintln(e.stdout, "no onedrivefs mounts")
				return nil
			}
		}
		for i, root := range roots {
			b, err := getxattr(root, xattrStatus)
			if errors.Is(err, syscall.ENOTCONN) {
				return fmt.Errorf("%s is a dead mount (its daemon died): 'onedrivefs mount %s' clears it and mounts again, 'fusermount3 -uz %s' only clears it", root, root, root)
			}
			if err != nil {
				return fmt.Errorf("reading the status of %s: %w", root, err)
			}
			if *asJSON {
				fmt.Fprintf(e.stdout, "%s\n", b)
				continue
			}
			var st fs.Status
			if err := json.Unmarshal(b, &st); err != nil {
				return fmt.Errorf("reading the status of %s: %w", root, err)
			}
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			printStatus(e.stdout, root, st, time.Now())
		}
		return nil
	}
	return c
}

// printStatus writes a mount's status for a person.
func printStatus(w io.Writer, root string, st fs.Status, now time.Time) {
	state := "online"
	switch {
	case st.Offline && st.OfflineSince != nil:
		state = fmt.Sprintf("offline since %s (OneDrive is unreachable; changes are journaled and sent when it is back)",
			st.OfflineSince.Local().Format(time.DateTime))
	case !st.Online:
		state = "offline (OneDrive was not reached at the last try)"
	}
	if st.ReadOnly {
		state += ", read-only"
	}
	fmt.Fprintf(w, "%s: %s\n", root, state)
	if p := st.LastPoll; p != nil {
		line := fmt.Sprintf("%s ago", now.Sub(p.Time).Round(time.Second))
		if !p.OK {
			line += ": " + p.Error
		}
		fmt.Fprintf(w, "  last poll:       %s\n", line)
	} else {
		fmt.Fprintln(w, "  last poll:       none yet")
	}
	fmt.Fprintf(w, "  pending uploads: %d (%s)\n", len(st.PendingUploads), humanBytes(st.PendingBytes))
	for _, u := range st.PendingUploads {
		fmt.Fprintf(w, "    %s  %s  since %s\n", u.Name, humanBytes(u.Size), u.Since.Local().Format(time.DateTime))
	}
	fmt.Fprintf(w, "  journal records: %d\n", st.JournalRecords)
	if st.OfflineChanges > 0 {
		fmt.Fprintf(w, "  offline changes: %d (mkdir, rename, delete) to send\n", st.OfflineChanges)
	}
	fmt.Fprintf(w, "  pinned:          %d\n", len(st.Pinned))
	for _, p := range st.Pinned {
		fmt.Fprintf(w, "    %s\n", p)
	}
	fmt.Fprintf(w, "  copy jobs:       %d running\n", len(st.CopyJobs))
	for _, j := range st.CopyJobs {
		fmt.Fprintf(w, "    %s  %s -> %s  %.1f%%\n", j.ID, j.Source, j.Destination, j.PercentageComplete)
	}
	if q := st.Quota; q != nil && q.Total > 0 {
		fmt.Fprintf(w, "  quota:           %s used of %s, %s free", humanBytes(q.Used), humanBytes(q.Total), humanBytes(q.Remaining))
		if q.State != "" && q.State != "normal" {
			fmt.Fprintf(w, " (%s)", q.State)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintln(w, "  quota:           unknown")
	}
}

// onedrivefsMounts lists the mount points of onedrivefs mounts, from
// /proc/self/mountinfo.
func onedrivefsMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fl := range fields {
			if fl == "-" && i+1 < len(fields) && len(fields) > 4 {
				if fields[i+1] == "fuse.onedrivefs" {
					out = append(out, unescapeMountPath(fields[4]))
				}
				break
			}
		}
	}
	return out, sc.Err()
}
