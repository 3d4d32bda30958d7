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
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/fs"
	"github.com/onedrivefs/onedrivefs/remote"
)

const mountDescription = `Mount the signed-in OneDrive drive on MOUNTPOINT, in the foreground, until
Ctrl-C (SIGINT) or SIGTERM: then unsent changes are sent (or kept in the
journal under the cache dir, for the next mount) and the drive is unmounted.
Logs go to stderr.

Durability: once close() or fsync() on a file returns success, its content is
on OneDrive, or in the local journal that the next mount sends.

Environment (profiling, for developers):
  ONEDRIVEFS_CPUPROFILE=FILE  write a CPU profile (runtime/pprof) to FILE,
                              from the moment the drive is mounted to unmount
  ONEDRIVEFS_MEMPROFILE=FILE  write a heap profile to FILE at unmount
Read them with 'go tool pprof -top onedrivefs FILE'.`

// Time given to unsent changes at shutdown before they are journaled instead.
const shutdownFlushTimeout = 2 * time.Minute

func runMount(ctx context.Context, e *env, args []string) error {
	fset := newFlagSet(e, "mount", "MOUNTPOINT", mountDescription)
	configDir := fset.String("config-dir", "", "config directory holding the sign-in (default $XDG_CONFIG_HOME/onedrivefs)")
	cacheDir := fset.String("cache-dir", "", "cache directory (default $XDG_CACHE_HOME/onedrivefs/DRIVE-ID)")
	cacheSize := fset.String("cache-size", "10G", "bound of the content cache (bytes, or with a K, M, G or T suffix)")
	pollInterval := fset.Duration("poll-interval", fs.DefaultPollInterval, "how often remote changes are polled for")
	readOnly := fset.Bool("read-only", false, "mount read-only")
	allowOther := fset.Bool("allow-other", false, "let other users into the mount (needs user_allow_other in /etc/fuse.conf unless root)")
	logLevel := fset.String("log-level", "info", "log level: debug, info, warn or error")
	debugFuse := fset.Bool("debug-fuse", false, "log every FUSE request and answer (implies --log-level debug)")
	readAhead := fset.String("read-ahead", "4M", "kernel read-ahead of the mount, set when root (bytes, or with a K or M suffix; 0: the kernel's default)")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if fset.NArg() != 1 {
		fmt.Fprintln(e.stderr, "onedrivefs mount: exactly one MOUNTPOINT is needed")
		fset.Usage()
		return errUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(e.stderr, "onedrivefs mount: --log-level %q: use debug, info, warn or error\n", *logLevel)
		return errUsage
	}
	maxBytes, err := parseSize(*cacheSize)
	if err != nil {
		fmt.Fprintf(e.stderr, "onedrivefs mount: --cache-size: %v\n", err)
		return errUsage
	}
	readAheadBytes, err := parseSize(*readAhead)
	if err != nil {
		fmt.Fprintf(e.stderr, "onedrivefs mount: --read-ahead: %v\n", err)
		return errUsage
	}
	if readAheadBytes == 0 {
		readAheadBytes = -1 // the kernel's default
	}
	if *pollInterval == 0 {
		fmt.Fprintln(e.stderr, "onedrivefs mount: --poll-interval must not be 0 (use a negative value to disable polling)")
		return errUsage
	}
	if *debugFuse && level > slog.LevelDebug {
		level = slog.LevelDebug // the FUSE trace is logged at debug level
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	dir, err := filepath.Abs(fset.Arg(0))
	if err != nil {
		return err
	}
	if err := checkMountPoint(dir); err != nil {
		return err
	}
	if err := checkFUSE(*allowOther); err != nil {
		return err
	}

	prof, err := openProfiles(e, logger)
	if err != nil {
		return err
	}
	defer prof.close()

	cfgDir, err := loginConfigDir(e, *configDir)
	if err != nil {
		return err
	}
	profile, tokens, err := remote.LoadSignIn(ctx, cfgDir, logger)
	if errors.Is(err, remote.ErrNotSignedIn) {
		return fmt.Errorf("not signed in (no sign-in in %s): run 'onedrivefs login' first", cfgDir)
	}
	if err != nil {
		return err
	}
	client, err := remote.New(remote.Config{GraphURL: profile.GraphURL, DriveID: profile.DriveID, Tokens: tokens, Logger: logger})
	if err != nil {
		return err
	}
	drive, err := client.Drive(ctx)
	if err != nil {
		return fmt.Errorf("reaching the drive at %s: %w", profile.GraphURL, err)
	}
	cdir := *cacheDir
	if cdir == "" {
		if cdir, err = defaultCacheDir(e, drive.ID); err != nil {
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

	content, err := cache.OpenContent(cache.ContentOptions{Dir: filepath.Join(cdir, "content"), MaxBytes: maxBytes, Logger: logger})
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
	fsys, err := fs.New(fs.Config{
		Remote: client, Content: content, Staging: staging, State: state, Logger: logger,
		UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), ReadOnly: *readOnly, PollInterval: *pollInterval,
		// Server-side copy jobs live beside the journal, so that a job still
		// running at unmount is resumed, and its result shown, by the next
		// mount.
		CopyJobsDir: filepath.Join(cdir, "copyjobs"),
	})
	if err != nil {
		return err
	}
	m, err := fsys.Mount(ctx, dir, fs.MountOptions{AllowOther: *allowOther, Debug: *debugFuse, ReadAhead: readAheadBytes})
	if err != nil {
		return err
	}
	prof.startCPU()
	defer prof.stop() // runs before close, after the unmount below
	fmt.Fprintf(e.stderr, "onedrivefs: drive %s mounted on %s; press Ctrl-C to unmount\n", drive.ID, dir)

	done := make(chan struct{})
	go func() {
		m.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil // unmounted by someone else (fusermount3 -u)
	case <-ctx.Done():
	}
	fmt.Fprintln(e.stderr, "onedrivefs: sending unsent changes, then unmounting")
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

// checkMountPoint refuses a mount point that is missing, not a directory,
// not empty, or already a mount point.
func checkMountPoint(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("the mount point %s does not exist: create it with 'mkdir -p %s'", dir, dir)
	case errors.Is(err, syscall.ENOTCONN):
		return fmt.Errorf("the mount point %s is a dead mount (its daemon died): unmount it with 'fusermount3 -u %s'", dir, dir)
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
