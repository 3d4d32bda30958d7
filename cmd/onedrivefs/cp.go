package main

import (
	"bufio"
	"context"
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

	"github.com/onedrivefs/onedrivefs/copyjob"
)

// The copy commands talk to a running mount through its extended
// attributes (fs/copyxattr.go), as any script could: user.onedrive.copy
// starts a server-side copy, user.onedrive.copy.status and (on the mount's
// root) user.onedrive.copy.jobs report on it.

const cpDescription = `Copy SRC (a file, or a folder with everything in it) to DEST on OneDrive
itself: no byte of it crosses the network. SRC and DEST are paths in the same
onedrivefs mount; when DEST is an existing folder, or ends in /, the copy goes
into it under SRC's name. DEST must not exist yet.

The copy runs on OneDrive as a job and the command returns as soon as the
service has accepted it, printing the job's id; the copy appears at DEST when
the job completes ('onedrivefs jobs MOUNTPOINT' follows it). With --wait the
command waits for the job, showing its progress, and exits non-zero with the
service's error if the copy fails. Ctrl-C stops the waiting, not the copy.`

// Names of the mount's copy attributes (fs/copyxattr.go).
const (
	xattrCopy       = "user.onedrive.copy"
	xattrCopyStatus = "user.onedrive.copy.status"
	xattrCopyJobs   = "user.onedrive.copy.jobs"
	xattrPending    = "user.onedrive.pending"
)

// jobPollInterval is how often waiting commands read a job's status for
// its progress (the end is noticed at once: see waitForJob).
const jobPollInterval = 500 * time.Millisecond

func newCpCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "cp [flags] SRC DEST",
		Short: "copy a file or folder inside a mount, server-side",
		Long:  cpDescription,
		Args: func(c *cobra.Command, args []string) error {
			switch {
			case len(args) < 2:
				return usagef("SRC and DEST are needed")
			case len(args) > 2:
				return usagef("one SRC and one DEST, not %d paths (%s): copy several things with one cp each, or copy their folder",
					len(args), strings.Join(args, " "))
			}
			return nil
		},
	}
	wait := c.Flags().BoolP("wait", "w", false, "wait until the copy has finished, showing its progress")
	c.RunE = func(c *cobra.Command, args []string) error {
		ctx := c.Context()
		src, err := filepath.Abs(args[0])
		if err != nil {
			return err
		}
		if real, err := filepath.EvalSymlinks(src); err == nil {
			src = real
		}
		root, err := mountRootOf(src)
		if err != nil {
			return err
		}
		dest, err := absDest(args[1])
		if err != nil {
			return err
		}
		if err := setxattrRetry(src, xattrCopy, []byte(dest)); err != nil {
			return copyError(err, args[0], args[1])
		}
		doc, err := jobStatus(src)
		if err != nil {
			return fmt.Errorf("the copy was started but its status cannot be read: %w", err)
		}
		fmt.Fprintf(e.stdout, "copy job %s started: %s -> %s\n", doc.ID, doc.Source, doc.Destination)
		if !*wait {
			return nil
		}
		return waitForJob(ctx, e, root, src, destFolder(dest), doc.ID)
	}
	return c
}

// absDest makes a copy destination absolute, resolving symbolic links in the
// part that exists (the mount compares it with its own real path), and keeps
// a trailing slash ("into this folder").
func absDest(dest string) (string, error) {
	into := strings.HasSuffix(dest, "/")
	abs, err := filepath.Abs(dest)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	} else if real, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(real, filepath.Base(abs))
	}
	if into && abs != "/" {
		abs += "/"
	}
	return abs, nil
}

// copyError explains a refused copy.
func copyError(err error, src, dest string) error {
	switch {
	case errors.Is(err, syscall.EEXIST):
		return fmt.Errorf("%s already exists: choose a new name, or delete it first", dest)
	case errors.Is(err, syscall.EXDEV):
		return fmt.Errorf("%s is not in the same onedrivefs mount as %s: server-side copies stay inside one drive", dest, src)
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%s, or the folder %s should go into, does not exist", src, dest)
	case errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("OneDrive cannot copy %s to %s: the name is not allowed there, or a folder would go into itself (the mount's log says which)", src, dest)
	case errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%s: this mount cannot start server-side copies (%v)", src, err)
	}
	return fmt.Errorf("copying %s to %s: %w", src, dest, err)
}

// getxattr reads an attribute whose value may change between two reads.
func getxattr(path, name string) ([]byte, error) {
	size := 4096
	for range 8 {
		buf := make([]byte, size)
		n, err := syscall.Getxattr(path, name, buf)
		switch {
		case errors.Is(err, syscall.ERANGE):
			size *= 2
			continue
		case err != nil:
			return nil, err
		}
		return buf[:n], nil
	}
	return nil, syscall.ERANGE
}

