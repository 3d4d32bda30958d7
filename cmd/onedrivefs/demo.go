package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

const demoDescription = `Try onedrivefs without an account: start the built-in fake OneDrive in this
process, seed it with sample files on its first run, sign in to it, mount it
on MOUNTPOINT (default ./onedrive, created if missing) and print a short
guide. Ctrl-C unmounts and stops everything.

The fake drive is saved under --data, so a second run keeps what you did;
--fresh wipes it and seeds it again. The demo keeps its own sign-in (in
--data) and cache (--cache-dir): your real OneDrive sign-in is never used
or touched. Copies take --copy-latency plus size / --copy-rate on the fake,
as they take time on the service.`

// demoMarker is created in the directories the demo owns; --fresh wipes only
// directories that carry it.
const demoMarker = ".onedrivefs-demo"

// The sample tree's large file (sparse on the fake: it costs no disk).
const (
	demoVideoPath = "Videos/holiday.mkv"
	demoVideoSize = 400 << 20
)

// demoOptions are the demo's flags and argument, resolved.
type demoOptions struct {
	mnt, dataDir, cacheDir string
	fresh                  bool
	logLevel               string
	level                  slog.Level
	copyLatency            time.Duration
	copyRate               int64
}

// defineDemoFlags defines the demo's flags on fset and returns what reads
// them, with the arguments, once parsed.
func defineDemoFlags(e *env, fset *pflag.FlagSet) func(args []string) (demoOptions, error) {
	dataFlag := fset.String("data", "", "`DIR` of the demo's drive and sign-in (default $XDG_DATA_HOME/onedrivefs/demo or ~/.local/share/onedrivefs/demo)")
	cacheFlag := fset.String("cache-dir", "", "`DIR` of the demo mount's cache (default $XDG_CACHE_HOME/onedrivefs/demo or ~/.cache/onedrivefs/demo)")
	fresh := fset.Bool("fresh", false, "wipe the demo drive, sign-in and cache, and seed the drive again")
	logLevel := fset.String("log-level", "warn", "log level of the mount and the fake drive: debug, info, warn or error")
	copyLatency := fset.Duration("copy-latency", 1500*time.Millisecond, "time every server-side copy takes on the fake before its size is counted")
	copyRate := fset.String("copy-rate", "200M", "bytes per second the fake copies (suffixes K, M, G)")
	return func(args []string) (demoOptions, error) {
		usage := func(format string, a ...any) (demoOptions, error) {
			fmt.Fprintf(e.stderr, "onedrivefs demo: "+format+"\n", a...)
			return demoOptions{}, errUsage
		}
		o := demoOptions{fresh: *fresh, logLevel: *logLevel, copyLatency: *copyLatency}
		if len(args) > 1 {
			return usage("at most one MOUNTPOINT, not %v", args)
		}
		if err := o.level.UnmarshalText([]byte(*logLevel)); err != nil {
			return usage("--log-level %q: use debug, info, warn or error", *logLevel)
		}
		var err error
		if o.copyRate, err = parseSize(*copyRate); err != nil {
			return usage("--copy-rate: %v", err)
		}
		if *copyLatency < 0 {
			return usage("--copy-latency cannot be negative")
		}
		mountArg := "onedrive"
		if len(args) == 1 {
			mountArg = args[0]
		}
		if o.mnt, err = filepath.Abs(mountArg); err != nil {
			return o, err
		}
		if o.dataDir, err = demoDir(e, *dataFlag, "XDG_DATA_HOME", filepath.Join(".local", "share")); err != nil {
			return o, err
		}
		o.cacheDir, err = demoDir(e, *cacheFlag, "XDG_CACHE_HOME", ".cache")
		return o, err
	}
}

func newDemoCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "demo [flags] [MOUNTPOINT]",
		Short: "try it: mount a fake OneDrive with sample files, and print a guide",
		Long:  demoDescription,
	}
	parse := defineDemoFlags(e, c.Flags())
	c.RunE = func(c *cobra.Command, args []string) error {
		o, err := parse(args)
		if err != nil {
			return err
		}
		return runDemo(c.Context(), e, o)
	}
	return c
}

