// Package metastore persists the metadata of a drive's tree on disk, so that
// a mount can show the tree at once after a restart, without the network,
// and catch up with one delta call.
//
// It owns one embedded database file (bbolt: a single-writer B+tree with
// copy-on-write pages, so a transaction is committed whole or not at all,
// even when the process is killed in the middle of it) holding:
//
//   - items by id: the remote.Item fields a file system needs (name,
//     parent, folder or file, size, eTag, cTag, hashes, server and
//     fileSystemInfo times, web URL, package). Never the pre-authenticated
//     download URL, which is a short-lived credential; never the delta-only
//     Deleted flag (deleted items are removed);
//   - the children of each folder by folded (lower-case) name, as OneDrive
//     compares names, in name order;
//   - the root's id, the delta link, and small key/values for its users.
//
// Changes are made in transactions (Update): a delta page and the link
// that follows it are applied together (ApplyDelta), so a crash leaves
// either the state before the page or the state after it.
//
// Memory stays bounded: the tree lives in the file (the database maps it
// read-only; the kernel pages it in and out), and every read decodes fresh
// items. Caching hot items in memory (an LRU over this store,
// golang-lru/v2) is the job of the file system, not of this package, which
// knows nothing of FUSE, of the content cache or of the network.
//
// A store is used by one process at a time: Open fails with ErrLocked while
// another process holds it.
package metastore
