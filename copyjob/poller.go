package copyjob

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Poller reads one poll of a monitor URL. The package doc ("Contract for a
// Poller") says which answers become a Status and which become which error.
// Poll must return promptly when ctx is cancelled.
type Poller interface {
	Poll(ctx context.Context, monitorURL string) (Status, error)
}

// PollerFunc adapts a function to the Poller interface.
type PollerFunc func(ctx context.Context, monitorURL string) (Status, error)

// Poll calls f.
func (f PollerFunc) Poll(ctx context.Context, monitorURL string) (Status, error) {
	return f(ctx, monitorURL)
}

var _ Poller = PollerFunc(nil)

// Errors of the package. Match them with errors.Is.
var (
	// ErrMonitorGone is wrapped by a Poller when the monitor answers 404/410
	// (or 401/403): the job is unknown there, or the URL's token has expired.
	ErrMonitorGone = errors.New("copyjob: copy monitor gone")
	// ErrNotFound: no job with that id (never added, or dropped from history).
	ErrNotFound = errors.New("copyjob: no such job")
	// ErrClosed: the tracker has been closed.
	ErrClosed = errors.New("copyjob: tracker closed")
	// ErrRunning: Run was called while another Run was active.
	ErrRunning = errors.New("copyjob: tracker already running")
	// ErrNotPersisted: Add tracks the job but could not write it to disk, so
	// it would not survive a restart.
	ErrNotPersisted = errors.New("copyjob: job not persisted")
)

// ThrottledError is returned by a Poller when the service refused a poll with
// a Retry-After (429, or 503 with the header). The tracker pauses all polling
// for RetryAfter (the service throttles a client, not a job) and does not
// count the answer as a failure.
type ThrottledError struct {
	RetryAfter time.Duration
	Err        error // the underlying error, may be nil
}

func (e *ThrottledError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("monitor throttled, retry after %s", e.RetryAfter)
	}
	return fmt.Sprintf("monitor throttled, retry after %s: %v", e.RetryAfter, e.Err)
}

func (e *ThrottledError) Unwrap() error { return e.Err }

// itemIDFromURL returns the item id named by an item URL, as a 303 Location or
// a resourceLocation gives it: …/items/{id}[/…] or the OData form …/items('{id}').
// It returns "" when the URL names no item (the service once sent an empty key
// in the OData form).
func itemIDFromURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	p := u.Path
	if i := strings.LastIndex(p, "/items('"); i >= 0 {
		rest := p[i+len("/items('"):]
		if j := strings.Index(rest, "')"); j >= 0 {
			return rest[:j]
		}
		return ""
	}
	i := strings.LastIndex(p, "/items/")
	if i < 0 {
		return ""
	}
	rest := p[i+len("/items/"):]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	return rest
}
