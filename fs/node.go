package fs

import (
	"context"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// The go-fuse side: thin node and handle types that turn FUSE calls into
// calls on FS and its entries, and Go errors into errnos (errors.go). All
// state lives in FS and its entries. An entry has one node while the kernel
// knows it (entry.node, cleared by OnForget, evict.go): lookups hand go-fuse
// that node again, and an entry with a node is never dropped.

// node is what files and folders share: attributes, times, xattrs, statfs.
type node struct {
	gofs.Inode
	fsys *FS
	e    *entry // immutable; ent gives the live entry
}

// ent returns the node's entry as the tree holds it: e, unless a sweep
// dropped e while go-fuse was reviving this node (evict.go).
func (n *node) ent() *entry {
	if !n.e.dropped.Load() {
		return n.e
	}
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	return n.fsys.liveFSLocked(n.e)
}

// dirNode is a folder.
type dirNode struct{ node }

// fileNode is a file.
type fileNode struct{ node }

var (
	_ gofs.NodeGetattrer     = (*node)(nil)
	_ gofs.NodeSetattrer     = (*node)(nil)
	_ gofs.NodeStatfser      = (*node)(nil)
	_ gofs.NodeGetxattrer    = (*node)(nil)
	_ gofs.NodeListxattrer   = (*node)(nil)
	_ gofs.NodeSetxattrer    = (*node)(nil)
	_ gofs.NodeRemovexattrer = (*node)(nil)

	_ gofs.NodeLookuper  = (*dirNode)(nil)
	_ gofs.NodeReaddirer = (*dirNode)(nil)
	_ gofs.NodeMkdirer   = (*dirNode)(nil)
	_ gofs.NodeCreater   = (*dirNode)(nil)
	_ gofs.NodeUnlinker  = (*dirNode)(nil)
	_ gofs.NodeRmdirer   = (*dirNode)(nil)
	_ gofs.NodeRenamer   = (*dirNode)(nil)
	_ gofs.NodeSymlinker = (*dirNode)(nil)
	_ gofs.NodeLinker    = (*dirNode)(nil)
	_ gofs.NodeMknoder   = (*dirNode)(nil)
	_ gofs.NodeFsyncer   = (*dirNode)(nil)

	_ gofs.NodeOpener = (*fileNode)(nil)

	_ gofs.FileReader   = (*handle)(nil)
	_ gofs.FileWriter   = (*handle)(nil)
	_ gofs.FileFlusher  = (*handle)(nil)
	_ gofs.FileFsyncer  = (*handle)(nil)
	_ gofs.FileReleaser = (*handle)(nil)
)

// newInode returns the go-fuse inode for e under parent: e's node when the
// kernel knows it already, else a new one, which becomes e's. NewInode only
// initialises the node's fields (no lock, no kernel call), so it is called
// under FS.mu: two lookups of one entry at once must hand go-fuse the same
// node.
func (f *FS) newInode(ctx context.Context, parent *gofs.Inode, e *entry) *gofs.Inode {
	f.mu.Lock()
	defer f.mu.Unlock()
	e = f.liveFSLocked(e) // dropped since it was looked up: evict.go
	if e.node != nil {
		return &e.node.Inode
	}
	var ops gofs.InodeEmbedder
	mode := uint32(syscall.S_IFREG)
	if e.isDir {
		dn := &dirNode{node{fsys: f, e: e}}
		ops, e.node, mode = dn, &dn.node, syscall.S_IFDIR
	} else {
		fn := &fileNode{node{fsys: f, e: e}}
		ops, e.node = fn, &fn.node
	}
	return parent.NewInode(ctx, ops, gofs.StableAttr{Mode: mode, Ino: e.ino})
}

// Getattr implements stat.
func (n *node) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.dirLinks(ctx, n.ent())
	n.fsys.fillAttr(&out.Attr, n.fsys.attrOf(n.ent()))
	return 0
}

