package fs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// MountOptions are the FUSE-level options of Mount.
type MountOptions struct {
	// AllowOther lets other users into the mount (FUSE allow_other; for a
	// user other than root, /etc/fuse.conf must say user_allow_other).
	AllowOther bool
	// Debug logs every FUSE request and answer at debug level.
	Debug bool
	// ReadAhead is the kernel's read-ahead for the mount, in bytes, set
	// after mounting in the mount's bdi (/sys/class/bdi/MAJOR:MINOR/
	// read_ahead_kb) when the process may (root). 0 means
	// DefaultReadAhead; negative leaves the kernel's default (128 KiB).
	ReadAhead int64
}

// DefaultReadAhead is the mount's kernel read-ahead when root: with 1 MiB
// requests, the kernel keeps several READs of a sequential reader in flight
// instead of one 128 KiB one at a time (measured in BENCHMARKS.md).
const DefaultReadAhead = 4 << 20

// Kernel cache lifetimes. Names and attributes are cached briefly; remote
// changes are pushed to the kernel by notifications anyway, so these only
// bound how long a change made behind the mount's back (without a delta
// poll yet) can go unseen by stat.
const (
	entryTimeout = time.Second
	attrTimeout  = time.Second
)

// maxRequest is the largest READ and WRITE the kernel sends us (MaxWrite,
// and max_read in the mount options), and the read-ahead we ask for.
// go-fuse's default MaxWrite is 128 KiB: a 1 MiB read() or write() then
// arrives as eight requests. 1 MiB is go-fuse's ceiling (MAX_KERNEL_WRITE)
// and Linux's default (/proc/sys/fs/fuse/max_pages_limit, 256 pages); go-fuse
// lowers it on a kernel that allows less. It costs a 1 MiB buffer per
// request go-fuse serves at once.
//
// MaxReadAhead is capped by go-fuse at MaxWrite and by the kernel at what it
// offers at INIT, its default read-ahead (128 KiB), so the read-ahead starts
// at 128 KiB; as root, Mount then raises it in the mount's bdi
// (MountOptions.ReadAhead).
const maxRequest = 1 << 20

// Splicing read replies. go-fuse splices an fd-backed reply (the content
// cache's file) to /dev/fuse through a pipe when the whole reply fits in one
// (pipe-max-size, 1 MiB by default, less a header and a page): READs must
// then stop short of 1 MiB (max_read = maxSpliceRead). Measured on Linux
// 6.18 (BENCHMARKS.md, analysis), splicing 1016 KiB replies costs the daemon
// about twice the CPU of pread + writev of 1 MiB ones and reads slower, so
// it is off: go-fuse preads the reply from the cache file into its request
// buffer instead (still no copy in this package).
const (
	spliceReads   = false
	maxSpliceRead = maxRequest - 8<<10
)

// Mounted is a mounted filesystem.
type Mounted struct {
	f      *FS
	server *fuse.Server
	dir    string

	stopOnce sync.Once
}

// Mount reads the drive's root, replays the journal of an earlier mount,
// mounts the filesystem on dir and starts the background work (delta poll,
// upload retries, kernel notifications). It uses the mount(2) system call
// directly when running as root and fusermount3 otherwise. The mount is
// served until Unmount, or until someone unmounts it (then Wait returns).
func (f *FS) Mount(ctx context.Context, dir string, opts MountOptions) (*Mounted, error) {
	if err := f.start(ctx); err != nil {
		return nil, err
	}
	if err := f.initDelta(ctx); err != nil {
		f.log.Warn("reading the delta link failed; remote changes are picked up on the next poll", "err", err)
	}
	f.catchUp(ctx) // store.go
	f.mountDir = filepath.Clean(dir)
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		f.mountDir = real
	}
	root := &dirNode{node{fsys: f, e: f.root}}
	f.mu.Lock()
	f.root.node = &root.node
	f.mu.Unlock()
	entry, attr := entryTimeout, attrTimeout
	mountOpts := []string{"default_permissions"}
	if spliceReads {
		// The last max_read option wins over go-fuse's own.
		mountOpts = append(mountOpts, fmt.Sprintf("max_read=%d", maxSpliceRead))
	}
	if f.readOnly {
		mountOpts = append(mountOpts, "ro")
	}
	o := &gofs.Options{
		EntryTimeout:   &entry,
		AttrTimeout:    &attr,
		UID:            f.uid,
		GID:            f.gid,
		RootStableAttr: &gofs.StableAttr{Ino: rootIno},
		MountOptions: fuse.MountOptions{
			AllowOther:    opts.AllowOther,
			FsName:        "onedrivefs",
			Name:          "onedrivefs",
			Options:       mountOpts,
			DirectMount:   os.Geteuid() == 0,
			MaxWrite:      maxRequest,
			MaxReadAhead:  maxRequest,
			DisableSplice: !spliceReads,
			// O_TRUNC arrives with OPEN instead of as a SETATTR before it:
			// a truncate with no handle open is sent at once, so without
			// this `echo x > file` would upload an empty version first.
			ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC,
			Debug:             opts.Debug,
			Logger:            slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
		},
	}
	server, err := gofs.Mount(dir, root, o)
	if err != nil {
		f.bg.stop()
		f.closeCopyJobs()
		return nil, fmt.Errorf("mounting on %s: %w", dir, err)
	}
	if opts.ReadAhead >= 0 && os.Geteuid() == 0 {
		ra := opts.ReadAhead
		if ra == 0 {
			ra = DefaultReadAhead
		}
		if err := setReadAhead(dir, ra); err != nil {
			f.log.Warn("could not raise the mount's read-ahead", "err", err)
		}
	}
	f.bg.Go(func(ctx context.Context) { f.runNotifier(ctx, &root.Inode) })
	f.bg.Go(f.pollLoop)
	f.bg.Go(f.runWriteback)
	f.bg.Go(f.runCopyJobs)
	f.bg.Go(f.runProber)   // offline.go
	f.bg.Go(f.restorePins) // pin.go
	if f.syncTree {
		f.bg.Go(f.fullSync) // fullsync.go
	}
	f.log.Info("mounted", "dir", dir, "read_only", f.readOnly)
	return &Mounted{f: f, server: server, dir: dir}, nil
}

