// Package fs presents a OneDrive drive as a POSIX-like directory tree through
// FUSE (go-fuse v2). It owns the go-fuse nodes and handles, the POSIX rules
// (what errno a call gets, in one table: errors.go), the metadata extended
// attributes and the background work of a mount. It talks to the service
// only through *remote.Client and keeps
// its local state in the cache package (content cache, staging journal,
// listing TTL cache, persisted state). It must not parse flags, set a
// default logger or exit the process: that is cmd's job.
//
// # Model
//
// Every item this mount has seen is an entry (tree.go), keyed by item id and
// by an inode number handed out the first time the item is seen and kept for
// the life of the mount. go-fuse node values (node.go) are thin shells over
// entries, so go-fuse may create and drop them freely. Folder listings are
// cached with a TTL (cache.Listings); a lookup or readdirplus inside the TTL
// costs no request. Names are compared case-insensitively (OneDrive is
// case-insensitive and case-preserving), and names the service forbids are
// refused locally with EINVAL and a log line naming the rule (names.go).
// OneNote packages are hidden everywhere.
//
// # Content
//
// Reads go through cache.Content, keyed by item id and cTag, so stale bytes
// are never served; missing ranges are fetched with ranged downloads, and
// sequential reading starts a read-ahead on the filesystem's background
// context. Nothing holds a whole file in memory.
//
// Writes go to a staged copy of the whole file (cache.Staging): OneDrive
// replaces whole files; the bytes a write into a large file does not
// overwrite come from its base version lazily (basefill.go). A new file exists only locally until its first
// flush with content, or its release when empty (lazy creation: a file a
// server-side copy fills is never uploaded empty first). flush (close) and
// fsync upload the staged content; if the upload fails, the content is
// committed to the journal, and a transient failure still counts as success:
// once close() or fsync() returns success, the data is on the server or in
// the journal that the background sender (writeback.go) and the next mount
// replay. A file
// whose content changed on the server since it was staged is not
// overwritten: the server's version stays, the local one is saved beside it
// as "name (conflict YYYY-MM-DD HHMMSS).ext", and a warning is logged.
//
// # Server-side copies
//
// This is why the filesystem exists: a copy made inside the mount becomes
// OneDrive's own copy (POST …/copy), and no byte of the file crosses the
// network. Two ways in: copy_file_range (copy.go), which cp and most copy
// routines call, and the user.onedrive.copy attribute (copyxattr.go), which
// setfattr, `onedrivefs cp` and scripts use. Their rules are written once,
// in docs/copy-semantics.md.
//
// Jobs are tracked by a copyjob.Tracker (jobs.go) running on the background
// context and persisted under the cache dir: a FUSE interrupt never cancels
// a job, and a job running at unmount is resumed by the next mount, which
// shows its result. When a job completes, its item is put in its folder's
// cached listing and the kernel is told (from the notifier goroutine), so
// ls and stat see it at once.
//
// # Other drives
//
// Shortcuts to folders others shared (drives.go, shared.go) are folders
// whose children live in the owner's drive; entries keep being addressed by
// item id, and the drive a request goes to is decided where it is sent
// (an item's parentReference.driveId, a shortcut's remoteItem). Read-only
// shares are refused before a change is accepted (EACCES); shared folders
// are polled by their own folder delta, a few per round; the virtual
// "Shared with me" folder is read-only; sharing links are the
// user.onedrive.share attribute (share.go).
//
// # Kernel caching
//
// Entries and attributes are cached by the kernel for one second; file pages
// are dropped at every open (no FOPEN_KEEP_CACHE), the on-disk content cache
// answering the re-reads. Remote changes come from polling the delta link
// (poll.go); they update entries and listings and are pushed to the kernel
// with notifications. Because OneDrive names fold case, the kernel may hold
// a file under several spellings; after a change every spelling of the name
// is invalidated.
//
// # Interrupts and background work
//
// A FUSE interrupt cancels the request's context, which cancels that
// request's downloads and uploads, never background work: read-ahead, delta
// polling, upload retries and notifications run on the filesystem's own
// context, started by Mount and stopped (and waited for) at unmount. The
// upload a close or fsync waits for is the exception: it is not interrupted
// (uninterrupted, file.go), since the kernel interrupts a request for any
// signal the caller handles (a Go program's runtime signals are enough) and
// the caller then still waits for the answer; a close therefore returns
// with its content on the service, or journaled after a failure, never with
// EINTR for an upload given up. Any other change interrupted after it was
// journaled answers success (the background sender sends it).
// Constructors start no goroutine.
//
// # Locks and deadlocks
//
// Lock order: file.mu (one per file: staged content and its uploads),
// then FS.mu (entries, listings, inode table), then the cache package's own
// locks. FS.mu is never held across a request to the service, content I/O
// or a call into go-fuse that may block (Inode.NewInode, which only
// initialises a node, is made under it: newInode, node.go). No lock is held while waiting for a copy job: the
// tracker's OnDone takes file.mu and FS.mu itself. Kernel
// notifications (NotifyEntry, NotifyContent) are never made from a handler:
// the kernel takes the directory's lock to invalidate a name, and the
// handler may be running under that very lock. They are queued (notify.go)
// and sent by the notifier goroutine, which holds no lock while it calls
// go-fuse.
//
// A process that serves a mount must not call into it (fork/exec, stat…)
// from the serving process: tests serve the mount from a child process.
package fs
