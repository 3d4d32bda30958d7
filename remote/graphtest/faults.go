package graphtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FaultOptions inject the service's bad days. The zero value injects
// nothing. Set them in Options.Faults, with SetFaults, or at run time with
// `PUT /_fake/faults` (JSON, durations as strings such as "2s").
type FaultOptions struct {
	// ThrottleEvery answers every Nth matching request with ThrottleStatus
	// and a Retry-After header; 0 → never.
	ThrottleEvery int
	// ThrottleStatus is 429 (the default; code activityLimitReached), 503
	// (serviceNotAvailable) or 509 (the bandwidth cap, §7; code
	// activityLimitReached [? the service's code for 509]).
	ThrottleStatus int
	// RetryAfter is the wait throttled answers ask for, in whole seconds
	// rounded up; 0 → 1 s.
	RetryAfter time.Duration
	// RetryAfterForm is how the Retry-After header says it: "seconds" (the
	// default, e.g. "2", the form the service is documented to send) or
	// "date" (an HTTP date that many seconds from now by Options.Clock,
	// rounded up to a whole second, e.g. "Mon, 06 May 2024 07:08:11 GMT";
	// RFC 9110 allows both).
	RetryAfterForm string
	// ThrottleFor throttles every matching request for this long after the
	// options are set (at NewServer, or by SetFaults). It is folded into
	// ThrottleUntil: Faults reports ThrottleUntil and a zero ThrottleFor.
	ThrottleFor time.Duration
	// ThrottleUntil throttles every matching request until this time (by
	// Options.Clock).
	ThrottleUntil time.Time
	// Ops restricts throttling, resets, dropped replies and slowness to
	// these operation names (see the op constants in route.go, e.g.
	// "download", "item.get"); an entry "x" also matches every "x.…"
	// ("upload" matches "upload.fragment"). Empty → every Graph request and every
	// pre-authenticated URL (download, upload, monitor); the OAuth endpoints
	// only when named. Control requests are never hit.
	Ops []string
	// ResetEvery resets the connection of every Nth matching request; 0 →
	// never. A download is cut after half of its body (the client reads an
	// unexpected EOF); any other request is dropped before an answer, so an
	// upload fragment does not advance its session.
	ResetEvery int
	// DropReplyEvery serves every Nth matching request for real and then
	// drops the connection instead of answering; 0 → never. The service
	// acted (a folder was created, a fragment stored, a copy started) but
	// the client sees a reset and cannot tell. Unlike ResetEvery, which
	// drops the request before it is served, this exercises a client's
	// recovery of lost replies (a repeat that meets 409, 412, 404 or 416).
	// A throttled or reset request is not also dropped.
	DropReplyEvery int
	// DropNextReplies drops the replies of the next N matching requests,
	// after serving them, as DropReplyEvery does. It counts down: Faults
	// reports how many are left.
	DropNextReplies int
	// SlowBy delays every matching request by this long before it is
	// served.
	SlowBy time.Duration
	// FailCopyEvery makes every Nth copy job fail (when it would have
	// completed) with FailCopyCode; 0 → never.
	FailCopyEvery int
	// FailNextCopies makes the next N copy jobs fail with FailCopyCode.
	FailNextCopies int
	// FailCopyCode is the error code of injected copy failures; empty →
	// generalException.
	FailCopyCode string
	// VisibilityDelay hides new items from listings, path lookups and delta
	// for this long after they are created; lookups by id still find them
	// (eventual consistency; a copy job reports completed before its items
	// are visible, as Business sometimes does, #1239).
	VisibilityDelay time.Duration
}

// faultState is the live fault configuration and its counters. Guarded by
// Server.mu.
type faultState struct {
	opts      FaultOptions // ThrottleFor already folded into ThrottleUntil
	throttleN int64        // matching requests seen, for ThrottleEvery
	resetN    int64        // matching requests seen, for ResetEvery
	dropN     int64        // matching requests seen, for DropReplyEvery
	copyN     int64        // copy jobs started, for FailCopyEvery
}

// set installs o at time now and restarts the counters.
func (f *faultState) set(o FaultOptions, now time.Time) {
	o.Ops = slices.Clone(o.Ops)
	if o.ThrottleFor > 0 {
		if until := now.Add(o.ThrottleFor); until.After(o.ThrottleUntil) {
			o.ThrottleUntil = until
		}
		o.ThrottleFor = 0
	}
	*f = faultState{opts: o}
}