// runDemo serves the fake drive in this process, signs in to it and mounts
// it (runMount, in this process too), until ctx ends (Ctrl-C). This process
// serves the mount, so it never calls into it: the user does, from a shell.
func runDemo(ctx context.Context, e *env, o demoOptions) error {
	for _, d := range []string{o.dataDir, o.cacheDir} {
		if err := claimDemoDir(d); err != nil {
			return err
		}
	}
	// One demo per data directory: two fakes saving one drive would lose
	// changes.
	unlock, err := lockDemoDir(o.dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	if o.fresh {
		for _, d := range []string{o.dataDir, o.cacheDir} {
			if err := wipeDemoDir(d); err != nil {
				return err
			}
		}
	}
	createdMnt, err := prepareDemoMountPoint(e, o.mnt)
	if err != nil {
		return err
	}
	if createdMnt {
		// Leave no empty ./onedrive behind (Remove fails on a non-empty one).
		defer os.Remove(o.mnt)
	}

	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: o.level}))
	fake, err := graphtest.New(graphtest.Options{
		DataDir: filepath.Join(o.dataDir, "drive"),
		Copy:    graphtest.CopyOptions{Latency: o.copyLatency, Rate: o.copyRate},
		Logger:  log,
	})
	if err != nil {
		return err
	}
	stopFake, baseURL, err := serveDemoFake(fake, log)
	if err != nil {
		_ = fake.Close()
		return err
	}
	defer func() {
		if err := stopFake(); err != nil {
			fmt.Fprintf(e.stderr, "onedrivefs demo: %v\n", err)
		}
	}()

	root, err := fake.List("/")
	if err != nil {
		return err
	}
	if len(root) == 0 {
		fmt.Fprintln(e.stdout, "Seeding the demo drive with sample files (first run)…")
		if err := seedDemo(fake); err != nil {
			return fmt.Errorf("seeding the demo drive: %w", err)
		}
	}
	configDir := filepath.Join(o.dataDir, "config")
	if err := demoSignIn(ctx, baseURL, configDir); err != nil {
		return err
	}

	// The demo's drive has no other users: no "Shared with me" folder.
	mountArgs := []string{"--config-dir", configDir, "--cache-dir", o.cacheDir, "--log-level", o.logLevel,
		"--no-shared-with-me", o.mnt}
	mounted := make(chan error, 1)
	go func() { mounted <- runMount(ctx, e, mountArgs) }()
	if err := waitMounted(o.mnt, mounted); err != nil {
		if errors.Is(err, errMountEnded) && ctx.Err() != nil {
			return nil // Ctrl-C while mounting
		}
		return err
	}
	printDemoGuide(e, o, baseURL)
	if err := <-mounted; err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\nUnmounted %s. The demo drive is saved in %s: 'make demo' again carries on "+
		"where you left it, 'onedrivefs demo --fresh' starts over.\n", displayPath(o.mnt), o.dataDir)
	return nil
}

// demoDir is flagValue made absolute, or $XDG_VAR/onedrivefs/demo (with
// ~/fallback when XDG_VAR is unset or relative).
func demoDir(e *env, flagValue, xdgVar, fallback string) (string, error) {
	if flagValue != "" {
		return filepath.Abs(flagValue)
	}
	if dir := xdgDir(e, xdgVar, fallback, "demo"); dir != "" {
		return dir, nil
	}
	return "", errors.New("cannot tell where the demo keeps its files: set HOME or pass --data and --cache-dir")
}

// claimDemoDir creates dir (0700) if it is missing and marks it as the
// demo's when it is new or empty. A directory with other contents and no
// mark is used as it is, but never wiped by --fresh.
func claimDemoDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) > 0 {
		return err
	}
	return os.WriteFile(filepath.Join(dir, demoMarker), []byte("created by 'onedrivefs demo'; --fresh wipes this directory\n"), 0o600)
}

// lockDemoDir takes an exclusive lock on the demo's data directory for the
// life of the demo.
func lockDemoDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another onedrivefs demo is running on %s: stop it first (Ctrl-C in its terminal)", dir)
	}
	return func() { f.Close() }, nil
}

// wipeDemoDir empties dir (but for its mark and the lock) if the demo
// created it; it refuses to touch a directory without the mark.
func wipeDemoDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
		return fmt.Errorf("--fresh: %s was not created by the demo (no %s in it): not wiping it", dir, demoMarker)
	}
	for _, de := range entries {
		if de.Name() == demoMarker || de.Name() == "lock" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, de.Name())); err != nil {
			return err
		}
	}
	return nil
}

// prepareDemoMountPoint creates mnt if it is missing and detaches a dead
// mount an earlier run left there (its daemon killed). It reports whether it
// created mnt.
func prepareDemoMountPoint(e *env, mnt string) (bool, error) {
	_, err := os.Stat(mnt)
	if err == nil && isDeadMount(mnt) {
		err = syscall.ENOTCONN // the stat was answered from the kernel's cache
	}
	if errors.Is(err, syscall.ENOTCONN) {
		fmt.Fprintf(e.stderr, "onedrivefs demo: %s is a dead mount (its daemon died); detaching it\n", mnt)
		if err := lazyUnmount(mnt); err != nil {
			return false, fmt.Errorf("detaching the dead mount %s: %w (try 'fusermount3 -u %s')", mnt, err, mnt)
		}
		_, err = os.Stat(mnt)
	}
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(mnt, 0o755); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, err // checkMountPoint (in runMount) says what else is wrong
}

