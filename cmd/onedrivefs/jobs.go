package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/onedrivefs/onedrivefs/copyjob"
)

const jobsDescription = `List the server-side copy jobs of the onedrivefs mount on MOUNTPOINT (any
path inside the mount will do): the running ones and the recent finished
ones, newest first, with their source, destination, status and percentage.
Jobs started by cp inside the mount are listed too. With --watch the list is
refreshed until every job has finished, or until Ctrl-C; --running leaves out
the finished ones and -n N shows the newest N.`

// jobsRefresh is how often --watch reads the list again.
const jobsRefresh = time.Second

func newJobsCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "jobs [flags] MOUNTPOINT",
		Short: "list the server-side copy jobs of a mount",
		Long:  jobsDescription,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("exactly one MOUNTPOINT is needed, not %d arguments", len(args))
			}
			return nil
		},
	}
	watch := c.Flags().Bool("watch", false, "refresh the list until every job has finished (or Ctrl-C)")
	running := c.Flags().Bool("running", false, "list only the jobs still running")
	limit := c.Flags().IntP("limit", "n", 0, "list at most `N` jobs, the newest (0: all)")
	c.RunE = func(c *cobra.Command, args []string) error {
		ctx := c.Context()
		if *limit < 0 {
			return usagef("-n %d: a number of jobs is 0 (all) or more", *limit)
		}
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
		tty := isTerminal(e.stdout)
		var shown []copyjob.StatusDoc
		for first := true; ; first = false {
			all, err := jobList(root)
			if err != nil {
				return err
			}
			docs := selectJobs(all, *running, *limit)
			if first || !sameJobs(docs, shown) {
				if !first {
					if tty {
						fmt.Fprint(e.stdout, "\033[H\033[2J") // clear the screen
					} else {
						fmt.Fprintln(e.stdout)
					}
				}
				printJobs(e.stdout, docs, *running)
				shown = docs
			}
			if !*watch || allFinished(all) {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(jobsRefresh):
			}
		}
	}
	return c
}

// selectJobs keeps the running jobs (if running) and the newest limit (if
// not 0) of docs, which come newest first.
func selectJobs(docs []copyjob.StatusDoc, running bool, limit int) []copyjob.StatusDoc {
	var out []copyjob.StatusDoc
	for _, d := range docs {
		if running && terminalStatus(d.Status) {
			continue
		}
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, d)
	}
	return out
}

// sameJobs reports whether two readings show the same thing.
func sameJobs(a, b []copyjob.StatusDoc) bool {
	return slices.EqualFunc(a, b, func(x, y copyjob.StatusDoc) bool {
		return x.ID == y.ID && x.Status == y.Status && x.PercentageComplete == y.PercentageComplete
	})
}

func allFinished(docs []copyjob.StatusDoc) bool {
	for _, d := range docs {
		if !terminalStatus(d.Status) {
			return false
		}
	}
	return true
}

// printJobs writes the jobs as a table.
func printJobs(w io.Writer, docs []copyjob.StatusDoc, running bool) {
	if len(docs) == 0 {
		if running {
			fmt.Fprintln(w, "no copy jobs running")
		} else {
			fmt.Fprintln(w, "no copy jobs")
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSOURCE\tDESTINATION\tSTATUS\tDONE")
	for _, d := range docs {
		status := d.Status
		if d.Error != nil {
			status += " (" + d.Error.Code + ": " + strings.TrimSpace(d.Error.Message) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f%%\n", d.ID, d.Source, d.Destination, status, d.PercentageComplete)
	}
	_ = tw.Flush()
}