// SetFaults replaces the fault configuration and restarts its counters.
func (s *Server) SetFaults(o FaultOptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.set(o, s.now())
}

// Faults returns the fault configuration in force.
func (s *Server) Faults() FaultOptions {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.faults.opts
	o.Ops = slices.Clone(o.Ops)
	return o
}

// matches reports whether faults apply to operation op.
func (f *faultState) matches(op string) bool {
	if op == opControl {
		return false
	}
	if len(f.opts.Ops) == 0 {
		return !strings.HasPrefix(op, "oauth.")
	}
	for _, o := range f.opts.Ops {
		if op == o || strings.HasPrefix(op, o+".") {
			return true
		}
	}
	return false
}

// injectFault applies the fault configuration to a request of operation op.
// It reports true when it has answered the request (throttled); it panics
// with http.ErrAbortHandler to drop a connection; it may sleep (without
// holding the lock); and it may return a wrapped writer that cuts a
// download short. The caller serves the request with the returned writer.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request, op string) (http.ResponseWriter, bool) {
	s.mu.Lock()
	f := &s.faults
	if !f.matches(op) {
		s.mu.Unlock()
		return w, false
	}
	o := f.opts
	throttle := s.now().Before(o.ThrottleUntil)
	if o.ThrottleEvery > 0 {
		f.throttleN++
		throttle = throttle || f.throttleN%int64(o.ThrottleEvery) == 0
	}
	reset := false
	if o.ResetEvery > 0 && !throttle {
		f.resetN++
		reset = f.resetN%int64(o.ResetEvery) == 0
	}
	drop := false
	if !throttle && !reset {
		if f.opts.DropNextReplies > 0 {
			f.opts.DropNextReplies--
			drop = true
		}
		if o.DropReplyEvery > 0 {
			f.dropN++
			drop = drop || f.dropN%int64(o.DropReplyEvery) == 0
		}
	}
	now := s.now()
	s.mu.Unlock()

	if o.SlowBy > 0 {
		t := time.NewTimer(o.SlowBy)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	switch {
	case throttle:
		s.countThrottled()
		w.Header().Set("Retry-After", retryAfterHeader(o, now))
		switch o.ThrottleStatus {
		case http.StatusServiceUnavailable:
			writeError(w, r, http.StatusServiceUnavailable, codeServiceNotAvailable, "The service is temporarily unavailable. Please retry later.", "")
		case statusBandwidthLimit:
			writeError(w, r, statusBandwidthLimit, codeActivityLimit, "The bandwidth limit has been exceeded.", "")
		default:
			writeError(w, r, http.StatusTooManyRequests, codeActivityLimit, "The request has been throttled.", "throttledRequest")
		}
		return w, true
	case reset && op == opDownload:
		return &cutWriter{ResponseWriter: w, onCut: s.countReset}, false
	case reset:
		s.countReset()
		panic(http.ErrAbortHandler) // net/http drops the connection silently
	case drop:
		return &dropWriter{header: http.Header{}, onDrop: s.countDropped}, false
	}
	return w, false
}

// statusBandwidthLimit is 509 Bandwidth Limit Exceeded (not in net/http).
const statusBandwidthLimit = 509

// Retry-After forms (FaultOptions.RetryAfterForm).
const (
	retryAfterSeconds = "seconds"
	retryAfterDate    = "date"
)

// retryAfterHeader is the Retry-After of a throttled answer at time now:
// o.RetryAfter in whole seconds rounded up (at least 1), as a number or as
// the HTTP date that many seconds from now, rounded up to a whole second.
func retryAfterHeader(o FaultOptions, now time.Time) string {
	secs := int64((o.RetryAfter + time.Second - 1) / time.Second)
	if secs <= 0 {
		secs = 1
	}
	if o.RetryAfterForm != retryAfterDate {
		return strconv.FormatInt(secs, 10)
	}
	at := now.Add(time.Duration(secs) * time.Second)
	if t := at.Truncate(time.Second); !t.Equal(at) {
		at = t.Add(time.Second)
	}
	return at.UTC().Format(http.TimeFormat)
}

