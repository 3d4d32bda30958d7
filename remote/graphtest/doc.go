// Package graphtest is a fake OneDrive: the Microsoft Graph drive API and the
// Microsoft identity platform's OAuth2 endpoints, in the shape of
// net/http/httptest. Every test, benchmark and the demo of onedrivefs run
// against it, because the build machines cannot reach Microsoft.
//
// It is faithful to docs/graph-contract.md and strict where the service is
// strict: Bearer tokens are required on API paths and rejected on
// pre-authenticated paths (download, upload-session and monitor URLs), names
// are validated, uniqueness is case-insensitive, upload fragments follow the
// service's rules, and copies are asynchronous jobs whose result appears only
// when the job completes.
//
// The package imports only the standard library. In particular it must not
// import onedrivefs/remote: it has its own wire structs, so that a mismatch
// between the client and the service shows up in tests.
//
// Where the service answers the same request in more than one form
// (docs/graph-contract.md lists them), the fake answers in one by default and
// can be switched to each of the others: FormOptions (downloads, error
// bodies, delta links, upload statuses), the Monitor* knobs of CopyOptions
// (the copy monitor) and FaultOptions.RetryAfterForm. FaultOptions also
// injects the service's bad days, including replies lost after the service
// acted (DropReplyEvery, DropNextReplies), and SetNetwork takes the service
// away altogether (connections refused, or accepted and never answered)
// and brings it back (network.go). Generate builds drives of a million
// items for scale tests (generate.go).
//
// Besides the default user and drive it can hold further users with drives
// and tokens of their own, SharePoint sites with document libraries, and
// shares, shortcuts and sharing links between them, with access checked on
// every request (users.go, shares.go, sites.go).
//
// State is held in memory and, when Options.DataDir is set, persisted there
// (metadata as JSON, content as immutable blob files shared by copies).
// Every absolute URL handed out is built from the request's scheme and Host
// (honouring X-Forwarded-Proto and X-Forwarded-Host).
//
// Lock order: Server.saveMu (serialises Save), then Server.mu, then
// blobStore.mu. Server.mu guards the drive tree, jobs, sessions, tokens,
// faults and forms; handlers take it for the shortest time they can, and
// content is streamed from blob files without holding it. blobStore.mu
// guards the blob reference counts and garbage (blobs.go). statsState.mu is a
// leaf, taken with or without the others (stats.go), and so is network.mu
// (the listener and the network mode, network.go).
package graphtest
