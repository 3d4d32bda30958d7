package graphtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// CopyOptions shape server-side copy jobs (docs/graph-contract.md §4). They
// can be changed at run time (SetCopyOptions, `PUT /_fake/copy`); a job keeps
// the timing it started with.
type CopyOptions struct {
	// Latency of every copy job: it reports notStarted for the first quarter
	// of it, then inProgress. 0 → the job completes at the next request
	// after it started (NewServer's default; `onedrivefs fake-server`
	// defaults to 2 s).
	Latency time.Duration
	// Rate in bytes per second: a job lasts Latency + size/Rate. 0 → size
	// costs no time.
	Rate int64
	// MonitorStyle is how the monitor answers once a job has completed:
	// "303" (the default, the seed's form: 303 See Other, Location: the new
	// driveItem, no body), "303-body" (303 See Other with that Location and
	// the completed status body too, as the OneDrive long-running-actions
	// page shows), "200" or "202" (that status with a status body: status
	// completed, resourceId, resourceLocation).
	MonitorStyle string
	// MonitorRunningStatus is the HTTP status of a poll while the job runs:
	// 202 (the default) or 200 (Business answered 200 on every poll in
	// 2018, #852). The body says notStarted or inProgress either way.
	MonitorRunningStatus int
	// MonitorFailedStatus is the HTTP status of a poll once the job has
	// failed: 200 (the default; the service's is not documented), 202, or
	// any 4xx/5xx status: 500 is what the monitor answered in 2017, with a
	// valid status body (rclone #1224).
	MonitorFailedStatus int
	// MonitorBody is the shape of the status body: "graph" (the default,
	// asyncJobStatus: operation, percentageComplete, status, resourceId,
	// resourceLocation) or "sharepoint" (the shape Business monitors answer
	// in today: @odata.context, id, createdDateTime and lastActionDateTime
	// (both "0001-01-01T00:00:00Z", as observed), percentageComplete and
	// percentComplete (left out once failed), resourceId,
	// resourceLocation, status; no operation).
	MonitorBody string
	// MonitorOperation is the body's operation (graph shape): "ItemCopy"
	// (the default) or any other spelling, such as "itemCopy" (also
	// observed, rkhwaja/fs.onedrivefs #11).
	MonitorOperation string
	// MonitorFailure is how a failed job's body says why: "error" (the
	// default, error{code, message}), "details" (error{message: "Errors
	// occurred during copy/move operation.", details: [{code, message}]}
	// with no top-level code, as SharePoint reports multi-item copies) or
	// "errorCode" (the undocumented errorCode and statusDescription
	// properties, no error object, #1419).
	MonitorFailure string
	// ConflictAtStart refuses the copy request itself with 409
	// nameAlreadyExists when the destination name is taken and
	// conflictBehavior is fail (the old docs' behaviour). By default the
	// request is accepted and the job fails at completion (the new docs').
	ConflictAtStart bool
	// RequireRespondAsync refuses copy requests without `Prefer:
	// respond-async` (400 invalidRequest), as the 2016 service did.
	RequireRespondAsync bool
	// RefuseCrossDrive refuses copies into another drive of the server (400
	// invalidRequest), as between a Personal and a Business drive. By
	// default copies between the server's drives are allowed.
	RefuseCrossDrive bool
	// JobRetention is how long a monitor URL keeps answering after its job
	// ended; 0 → 4 h (the service's tombstone, #63).
	JobRetention time.Duration
}

func (o *CopyOptions) applyDefaults() {
	if o.MonitorStyle == "" {
		o.MonitorStyle = monitorSeeOther
	}
	if o.MonitorRunningStatus == 0 {
		o.MonitorRunningStatus = http.StatusAccepted
	}
	if o.MonitorFailedStatus == 0 {
		o.MonitorFailedStatus = http.StatusOK
	}
	if o.MonitorBody == "" {
		o.MonitorBody = monitorBodyGraph
	}
	if o.MonitorOperation == "" {
		o.MonitorOperation = "ItemCopy"
	}
	if o.MonitorFailure == "" {
		o.MonitorFailure = monitorFailureError
	}
	if o.JobRetention == 0 {
		o.JobRetention = 4 * time.Hour
	}
}