// dropWriter swallows the reply of a request whose reply is to be lost
// (DropReplyEvery, DropNextReplies): the handler serves the request for
// real, its writes go nowhere (a failed Write also stops a download early),
// and drop then aborts the handler, so that net/http closes the connection
// without having sent a byte.
type dropWriter struct {
	header http.Header
	onDrop func()
}

// errDropped is returned by a dropWriter's Write.
var errDropped = errors.New("graphtest: reply dropped by fault injection")

func (d *dropWriter) Header() http.Header       { return d.header }
func (d *dropWriter) WriteHeader(int)           {}
func (d *dropWriter) Write([]byte) (int, error) { return 0, errDropped }

// drop counts the lost reply and aborts the handler; ServeHTTP defers it
// after serving the request.
func (d *dropWriter) drop() {
	d.onDrop()
	panic(http.ErrAbortHandler)
}

// cutWriter passes a successful response's headers and the first half of
// its body, then fails every write. When the response declared a
// Content-Length, net/http closes the connection after the handler returns
// short, so the client reads an unexpected EOF; without one, the writer
// aborts the handler to drop the connection.
type cutWriter struct {
	http.ResponseWriter
	onCut   func() // called once, when the body is cut
	status  int
	started bool  // the first body byte has been offered
	limit   int64 // body bytes to let through
	written int64
	cut     bool
}

// errCut is returned by a cutWriter once the body has been cut.
var errCut = errors.New("graphtest: connection reset by fault injection")

func (c *cutWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.status < 200 || c.status > 299 {
		return c.ResponseWriter.Write(p)
	}
	if c.cut {
		return 0, errCut
	}
	if !c.started {
		c.started = true
		cl, err := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64)
		if err != nil || cl <= 0 {
			c.onCut()
			_ = http.NewResponseController(c.ResponseWriter).Flush() // headers out, then drop
			panic(http.ErrAbortHandler)
		}
		c.limit = cl / 2
	}
	room := c.limit - c.written
	if int64(len(p)) <= room {
		n, err := c.ResponseWriter.Write(p)
		c.written += int64(n)
		return n, err
	}
	n, _ := c.ResponseWriter.Write(p[:room])
	c.written += int64(n)
	c.cut = true
	c.onCut()
	_ = http.NewResponseController(c.ResponseWriter).Flush()
	return n, errCut
}

func (c *cutWriter) Flush() { _ = http.NewResponseController(c.ResponseWriter).Flush() }

func (c *cutWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// copyFailureLocked counts a starting copy job and returns the error code it
// must fail with, or "" to let it run its course. Called with Server.mu held.
func (s *Server) copyFailureLocked() string {
	f := &s.faults
	f.copyN++
	fail := false
	if f.opts.FailNextCopies > 0 {
		f.opts.FailNextCopies--
		fail = true
	}
	if f.opts.FailCopyEvery > 0 && f.copyN%int64(f.opts.FailCopyEvery) == 0 {
		fail = true
	}
	if !fail {
		return ""
	}
	if f.opts.FailCopyCode == "" {
		return codeGeneralException
	}
	return f.opts.FailCopyCode
}

// visibleAtLocked is the time from which an item created now is visible:
// the zero time when there is no VisibilityDelay. Called with Server.mu
// held; insert uses it to set item.VisibleAt.
func (s *Server) visibleAtLocked() time.Time {
	if d := s.faults.opts.VisibilityDelay; d > 0 {
		return s.now().Add(d)
	}
	return time.Time{}
}

// hiddenLocked reports whether an item is still invisible because of
// VisibilityDelay. Listings, path lookups and delta skip hidden items.
// Called with Server.mu held.
func (s *Server) hiddenLocked(it *item) bool {
	return !it.VisibleAt.IsZero() && s.now().Before(it.VisibleAt)
}

// jsonDuration is a time.Duration that reads and writes JSON as a string
// ("1m30s"); a JSON number is taken as seconds.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case string:
		dur, err := time.ParseDuration(x)
		if err != nil {
			return err
		}
		*d = jsonDuration(dur)
	case float64:
		*d = jsonDuration(x * float64(time.Second))
	case nil:
		*d = 0
	default:
		return fmt.Errorf("duration must be a string like \"2s\" or a number of seconds, not %s", b)
	}
	return nil
}

