// Package cache holds the local state of a mount, on disk and in memory:
//
//   - Content: the on-disk cache of file bytes, keyed by (item id, cTag),
//     filled range by range through a caller-supplied fetch function, bounded
//     by a byte budget with LRU eviction of entries not in use, persisted
//     across restarts. RangeSet records which bytes of an entry are present;
//     Readahead sizes prefetches for sequential readers.
//   - Staging: write-back staging files holding the new content of files
//     being written, and the crash-safe journal of the ones still to upload.
//   - Listings: a TTL cache of folder listings.
//   - State: a small persisted key-value store (delta link and the like).
//
// What the package must not do: talk to the network, know Graph or FUSE
// types, or decide policy that belongs to the fs (when to read ahead and how
// far, when to verify, when to upload). It imports no other package of the
// project; its keys are plain strings. Nothing here starts a goroutine: work
// runs in the caller's goroutine, under the caller's context.
//
// Directory layout under the cache dir, as the fs is expected to wire it:
//
//	content/<hash>.data      sparse copy of a file version
//	content/<hash>.ranges    JSON sidecar: key, size, present ranges, verified
//	staging/<record-id>      full new content of a file being written
//	journal/<record-id>.json record of a file that must reach the server
//	state.json               mount state
//
// Every file that must survive a crash is written to a temporary name
// ("*.tmp-*"), fsynced and renamed; loaders delete temporary leftovers.
package cache
