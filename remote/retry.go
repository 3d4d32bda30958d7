package remote

// The one place where requests are sent, retried and throttled. Every
// request of the package, to the API or to a pre-authenticated URL, goes
// through Client.do.
//
// What is retried:
//   - 429, 503 and 509 (throttling): the service did not act on the request,
//     so any request is repeated after Retry-After (seconds or an HTTP date;
//     without one, the back-off below). Meanwhile every other request of the
//     Client waits too (the gate), as the service asks.
//   - 500, 502, 504 and broken connections (reset, EOF, unexpected EOF,
//     timeouts): repeated with exponential back-off and full jitter, only for
//     requests that are safe to repeat (GET, HEAD, DELETE, PUT of content,
//     PATCH, createUploadSession, create-folder with conflictBehavior fail).
//     A request that is not (POST …/copy, create-folder with rename) is
//     returned with ErrOutcomeUnknown instead; a connection that could not
//     even be opened is retried for every request.
//   - 401 from the API: the token source is invalidated (when it can be) and
//     the request repeated once with a fresh token.
//
// Everything else (other 4xx, 507, 501, …) is permanent and returned as an
// *Error. Attempts are bounded by RetryPolicy.MaxAttempts; every wait ends
// early when the request's context is done.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// RetryPolicy bounds the retries of one request.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts of one request, the first
	// included; 0 → 6. The extra attempt after a 401 is not counted.
	MaxAttempts int
	// BaseDelay and MaxDelay shape the back-off: the wait before retry n is
	// uniformly random in [0, min(MaxDelay, BaseDelay·2^(n-1))] ("full
	// jitter"). 0 → 250 ms and 30 s.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MaxRetryAfter is the longest Retry-After waited for inside a call; a
	// longer one is returned at once as an ErrThrottled *Error carrying
	// RetryAfter, for the caller to decide. 0 → 5 min.
	MaxRetryAfter time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 6
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 250 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 30 * time.Second
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = 5 * time.Minute
	}
	return p
}

// backoff is the wait before retry number n (n ≥ 1).
func (c *Client) backoff(n int) time.Duration {
	ceiling := c.retry.BaseDelay
	for i := 1; i < n && ceiling < c.retry.MaxDelay; i++ {
		ceiling *= 2
	}
	return c.jitter(min(ceiling, c.retry.MaxDelay))
}

// gate holds every request of a Client back while the service throttles it.
type gate struct {
	mu        sync.Mutex
	notBefore time.Time // GUARDED_BY(mu): no request is sent before this time
}

// hold moves the gate's time forward to t (never back).
func (g *gate) hold(t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.After(g.notBefore) {
		g.notBefore = t
	}
}

func (g *gate) until() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.notBefore
}

