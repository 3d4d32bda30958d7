package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Offline detection. A Client built with Config.DetectOffline treats a
// connection that cannot even be opened (refused, unreachable, no DNS
// answer, a connect timeout) as the service being unreachable: the link
// goes down, the request fails at once with ErrOffline instead of being
// retried with back-off, and every later request fails at once too, without
// touching the network, until Probe reaches the service again. So a mount
// whose network is gone answers in microseconds, not after the retry
// loop's seconds of back-off per call; its owner runs a prober (fs) that
// calls Probe every few seconds and learns of each change from Link. A
// service that accepts connections and answers nothing is found by
// WatchUnanswered, which the owner runs too (unanswered.go).

// ErrOffline: the service is unreachable (the link is down), so the request
// was not sent, or its connection could not be opened. Nothing was done on
// the service.
var ErrOffline = errors.New("remote: OneDrive is unreachable (offline)")

// offlineDialTimeout bounds a connection attempt of a Client that detects
// offline (net/http's default waits 30 s for a silent host).
const offlineDialTimeout = 3 * time.Second

// Link is the reachability of the service as a Client that detects offline
// sees it. Its zero value is up. Safe for concurrent use.
type Link struct {
	mu      sync.Mutex
	down    bool      // GUARDED_BY(mu)
	since   time.Time // GUARDED_BY(mu): when it went down
	cause   string    // GUARDED_BY(mu): the error that took it down
	changed chan struct{}
	// waiting are the requests sent and not yet answered (no reply
	// header) or whose reply's body is being read, by number: a service
	// that accepts connections and answers nothing is found by their
	// silence (unanswered.go), and they are cancelled when the link goes
	// down. GUARDED_BY(mu)
	waiting map[uint64]*waitingRequest
	nextID  uint64 // GUARDED_BY(mu)
	// kick wakes the watcher (WatchUnanswered) when a request starts
	// waiting. Buffered (1). GUARDED_BY(mu)
	kick chan struct{}
	// latency: recent reply times of small requests (unanswered.go).
	// GUARDED_BY(mu)
	latency latencySamples
	// fresh: answer times of the last checks and probes. GUARDED_BY(mu)
	fresh freshSamples
	// lastAnswer is when the last reachability check that found the
	// service answering began. GUARDED_BY(mu)
	lastAnswer time.Time
	// lastCheck is when the last reachability check began. GUARDED_BY(mu)
	lastCheck time.Time
}

// waitingRequest is a request waiting for its reply's header, or for the
// bytes of its reply's body (reading: unanswered.go's watchedBody).
type waitingRequest struct {
	sent time.Time
	// reading: the header came, the body is being read. GUARDED_BY(Link.mu)
	reading bool
	// blocked is when the body's reader began waiting for bytes
	// (UnixNano), 0 while it does not wait.
	blocked atomic.Int64
	// active is the last sign of life (UnixNano): when it was sent, or
	// when the transport last took bytes of its body (a body still moving
	// means the connection is acknowledging what it sends).
	active atomic.Int64
	// small: its body is small, so its reply time is mostly round trips
	// and the service's work, a sample of the link's latency.
	small  bool
	cancel context.CancelCauseFunc
}

// track records a request sent now; untrack forgets it (no answer, or
// its body read to the end or closed).
func (l *Link) track(small bool, cancel context.CancelCauseFunc) (uint64, *waitingRequest) {
	now := time.Now()
	w := &waitingRequest{sent: now, small: small, cancel: cancel}
	w.active.Store(now.UnixNano())
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiting == nil {
		l.waiting = map[uint64]*waitingRequest{}
	}
	l.nextID++
	l.waiting[l.nextID] = w
	select {
	case l.kickLocked() <- struct{}{}:
	default:
	}
	return l.nextID, w
}

func (l *Link) untrack(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.waiting, id)
}

// headerCame records that request id got its reply's header: a latency
// sample, and from now on it waits for its body's bytes only while its
// reader does (watchedBody), until untracked.
func (l *Link) headerCame(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.waiting[id]
	if w == nil {
		return
	}
	now := time.Now()
	if w.small {
		l.latency.add(now.Sub(w.sent))
	}
	w.reading = true
	w.active.Store(now.UnixNano())
}

