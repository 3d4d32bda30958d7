package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Server-side copy (docs/graph-contract.md §4): StartCopy POSTs
// …/items/{id}/copy and returns the monitor URL from the 202's Location;
// Monitor polls it once. The monitor URL is pre-authenticated and often on
// another host: it is fetched with the plain client (no Authorization header,
// which some hosts refuse) and redirects are not followed (a 303 is itself an
// answer).

// CopyRequest says where a copy goes. Zero fields keep the source's: an
// empty DestParentID copies into the same folder, an empty Name keeps the
// name.
type CopyRequest struct {
	DestParentID string
	DestDriveID  string // "" → the parent is named by id alone (same drive)
	Name         string
	Conflict     ConflictBehavior // sent as ?@microsoft.graph.conflictBehavior=
	ChildrenOnly bool             // folders: copy the contents, not the folder
}

// StartCopy asks the service to copy srcID and returns the monitor URL to
// poll with Monitor. The monitor URL is a credential: do not log it.
//
// The POST is never repeated after a failure that may have reached the
// service (a broken connection, 500/502/504): a second POST could start a
// second copy. Such failures match ErrOutcomeUnknown; the caller may look for
// the destination before trying again. Throttling (429/503) is waited out
// and retried, since the service did not act on the request.
func (c *Client) StartCopy(ctx context.Context, srcID string, cr CopyRequest) (string, error) {
	if cr.Name != "" {
		if err := checkName("start copy", cr.Name); err != nil {
			return "", err
		}
	}
	body := wireCopy{Name: cr.Name, ChildrenOnly: cr.ChildrenOnly}
	if cr.DestParentID != "" || cr.DestDriveID != "" {
		body.ParentReference = &wireItemRef{DriveID: cr.DestDriveID, ID: cr.DestParentID}
	}
	r, err := jsonRequest("start copy", http.MethodPost, c.itemURL(srcID)+"/copy"+conflictQuery(cr.Conflict), body, notRepeatable)
	if err != nil {
		return "", err
	}
	r.header.Set("Prefer", "respond-async")
	resp, err := c.do(ctx, r)
	if err != nil {
		return "", err
	}
	defer drain(resp)
	if resp.StatusCode/100 != 2 {
		return "", errorFromBody(r.op, resp.StatusCode, resp.Header, nil, c.now())
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("%w: start copy: the service accepted the copy (%d) but gave no monitor URL",
			ErrNotSupported, resp.StatusCode)
	}
	return resolveLink(r.url, loc)
}

// JobState is the outcome class of a copy job.
type JobState int

const (
	JobRunning   JobState = iota // poll again
	JobCompleted                 // the new item exists (ResourceID, if known)
	JobFailed                    // the job ended without a copy (Err says why)
)

func (s JobState) String() string {
	switch s {
	case JobRunning:
		return "running"
	case JobCompleted:
		return "completed"
	case JobFailed:
		return "failed"
	}
	return fmt.Sprintf("JobState(%d)", int(s))
}

// JobStatus is one poll of a copy monitor.
type JobStatus struct {
	State     JobState
	Status    string  // the service's status: notStarted, inProgress, completed, failed, …
	Operation string  // "ItemCopy" / "itemCopy", when given
	Percent   float64 // 0–100, when given (100 on completion)
	// ResourceID is the new item's id (in the destination drive), from
	// resourceId or parsed from a 303 Location or resourceLocation; "" when
	// the service did not tell (look the destination up by name).
	ResourceID string
	// ResourceURL is the 303 Location or resourceLocation, when given.
	ResourceURL string
	// Err is the service's error for a failed job (Code, Message).
	Err *Error
	// RetryAfter is the Retry-After of the poll, if any: poll no sooner.
	RetryAfter time.Duration
}

// maxMonitorBody bounds what is read of a monitor reply.
const maxMonitorBody = 1 << 20