// setReadAhead writes the kernel read-ahead of the file system mounted on
// dir to its bdi, which sysfs names after the mount's device number.
func setReadAhead(dir string, bytes int64) error {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return err
	}
	path := bdiPath(st.Dev) + "/read_ahead_kb"
	kb := strconv.FormatInt(max(bytes>>10, 4), 10)
	return os.WriteFile(path, []byte(kb+"\n"), 0)
}

// bdiPath is the sysfs directory of the bdi of device dev (as in st_dev).
func bdiPath(dev uint64) string {
	major := (dev >> 8) & 0xfff
	minor := (dev & 0xff) | ((dev >> 12) & 0xfff00)
	return fmt.Sprintf("/sys/class/bdi/%d:%d", major, minor)
}

// Wait blocks until the filesystem is unmounted (by Unmount or by someone
// else, e.g. fusermount3 -u), then stops the background work, sending or
// journaling what is still unsent.
func (m *Mounted) Wait() {
	m.server.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownFlush)
	defer cancel()
	m.stop(ctx)
}

// shutdownFlush bounds the time unsent changes get at an unmount nobody
// asked this process for; what is not sent by then is journaled.
const shutdownFlush = 2 * time.Minute

// Unmount sends every unsent change (what cannot be sent before ctx ends is
// committed to the journal, for the next mount), unmounts and stops the
// background work.
func (m *Mounted) Unmount(ctx context.Context) error {
	m.f.flushAll(ctx)
	err := m.server.Unmount()
	if err != nil {
		return fmt.Errorf("unmounting %s: %w", m.dir, err)
	}
	m.stop(ctx)
	return nil
}

func (m *Mounted) stop(ctx context.Context) {
	m.stopOnce.Do(func() {
		m.f.flushAll(ctx)
		m.f.bg.stop()
		m.f.releasePins()
		m.f.closeCopyJobs()
		m.f.log.Info("unmounted", "dir", m.dir)
	})
}

// flushAll sends the unsent changes of every file; once ctx has ended, or
// when sending fails, they are committed to the journal instead.
func (f *FS) flushAll(ctx context.Context) {
	f.mu.Lock()
	var files []*entry
	for _, e := range f.byIno {
		if e.file != nil {
			files = append(files, e)
		}
	}
	f.mu.Unlock()
	for _, e := range files {
		st := e.file
		st.mu.Lock()
		if pendingCopyLocked(st) != nil {
			st.mu.Unlock()
			continue // its job is kept on disk; the next mount settles it
		}
		if err := st.settleCopyLocked(ctx); err != nil {
			f.log.Error("cutting a partly copied file to its copied bytes failed", "path", f.pathOf(e), "err", err)
		}
		if st.dirty && st.staged != nil {
			var err error
			if ctx.Err() != nil {
				err = st.commitLocked()
			} else {
				err = st.syncLocked(ctx)
			}
			if err != nil {
				f.log.Error("a change could not be sent nor journaled", "path", f.pathOf(e), "err", err)
			}
		}
		st.mu.Unlock()
	}
}