// Monitor completion styles, body shapes and failure forms.
const (
	monitorSeeOther     = "303"
	monitorSeeOtherBody = "303-body"
	monitorOK           = "200"
	monitorAccepted     = "202"

	monitorBodyGraph      = "graph"
	monitorBodySharePoint = "sharepoint"

	monitorFailureError     = "error"
	monitorFailureDetails   = "details"
	monitorFailureErrorCode = "errorCode"
)

func (o *CopyOptions) validate() error {
	switch o.MonitorStyle {
	case monitorSeeOther, monitorSeeOtherBody, monitorOK, monitorAccepted:
	default:
		return fmt.Errorf("monitor style must be 303, 303-body, 200 or 202, not %q", o.MonitorStyle)
	}
	switch o.MonitorRunningStatus {
	case http.StatusOK, http.StatusAccepted:
	default:
		return fmt.Errorf("monitor running status must be 200 or 202, not %d", o.MonitorRunningStatus)
	}
	if st := o.MonitorFailedStatus; st != http.StatusOK && st != http.StatusAccepted && (st < 400 || st > 599) {
		return fmt.Errorf("monitor failed status must be 200, 202 or a 4xx/5xx status, not %d", st)
	}
	switch o.MonitorBody {
	case monitorBodyGraph, monitorBodySharePoint:
	default:
		return fmt.Errorf("monitor body must be graph or sharepoint, not %q", o.MonitorBody)
	}
	switch o.MonitorFailure {
	case monitorFailureError, monitorFailureDetails, monitorFailureErrorCode:
	default:
		return fmt.Errorf("monitor failure must be error, details or errorCode, not %q", o.MonitorFailure)
	}
	if o.Latency < 0 || o.Rate < 0 || o.JobRetention < 0 {
		return errors.New("copy latency, rate and retention cannot be negative")
	}
	return nil
}

// CopyOptions returns the copy knobs in force.
func (s *Server) CopyOptions() CopyOptions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.Copy
}

// SetCopyOptions changes the copy knobs for jobs started from now on.
func (s *Server) SetCopyOptions(o CopyOptions) error {
	o.applyDefaults()
	if err := o.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Copy = o
	return nil
}

// Job states (asyncJobStatus.status).
const (
	jobNotStarted = "notStarted"
	jobInProgress = "inProgress"
	jobCompleted  = "completed"
	jobFailed     = "failed"
)

// copyJob is one server-side copy. Guarded by Server.mu. Exported fields are
// saved with the drive (persist.go) so that a restarted fake-server still
// answers the monitor URL and still completes the job.
//
// The job snapshots its source when it starts: Entries lists the items to
// create, each naming its parent by index (parents before children) and
// sharing the source's immutable blob, so no byte is copied. The job pins
// those blobs (blobRefs) until it ends, so deleting or overwriting the
// source meanwhile changes nothing. At completion the entries are inserted
// under the destination folder in one step; until then nothing of the copy
// is visible.
type copyJob struct {
	ID       string `json:"id"`
	DriveID  string `json:"driveId"`  // destination drive
	ParentID string `json:"parentId"` // destination folder
	// ChildrenOnly: Entries' top level are the source folder's children.
	ChildrenOnly bool   `json:"childrenOnly,omitempty"`
	Conflict     string `json:"conflict"` // fail, replace or rename

	Started time.Time `json:"started"`
	// Latency is the notStarted → inProgress part of the timeline; Due is
	// when the job ends (Started + Latency + TotalBytes/Rate).
	Latency    time.Duration `json:"latency"`
	Due        time.Time     `json:"due"`
	TotalBytes int64         `json:"totalBytes"`
	// FailCode, when set, is an injected failure the job ends with.
	FailCode string `json:"failCode,omitempty"`

	Entries []copyEntry `json:"entries,omitempty"` // dropped once the job ends

	Status     string    `json:"status"`
	Ended      time.Time `json:"ended,omitzero"`
	ResourceID string    `json:"resourceId,omitempty"`
	Error      *jobError `json:"error,omitempty"`
}

// copyEntry is one item of a copy's snapshot.
type copyEntry struct {
	Parent       int    `json:"parent"` // index in Entries; -1: the destination folder
	Name         string `json:"name"`
	Folder       bool   `json:"folder,omitempty"`
	Package      string `json:"package,omitempty"`
	Size         int64  `json:"size,omitempty"`
	Blob         string `json:"blob,omitempty"`
	QuickXorHash string `json:"quickXorHash,omitempty"`
	SHA256       string `json:"sha256,omitempty"`
	MimeType     string `json:"mimeType,omitempty"`
}