// kickLocked returns the watcher's wake-up channel. Requires l.mu.
func (l *Link) kickLocked() chan struct{} {
	if l.kick == nil {
		l.kick = make(chan struct{}, 1)
	}
	return l.kick
}

// cancelWaitingLocked cancels every waiting request with ErrOffline.
// Requires l.mu.
func (l *Link) cancelWaitingLocked() {
	for id, w := range l.waiting {
		w.cancel(ErrOffline)
		delete(l.waiting, id)
	}
}

// LinkState is a snapshot of a Link.
type LinkState struct {
	Offline bool
	Since   time.Time // when it went offline (zero when online)
	Cause   string    // the connection error that took it down
}

// State returns the link's state.
func (l *Link) State() LinkState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LinkState{Offline: l.down, Since: l.since, Cause: l.cause}
}

// Changed returns a channel closed at the next change of the link's state.
func (l *Link) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.changed
}

// set records a new state and wakes the watchers; it reports whether the
// state changed.
func (l *Link) set(down bool, now time.Time, cause string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down == down {
		return false
	}
	l.down, l.since, l.cause = down, time.Time{}, ""
	if down {
		l.since, l.cause = now, cause
		l.cancelWaitingLocked()
	}
	if l.changed != nil {
		close(l.changed)
	}
	l.changed = make(chan struct{})
	return true
}

// MarkOffline takes the link down, as a failed connection does (a mount
// that starts without reaching the service).
func (l *Link) MarkOffline(now time.Time, cause error) {
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	l.set(true, now, msg)
}

// Link returns the client's link (shared by every Client of the account).
// It stays up unless Config.DetectOffline was set.
func (c *Client) Link() *Link { return c.link }

// probeKey marks the context of a Probe or a reachability check: its
// request is sent while the link is down, and not tracked.
type probeKey struct{}

// Probe asks the service for the drive, even while the link is down, on a
// fresh connection (one kept from before may be dead) and without a token
// (a refresh must not hold it up), and brings the link up when it answers
// (any reply of the service counts, the 401 included: it is reachable).
// It returns nil when the link is up afterwards.
func (c *Client) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, probeKey{}, true), probeTimeout)
	defer cancel()
	r := &request{op: "probe", method: http.MethodGet, url: c.driveURL, mode: repeatable, buffer: true, fresh: true, plain: true}
	start := time.Now()
	resp, err := c.do(ctx, r)
	var re *Error
	if err != nil && !errors.As(err, &re) {
		return err
	}
	if resp != nil {
		drain(resp)
	}
	c.link.answered(start, true)
	if c.link.set(false, c.now(), "") {
		// Connections kept from before the outage may be dead without
		// knowing it (a network that changed under them): start afresh.
		c.closeIdle()
		c.log.Info("the service is reachable again")
	}
	return nil
}

// probeTimeout bounds a probe's wait for an answer: generous, as a probe
// only decides when to come back online (a slow answer still counts).
const probeTimeout = 3 * time.Second

