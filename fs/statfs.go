package fs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// statfs (df): the drive's quota, cached and refreshed by the poll loop.

// Statfs reports the drive's quota.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	n.fsys.statfs(out)
	return 0
}

// statfsFreeInodes is the number of free inodes statfs reports.
const statfsFreeInodes = 1 << 32

// statfs fills out from the cached quota (refreshed by the poll loop).
func (f *FS) statfs(out *fuse.StatfsOut) {
	f.mu.Lock()
	q := f.quota
	known := uint64(len(f.byIno))
	f.mu.Unlock()
	out.Bsize = statfsSize
	out.Frsize = statfsSize
	out.NameLen = maxNameBytes
	// OneDrive has no inode limit: df -i shows as used the items this mount
	// holds in memory (a bounded number: evict.go), and plenty free, for
	// programs that check for free inodes.
	out.Ffree = statfsFreeInodes
	out.Files = known + statfsFreeInodes
	if q == nil || q.Total <= 0 {
		return
	}
	out.Blocks = uint64(q.Total) / statfsSize
	free := q.Remaining
	if free <= 0 && q.Total > q.Used {
		free = q.Total - q.Used
	}
	if free < 0 {
		free = 0
	}
	out.Bfree = uint64(free) / statfsSize
	out.Bavail = out.Bfree
}
