package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/onedrivefs/onedrivefs/copyjob"
)

const jobsDescription = `List the server-side copy jobs of the onedrivefs mount on MOUNTPOINT (any
path inside the mount will do): the running ones and the recent finished
ones, newest first, with their source, destination, status and percentage.
Jobs started by cp inside the mount are listed too. With --watch the list is
refreshed until every job has finished, or until Ctrl-C.`

// jobsRefresh is how often --watch reads the list again.
const jobsRefresh = time.Second

func runJobs(ctx context.Context, e *env, args []string) error {
	fset := newFlagSet(e, "jobs", "MOUNTPOINT", jobsDescription)
	watch := fset.Bool("watch", false, "refresh the list until every job has finished (or Ctrl-C)")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if fset.NArg() != 1 {
		fmt.Fprintln(e.stderr, "onedrivefs jobs: exactly one MOUNTPOINT is needed")
		fset.Usage()
		return errUsage
	}
	dir, err := filepath.Abs(fset.Arg(0))
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
		docs, err := jobList(root)
		if err != nil {
			return err
		}
		if first || !sameJobs(docs, shown) {
			if !first {
				if tty {
					fmt.Fprint(e.stdout, "\033[H\033[2J") // clear the screen
				} else {
					fmt.Fprintln(e.stdout)
				}
			}
			printJobs(e.stdout, docs)
			shown = docs
		}
		if !*watch || allFinished(docs) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(jobsRefresh):
		}
	}
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
func printJobs(w io.Writer, docs []copyjob.StatusDoc) {
	if len(docs) == 0 {
		fmt.Fprintln(w, "no copy jobs")
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