// waitGate returns when the gate is open or ctx is done.
func (c *Client) waitGate(ctx context.Context) error {
	for {
		d := c.gate.until().Sub(c.now())
		if d <= 0 {
			return ctx.Err()
		}
		if err := c.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// sleepContext waits for d or until ctx is done. It is the package's one
// sleep: Client.sleep and the sign-in poll (DeviceLogin) both use it.
func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryMode says whether a request may be repeated after a failure that may
// have reached the service.
type retryMode int

const (
	// notRepeatable requests are repeated only when the service surely did
	// not act (throttled, or the connection was never opened).
	notRepeatable retryMode = iota
	// repeatable requests have no further effect when repeated.
	repeatable
)

// request is one logical API call; do may send it several times.
type request struct {
	op     string // for errors and logs, e.g. "children"
	method string
	url    string // never logged
	header http.Header
	// body returns a fresh reader over the same bytes for every attempt;
	// nil for no body. size is its length.
	body  func() io.Reader
	size  int64
	plain bool      // send with the token-less client
	mode  retryMode // see retryMode
	// raw: hand every reply to the caller, whatever its status (the copy
	// monitor classifies replies itself); broken connections are still
	// retried.
	raw bool
	// buffer: read the whole body of a reply below 400 (any reply if raw)
	// inside the retry loop (JSON replies), so that a body cut short is
	// retried too.
	buffer bool
	// fresh: send on a connection of its own, opened for this request
	// (probes and reachability checks, unanswered.go).
	fresh bool

	// retried is set by do when an earlier attempt may have taken effect
	// (it failed after the request was sent). Callers use it to recognise
	// their own earlier success (a 409 or 412 after such a retry).
	retried bool
}

// jsonRequest returns a request whose body is v as JSON.
func jsonRequest(op, method, u string, v any, mode retryMode) (*request, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("remote: %s: %w", op, err)
	}
	r := &request{op: op, method: method, url: u, mode: mode, size: int64(len(b)), buffer: true,
		header: http.Header{"Content-Type": {"application/json"}}}
	r.body = func() io.Reader { return bytes.NewReader(b) }
	return r, nil
}

// do sends r, retrying as the package doc above says. It returns the reply
// when its status is below 400 (redirects are not followed, so 3xx replies
// come back too) or, for raw requests, whatever the status; the caller
// closes the body. Any other outcome is an error: an *Error for a reply of
// the service, the transport's error otherwise.
func (c *Client) do(ctx context.Context, r *request) (*http.Response, error) {
	attempts := 0
	reauthenticated := false
	for {
		if err := c.waitGate(ctx); err != nil {
			return nil, err
		}
		if err := c.offlineCheck(ctx, r); err != nil {
			return nil, err
		}
		attempts++
		resp, err := c.sendTracked(ctx, r) // offline.go
		if err == nil && !r.plain {
			c.noteBudget(resp.Header)
		}
		if err == nil && r.buffer && (r.raw || resp.StatusCode < 400) {
			err = bufferBody(resp)
		}
		if err != nil {
			if err := c.afterUnreachable(ctx, r, err); err != nil {
				return nil, err
			}
			if err := c.afterNetError(ctx, r, attempts, err); err != nil {
				return nil, err
			}
			continue
		}
		if r.raw || resp.StatusCode < 400 {
			return resp, nil
		}

		status := resp.StatusCode
		if status == http.StatusUnauthorized && !r.plain && !reauthenticated {
			if inv, ok := c.tokens.(interface{ Invalidate() }); ok {
				drain(resp)
				reauthenticated = true
				attempts--
				inv.Invalidate()
				c.log.Debug("access token refused; retrying with a fresh one", "op", r.op)
				continue
			}
		}
		e := errorFromResponse(r.op, resp, c.now())
		switch {
		case isThrottleStatus(status):
			if attempts >= c.retry.MaxAttempts || e.RetryAfter > c.retry.MaxRetryAfter {
				return nil, e
			}
			wait := e.RetryAfter
			if wait <= 0 {
				wait = max(c.backoff(attempts), c.retry.BaseDelay)
			}
			c.gate.hold(c.now().Add(wait))
			c.log.Debug("throttled; holding all requests", "op", r.op, "status", status, "wait", wait)
		case status == http.StatusInternalServerError || status == http.StatusBadGateway ||
			status == http.StatusGatewayTimeout:
			if r.mode == notRepeatable {
				return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, e)
			}
			if attempts >= c.retry.MaxAttempts {
				return nil, e
			}
			r.retried = true
			wait := max(c.backoff(attempts), e.RetryAfter)
			c.log.Debug("retrying after a server error", "op", r.op, "status", status, "attempt", attempts, "wait", wait)
			if err := c.sleep(ctx, wait); err != nil {
				return nil, err
			}
		default:
			return nil, e
		}
	}
}

// afterNetError decides what follows a failed attempt that got no complete
// reply: nil after waiting the back-off (try again), or the error to return.
func (c *Client) afterNetError(ctx context.Context, r *request, attempts int, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var te *tokenError
	if errors.As(err, &te) {
		return te
	}
	sent := !neverSent(err)
	transient := transientNetError(err)
	if sent && transient && r.mode == notRepeatable {
		return fmt.Errorf("%w: %s: %w", ErrOutcomeUnknown, r.op, err)
	}
	if !transient || attempts >= c.retry.MaxAttempts {
		return fmt.Errorf("remote: %s: %w", r.op, err)
	}
	r.retried = r.retried || sent
	wait := c.backoff(attempts)
	c.log.Debug("retrying after a connection failure", "op", r.op, "attempt", attempts, "wait", wait, "err", err)
	return c.sleep(ctx, wait)
}

// bufferBody reads a reply's whole (bounded) body into memory, so that a
// connection broken mid-body is retried like any other broken connection.
func bufferBody(resp *http.Response) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody+1))
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	if len(b) > maxJSONBody {
		return fmt.Errorf("reply larger than %d bytes", maxJSONBody)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return nil
}

// send makes one attempt.
func (c *Client) send(ctx context.Context, r *request) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range r.header {
		req.Header[k] = append([]string(nil), v...)
	}
	if r.body != nil {
		req.ContentLength = r.size
		if r.size == 0 {
			req.Body = http.NoBody
		} else {
			req.Body = io.NopCloser(r.body())
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(r.body()), nil }
		}
	}
	client := c.api
	switch {
	case r.fresh:
		client = c.fresh
	case r.plain:
		client = c.plain
	}
	resp, err := client.Do(req)
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redactURL(ue.URL, r.plain)
	}
	return resp, err
}

// redactURL keeps what an error message may show of a URL: for the API, the
// URL without its query; for a pre-authenticated URL, whose path and query
// may both hold credentials, only the scheme and host.
func redactURL(raw string, preauthenticated bool) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(URL withheld)"
	}
	if preauthenticated {
		return u.Scheme + "://" + u.Host + "/(pre-authenticated URL withheld)"
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

// neverSent reports whether err shows the request never left this machine
// (the connection could not be opened), so repeating it is always safe.
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// transientNetError reports whether a transport error is worth retrying.
func transientNetError(err error) bool {
	var cert *tls.CertificateVerificationError
	if errors.As(err, &cert) {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ETIMEDOUT) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op)
}

// drain discards a little of a body so that the connection can be reused,
// and closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 8<<10))
	_ = resp.Body.Close()
}