// serveDemoFake serves fake on a free loopback port and returns how to stop
// it (shut the listener down, save the drive) and its base URL.
func serveDemoFake(fake *graphtest.Server, log *slog.Logger) (stop func() error, baseURL string, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	hs := &http.Server{
		Handler:           fake,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	fake.StartAutoSave(2 * time.Second)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln) // ends with ErrServerClosed at Shutdown
	}()
	stop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if hs.Shutdown(ctx) != nil {
			_ = hs.Close()
		}
		<-served
		if err := fake.Close(); err != nil {
			return fmt.Errorf("saving the demo drive: %w", err)
		}
		return nil
	}
	return stop, "http://" + ln.Addr().String(), nil
}

// demoSignIn runs the device-code flow against the fake (which approves a
// code on its first poll) and stores the sign-in in configDir. It runs at
// every start: the fake listens on a new port each time.
func demoSignIn(ctx context.Context, baseURL, configDir string) error {
	p := remote.Profile{GraphURL: baseURL + "/v1.0", AuthURL: baseURL}.WithDefaults()
	if err := remote.EnsureConfigDir(configDir, nil); err != nil {
		return err
	}
	tok, err := remote.DeviceLogin(ctx, p.OAuthConfig(), io.Discard)
	if err != nil {
		return fmt.Errorf("signing in to the demo drive: %w", err)
	}
	if err := remote.NewTokenStore(configDir, nil).Save(tok); err != nil {
		return err
	}
	return remote.SaveProfile(configDir, p, nil)
}

// waitMounted waits until mnt is a mount point, or until the mount command
// returns (its error is returned, or errMountEnded for a nil one). It only
// reads /proc/self/mountinfo: this process serves the mount and must not
// call into it.
func waitMounted(mnt string, mountDone <-chan error) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if ok, _ := isMountPoint(mnt); ok {
			return nil
		}
		select {
		case err := <-mountDone:
			if err == nil {
				err = errMountEnded
			}
			return err
		case <-t.C:
		}
	}
}

var errMountEnded = errors.New("the mount ended before it was ready")

// printDemoGuide tells the user where the drive is and what to try.
func printDemoGuide(e *env, o demoOptions, baseURL string) {
	m := displayPath(o.mnt)
	bin := displayBinary()
	w := e.stdout
	fmt.Fprintf(w, `
onedrivefs demo: a fake OneDrive is mounted on %[1]s
  Documents/  Photos/  Archive/Journal/ (500 notes)  Videos/holiday.mkv (%[2]d MiB)

Try, in another terminal (from %[3]s):

  time cp %[1]s/Videos/holiday.mkv %[1]s/Videos/holiday-copy.mkv
      a server-side copy: OneDrive copies the file, nothing is downloaded or uploaded
  setfattr -n user.onedrive.copy -v Photos-backup %[1]s/Photos
  getfattr -n user.onedrive.copy.status %[1]s/Photos
      copies a whole folder in the background; the status shows the job's progress
  %[4]s jobs %[1]s
      the copy jobs of the mount

%[5]s
What crossed the wire so far: curl -s %[6]s/_fake/stats
Stop with Ctrl-C here: it unmounts; the drive is kept in %[7]s.
`, m, demoVideoSize>>20, mustGetwd(), bin, copyTiming(o.copyLatency, o.copyRate), baseURL, o.dataDir)
}

// displayPath is p relative to the working directory when it is inside it,
// else p.
func displayPath(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	rel, err := filepath.Rel(wd, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return p
	}
	return rel
}

// displayBinary is how the user can run this binary from the working
// directory: "bin/onedrivefs" after 'make demo', "onedrivefs" when it is the
// one on PATH, else its absolute path.
func displayBinary() string {
	exe, err := os.Executable()
	if err != nil {
		return "onedrivefs"
	}
	if onPath, err := exec.LookPath("onedrivefs"); err == nil {
		if abs, err := filepath.Abs(onPath); err == nil && abs == exe {
			return "onedrivefs"
		}
	}
	if d := displayPath(exe); d != exe {
		return d
	}
	return exe
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	return wd
}

// copyTiming describes the fake's copy knobs in a sentence.
func copyTiming(latency time.Duration, rate int64) string {
	var per string
	switch {
	case rate <= 0:
		return fmt.Sprintf("Each copy takes %s on the fake drive, as copies take time on the service.", latency)
	case rate%(1<<30) == 0:
		per = fmt.Sprintf("%d GiB", rate>>30)
	case rate%(1<<20) == 0:
		per = fmt.Sprintf("%d MiB", rate>>20)
	case rate%(1<<10) == 0:
		per = fmt.Sprintf("%d KiB", rate>>10)
	default:
		per = fmt.Sprintf("%d bytes", rate)
	}
	return fmt.Sprintf("Each copy takes %s plus 1 s per %s on the fake drive, as copies take time on the service.", latency, per)
}
