package fs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
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
}

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
// offers at INIT, its default read-ahead (128 KiB), so the read-ahead stays
// 128 KiB here; root can raise it per mount afterwards in
// /sys/class/bdi/MAJOR:MINOR/read_ahead_kb.
const maxRequest = 1 << 20

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
	f.mountDir = filepath.Clean(dir)
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		f.mountDir = real
	}
	root := &dirNode{node{fsys: f, e: f.root}}
	entry, attr := entryTimeout, attrTimeout
	mountOpts := []string{"default_permissions"}
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
			AllowOther:   opts.AllowOther,
			FsName:       "onedrivefs",
			Name:         "onedrivefs",
			Options:      mountOpts,
			DirectMount:  os.Geteuid() == 0,
			MaxWrite:     maxRequest,
			MaxReadAhead: maxRequest,
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
	f.bg.Go(func(ctx context.Context) { f.runNotifier(ctx, &root.Inode) })
	f.bg.Go(f.pollLoop)
	f.bg.Go(f.runWriteback)
	f.bg.Go(f.runCopyJobs)
	f.log.Info("mounted", "dir", dir, "read_only", f.readOnly)
	return &Mounted{f: f, server: server, dir: dir}, nil
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