type jobError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// blobRefs lists the blobs a running job pins (persist.go re-pins them on
// load).
func (j *copyJob) blobRefs() []string {
	if j.ended() {
		return nil
	}
	var out []string
	for _, e := range j.Entries {
		if e.Blob != "" {
			out = append(out, e.Blob)
		}
	}
	return out
}

func (j *copyJob) ended() bool { return j.Status == jobCompleted || j.Status == jobFailed }

// copyRequest is the body of POST …/copy.
type copyRequest struct {
	ParentReference *wireItemRefIn `json:"parentReference"`
	Name            *string        `json:"name"`
	ChildrenOnly    bool           `json:"childrenOnly"`
	// IncludeAllVersionHistory is accepted and ignored (the fake keeps no
	// versions).
	IncludeAllVersionHistory bool `json:"includeAllVersionHistory"`
}

// handleCopy serves POST …/items/{id}/copy (and root:/path:/copy): it
// validates the request synchronously, snapshots the source and answers
// 202 Accepted, empty body, Location: the monitor URL.
func (s *Server) handleCopy(w http.ResponseWriter, r *http.Request, rt route) {
	var req copyRequest
	if aerr := decodeBody(r, &req, true); aerr != nil {
		aerr.write(w, r)
		return
	}
	conflict, aerr := parseConflict(conflictQuery(r), "fail")
	if aerr != nil {
		aerr.write(w, r)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	opts := s.opts.Copy
	if opts.RequireRespondAsync && !prefersAsync(r) {
		errInvalid("Cannot call Copy without the respond-async preference").write(w, r)
		return
	}
	j, aerr := s.startCopyLocked(rt, &req, conflict, opts)
	if aerr != nil {
		aerr.write(w, r)
		return
	}
	s.jobs[j.ID] = j
	s.dirty = true
	s.copyStarted()
	w.Header().Set("Location", base(r)+"/monitor/"+j.ID)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

func prefersAsync(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "respond-async") {
				return true
			}
		}
	}
	return false
}

// startCopyLocked validates a copy request and returns its job, not yet
// registered. Called with s.mu held.
func (s *Server) startCopyLocked(rt route, req *copyRequest, conflict string, opts CopyOptions) (*copyJob, *apiError) {
	sd, aerr := s.driveFor(rt)
	if aerr != nil {
		return nil, aerr
	}
	src, aerr := s.resolve(sd, rt)
	if aerr != nil {
		return nil, aerr
	}
	isRoot := src.ParentID == ""
	switch {
	case src.Remote != nil:
		return nil, errInvalid("A shortcut cannot be copied; copy the item it points at.")
	case isRoot && !req.ChildrenOnly:
		return nil, errInvalid("Cannot copy the root folder.")
	case req.ChildrenOnly && !src.Folder:
		return nil, errInvalid("childrenOnly is only supported for folders.")
	case req.ChildrenOnly && req.Name != nil:
		return nil, errInvalid("childrenOnly cannot be combined with name.")
	}

	// Destination: parentReference (id or path, in this or another drive
	// of the server), or the source's own parent.
	dd, parent := sd, sd.Items[src.ParentID]
	if ref := req.ParentReference; ref != nil {
		dd, parent, aerr = s.resolveCopyParent(sd, ref)
		if aerr != nil {
			return nil, aerr
		}
	}
	if parent == nil {
		return nil, errInvalid("The destination folder is missing from the request.")
	}
	if !parent.Folder || parent.Package != "" || parent.Remote != nil {
		return nil, errInvalid("The destination must be a folder.")
	}
	if aerr := s.authorizeLocked(s.routeUser(rt), dd, parent, true); aerr != nil {
		return nil, aerr // the destination needs write access (users.go)
	}
	if dd != sd && (opts.RefuseCrossDrive || (s.driveType(dd) == drivePersonal) != (s.driveType(sd) == drivePersonal)) {
		return nil, errInvalid("Copying between drives is not supported.")
	}
	if dd == sd {
		// A folder cannot be copied into itself or below itself.
		tops := []*item{src}
		if req.ChildrenOnly {
			tops = sd.sortedChildren(src)
		}
		for _, top := range tops {
			if top.Folder && sd.isAncestor(top, parent) {
				return nil, errInvalid("The destination folder is inside the folder being copied.")
			}
		}
	}
	name := src.Name
	if req.Name != nil {
		name = *req.Name
	}
	if !req.ChildrenOnly {
		if aerr := s.checkNewPath(dd, parent, name); aerr != nil {
			return nil, aerr
		}
		if opts.ConflictAtStart && conflict == "fail" && dd.child(parent, name) != nil {
			return nil, errNameExists(name)
		}
	}

	j := &copyJob{
		ID:           randomToken(24),
		DriveID:      dd.ID,
		ParentID:     parent.ID,
		ChildrenOnly: req.ChildrenOnly,
		Conflict:     conflict,
		Status:       jobNotStarted,
		Started:      s.now(),
		Latency:      opts.Latency,
	}
	if req.ChildrenOnly {
		for _, c := range sd.sortedChildren(src) {
			j.snapshot(sd, c, -1, c.Name)
		}
	} else {
		j.snapshot(sd, src, -1, name)
	}
	for _, e := range j.Entries {
		j.TotalBytes += e.Size
		s.blobs.ref(e.Blob) // pinned until the job ends
	}
	j.Due = j.Started.Add(opts.Latency + transferTime(j.TotalBytes, opts.Rate))
	j.FailCode = s.copyFailureLocked()
	return j, nil
}

