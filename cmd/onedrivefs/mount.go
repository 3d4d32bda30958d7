package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/fs"
	"github.com/onedrivefs/onedrivefs/metastore"
	"github.com/onedrivefs/onedrivefs/remote"
)

const mountDescription = `Mount the signed-in OneDrive drive on MOUNTPOINT, in the foreground, until
Ctrl-C (SIGINT) or SIGTERM: then unsent changes are sent (or kept in the
journal under the cache dir, for the next mount) and the drive is unmounted.
Logs go to stderr, or to --log-file.

With --daemon (-d) the mount runs in the background: the command returns once
the drive is mounted and serving (exit status 0), or with the reason it could
not mount (non-zero). The daemon logs to --log-file, else to the system log
(the journal). Under systemd (Type=notify) it reports READY=1 when serving,
STATUS= lines with pending uploads and copy jobs, STOPPING=1, and WATCHDOG=1
when the unit sets WatchdogSec.

Signals: SIGINT and SIGTERM send what can be sent and unmount. SIGHUP (a
closed terminal) and SIGPIPE (a reader of the output gone) do not stop the
mount: it keeps serving; SIGHUP also reopens --log-file (after logrotate).
A mount point left dead by a daemon that was killed ("Transport endpoint is
not connected") is cleared, and the mount goes on.

Settings: the flags below, in this order of precedence: the command line,
-o options (as mount(8) passes them: allow_other, ro, cache_size=20G,
poll_interval=1m, log_file=, log_level=, cache_dir=, config_dir=, profile=),
the profile's config file (config.toml in its directory: one "flag = value"
per line, e.g. cache-size = "20G"), the defaults.

As a mount(8) helper: 'mount -t fuse.onedrivefs PROFILE DIR -o OPTIONS' (or
the same in /etc/fstab) runs 'onedrivefs PROFILE DIR -o OPTIONS', which is
'onedrivefs mount --daemon --profile PROFILE DIR -o OPTIONS' (PROFILE
"default" or "onedrivefs": the default profile).

Durability: once close() or fsync() on a file returns success, its content is
on OneDrive, or in the local journal that the next mount sends.

Environment (profiling and testing, for developers):
  ONEDRIVEFS_CPUPROFILE=FILE  write a CPU profile (runtime/pprof) to FILE,
                              from the moment the drive is mounted to unmount
  ONEDRIVEFS_MEMPROFILE=FILE  write a heap profile to FILE at unmount
  ONEDRIVEFS_LAZY_BASE_MIN=N  a write into an existing file of N bytes or more
                              does not wait for its content (default 4 MiB)
  ONEDRIVEFS_MAX_ENTRIES=N    keep at most N items' entries in memory (default
                              30000; the rest are read back from the local
                              copy of the tree); -1: no bound
Read them with 'go tool pprof -top onedrivefs FILE'.`

// Time given to unsent changes at shutdown before they are journaled instead.
const shutdownFlushTimeout = 2 * time.Minute

// statusEvery is how often a mount under systemd updates its STATUS= line.
const statusEvery = 10 * time.Second

// mountOptions are the mount command's settings, once flags, -o options and
// the config file are merged.
type mountOptions struct {
	configDir, profile   string
	cacheDir, cacheSize  string
	pollInterval         time.Duration
	readOnly, allowOther bool
	logLevel, logFile    string
	debugFuse, daemon    bool
	syncTree             bool
	options              []string // -o, comma-separated lists

	readAhead string // kernel read-ahead of the mount, set when root

	// sharedWithMe names the virtual folder of items shared with the user
	// (fs.Config.SharedWithMe); noSharedWithMe leaves it out.
	sharedWithMe   string
	noSharedWithMe bool

	// Read from the above by resolve.
	level          slog.Level
	maxBytes       int64
	readAheadBytes int64 // fs.MountOptions.ReadAhead: -1 for the kernel's default
}