// Setattr implements truncate and utimens. chmod and chown are accepted
// without effect: OneDrive has no modes or owners (every file shows 0644,
// every folder 0755, owned by the mounting user).
func (n *node) Setattr(ctx context.Context, _ gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	f := n.fsys
	_, sizeSet := in.GetSize()
	_, mtimeSet := in.GetMTime()
	if sizeSet || mtimeSet {
		if err := f.checkShareWritable(ctx, n.ent()); err != nil { // shared.go
			return f.errno(ctx, "setattr", err, "ino", n.ent().ino)
		}
	}
	if size, ok := in.GetSize(); ok {
		if err := f.truncate(ctx, n.ent(), int64(size)); err != nil {
			return f.errno(ctx, "truncate", err, "ino", n.ent().ino)
		}
	}
	mtime, mok := in.GetMTime()
	atime, aok := in.GetATime()
	if mok || aok {
		if !mok {
			mtime = time.Time{}
		}
		if !aok {
			atime = time.Time{}
		}
		if err := f.setTimes(ctx, n.ent(), mtime, atime); err != nil {
			return f.errno(ctx, "utimens", err, "ino", n.ent().ino)
		}
	}
	_, modeSet := in.GetMode()
	_, uidSet := in.GetUID()
	_, gidSet := in.GetGID()
	if (modeSet || uidSet || gidSet) && f.readOnly {
		return syscall.EROFS
	}
	f.fillAttr(&out.Attr, f.attrOf(n.ent()))
	return 0
}

// Lookup finds a child, ignoring case.
func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	f := d.fsys
	c, err := f.lookup(ctx, d.ent(), name)
	if err != nil {
		return nil, f.errno(ctx, "lookup", err, "name", name)
	}
	f.dirLinks(ctx, c)
	f.fillAttr(&out.Attr, f.attrOf(c))
	return f.newInode(ctx, &d.Inode, c), 0
}

// Readdir lists the folder; with READDIRPLUS go-fuse then looks each name
// up, which the cached listing answers without a request.
func (d *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	f := d.fsys
	list, err := f.readdir(ctx, d.ent())
	if err != nil {
		return nil, f.errno(ctx, "readdir", err, "ino", d.ent().ino)
	}
	f.prefetchListings(d.ent())
	out := make([]fuse.DirEntry, 0, len(list)+2)
	out = append(out,
		fuse.DirEntry{Name: ".", Ino: d.ent().ino, Mode: syscall.S_IFDIR},
		fuse.DirEntry{Name: "..", Ino: f.parentIno(d.ent()), Mode: syscall.S_IFDIR})
	for _, c := range list {
		mode := uint32(syscall.S_IFREG)
		if c.isDir {
			mode = syscall.S_IFDIR
		}
		out = append(out, fuse.DirEntry{Name: c.name, Ino: c.ino, Mode: mode})
	}
	return gofs.NewListDirStream(out), 0
}

// Mkdir creates a folder on the server.
func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	f := d.fsys
	if err := f.checkShareWritable(ctx, d.ent()); err != nil {
		return nil, f.errno(ctx, "mkdir", err, "name", name)
	}
	c, err := f.mkdir(ctx, d.ent(), name)
	if err != nil {
		return nil, f.errno(ctx, "mkdir", err, "name", name)
	}
	f.fillAttr(&out.Attr, f.attrOf(c))
	return f.newInode(ctx, &d.Inode, c), 0
}

// Create makes a new file (locally until its first flush with content or
// its release) and opens it.
func (d *dirNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	f := d.fsys
	if err := f.checkShareWritable(ctx, d.ent()); err != nil {
		return nil, nil, 0, f.errno(ctx, "create", err, "name", name)
	}
	c, created, err := f.create(ctx, d.ent(), name, flags&syscall.O_EXCL != 0)
	if err != nil {
		return nil, nil, 0, f.errno(ctx, "create", err, "name", name)
	}
	h, err := f.open(ctx, c, !created && flags&syscall.O_TRUNC != 0)
	if err != nil {
		return nil, nil, 0, f.errno(ctx, "create", err, "name", name)
	}
	f.fillAttr(&out.Attr, f.attrOf(c))
	return f.newInode(ctx, &d.Inode, c), h, 0, 0
}