// transferTime is how long size bytes take at rate bytes/s (0: no time),
// at most a year.
func transferTime(size, rate int64) time.Duration {
	const longest = 365 * 24 * time.Hour
	if rate <= 0 || size <= 0 {
		return 0
	}
	secs := float64(size) / float64(rate)
	if secs >= longest.Seconds() {
		return longest
	}
	return time.Duration(secs * float64(time.Second))
}

// snapshot appends it (named name) and, for a folder, its subtree to the
// job's entries, parents before children. Items hidden by VisibilityDelay
// are copied too: the copy service sees what is stored.
func (j *copyJob) snapshot(d *drive, it *item, parent int, name string) {
	j.Entries = append(j.Entries, copyEntry{
		Parent: parent, Name: name, Folder: it.Folder, Package: it.Package,
		Blob: it.Blob, QuickXorHash: it.QuickXorHash, SHA256: it.SHA256, MimeType: it.MimeType,
	})
	idx := len(j.Entries) - 1
	if !it.Folder {
		j.Entries[idx].Size = it.Size
		return
	}
	for _, c := range d.sortedChildren(it) {
		j.snapshot(d, c, idx, c.Name)
	}
}

// resolveCopyParent finds the destination folder of a copy from its
// parentReference: driveId (default: the source's drive) and id or path
// ("/drive/root:/Docs", "/drives/{id}/root:/Docs"); both given must agree.
func (s *Server) resolveCopyParent(src *drive, ref *wireItemRefIn) (*drive, *item, *apiError) {
	d := src
	if ref.DriveID != "" {
		d = s.drives[strings.ToLower(ref.DriveID)]
		if d == nil {
			return nil, nil, errNotFound()
		}
	}
	var byID, byPath *item
	if ref.ID != "" {
		if strings.EqualFold(ref.ID, "root") {
			return nil, nil, errInvalid("The parent id must be the root's real id, not \"root\".")
		}
		if byID = d.lookupID(ref.ID); byID == nil {
			return nil, nil, errNotFound()
		}
	}
	if ref.Path != "" {
		pd, segs, aerr := s.parseItemPath(d, ref.Path)
		if aerr != nil {
			return nil, nil, aerr
		}
		d = pd
		it, aerr := s.walkVisible(pd, pd.Items[pd.RootID], segs)
		if aerr != nil {
			return nil, nil, aerr
		}
		byPath = it
		if byID != nil && byID != byPath {
			return nil, nil, errInvalid("parentReference id and path refer to different items.")
		}
	}
	if byPath != nil {
		return d, byPath, nil
	}
	return d, byID, nil
}