func newMountCmd(e *env) *cobra.Command { return mountCmd(e, &mountOptions{}) }

// mountCmd is the mount command, its settings resolved into o.
func mountCmd(e *env, o *mountOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "mount [flags] MOUNTPOINT",
		Short: "mount the drive (foreground, or --daemon)",
		Long:  mountDescription,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("exactly one MOUNTPOINT is needed, not %d arguments", len(args))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.configDir, "config-dir", "", "`DIR` holding the profiles (default $XDG_CONFIG_HOME/onedrivefs)")
	f.StringVarP(&o.profile, "profile", "p", "", "`NAME` of the profile (account) to mount (default: the default profile)")
	f.StringVar(&o.cacheDir, "cache-dir", "", "cache `DIR` (default $XDG_CACHE_HOME/onedrivefs/DRIVE-ID)")
	f.StringVar(&o.cacheSize, "cache-size", "10G", "bound of the content cache (bytes, or with a K, M, G or T suffix)")
	f.StringVar(&o.readAhead, "read-ahead", "4M", "kernel read-ahead of the mount, set when root (bytes, or with a K or M suffix; 0: the kernel's default)")
	f.DurationVar(&o.pollInterval, "poll-interval", fs.DefaultPollInterval, "how often remote changes are polled for (negative: never)")
	f.BoolVar(&o.readOnly, "read-only", false, "mount read-only")
	f.StringVar(&o.sharedWithMe, "shared-with-me", "Shared with me", "`NAME` of the virtual read-only folder at the root listing what others shared with you and you did not add as a shortcut")
	f.BoolVar(&o.noSharedWithMe, "no-shared-with-me", false, "leave the shared-with-me folder out")
	f.BoolVar(&o.allowOther, "allow-other", false, "let other users into the mount (needs user_allow_other in /etc/fuse.conf unless root)")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&o.logFile, "log-file", "", "append the log to `FILE` instead of stderr (with --daemon: instead of the system log)")
	f.BoolVar(&o.debugFuse, "debug-fuse", false, "log every FUSE request and answer (implies --log-level debug)")
	f.BoolVar(&o.syncTree, "sync-tree", false, "store the whole drive's tree at the first mount (one paged delta enumeration in the background), so all of it is browsable offline")
	f.BoolVarP(&o.daemon, "daemon", "d", false, "run in the background; return once the mount serves (exit 0) or failed")
	f.StringArrayVarP(&o.options, "options", "o", nil, "mount `OPTIONS`, comma-separated, as mount(8) passes them (see above)")
	_ = c.RegisterFlagCompletionFunc("profile", completeProfiles(e))
	_ = c.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	c.RunE = func(c *cobra.Command, args []string) error {
		if err := o.resolve(e, c.Flags()); err != nil {
			return err
		}
		ready := daemonChildReporter(e)
		if o.daemon && ready == nil {
			return startDaemon(c.Context(), e, *o, args[0])
		}
		err := serveMount(c.Context(), e, *o, args[0], ready)
		if err != nil && ready != nil {
			ready.failed(err)
		}
		return err
	}
	return c
}

// runMount runs the mount command with args in this process (the demo
// mounts this way).
func runMount(ctx context.Context, e *env, args []string) error {
	c := newMountCmd(e)
	c.SetArgs(args)
	c.SilenceErrors, c.SilenceUsage = true, true
	c.SetOut(e.stdout)
	c.SetErr(e.stderr)
	return c.ExecuteContext(ctx)
}

