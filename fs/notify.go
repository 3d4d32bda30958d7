package fs

import (
	"context"
	"strings"
	"sync"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// Kernel notifications. The kernel caches names (dentries) and file pages;
// when the tree changes behind its back (a remote change, or a name that
// differs only in case from the one just changed) it must be told. Telling it
// from inside a handler that holds a directory's lock deadlocks (the kernel
// takes that lock to invalidate), so notifications are queued and sent from
// the notifier goroutine, which holds no lock while it calls go-fuse.

type noteKind int

const (
	noteAliases noteKind = iota // every cached name in dir that folds to name
	noteContent                 // file pages and attributes of e
	noteForget                  // the names of inodes, so that the kernel forgets them (evict.go)
)

type note struct {
	kind noteKind
	dir  *entry
	name string
	e    *entry
	// inodes are the go-fuse inodes of a noteForget.
	inodes []*gofs.Inode
}

// notifier is the queue of kernel notifications.
type notifier struct {
	mu    sync.Mutex
	queue []note // GUARDED_BY(mu)
	wake  chan struct{}
}

func newNotifier() *notifier {
	return &notifier{wake: make(chan struct{}, 1)}
}

func (n *notifier) push(x note) {
	n.mu.Lock()
	n.queue = append(n.queue, x)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// aliases queues the invalidation of every name in dir that equals name
// ignoring case (OneDrive names are case-insensitive, the kernel's are not).
func (n *notifier) aliases(dir *entry, name string) {
	if dir != nil {
		n.push(note{kind: noteAliases, dir: dir, name: name})
	}
}

// content queues the invalidation of e's cached pages and attributes.
func (n *notifier) content(e *entry) {
	n.push(note{kind: noteContent, e: e})
}

// forget queues the invalidation of the names of inodes: the kernel then
// drops them (and the names beneath a folder), and sends FORGET for each
// inode no longer in use.
func (n *notifier) forget(inodes []*gofs.Inode) {
	n.push(note{kind: noteForget, inodes: inodes})
}

func (n *notifier) take() []note {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := n.queue
	n.queue = nil
	return q
}

// runNotifier sends queued notifications until ctx ends.
func (f *FS) runNotifier(ctx context.Context, root *gofs.Inode) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.notes.wake:
		}
		for _, x := range f.notes.take() {
			f.sendNote(root, x)
		}
	}
}

func (f *FS) sendNote(root *gofs.Inode, x note) {
	switch x.kind {
	case noteAliases:
		dir := f.inodeOf(root, x.dir)
		if dir == nil {
			return
		}
		_ = dir.NotifyEntry(x.name)
		for name := range dir.Children() {
			if name != x.name && strings.EqualFold(name, x.name) {
				_ = dir.NotifyEntry(name)
			}
		}
	case noteContent:
		if n := f.inodeOf(root, x.e); n != nil {
			_ = n.NotifyContent(0, 0)
		}
	case noteForget:
		for _, n := range x.inodes {
			// The name go-fuse knows n by is the one the kernel looked up
			// (lookups ignore case, the kernel's names do not).
			if name, parent := n.Parent(); parent != nil {
				_ = parent.NotifyEntry(name)
			}
		}
	}
}

// inodeOf finds the kernel-known inode of e by walking its path from the
// root, matching names case-insensitively; nil if the kernel does not know
// it (then there is nothing to invalidate).
func (f *FS) inodeOf(root *gofs.Inode, e *entry) *gofs.Inode {
	f.mu.Lock()
	names, ok := f.pathNamesFSLocked(e)
	f.mu.Unlock()
	if !ok {
		return nil
	}
	n := root
	for _, name := range names {
		if n = childFolded(n, name); n == nil {
			return nil
		}
	}
	return n
}

// childFolded returns n's child called name, or one whose name differs only
// in case.
func childFolded(n *gofs.Inode, name string) *gofs.Inode {
	if c := n.GetChild(name); c != nil {
		return c
	}
	for k, c := range n.Children() {
		if strings.EqualFold(k, name) {
			return c
		}
	}
	return nil
}