// CheckReachable asks the service for the drive on a fresh connection and
// without a token (any answer counts, as for Probe), bounded by checkTimeout (unanswered.go), and takes the link down
// (cancelling the requests waiting for replies) when it gets no answer
// and no waiting request's body moved meanwhile: for a service that
// accepts connections and answers nothing, which no connection error
// reveals. WatchUnanswered calls it when a request has waited suspiciously
// long; it returns nil when the service answers (or the link is down
// already), ErrOffline when it took the link down.
func (c *Client) CheckReachable(ctx context.Context) error {
	if !c.detectOffline || c.link.State().Offline {
		return nil
	}
	timeout := c.link.checkTimeout()
	pctx, cancel := context.WithTimeout(context.WithValue(ctx, probeKey{}, true), timeout)
	defer cancel()
	r := &request{op: "reachability check", method: http.MethodGet, url: c.driveURL, mode: repeatable, buffer: true, fresh: true, plain: true}
	start := time.Now()
	c.link.checking(start)
	resp, err := c.send(pctx, r)
	if err == nil {
		drain(resp)
		c.link.answered(start, true)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if c.link.movedSince(start) {
		// A body is still being taken by a connection opened before the
		// check: its bytes are acknowledged, the path is alive, only
		// slow (a large fragment on a thin uplink starves the check).
		c.link.answered(start, false)
		c.log.Debug("the reachability check got no answer, but an upload is still moving; staying online", "wait", timeout)
		return nil
	}
	if c.link.set(true, c.now(), fmt.Sprintf("no answer within %v: %v", timeout.Round(time.Millisecond), err)) {
		c.log.Warn("the service does not answer; going offline", "wait", timeout.Round(time.Millisecond), "err", err)
	}
	return fmt.Errorf("%w: %w", ErrOffline, err)
}

// offlineCheck returns ErrOffline for a request made while the link is
// down (a Probe's excepted).
func (c *Client) offlineCheck(ctx context.Context, r *request) error {
	if !c.detectOffline || ctx.Value(probeKey{}) != nil {
		return nil
	}
	if st := c.link.State(); st.Offline {
		return fmt.Errorf("%w: %s: not sent (offline since %s)", ErrOffline, r.op, st.Since.Format(time.RFC3339))
	}
	return nil
}

// afterUnreachable takes the link down when err shows the connection could
// not be opened, and returns the error the request ends with; nil when err
// is not such a failure (the retry loop decides).
func (c *Client) afterUnreachable(ctx context.Context, r *request, err error) error {
	if errors.Is(err, ErrOffline) {
		return err // cancelled as the link went down (sendTracked)
	}
	if !c.detectOffline || ctx.Err() != nil || !neverSent(err) || !transientNetError(err) {
		return nil
	}
	if c.link.set(true, c.now(), err.Error()) {
		c.log.Warn("the service is unreachable; going offline", "op", r.op, "err", err)
	}
	return fmt.Errorf("%w: %s: %w", ErrOffline, r.op, err)
}

// sendTracked is send for a client that detects offline: the request is
// tracked until its reply's header arrives (with the progress of its body),
// and cancelled with ErrOffline if the link goes down meanwhile.
func (c *Client) sendTracked(ctx context.Context, r *request) (*http.Response, error) {
	if !c.detectOffline || ctx.Value(probeKey{}) != nil {
		return c.send(ctx, r)
	}
	rctx, cancel := context.WithCancelCause(ctx)
	id, w := c.link.track(r.size <= smallBody, cancel)
	if r.body != nil && r.size > 0 {
		tracked := *r
		body := r.body
		tracked.body = func() io.Reader { return &progressReader{r: body(), w: w} }
		r = &tracked
	}
	err := c.awaitToken(rctx, r)
	var resp *http.Response
	if err == nil {
		resp, err = c.send(rctx, r)
	}
	if err != nil {
		c.link.untrack(id)
		if errors.Is(context.Cause(rctx), ErrOffline) && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: %s: no answer: %w", ErrOffline, r.op, err)
		}
		cancel(nil)
		return nil, err
	}
	// The body is read under rctx, and watched: a body that stops coming
	// is a silence too (unanswered.go). Its end releases rctx (a context
	// never cancelled would stay among ctx's children as long as ctx
	// lives: the mount's, for background requests).
	c.link.headerCame(id)
	resp.Body = &watchedBody{ReadCloser: resp.Body, link: c.link, id: id, w: w, ctx: rctx, cancel: cancel, op: r.op}
	return resp, nil
}

// awaitToken gets the access token a request of the API needs (the
// transport takes it again from the source, at once) under the request's
// context: a refresh stuck in a silent network must not hold the request
// beyond the moment the link goes down, as the transport's own call of the
// token source, which takes no context, would.
func (c *Client) awaitToken(ctx context.Context, r *request) error {
	if r.plain {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.tokens.Token()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return &tokenError{err}
		}
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// offlineTransport returns net/http's default transport with a short
// connect timeout, for a Client that detects offline.
func offlineTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: offlineDialTimeout, KeepAlive: 30 * time.Second}
	t.DialContext = d.DialContext
	return t
}