// serveMount mounts the drive on mountArg and serves it until ctx ends
// (SIGINT, SIGTERM) or someone else unmounts it. ready, when not nil, is
// told once the mount serves (the --daemon parent waits for that).
func serveMount(ctx context.Context, e *env, o mountOptions, mountArg string, ready *readyReporter) error {
	// A closed terminal sends SIGHUP: the mount keeps serving (see
	// mountDescription). Caught from the start, so that it cannot kill a
	// mount that is starting either.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	setMemoryLimit(e)

	level := o.level
	if o.debugFuse && level > slog.LevelDebug {
		level = slog.LevelDebug // the FUSE trace is logged at debug level
	}
	logOut, logFile, closeLog, err := openLog(e, o, ready != nil)
	if err != nil {
		return err
	}
	defer closeLog()
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))

	dir, err := filepath.Abs(mountArg)
	if err != nil {
		return err
	}
	if err := checkMountPoint(e, dir); err != nil {
		return err
	}
	if err := checkFUSE(o.allowOther); err != nil {
		return err
	}

	prof, err := openProfiles(e, logger)
	if err != nil {
		return err
	}
	defer prof.close()

	cfgDir, err := profileDir(e, o.configDir, o.profile)
	if err != nil {
		return err
	}
	profile, tokens, err := remote.LoadSignIn(ctx, cfgDir, logger)
	if errors.Is(err, remote.ErrNotSignedIn) {
		return fmt.Errorf("not signed in (no sign-in in %s): run 'onedrivefs login%s' first", cfgDir, profileFlags(o.configDir, o.profile))
	}
	if err != nil {
		return err
	}
	client, err := remote.New(remote.Config{GraphURL: profile.GraphURL, DriveID: profile.DriveID, Tokens: tokens, Logger: logger,
		DetectOffline: true})
	if err != nil {
		return err
	}
	driveID, offline, err := reachDrive(ctx, e, client, cfgDir, o.cacheDir == "")
	if err != nil {
		return fmt.Errorf("reaching the drive at %s: %w", profile.GraphURL, err)
	}
	cdir := o.cacheDir
	if cdir == "" {
		if cdir, err = defaultCacheDir(e, driveID); err != nil {
			return err
		}
	}
	if cdir, err = filepath.Abs(cdir); err != nil {
		return err
	}
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		return fmt.Errorf("creating the cache directory: %w", err)
	}
	unlock, err := lockCacheDir(cdir)
	if err != nil {
		return err
	}
	defer unlock()

	content, err := cache.OpenContent(cache.ContentOptions{Dir: filepath.Join(cdir, "content"), MaxBytes: o.maxBytes, Logger: logger})
	if err != nil {
		return err
	}
	defer content.Close()
	staging, err := cache.OpenStaging(cache.StagingOptions{Dir: cdir, Logger: logger})
	if err != nil {
		return err
	}
	state, err := cache.OpenState(cdir, logger)
	if err != nil {
		return err
	}
	store, err := metastore.Open(filepath.Join(cdir, treeStoreFile))
	if err != nil {
		return fmt.Errorf("opening the local copy of the tree: %w", err)
	}
	defer store.Close()
	if offline {
		fmt.Fprintf(e.stderr, "onedrivefs: OneDrive is unreachable: starting offline from the local copy of the tree; changes are journaled and sent when it is back\n")
	}
	var lazyBaseMin int64
	if v := e.getenv("ONEDRIVEFS_LAZY_BASE_MIN"); v != "" {
		if lazyBaseMin, err = strconv.ParseInt(v, 10, 64); err != nil || lazyBaseMin <= 0 {
			return fmt.Errorf("ONEDRIVEFS_LAZY_BASE_MIN: want a size in bytes, got %q", v)
		}
	}
	var maxEntries int
	if v := e.getenv("ONEDRIVEFS_MAX_ENTRIES"); v != "" {
		if maxEntries, err = strconv.Atoi(v); err != nil || maxEntries == 0 || maxEntries < -1 {
			return fmt.Errorf("ONEDRIVEFS_MAX_ENTRIES: want a positive number of entries, or -1 for no bound, got %q", v)
		}
	}
	fsys, err := fs.New(fs.Config{
		Remote: client, Content: content, Staging: staging, State: state, Logger: logger, Store: store, SyncTree: o.syncTree,
		MaxEntries: maxEntries,
		UID:        uint32(os.Getuid()), GID: uint32(os.Getgid()), ReadOnly: o.readOnly, PollInterval: o.pollInterval,
		LazyBaseMin: lazyBaseMin,
		// Server-side copy jobs live beside the journal, so that a job still
		// running at unmount is resumed, and its result shown, by the next
		// mount.
		CopyJobsDir:  filepath.Join(cdir, "copyjobs"),
		SharedWithMe: o.sharedWithMe,
	})
	if err != nil {
		return err
	}
	m, err := fsys.Mount(ctx, dir, fs.MountOptions{AllowOther: o.allowOther, Debug: o.debugFuse, ReadAhead: o.readAheadBytes})
	if err != nil {
		return err
	}
	// From here on, every way out unmounts.
	prof.startCPU()
	defer prof.stop() // runs before close, after the unmount below
	sd := newSystemdNotifier(e.getenv, logger)
	defer sd.close()
	sd.notify("READY=1\nSTATUS=" + statusLine(fsys.Status()))
	if ready != nil {
		ready.serving()
	}
	logger.Info("serving", "drive", driveID, "dir", dir, "profile", cfgDir, "offline", offline)
	if ready == nil {
		fmt.Fprintf(e.stderr, "onedrivefs: drive %s mounted on %s; press Ctrl-C to unmount\n", driveID, dir)
	}

	done := make(chan struct{})
	go func() {
		m.Wait()
		close(done)
	}()
	var statusC, watchdogC <-chan time.Time
	if sd != nil {
		t := time.NewTicker(statusEvery)
		defer t.Stop()
		statusC = t.C
		if every := sd.watchdogEvery(); every > 0 {
			w := time.NewTicker(every)
			defer w.Stop()
			watchdogC = w.C
		}
	}
	for stop := false; !stop; {
		select {
		case <-done:
			sd.notify("STOPPING=1")
			logger.Info("unmounted by someone else", "dir", dir)
			return nil // unmounted by someone else (fusermount3 -u, umount)
		case <-ctx.Done():
			stop = true
		case <-hup:
			if logFile != nil {
				if err := logFile.reopen(); err != nil {
					logger.Warn("SIGHUP: reopening the log file failed; logging on to the old one", "err", err)
				}
			}
			logger.Info("SIGHUP: the log file (if any) is reopened; the mount keeps serving (SIGTERM or 'fusermount3 -u' stops it)")
		case <-statusC:
			sd.notify("STATUS=" + statusLine(fsys.Status()))
		case <-watchdogC:
			sd.notify("WATCHDOG=1")
		}
	}
	sd.notify("STOPPING=1\nSTATUS=sending unsent changes, then unmounting")
	logger.Info("sending unsent changes, then unmounting", "dir", dir)
	if ready == nil {
		fmt.Fprintln(e.stderr, "onedrivefs: sending unsent changes, then unmounting")
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownFlushTimeout)
	defer cancel()
	if err := m.Unmount(sctx); err != nil {
		logger.Warn("unmount failed, detaching the mount lazily", "err", err)
		if lerr := lazyUnmount(dir); lerr != nil {
			return fmt.Errorf("%v; lazy unmount: %w", err, lerr)
		}
	}
	<-done
	return nil
}

