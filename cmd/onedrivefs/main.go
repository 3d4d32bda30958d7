// Command onedrivefs mounts a OneDrive drive as a directory tree through FUSE
// and turns copies made inside the mount into OneDrive's server-side copies.
//
// One binary carries every subcommand (docs/architecture.md, "Command line").
// This package owns flag parsing, logging set-up, signal handling and the
// wiring of the other packages; no other package parses flags or sets a
// default logger.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
)

// command is one subcommand: it parses its own flags from args and returns an
// error for a non-zero exit. Commands write user output to env.stdout and
// diagnostics to env.stderr.
type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a command receives from main: the streams and the process
// environment, so that commands can be tested without touching globals.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// errUsage marks an error whose message has already been printed with the
// command's usage; main only sets the exit status.
var errUsage = errors.New("usage")

func commands() map[string]command {
	return map[string]command{
		"version":     {"print the version and exit", runVersion},
		"fake-server": {"run the fake OneDrive (Graph + OAuth) server", runFakeServer},
		"login":       {"sign in (device code) and store the token", runLogin},
		"logout":      {"delete the stored token", runLogout},
		"mount":       {"mount the drive (foreground; Ctrl-C unmounts)", runMount},
		"cp":          {"copy a file or folder inside a mount, server-side", runCp},
		"jobs":        {"list the server-side copy jobs of a mount", runJobs},
		"demo":        {"try it: mount a fake OneDrive with sample files, and print a guide", runDemo},
	}
}

func main() {
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand and returns the process exit status.
func run(ctx context.Context, e *env, args []string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "onedrivefs: unknown command %q\n\n", args[0])
		usage(e.stderr, cmds)
		return 2
	}
	err := c.run(ctx, e, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(e.stderr, "onedrivefs %s: %v\n", args[0], err)
		return 1
	}
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: onedrivefs COMMAND [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'onedrivefs COMMAND --help' for the flags of a command.")
}

// newFlagSet returns a flag set for a subcommand that reports errors instead
// of exiting, and prints its usage to the command's stderr.
func newFlagSet(e *env, name, argsUsage, description string) *flag.FlagSet {
	fset := flag.NewFlagSet("onedrivefs "+name, flag.ContinueOnError)
	fset.SetOutput(e.stderr)
	fset.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: onedrivefs %s [flags] %s\n\n%s\n\nflags:\n", name, argsUsage, description)
		fset.PrintDefaults()
	}
	return fset
}

// parseFlags parses args and maps flag errors to errUsage (already printed).
func parseFlags(fset *flag.FlagSet, args []string) error {
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
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