// faultOptionsJSON is the JSON form of FaultOptions (/_fake/faults).
type faultOptionsJSON struct {
	ThrottleEvery   int          `json:"throttleEvery"`
	ThrottleStatus  int          `json:"throttleStatus"`
	RetryAfter      jsonDuration `json:"retryAfter"`
	RetryAfterForm  string       `json:"retryAfterForm"`
	ThrottleFor     jsonDuration `json:"throttleFor"`
	ThrottleUntil   time.Time    `json:"throttleUntil"`
	Ops             []string     `json:"ops"`
	ResetEvery      int          `json:"resetEvery"`
	DropReplyEvery  int          `json:"dropReplyEvery"`
	DropNextReplies int          `json:"dropNextReplies"`
	SlowBy          jsonDuration `json:"slowBy"`
	FailCopyEvery   int          `json:"failCopyEvery"`
	FailNextCopies  int          `json:"failNextCopies"`
	FailCopyCode    string       `json:"failCopyCode"`
	VisibilityDelay jsonDuration `json:"visibilityDelay"`
}

func (o FaultOptions) jsonForm() faultOptionsJSON {
	return faultOptionsJSON{
		ThrottleEvery: o.ThrottleEvery, ThrottleStatus: o.ThrottleStatus,
		RetryAfter: jsonDuration(o.RetryAfter), RetryAfterForm: o.RetryAfterForm,
		ThrottleFor: jsonDuration(o.ThrottleFor), ThrottleUntil: o.ThrottleUntil, Ops: o.Ops,
		ResetEvery: o.ResetEvery, DropReplyEvery: o.DropReplyEvery, DropNextReplies: o.DropNextReplies,
		SlowBy: jsonDuration(o.SlowBy), FailCopyEvery: o.FailCopyEvery,
		FailNextCopies: o.FailNextCopies, FailCopyCode: o.FailCopyCode,
		VisibilityDelay: jsonDuration(o.VisibilityDelay),
	}
}

func (j faultOptionsJSON) options() FaultOptions {
	return FaultOptions{
		ThrottleEvery: j.ThrottleEvery, ThrottleStatus: j.ThrottleStatus,
		RetryAfter: time.Duration(j.RetryAfter), RetryAfterForm: j.RetryAfterForm,
		ThrottleFor: time.Duration(j.ThrottleFor), ThrottleUntil: j.ThrottleUntil, Ops: j.Ops,
		ResetEvery: j.ResetEvery, DropReplyEvery: j.DropReplyEvery, DropNextReplies: j.DropNextReplies,
		SlowBy: time.Duration(j.SlowBy), FailCopyEvery: j.FailCopyEvery,
		FailNextCopies: j.FailNextCopies, FailCopyCode: j.FailCopyCode,
		VisibilityDelay: time.Duration(j.VisibilityDelay),
	}
}

// MarshalJSON writes durations as strings.
func (o FaultOptions) MarshalJSON() ([]byte, error) { return json.Marshal(o.jsonForm()) }

// UnmarshalJSON reads the form MarshalJSON writes. Fields absent from the
// JSON keep their value in o, so decoding into the current options merges.
// Unknown fields are an error.
func (o *FaultOptions) UnmarshalJSON(b []byte) error {
	j := o.jsonForm()
	if err := decodeStrict(b, &j); err != nil {
		return err
	}
	opts := j.options()
	if err := opts.validate(); err != nil {
		return err
	}
	*o = opts
	return nil
}

// validate checks the knobs that take one of a few values.
func (o FaultOptions) validate() error {
	switch o.ThrottleStatus {
	case 0, http.StatusTooManyRequests, http.StatusServiceUnavailable, statusBandwidthLimit:
	default:
		return fmt.Errorf("throttleStatus must be 429, 503 or 509, not %d", o.ThrottleStatus)
	}
	switch o.RetryAfterForm {
	case "", retryAfterSeconds, retryAfterDate:
	default:
		return fmt.Errorf("retryAfterForm must be %q or %q, not %q", retryAfterSeconds, retryAfterDate, o.RetryAfterForm)
	}
	if o.ThrottleEvery < 0 || o.ResetEvery < 0 || o.DropReplyEvery < 0 || o.DropNextReplies < 0 ||
		o.FailCopyEvery < 0 || o.FailNextCopies < 0 {
		return errors.New("fault counts cannot be negative")
	}
	return nil
}

// decodeStrict decodes JSON into v, refusing unknown fields.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