// statusLine sums up a mount's status in one line, for systemd.
func statusLine(s fs.Status) string {
	state := "serving"
	if s.LastPoll != nil && !s.LastPoll.OK {
		state = "serving, OneDrive unreachable"
	}
	return fmt.Sprintf("%s %s; %d uploads pending (%s); %d copy jobs running",
		state, s.MountPoint, len(s.PendingUploads), humanBytes(s.PendingBytes), len(s.CopyJobs))
}

// profiles are the CPU and heap profiles the environment asks for
// (ONEDRIVEFS_CPUPROFILE, ONEDRIVEFS_MEMPROFILE; see mountDescription). A
// nil file is a profile not asked for. Failing to write one is logged, not
// fatal: the mount matters more.
type profiles struct {
	log      *slog.Logger
	cpu, mem *os.File
	cpuOn    bool
}

// openProfiles creates the files asked for, so that a bad path is refused
// before anything is mounted.
func openProfiles(e *env, log *slog.Logger) (*profiles, error) {
	p := &profiles{log: log}
	for _, want := range []struct {
		name string
		f    **os.File
	}{{"ONEDRIVEFS_CPUPROFILE", &p.cpu}, {"ONEDRIVEFS_MEMPROFILE", &p.mem}} {
		path := e.getenv(want.name)
		if path == "" {
			continue
		}
		f, err := os.Create(path)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("%s: %w", want.name, err)
		}
		*want.f = f
	}
	return p, nil
}

