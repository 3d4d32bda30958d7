// Command onedrivefs mounts a OneDrive drive as a directory tree through FUSE
// and turns copies made inside the mount into OneDrive's server-side copies.
//
// One binary carries every subcommand (docs/architecture.md, "Command line").
// This package owns the command line (cobra and pflag: GNU long flags
// anywhere on the line, help, completions and man pages from one set of
// definitions), logging set-up, signal handling and the wiring of the other
// packages; no other package parses flags or sets a default logger.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// env is what a command receives from main: the streams and the process
// environment, so that commands can be tested without touching globals.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// argv is the command line being run (after the mount(8) helper form
	// is rewritten); --daemon runs it again in the background.
	argv []string
}

// errUsage marks a usage mistake whose message the command has already
// printed; run adds the short usage line and exits 2.
var errUsage = errors.New("usage")

// errHelpShown: a command line that does nothing, answered with the help
// (exit 2).
var errHelpShown = errors.New("help shown")

// usageError is a usage mistake: run prints its message, the command's
// short usage line, and exits 2.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

func main() {
	// A reader of our output that goes away (`onedrivefs mount | head`, a
	// closed terminal) must not kill a mount: with SIGPIPE caught (into a
	// channel nobody reads; signals to a full channel are dropped), a write
	// to the broken pipe fails with EPIPE, which logging shrugs off. Caught
	// rather than ignored, so that the programs we run (fusermount3) start
	// with the default disposition.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// run runs one command line and returns the process exit status: 0, 1 for
// a failure, 2 for a usage mistake.
func run(ctx context.Context, e *env, args []string) int {
	root := newRootCmd(e)
	if helper, ok := mountHelperArgs(root, args); ok {
		args = helper
	}
	e.argv = args
	root.SetArgs(args)
	c, err := root.ExecuteContextC(ctx)
	if c == nil {
		c = root
	}
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelpShown):
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "%s: %s\n", c.CommandPath(), ue.msg)
		printShortUsage(e.stderr, c)
		return 2
	case errors.Is(err, errUsage):
		printShortUsage(e.stderr, c)
		return 2
	default:
		fmt.Fprintf(e.stderr, "%s: %v\n", c.CommandPath(), err)
		return 1
	}
}

// printShortUsage writes the one-line usage of c and where to read more.
func printShortUsage(w io.Writer, c *cobra.Command) {
	use := c.UseLine()
	if !c.HasParent() {
		use = c.Name() + " COMMAND [flags] [args]"
	}
	fmt.Fprintf(w, "Usage: %s\nRun '%s --help' for more.\n", use, c.CommandPath())
}

// newRootCmd builds the command tree. Every command writes its output to
// e.stdout and its diagnostics to e.stderr.
func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "onedrivefs",
		Short: "mount OneDrive as a directory tree, with server-side copies",
		Long: `onedrivefs mounts a OneDrive drive (Microsoft Graph) as a directory tree on
Linux through FUSE. Copies made inside the mount (cp, or the user.onedrive.copy
extended attribute) become OneDrive's own server-side copies: no byte of a
copied file crosses your network.

Start with 'onedrivefs demo' (a built-in fake OneDrive, no account needed), or
'onedrivefs login' then 'onedrivefs mount DIR'.`,
		Version:       versionString(),
		SilenceErrors: true,
		SilenceUsage:  true,
		// A first argument that is no command is a mistake (the mount(8)
		// helper form is rewritten before parsing; see mountHelperArgs).
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return &usageError{msg}
		},
		RunE: func(c *cobra.Command, args []string) error {
			c.SetOut(e.stderr)
			_ = c.Help()
			return errHelpShown
		},
	}
	root.SuggestionsMinimumDistance = 2
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &usageError{err.Error()} })
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [COMMAND]",
		Short: "show the help of a command",
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			var names []string
			for _, sub := range c.Root().Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					names = append(names, sub.Name())
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 || (len(args) > 0 && target == c.Root()) {
				return usagef("no command %q: 'onedrivefs help' lists them", strings.Join(args, " "))
			}
			target.InitDefaultHelpFlag()
			return target.Help()
		},
	})
	root.AddCommand(
		newVersionCmd(e),
		newLoginCmd(e),
		newLogoutCmd(e),
		newDrivesCmd(e),
		newProfilesCmd(e),
		newMountCmd(e),
		newStatusCmd(e),
		newCpCmd(e),
		newShareCmd(e),
		newJobsCmd(e),
		newWaitCmd(e),
		newPinCmd(e),
		newUnpinCmd(e),
		newDemoCmd(e),
		newFakeServerCmd(e),
		newGenManCmd(e),
	)
	return root
}

// noArgs refuses positional arguments.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}

// versionString is the version, the Go version and the platform.
func versionString() string {
	return fmt.Sprintf("%s %s %s/%s", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// xdgDir is $XDG_VAR/onedrivefs/sub, with ~/fallback standing in for
// $XDG_VAR when it is unset or relative (as the XDG base directory spec
// says); "" when HOME is unset too.
func xdgDir(e *env, xdgVar, fallback, sub string) string {
	base := e.getenv(xdgVar)
	if base == "" || !filepath.IsAbs(base) {
		home := e.getenv("HOME")
		if home == "" {
			return ""
		}
		base = filepath.Join(home, fallback)
	}
	return filepath.Join(base, "onedrivefs", sub)
}

// commandNames are the names (and aliases) of root's subcommands, with the
// ones cobra adds itself.
func commandNames(root *cobra.Command) map[string]bool {
	names := map[string]bool{"help": true, "completion": true}
	for _, c := range root.Commands() {
		names[c.Name()] = true
		for _, a := range c.Aliases {
			names[a] = true
		}
	}
	return names
}

// hasPrefixAny reports whether s starts with one of the prefixes.
func hasPrefixAny(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