// parseItemPath parses an itemReference path (of a copy or a PATCH),
// "/drive/root:/a/b" or
// "/drives/{id}/root:/a/b" (an empty tail or a bare "/drive/root:" is the
// root), into its drive and segments.
func (s *Server) parseItemPath(d *drive, p string) (*drive, []string, *apiError) {
	head, tail, ok := strings.Cut(p, ":")
	if !ok {
		return nil, nil, errInvalid("Invalid parentReference path: " + p)
	}
	switch {
	case head == "/drive/root" || head == "/me/drive/root":
	case strings.HasPrefix(head, "/drives/") && strings.HasSuffix(head, "/root"):
		id := strings.TrimSuffix(strings.TrimPrefix(head, "/drives/"), "/root")
		if d = s.drives[strings.ToLower(id)]; d == nil {
			return nil, nil, errNotFound()
		}
	default:
		return nil, nil, errInvalid("Invalid parentReference path: " + p)
	}
	if dec, err := url.PathUnescape(tail); err == nil {
		tail = dec
	}
	var segs []string
	for _, seg := range strings.Split(tail, "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	return d, segs, nil
}

// advanceJobs brings every copy job up to the present (see
// advanceJobsLocked). ServeHTTP calls it before serving any request.
func (s *Server) advanceJobs() {
	s.mu.Lock()
	s.advanceJobsLocked()
	s.mu.Unlock()
}

// advanceJobsLocked ends the jobs whose time has come and forgets ended jobs
// older than JobRetention. Jobs have no goroutine: this lazy evaluation on
// every request is their clock. Called with s.mu held.
func (s *Server) advanceJobsLocked() {
	now := s.now()
	for id, j := range s.jobs {
		switch {
		case !j.ended() && !now.Before(j.Due):
			s.finishJobLocked(j, now)
		case j.ended() && now.Sub(j.Ended) > s.opts.Copy.JobRetention:
			delete(s.jobs, id)
			s.dirty = true
		}
	}
}

// finishJobLocked ends a job whose time has come: it fails (injected
// failure, destination gone, conflict under fail, quota) or its snapshot is
// inserted under the destination. Called with s.mu held.
func (s *Server) finishJobLocked(j *copyJob, now time.Time) {
	pinned := j.blobRefs()
	defer func() {
		for _, b := range pinned {
			s.blobs.unref(b)
		}
		j.Entries = nil
		j.Ended = now
		s.dirty = true
	}()
	fail := func(code, message string) {
		j.Status = jobFailed
		j.Error = &jobError{Code: code, Message: message}
		s.copyFailed()
	}
	d := s.drives[strings.ToLower(j.DriveID)]
	var parent *item
	if d != nil {
		parent = d.Items[j.ParentID]
	}
	switch {
	case j.FailCode != "":
		fail(j.FailCode, copyFailureMessage(j.FailCode))
		return
	case parent == nil:
		fail(codeItemNotFound, "The destination folder no longer exists.")
		return
	case j.TotalBytes > s.remainingBytes(d):
		fail(codeQuotaLimitReached, "Insufficient Space Available")
		return
	}
	// Check every top-level conflict before creating anything, so that a
	// failed job leaves no trace.
	for _, e := range j.Entries {
		if e.Parent != -1 {
			continue
		}
		existing := d.child(parent, e.Name)
		if existing == nil {
			continue
		}
		if j.Conflict == "fail" || (j.Conflict == "replace" && (existing.Folder || e.Folder)) {
			fail(codeNameAlreadyExists, "Name already exists")
			return
		}
	}
	created := make([]*item, len(j.Entries))
	for i, e := range j.Entries {
		p := parent
		if e.Parent >= 0 {
			p = created[e.Parent]
		}
		name := e.Name
		if e.Parent == -1 {
			if existing := d.child(parent, name); existing != nil {
				if j.Conflict == "replace" {
					s.remove(d, existing, false)
				} else {
					name = d.uniqueName(parent, name)
				}
			}
		}
		// Server times and fileSystemInfo are those of a new item: the copy
		// does not keep the source's mtime (insert sets them to now, and
		// applies VisibilityDelay).
		it := &item{Name: name, Folder: e.Folder, Package: e.Package, Size: e.Size, Blob: e.Blob,
			QuickXorHash: e.QuickXorHash, SHA256: e.SHA256, MimeType: e.MimeType}
		s.insert(d, p, it)
		created[i] = it
	}
	j.Status = jobCompleted
	j.ResourceID = parent.ID
	if !j.ChildrenOnly && len(created) > 0 {
		j.ResourceID = created[0].ID
	}
	s.copyCompleted()
}

// pathSegment escapes an id for a URL path, keeping "!" (Personal item
// ids, DRIVEID!N) readable as the service's URLs do.
func pathSegment(id string) string { return strings.ReplaceAll(url.PathEscape(id), "%21", "!") }

// copyFailureMessage is the message of a failed job's error.
func copyFailureMessage(code string) string {
	switch code {
	case codeNameAlreadyExists:
		return "Name already exists"
	case codeQuotaLimitReached:
		return "Insufficient Space Available"
	case codeAccessDenied:
		return "Access denied"
	case codeItemNotFound:
		return "The resource could not be found."
	}
	return "An unexpected error occurred during the copy operation."
}

// monitorStatus is the monitor's body, in either shape
// (CopyOptions.MonitorBody): asyncJobStatus (graph) or SharePoint's
// operation resource. Fields a shape does not have are left empty.
type monitorStatus struct {
	ODataContext       string        `json:"@odata.context,omitempty"`
	ID                 string        `json:"id,omitempty"`
	CreatedDateTime    string        `json:"createdDateTime,omitempty"`
	LastActionDateTime string        `json:"lastActionDateTime,omitempty"`
	Operation          string        `json:"operation,omitempty"`
	PercentageComplete *float64      `json:"percentageComplete,omitempty"`
	PercentComplete    *float64      `json:"percentComplete,omitempty"`
	ResourceID         string        `json:"resourceId,omitempty"`
	ResourceLocation   string        `json:"resourceLocation,omitempty"`
	Status             string        `json:"status"`
	StatusDescription  string        `json:"statusDescription,omitempty"`
	ErrorCode          string        `json:"errorCode,omitempty"`
	Error              *wireJobError `json:"error,omitempty"`
}

// wireJobError is a failed job's error object.
type wireJobError struct {
	Code    string         `json:"code,omitempty"`
	Message string         `json:"message"`
	Details []wireJobError `json:"details,omitempty"`
}

// zeroDateTime is what SharePoint monitors report as both of a job's times.
const zeroDateTime = "0001-01-01T00:00:00Z"

// monitorBody renders job j's status as o asks. loc is the new item's URL
// (completed jobs); status and pct are the job's state and percentage.
func monitorBody(r *http.Request, j *copyJob, o CopyOptions, status string, pct float64, loc string) monitorStatus {
	st := monitorStatus{Status: status}
	if status == jobCompleted {
		st.ResourceID, st.ResourceLocation = j.ResourceID, loc
	}
	if o.MonitorBody == monitorBodySharePoint {
		st.ODataContext = base(r) + "/v1.0/$metadata#drives('" + j.DriveID + "')/operations/$entity"
		st.ID = j.ID
		st.CreatedDateTime, st.LastActionDateTime = zeroDateTime, zeroDateTime
		if status != jobFailed {
			st.PercentageComplete, st.PercentComplete = &pct, &pct
		}
	} else {
		st.Operation = o.MonitorOperation
		st.PercentageComplete = &pct
	}
	if status == jobFailed && j.Error != nil {
		switch o.MonitorFailure {
		case monitorFailureDetails:
			st.Error = &wireJobError{Message: "Errors occurred during copy/move operation.",
				Details: []wireJobError{{Code: j.Error.Code, Message: j.Error.Message}}}
		case monitorFailureErrorCode:
			st.ErrorCode, st.StatusDescription = j.Error.Code, j.Error.Message
		default:
			st.Error = &wireJobError{Code: j.Error.Code, Message: j.Error.Message}
		}
	}
	return st
}

// progress is a running job's status and percentage at time now: notStarted
// for the first quarter of its latency, then inProgress, rising linearly
// with elapsed time over the whole duration (capped below 100).
func (j *copyJob) progress(now time.Time) (string, float64) {
	elapsed := now.Sub(j.Started)
	if elapsed < j.Latency/4 {
		return jobNotStarted, 0
	}
	total := j.Due.Sub(j.Started)
	pct := 99.9
	if total > 0 {
		pct = min(99.9, math.Round(1000*float64(elapsed)/float64(total))/10)
	}
	return jobInProgress, pct
}

// serveMonitor serves GET /monitor/{job}. While the job runs:
// CopyOptions.MonitorRunningStatus (202) with status notStarted or
// inProgress. Once it has completed, per MonitorStyle: 303 See Other to the
// new item (no body, or with the body for "303-body"), or 200/202 with
// status completed and resourceId. Once it has failed:
// MonitorFailedStatus (200) with status failed and the error in the
// MonitorFailure form. Bodies are in the MonitorBody shape. An unknown or
// forgotten job is a 404. Authorization is rejected before this is reached
// (ServeHTTP).
func (s *Server) serveMonitor(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, r, http.StatusMethodNotAllowed, codeInvalidRequest, "The monitor URL accepts GET only.", "")
		return
	}
	s.mu.Lock()
	s.advanceJobsLocked()
	j := s.jobs[rt.rest]
	o := s.opts.Copy
	var (
		st  monitorStatus
		loc string
	)
	if j != nil {
		status, pct := j.Status, 0.0
		switch j.Status {
		case jobCompleted:
			pct = 100
			loc = base(r) + "/v1.0/drives/" + pathSegment(j.DriveID) + "/items/" + pathSegment(j.ResourceID)
		case jobFailed:
		default:
			status, pct = j.progress(s.now())
		}
		st = monitorBody(r, j, o, status, pct, loc)
	}
	s.mu.Unlock()
	switch {
	case j == nil:
		writeError(w, r, http.StatusNotFound, codeItemNotFound, "The monitor URL is unknown or has expired.", "")
	case st.Status == jobCompleted && o.MonitorStyle == monitorSeeOther:
		w.Header().Set("Location", loc)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusSeeOther)
	case st.Status == jobCompleted && o.MonitorStyle == monitorSeeOtherBody:
		w.Header().Set("Location", loc)
		writeJSON(w, http.StatusSeeOther, st)
	case st.Status == jobCompleted && o.MonitorStyle == monitorOK:
		writeJSON(w, http.StatusOK, st)
	case st.Status == jobCompleted:
		writeJSON(w, http.StatusAccepted, st)
	case st.Status == jobFailed:
		writeJSON(w, o.MonitorFailedStatus, st)
	default:
		writeJSON(w, o.MonitorRunningStatus, st)
	}
}