// startCPU starts the CPU profile, if asked for.
func (p *profiles) startCPU() {
	if p.cpu == nil {
		return
	}
	if err := pprof.StartCPUProfile(p.cpu); err != nil {
		p.log.Warn("CPU profile not started", "file", p.cpu.Name(), "err", err)
		return
	}
	p.cpuOn = true
}

// stop ends the CPU profile and writes the heap profile, if asked for.
func (p *profiles) stop() {
	if p.cpuOn {
		pprof.StopCPUProfile()
		p.cpuOn = false
		p.log.Info("CPU profile written", "file", p.cpu.Name())
	}
	if p.mem != nil {
		runtime.GC() // the heap profile is as of the last completed GC
		if err := pprof.Lookup("heap").WriteTo(p.mem, 0); err != nil {
			p.log.Warn("heap profile not written", "file", p.mem.Name(), "err", err)
		} else {
			p.log.Info("heap profile written", "file", p.mem.Name())
		}
	}
	p.close()
}

// close closes the profile files (idempotent).
func (p *profiles) close() {
	for _, f := range []**os.File{&p.cpu, &p.mem} {
		if *f == nil {
			continue
		}
		if err := (*f).Close(); err != nil {
			p.log.Warn("profile file not closed", "file", (*f).Name(), "err", err)
		}
		*f = nil
	}
}

// isDeadMount reports whether dir is a FUSE mount whose daemon died. A stat
// of it may be answered from the kernel's attribute cache for a while after
// the daemon is gone; opening the directory always reaches the daemon, and
// the kernel answers ENOTCONN for it once the connection is lost.
func isDeadMount(dir string) bool {
	_, err := os.Stat(dir)
	if err == nil {
		var d *os.File
		if d, err = os.Open(dir); err == nil {
			_ = d.Close()
		}
	}
	return errors.Is(err, syscall.ENOTCONN)
}