// jobStatus reads the newest copy job started from path.
func jobStatus(path string) (copyjob.StatusDoc, error) {
	var doc copyjob.StatusDoc
	b, err := getxattr(path, xattrCopyStatus)
	if err != nil {
		return doc, err
	}
	err = json.Unmarshal(b, &doc)
	return doc, err
}

// jobList reads the copy jobs of the mount whose root is root.
func jobList(root string) ([]copyjob.StatusDoc, error) {
	b, err := getxattr(root, xattrCopyJobs)
	if err != nil {
		return nil, fmt.Errorf("reading the copy jobs of %s: %w", root, err)
	}
	var docs []copyjob.StatusDoc
	if err := json.Unmarshal(b, &docs); err != nil {
		return nil, fmt.Errorf("reading the copy jobs of %s: %w", root, err)
	}
	return docs, nil
}

// findJob reads job id: from the mount's list, or failing that as the
// newest job of src.
func findJob(root, src, id string) (copyjob.StatusDoc, error) {
	if docs, err := jobList(root); err == nil {
		for _, d := range docs {
			if d.ID == id {
				return d, nil
			}
		}
	}
	d, err := jobStatus(src)
	if err == nil && d.ID != id {
		err = fmt.Errorf("copy job %s is no longer listed by the mount", id)
	}
	return d, err
}

// terminalStatus reports whether a status word is final.
func terminalStatus(s string) bool { return s == "completed" || s == "failed" }

// destFolder is the folder a copy destination goes into.
func destFolder(dest string) string {
	if strings.HasSuffix(dest, "/") {
		return dest
	}
	return filepath.Dir(dest)
}

// syncFolder fsyncs folder dir, which in the mount returns once the copies
// into it have ended (`sync DIR`), and then closes done.
func syncFolder(dir string, done chan<- struct{}) {
	defer close(done)
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	defer d.Close()
	_ = d.Sync()
}

// waitForJob follows job id until it ends, showing its progress: a bar on a
// terminal, a line per change otherwise. The end is noticed as soon as the
// mount learns it, through an fsync of the destination's folder (dest),
// which returns when the copies into it have ended; the status is read
// meanwhile for the progress.
func waitForJob(ctx context.Context, e *env, root, src, dest, id string) error {
	bar := isTerminal(e.stdout)
	last := ""
	t := time.NewTicker(jobPollInterval)
	defer t.Stop()
	synced := make(chan struct{})
	go syncFolder(dest, synced)
	for {
		d, err := findJob(root, src, id)
		if err != nil {
			if bar {
				fmt.Fprintln(e.stdout)
			}
			return err
		}
		line := fmt.Sprintf("%5.1f%%  %s", d.PercentageComplete, d.Status)
		switch {
		case bar:
			fmt.Fprintf(e.stdout, "\r%s  %s ", progressBar(d.PercentageComplete, 30), line)
		case line != last:
			fmt.Fprintln(e.stdout, line)
		}
		last = line
		if terminalStatus(d.Status) {
			if bar {
				fmt.Fprintln(e.stdout)
			}
			if d.Status == "failed" {
				if d.Error != nil {
					return fmt.Errorf("the copy failed: %s: %s", d.Error.Code, d.Error.Message)
				}
				return errors.New("the copy failed")
			}
			fmt.Fprintf(e.stdout, "copied %s -> %s\n", d.Source, d.Destination)
			return nil
		}
		select {
		case <-ctx.Done():
			if bar {
				fmt.Fprintln(e.stdout)
			}
			return fmt.Errorf("stopped waiting; the copy goes on on OneDrive as job %s ('onedrivefs jobs %s' follows it)", id, root)
		case <-t.C:
		case <-synced:
			synced = nil // read the status now; it says whether the job ended
		}
	}
}

// progressBar draws pct (0–100) in width cells.
func progressBar(pct float64, width int) string {
	done := int(pct / 100 * float64(width))
	done = min(max(done, 0), width)
	return "[" + strings.Repeat("#", done) + strings.Repeat(".", width-done) + "]"
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// mountRootOf returns the root of the onedrivefs mount that holds path (an
// absolute path with symbolic links resolved), from /proc/self/mountinfo.
func mountRootOf(path string) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	best, bestType := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source super
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		fstype := ""
		for i, fl := range fields {
			if fl == "-" && i+1 < len(fields) {
				fstype = fields[i+1]
				break
			}
		}
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, bestType = mp, fstype
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if bestType != "fuse.onedrivefs" {
		return "", fmt.Errorf("%s is not in an onedrivefs mount", path)
	}
	return best, nil
}

// setxattrRetry sets an extended attribute, again after EINTR. Go's runtime
// interrupts system calls with its own signals, and a FUSE request that is
// interrupted answers EINTR; the mount answers it to the copy trigger only
// before the copy request is sent (it never abandons one half-way), so
// trying again cannot start a second copy.
func setxattrRetry(path, name string, value []byte) error {
	for {
		err := syscall.Setxattr(path, name, value, 0)
		if err != syscall.EINTR {
			return err
		}
	}
}
