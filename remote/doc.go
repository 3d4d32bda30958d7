// Package remote is onedrivefs's Microsoft Graph client: everything that
// crosses the network to OneDrive goes through here (docs/graph-contract.md is
// the contract it follows).
//
// It owns:
//   - Client (client.go): two HTTP clients built from one Config. The API
//     client adds the OAuth2 bearer token; the plain client adds nothing and
//     is the only one used for pre-authenticated URLs (download URLs, upload
//     session URLs, copy monitor URLs), which must never see the token.
//     Neither follows redirects: a 302 to content or a 303 from a monitor is
//     an answer to read, not a hop to take with credentials attached.
//   - Retries and throttling in one place (retry.go): every request goes
//     through Client.do, which honours Retry-After and holds all of the
//     Client's requests back while the service throttles it, backs off on
//     transient failures, refreshes a refused token once, and never repeats a
//     request that is not safe to repeat.
//   - Wire types (wire.go), converted to Item, Drive, JobStatus; typed errors
//     (errors.go) with sentinels for errors.Is.
//   - Items and paths (items.go, path.go), downloads (download.go), uploads
//     with resumable sessions (upload.go), server-side copy and its monitor
//     (copy.go), delta (delta.go), and quickXorHash (sub-package
//     quickxorhash).
//   - OAuth2 sign-in and token storage (auth*.go, token*.go, profile*.go).
//   - Other drives (sharing.go, docs/graph-contract.md §11): Client.OnDrive
//     addresses a shared folder's or a SharePoint library's drive with the
//     same methods; the signed-in user, their drives, sites, what was shared
//     with them, shortcuts, permissions and sharing links.
//
// It must not: know about FUSE, caches or copy-job bookkeeping (those are
// fs, cache and copyjob, which call it); keep package-level mutable state or
// use http.DefaultClient; start goroutines (all work happens in the caller's
// call and stops with its context); log tokens or pre-authenticated URLs
// (URLs are never logged, and *Error carries none).
//
// Every method takes a context first and returns when it is done, including
// during back-off and throttling waits.
package remote
