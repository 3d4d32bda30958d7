package copyjob

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
)

// Poller reads one poll of a monitor URL. *remote.Client is the Poller of a
// mount; the package doc ("Contract for a Poller") says how its answers and
// errors are taken. Monitor must return promptly when ctx is cancelled.
type Poller interface {
	Monitor(ctx context.Context, monitorURL string) (*remote.JobStatus, error)
}

// PollerFunc adapts a function to the Poller interface.
type PollerFunc func(ctx context.Context, monitorURL string) (*remote.JobStatus, error)

// Monitor calls f.
func (f PollerFunc) Monitor(ctx context.Context, monitorURL string) (*remote.JobStatus, error) {
	return f(ctx, monitorURL)
}

var (
	_ Poller = PollerFunc(nil)
	_ Poller = (*remote.Client)(nil)
)

// Errors of the package. Match them with errors.Is.
var (
	// ErrNotFound: no job with that id (never added, or dropped from history).
	ErrNotFound = errors.New("copyjob: no such job")
	// ErrNotified: the job's OnDone has returned, so Amend can no longer
	// change what it applies; the caller applies the change itself.
	ErrNotified = errors.New("copyjob: job already handed to OnDone")
	// ErrClosed: the tracker has been closed.
	ErrClosed = errors.New("copyjob: tracker closed")
	// ErrRunning: Run was called while another Run was active.
	ErrRunning = errors.New("copyjob: tracker already running")
	// ErrNotPersisted: Add or Amend changed the job in memory but could not
	// write it to disk, so the change would not survive a restart.
	ErrNotPersisted = errors.New("copyjob: job not persisted")
)

// pollFailure is how the tracker takes a failed poll.
type pollFailure struct {
	// gone: the monitor no longer knows the job (404, 410) or no longer
	// accepts its pre-authenticated URL (401, 403).
	gone bool
	// throttle > 0: the service refused the poll with a Retry-After (429, or
	// 503 with the header); all polling pauses that long, and the answer is
	// not a failure of the job.
	throttle time.Duration
}

// classifyPollError reads a Poller's error. Anything that is neither gone nor
// throttled (network, 5xx, a reply without a status) is retried with back-off.
func classifyPollError(err error) pollFailure {
	var re *remote.Error
	if !errors.As(err, &re) {
		return pollFailure{}
	}
	switch re.StatusCode {
	case http.StatusNotFound, http.StatusGone, http.StatusUnauthorized, http.StatusForbidden:
		return pollFailure{gone: true}
	}
	if errors.Is(err, remote.ErrThrottled) && re.RetryAfter > 0 {
		return pollFailure{throttle: re.RetryAfter}
	}
	return pollFailure{}
}
