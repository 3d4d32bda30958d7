package fs

import (
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/onedrivefs/onedrivefs/remote"
)

// What stat shows. OneDrive keeps a size, a modification time of its own
// (lastModifiedDateTime) and one the client sets (fileSystemInfo); no
// modes, owners, links or access times. So:
//   - size and mtime are the staged content's while a file has local
//     changes, else the service's (fileSystemInfo's time when set);
//   - an mtime this mount set (a write, utimens) is shown at full precision
//     for as long as the service holds it at its own (a second at worst):
//     a time must not move when the file is sent (make and rsync compare
//     them);
//   - atime is what utimens last set, remembered locally (the service has
//     none), else the mtime;
//   - a folder's mtime and ctime move when this mount adds or removes one of
//     its entries;
//   - st_nlink is 2 + subfolders for a folder (its listing is fetched for
//     that when not cached, and a readdir prefetches its subfolders'
//     listings: tree.go; 1, "unknown" to Linux tools, only when the
//     listing cannot be had), 1 for a file, 0 for a file unlinked while
//     open.

// Block sizes reported by stat and statfs.
const (
	blockSize  = 4096
	statfsSize = 4096
)

// serviceTimePrecision bounds how much the service may round a time it is
// sent (fileSystemInfo).
const serviceTimePrecision = time.Second

// attr is what stat shows of an entry.
type attr struct {
	ino                 uint64
	isDir               bool
	size                int64
	nlink               uint32
	mtime, ctime, atime time.Time
	// readOnly: in a folder shared with the user read-only, or in the
	// virtual "Shared with me" folder (shared.go): no write permission bits.
	readOnly bool
}

// attrOf returns e's attributes (see above).
func (f *FS) attrOf(e *entry) attr {
	f.mu.Lock()
	a := attr{ino: e.ino, isDir: e.isDir, nlink: 1}
	if it := e.item.Load(); it != nil {
		if !e.isDir {
			a.size = it.Size
		}
		a.mtime = itemMtime(it)
		a.ctime = it.Modified
		if !e.isDir && !e.mtime.IsZero() && sameTime(a.mtime, e.mtime) {
			a.mtime = e.mtime
		}
	}
	if !e.isDir && e.item.Load() == nil && !e.mtime.IsZero() {
		a.mtime = e.mtime // a pending copy's
	}
	if e.isDir {
		if e.mtime.After(a.mtime) {
			a.mtime = e.mtime
		}
		if e.ctime.After(a.ctime) {
			a.ctime = e.ctime
		}
		if l := f.listingFSLocked(e); l != nil {
			a.nlink = 2
			for _, c := range l.children {
				if c.isDir && !c.removed {
					a.nlink++
				}
			}
		} else if n, ok := f.storedLinksFSLocked(e); ok { // store.go
			a.nlink = n
		}
	} else if e.unlinked {
		a.nlink = 0
	}
	a.atime = e.atime
	a.readOnly = f.readOnlyShareFSLocked(e)
	fl := e.file
	f.mu.Unlock()
	if fl != nil {
		if size, mtime, ok := fl.localAttr(); ok {
			a.size, a.mtime = size, mtime
			if mtime.After(a.ctime) {
				a.ctime = mtime
			}
		} else if size, ok := fl.copiedAttr(); ok {
			a.size = size
		}
	}
	if a.ctime.IsZero() || a.ctime.Before(a.mtime) {
		a.ctime = a.mtime
	}
	if a.atime.IsZero() {
		a.atime = a.mtime
	}
	return a
}

// sameTime reports whether the service's time s is local time l as the
// service keeps it.
func sameTime(s, l time.Time) bool {
	d := l.Sub(s)
	return d > -serviceTimePrecision && d < serviceTimePrecision
}

// itemMtime is the modification time shown for an item: its fileSystemInfo
// time when set, else the service's.
func itemMtime(it *remote.Item) time.Time {
	if !it.FSModified.IsZero() {
		return it.FSModified
	}
	return it.Modified
}

// fillAttr turns attributes into FUSE's. st_blocks counts 512-byte units,
// rounded up: cp treats files with fewer blocks than size/512 as sparse.
func (f *FS) fillAttr(out *fuse.Attr, a attr) {
	out.Ino = a.ino
	out.Size = uint64(a.size)
	out.Blocks = (uint64(a.size) + 511) / 512
	out.Blksize = blockSize
	out.Nlink = a.nlink
	if a.isDir {
		out.Mode = syscall.S_IFDIR | 0o755
	} else {
		out.Mode = syscall.S_IFREG | 0o644
	}
	if a.readOnly {
		out.Mode &^= 0o222
	}
	out.Uid, out.Gid = f.uid, f.gid
	out.SetTimes(&a.atime, &a.mtime, &a.ctime)
}