// Monitor polls a copy monitor URL once. The state is decided by the JSON
// status whatever the HTTP status (200, 202, 303 and even 500 occur with a
// valid asyncJobStatus); a 303 without a body means completed, the new item
// being named by the Location. A 429 or 503 without a status body is
// returned as an *Error matching ErrThrottled, carrying RetryAfter: Monitor
// does not wait; the caller decides when to poll again. Other replies
// without a status body are *Errors (e.g. 404 once the monitor expired).
func (c *Client) Monitor(ctx context.Context, monitorURL string) (*JobStatus, error) {
	r := &request{op: "copy monitor", method: http.MethodGet, url: monitorURL, plain: true,
		mode: repeatable, raw: true, buffer: true}
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxMonitorBody))
	_ = resp.Body.Close()
	status := resp.StatusCode
	retryAfter := parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	location := ""
	if loc := resp.Header.Get("Location"); loc != "" {
		if l, err := resolveLink(monitorURL, loc); err == nil {
			location = l
		}
	}

	var w wireJobStatus
	if json.Unmarshal(body, &w) == nil && w.Status != "" {
		st := w.toStatus()
		st.RetryAfter = retryAfter
		if status == http.StatusSeeOther && location != "" {
			st.ResourceURL = location
			if st.ResourceID == "" {
				st.ResourceID = itemIDFromURL(location)
			}
		}
		return st, nil
	}
	switch {
	case status == http.StatusSeeOther:
		// The oldest form: no body, the Location names the new item.
		return &JobStatus{State: JobCompleted, Status: "completed", Percent: 100,
			ResourceID: itemIDFromURL(location), ResourceURL: location, RetryAfter: retryAfter}, nil
	case status == http.StatusAccepted && len(strings.TrimSpace(string(body))) == 0:
		return &JobStatus{State: JobRunning, RetryAfter: retryAfter}, nil
	case status >= 400:
		e := errorFromBody(r.op, status, resp.Header, body, c.now())
		e.Location = "" // a monitor's redirects are not for the caller
		return nil, e
	}
	return nil, fmt.Errorf("%w: copy monitor: a %d reply without a job status", ErrNotSupported, status)
}

// toStatus classifies an asyncJobStatus; it is the one place where status
// words are read (copyjob decides on State). Words compare
// case-insensitively. Unknown statuses count as running, so a word the
// service invents cannot end a job early: the caller's overall deadline
// bounds a job that never ends.
func (w *wireJobStatus) toStatus() *JobStatus {
	st := &JobStatus{
		Status:      w.Status,
		Operation:   w.Operation,
		ResourceID:  w.ResourceID,
		ResourceURL: w.ResourceLocation,
	}
	switch {
	case w.PercentageComplete != nil:
		st.Percent = *w.PercentageComplete
	case w.PercentComplete != nil:
		st.Percent = *w.PercentComplete
	}
	switch strings.ToLower(w.Status) {
	case "completed":
		st.State = JobCompleted
		st.Percent = 100
		if st.ResourceID == "" && st.ResourceURL != "" {
			st.ResourceID = itemIDFromURL(st.ResourceURL)
		}
	case "failed", "deletefailed", "cancelled", "canceled":
		st.State = JobFailed
		st.Err = w.jobError()
	default: // notStarted, inProgress, updating, waiting, deletePending, cancelPending, …
		st.State = JobRunning
	}
	return st
}

// jobError builds the error of a failed job from error{code,message,
// details}, errorCode and statusDescription. The poll's HTTP status says
// nothing about the job (failed polls have come as 200, 202 and 500), so it
// is left out: errors.Is classifies a job's failure by its codes alone.
func (w *wireJobStatus) jobError() *Error {
	e := &Error{Op: "copy"}
	if w.Error != nil {
		e.addDetail(w.Error)
		// SharePoint reports multi-item failures with no top-level code,
		// only details[] (docs/graph-contract.md §4): the first says why.
		for _, d := range w.Error.Details {
			if e.Code == "" && d.Code != "" {
				e.Code = d.Code
			}
		}
	}
	if w.ErrorCode != "" {
		if e.Code == "" {
			e.Code = w.ErrorCode
		}
		e.codes = append(e.codes, w.ErrorCode)
	}
	if e.Message == "" {
		e.Message = w.StatusDescription
	}
	if e.Message == "" {
		e.Message = "the copy job ended with status " + w.Status
	}
	return e
}

// itemIDFromURL takes the item id out of a URL naming a driveItem:
// …/items/{id}, …/items('{id}') or …/items({id}), with any query string.
// It returns "" when the URL names none (as the empty quoted form seen in 2017).
func itemIDFromURL(link string) string {
	u, err := url.Parse(link)
	if err != nil {
		return ""
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if strings.EqualFold(s, "items") && i+1 < len(segs) {
			return segs[i+1]
		}
		if len(s) > len("items()") && strings.EqualFold(s[:6], "items(") && strings.HasSuffix(s, ")") {
			return strings.Trim(s[6:len(s)-1], "'\"")
		}
	}
	return ""
}
