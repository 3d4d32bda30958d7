package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors for errors.Is. A *Error matches the ones its HTTP status or
// its Graph error codes imply (see Error.Is); the others are returned
// wrapped by the operations that document them. Nobody needs to look at an
// error's message.
var (
	// ErrNotFound: 404 or itemNotFound.
	ErrNotFound = errors.New("remote: item not found")
	// ErrConflict: 409 or nameAlreadyExists.
	ErrConflict = errors.New("remote: name already exists")
	// ErrPreconditionFailed: 412 or resourceModified (an If-Match eTag no
	// longer matches: the item changed since the caller read it).
	ErrPreconditionFailed = errors.New("remote: item changed since it was read")
	// ErrThrottled: 429, 503 or 509 (activityLimitReached, serviceNotAvailable),
	// after the client's own retries gave up, or from Monitor, which never
	// waits itself. Error.RetryAfter says how long the service asked to wait.
	ErrThrottled = errors.New("remote: throttled")
	// ErrUnauthorized: 401 (unauthenticated, InvalidAuthenticationToken),
	// after a fresh token was tried.
	ErrUnauthorized = errors.New("remote: not authenticated")
	// ErrForbidden: 403 (accessDenied, malwareDetected).
	ErrForbidden = errors.New("remote: access denied")
	// ErrQuotaExceeded: 507 or quotaLimitReached.
	ErrQuotaExceeded = errors.New("remote: quota exceeded")
	// ErrInvalidName: 400 whose codes say the name or path is not allowed
	// (nameContainsInvalidCharacters, invalidPath, pathIsTooLong, …). Only
	// codes are matched: a 400 that carries no such code (the service answers
	// some invalid names with a bare invalidRequest) does not match. The
	// client also returns it, before sending anything, for a name that
	// cannot be one path segment ("", ".", "..", or holding a '/').
	ErrInvalidName = errors.New("remote: name not allowed by the service")
	// ErrResyncRequired: 410 Gone from delta (resyncRequired and its
	// variants): the saved delta link expired; Error.Location holds the fresh
	// link to enumerate from.
	ErrResyncRequired = errors.New("remote: delta link expired, resync required")
	// ErrInvalidRange: 416 or invalidRange.
	ErrInvalidRange = errors.New("remote: invalid range")
	// ErrHashMismatch: the quickXorHash of the bytes received or sent differs
	// from the one the service reports.
	ErrHashMismatch = errors.New("remote: content hash mismatch")
	// ErrTimesNotSet: an upload stored the content (the item is returned with
	// the error) but the request that sets its fileSystemInfo times after a
	// simple PUT failed. The item's eTag and cTag are those of the new
	// content: the caller must treat the content as sent.
	ErrTimesNotSet = errors.New("remote: the content was stored but its times were not set")
	// ErrNotSupported: the operation does not apply to this item (a folder or
	// a package has no content to download) or the reply had an unknown shape.
	ErrNotSupported = errors.New("remote: not supported")
	// ErrOutcomeUnknown: a request that is not safe to repeat (POST …/copy)
	// failed in a way that leaves open whether the service acted on it (a
	// connection reset after the request was sent, a 500/502/504). The client
	// does not repeat it; the caller decides (e.g. look for the destination).
	ErrOutcomeUnknown = errors.New("remote: request may or may not have taken effect")
)

// Error is an error reply of the service (or of a pre-authenticated URL).
// It holds no URL but Location, which is kept only for resync errors (delta's
// fresh link, on the Graph host): pre-authenticated URLs carry credentials.
type Error struct {
	Op         string // what the client was doing, e.g. "children", "upload fragment"
	StatusCode int    // HTTP status
	Code       string // Graph error.code, e.g. "itemNotFound"; "" if the body was not JSON
	InnerCode  string // innermost innerError.code, e.g. "nameContainsInvalidCharacters"
	Message    string // error.message, for people; never match on it
	RequestID  string // innerError.request-id or the request-id header
	// RetryAfter is the wait the service asked for (Retry-After), if any.
	RetryAfter time.Duration
	// Location is the reply's Location header, kept only when the error
	// matches ErrResyncRequired (a 410 from delta): the link to
	// resynchronise from.
	Location string

	codes []string // every code of the chain, outermost first
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("remote: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		b.WriteString(" (")
		b.WriteString(e.Code)
		if e.InnerCode != "" && e.InnerCode != e.Code {
			b.WriteString("/")
			b.WriteString(e.InnerCode)
		}
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" [request-id ")
		b.WriteString(e.RequestID)
		b.WriteString("]")
	}
	return b.String()
}