// copyOptionsJSON is the JSON form of CopyOptions (/_fake/copy).
type copyOptionsJSON struct {
	Latency              jsonDuration `json:"latency"`
	Rate                 int64        `json:"rate"`
	MonitorStyle         string       `json:"monitorStyle"`
	MonitorRunningStatus int          `json:"monitorRunningStatus"`
	MonitorFailedStatus  int          `json:"monitorFailedStatus"`
	MonitorBody          string       `json:"monitorBody"`
	MonitorOperation     string       `json:"monitorOperation"`
	MonitorFailure       string       `json:"monitorFailure"`
	ConflictAtStart      bool         `json:"conflictAtStart"`
	RequireRespondAsync  bool         `json:"requireRespondAsync"`
	RefuseCrossDrive     bool         `json:"refuseCrossDrive"`
	JobRetention         jsonDuration `json:"jobRetention"`
}

func (o CopyOptions) jsonForm() copyOptionsJSON {
	return copyOptionsJSON{
		Latency: jsonDuration(o.Latency), Rate: o.Rate, MonitorStyle: o.MonitorStyle,
		MonitorRunningStatus: o.MonitorRunningStatus, MonitorFailedStatus: o.MonitorFailedStatus,
		MonitorBody: o.MonitorBody, MonitorOperation: o.MonitorOperation, MonitorFailure: o.MonitorFailure,
		ConflictAtStart: o.ConflictAtStart, RequireRespondAsync: o.RequireRespondAsync,
		RefuseCrossDrive: o.RefuseCrossDrive, JobRetention: jsonDuration(o.JobRetention),
	}
}

// MarshalJSON writes durations as strings.
func (o CopyOptions) MarshalJSON() ([]byte, error) { return json.Marshal(o.jsonForm()) }

// UnmarshalJSON reads the form MarshalJSON writes; absent fields keep their
// value in o (decoding into the current options merges). Unknown fields are
// an error.
func (o *CopyOptions) UnmarshalJSON(b []byte) error {
	j := o.jsonForm()
	if err := decodeStrict(b, &j); err != nil {
		return err
	}
	*o = CopyOptions{
		Latency: time.Duration(j.Latency), Rate: j.Rate, MonitorStyle: j.MonitorStyle,
		MonitorRunningStatus: j.MonitorRunningStatus, MonitorFailedStatus: j.MonitorFailedStatus,
		MonitorBody: j.MonitorBody, MonitorOperation: j.MonitorOperation, MonitorFailure: j.MonitorFailure,
		ConflictAtStart: j.ConflictAtStart, RequireRespondAsync: j.RequireRespondAsync,
		RefuseCrossDrive: j.RefuseCrossDrive, JobRetention: time.Duration(j.JobRetention),
	}
	return nil
}