// Unlink deletes a file (to the OneDrive recycle bin).
func (d *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	f := d.fsys
	if err := f.checkChildWritable(ctx, d.ent(), name); err != nil {
		return f.errno(ctx, "unlink", err, "name", name)
	}
	return f.errno(ctx, "unlink", f.unlink(ctx, d.ent(), name), "name", name)
}

// Rmdir deletes an empty folder.
func (d *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	f := d.fsys
	if err := f.checkChildWritable(ctx, d.ent(), name); err != nil {
		return f.errno(ctx, "rmdir", err, "name", name)
	}
	return f.errno(ctx, "rmdir", f.rmdir(ctx, d.ent(), name), "name", name)
}

// Rename moves or renames an item on the server.
func (d *dirNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	f := d.fsys
	np, ok := newParent.(*dirNode)
	if !ok {
		return syscall.ENOTDIR
	}
	if err := f.checkChildWritable(ctx, d.ent(), name); err != nil {
		return f.errno(ctx, "rename", err, "name", name)
	}
	if err := f.checkChildWritable(ctx, np.ent(), newName); err != nil {
		return f.errno(ctx, "rename", err, "new_name", newName)
	}
	return f.errno(ctx, "rename", f.rename(ctx, d.ent(), name, np.ent(), newName, flags), "name", name, "new_name", newName)
}

// Symlink is refused: OneDrive has no symbolic links.
func (d *dirNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	d.fsys.log.Info("refused a symbolic link: OneDrive has none", "name", name)
	return nil, syscall.EPERM
}

// Link is refused: OneDrive has no hard links.
func (d *dirNode) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	d.fsys.log.Info("refused a hard link: OneDrive has none", "name", name)
	return nil, syscall.EPERM
}

// Mknod is refused: OneDrive holds only files and folders.
func (d *dirNode) Mknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	d.fsys.log.Info("refused a special file: OneDrive holds only files and folders", "name", name)
	return nil, syscall.EPERM
}

// Fsync on a folder (fsyncdir; `sync DIR`) waits for the server-side
// copies still pending into it and the folders beneath it, and sends their
// journaled changes at once: `cp -r a b && sync b` is a finished copy on
// the service. Every other change to a folder
// is made on the service before the call that made it returns.
func (d *dirNode) Fsync(ctx context.Context, _ gofs.FileHandle, flags uint32) syscall.Errno {
	f := d.fsys
	return f.errno(ctx, "fsyncdir", f.waitPendingUnder(ctx, d.ent()), "ino", d.ent().ino)
}

// Open opens a file. No FOPEN_KEEP_CACHE: the kernel drops its cached pages
// at each open, and the on-disk content cache answers the re-reads.
func (fn *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	f := fn.fsys
	if flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 && f.readOnly {
		return nil, 0, syscall.EROFS
	}
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
		if err := f.checkShareWritable(ctx, fn.ent()); err != nil { // shared.go
			return nil, 0, f.errno(ctx, "open", err, "ino", fn.ent().ino)
		}
	}
	h, err := f.open(ctx, fn.ent(), flags&syscall.O_TRUNC != 0)
	if err != nil {
		return nil, 0, f.errno(ctx, "open", err, "ino", fn.ent().ino)
	}
	return h, 0, 0
}

// Read implements read(2).
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	rr, err := h.readResult(ctx, dest, off)
	if err != nil {
		return nil, h.f.errno(ctx, "read", err, "ino", h.e.ino, "off", off)
	}
	return rr, 0
}

// Write implements write(2).
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, err := h.write(ctx, data, off)
	if err != nil {
		return uint32(n), h.f.errno(ctx, "write", err, "ino", h.e.ino, "off", off)
	}
	return uint32(n), 0
}

// Flush is called on every close(2) of a descriptor.
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	return h.f.errno(ctx, "flush", h.flush(ctx), "ino", h.e.ino)
}

// Fsync implements fsync(2).
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return h.f.errno(ctx, "fsync", h.fsync(ctx), "ino", h.e.ino)
}

// Release is the last close of the handle.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	return h.f.errno(ctx, "release", h.release(ctx), "ino", h.e.ino)
}