// Is reports whether the error matches one of the sentinel errors, from its
// status or from any of its codes.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound || e.hasCode("itemNotFound")
	case ErrConflict:
		return e.StatusCode == http.StatusConflict || e.hasCode("nameAlreadyExists")
	case ErrPreconditionFailed:
		return e.StatusCode == http.StatusPreconditionFailed || e.hasCode("resourceModified")
	case ErrThrottled:
		return isThrottleStatus(e.StatusCode) ||
			e.hasCode("activityLimitReached") || e.hasCode("throttledRequest")
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized ||
			e.hasCode("unauthenticated") || e.hasCode("InvalidAuthenticationToken")
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden || e.hasCode("accessDenied")
	case ErrQuotaExceeded:
		return e.StatusCode == http.StatusInsufficientStorage || e.hasCode("quotaLimitReached")
	case ErrInvalidName:
		for _, c := range e.codes {
			if invalidNameCodes[c] {
				return true
			}
		}
		return false
	case ErrResyncRequired:
		return e.StatusCode == http.StatusGone || e.hasCode("resyncRequired") ||
			e.hasCode("resyncChangesApplyDifferences") || e.hasCode("resyncChangesUploadDifferences") ||
			e.hasCode("resyncApplyDifferences") || e.hasCode("resyncUploadDifferences")
	case ErrInvalidRange:
		return e.StatusCode == http.StatusRequestedRangeNotSatisfiable || e.hasCode("invalidRange")
	}
	return false
}

// invalidNameCodes are the codes (at any depth) that mean the service
// refuses a name or path: nameContainsInvalidCharacters (observed, also for
// trailing dots and spaces), invalidPath and pathIsTooLong (OneDrive's list
// of detailed error codes).
var invalidNameCodes = map[string]bool{
	"nameContainsInvalidCharacters": true,
	"invalidPath":                   true,
	"pathIsTooLong":                 true,
}

func (e *Error) hasCode(code string) bool {
	for _, c := range e.codes {
		if strings.EqualFold(c, code) {
			return true
		}
	}
	return false
}

func isThrottleStatus(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable ||
		status == 509 // Bandwidth Limit Exceeded
}

// maxErrorBody bounds what is read of an error reply.
const maxErrorBody = 64 << 10

// errorFromResponse reads (a bounded part of) resp's body, closes it and
// turns the reply into an *Error. A body that is not a Graph error leaves the
// codes empty: the status alone then decides what the error matches.
func errorFromResponse(op string, resp *http.Response, now time.Time) *Error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	return errorFromBody(op, resp.StatusCode, resp.Header, body, now)
}

// errorFromBody is errorFromResponse for a body already read.
func errorFromBody(op string, status int, h http.Header, body []byte, now time.Time) *Error {
	e := parseErrorBody(body)
	e.Op = op
	e.StatusCode = status
	if e.RequestID == "" {
		e.RequestID = h.Get("request-id")
	}
	e.RetryAfter = parseRetryAfter(h.Get("Retry-After"), now)
	if e.Is(ErrResyncRequired) {
		e.Location = h.Get("Location")
	}
	return e
}

// parseErrorBody decodes {"error":{"code","message","innerError":{…}}}.
// innerError and innererror are both accepted (encoding/json matches keys
// case-insensitively) and may nest; InnerCode is the innermost code.
func parseErrorBody(body []byte) *Error {
	var wire wireErrorBody
	e := &Error{}
	if json.Unmarshal(body, &wire) == nil && wire.Error != nil {
		e.addDetail(wire.Error)
	}
	return e
}

// addDetail takes the code, message, nested inner codes, the codes of
// details[] and the request id from an error object.
func (e *Error) addDetail(d *wireErrorDetail) {
	e.Code, e.Message = d.Code, d.Message
	if d.Code != "" {
		e.codes = append(e.codes, d.Code)
	}
	for in := d.InnerError; in != nil; in = in.InnerError {
		if in.Code != "" {
			e.InnerCode = in.Code
			e.codes = append(e.codes, in.Code)
		}
		if e.RequestID == "" {
			e.RequestID = in.RequestID
		}
	}
	for _, detail := range d.Details {
		if detail.Code != "" {
			e.codes = append(e.codes, detail.Code)
		}
	}
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// It returns 0 when the header is absent, malformed or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