// checkMountPoint refuses a mount point that is missing, not a directory,
// not empty, or already a mount point; it clears a dead mount first.
func checkMountPoint(e *env, dir string) error {
	fi, err := os.Stat(dir)
	if err == nil && isDeadMount(dir) {
		err = syscall.ENOTCONN // the stat was answered from the kernel's cache
	}
	if errors.Is(err, syscall.ENOTCONN) {
		// A daemon that died (kill -9, a crash) leaves its mount behind,
		// answering ENOTCONN to everything: clear it and carry on.
		if uerr := lazyUnmount(dir); uerr != nil {
			return fmt.Errorf("the mount point %s is a dead mount (its daemon died) and clearing it failed (%v): run 'fusermount3 -uz %s'", dir, uerr, dir)
		}
		fmt.Fprintf(e.stderr, "onedrivefs: cleared a dead mount on %s (left by a daemon that died)\n", dir)
		fi, err = os.Stat(dir)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("the mount point %s does not exist: create it with 'mkdir -p %s'", dir, dir)
	case errors.Is(err, syscall.ENOTCONN):
		return fmt.Errorf("the mount point %s is still a dead mount after clearing it: run 'fusermount3 -uz %s'", dir, dir)
	case err != nil:
		return fmt.Errorf("the mount point %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("the mount point %s is not a directory", dir)
	}
	if mounted, err := isMountPoint(dir); err == nil && mounted {
		return fmt.Errorf("the mount point %s is busy: something is already mounted there", dir)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("the mount point %s: %w", dir, err)
	}
	defer d.Close()
	if names, _ := d.Readdirnames(1); len(names) > 0 {
		return fmt.Errorf("the mount point %s is not empty: mount on an empty directory", dir)
	}
	return nil
}

// isMountPoint reports whether dir is listed in /proc/self/mountinfo.
func isMountPoint(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMountPath(fields[4]) == dir {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// checkFUSE tells clearly when FUSE cannot work here.
func checkFUSE(allowOther bool) error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if errors.Is(err, os.ErrPermission) {
		// fusermount3 opens the device as the user too.
		return fmt.Errorf("FUSE is not available to you (%v): /dev/fuse is usually mode 0666; ask an administrator, or mount as root", err)
	}
	if err != nil {
		return fmt.Errorf("FUSE is not available (%v): load the fuse module ('modprobe fuse') or, in a container, pass /dev/fuse", err)
	}
	f.Close()
	if os.Geteuid() == 0 {
		return nil
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		return errors.New("fusermount3 is not installed: install the fuse3 package (e.g. 'apt-get install fuse3')")
	}
	if allowOther && !fuseConfAllowsOther("/etc/fuse.conf") {
		return errors.New("--allow-other needs 'user_allow_other' in /etc/fuse.conf (ask an administrator to add it), or mount without --allow-other")
	}
	return nil
}

// fuseConfAllowsOther reports whether path has an uncommented user_allow_other line.
func fuseConfAllowsOther(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "user_allow_other" {
			return true
		}
	}
	return false
}

// defaultCacheDir is $XDG_CACHE_HOME/onedrivefs/DRIVE (or ~/.cache/…).
func defaultCacheDir(e *env, driveID string) (string, error) {
	if dir := xdgDir(e, "XDG_CACHE_HOME", ".cache", sanitizeDirName(driveID)); dir != "" {
		return dir, nil
	}
	return "", errors.New("cannot tell where the cache directory is: set HOME or pass --cache-dir")
}

func sanitizeDirName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 || r == '!' {
			return '_'
		}
		return r
	}, s)
}

// lockCacheDir takes an exclusive lock on the cache directory, so that two
// mounts never share one journal.
func lockCacheDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("the cache directory %s is in use by another onedrivefs mount", dir)
	}
	return func() { f.Close() }, nil
}

// lazyUnmount detaches a busy mount.
func lazyUnmount(dir string) error {
	if os.Geteuid() == 0 {
		return syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	out, err := exec.Command("fusermount3", "-u", "-z", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// parseSize reads "123", "10K", "512M", "10G", "1T" (powers of 1024; "10GiB"
// and "10GB" are read as "10G").
func parseSize(in string) (int64, error) {
	s := strings.TrimSpace(strings.ToUpper(in))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), "I")
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size", in)
	}
	return v * mult, nil
}

// defaultMemoryLimit is the daemon's soft memory limit (runtime/debug's),
// unless GOMEMLIMIT says otherwise: near it the Go runtime collects garbage
// harder instead of letting the heap double before it does. It is soft: a
// mount whose tree needs more memory uses more. Measured with `make bench`
// (scenario 11, 1,000 concurrent jobs on 50,000 items): peak RSS 203 MiB
// without it, 125 MiB with it, at the same speed.
const defaultMemoryLimit = 100 << 20

// setMemoryLimit applies defaultMemoryLimit unless GOMEMLIMIT is set.
func setMemoryLimit(e *env) {
	if e.getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}
