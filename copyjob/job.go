package copyjob

import (
	"encoding/json"
	"strings"
	"time"
)

// State is where a job stands, reduced from the service's many status words to
// the four that callers decide on. The service's own word is kept beside it
// (Status.Raw, Job.Raw).
type State string

const (
	// StateQueued: the service accepted the copy; the tracker has not polled it yet.
	StateQueued State = "queued"
	// StateRunning: polled, not finished (notStarted, inProgress, waiting, updating, …).
	StateRunning State = "running"
	// StateCompleted: the service reported completion; the new item is
	// Job.ResourceID (and/or Job.ResourceURL).
	StateCompleted State = "completed"
	// StateFailed: the service reported failure, or the tracker gave up on the
	// monitor; Job.Error says which.
	StateFailed State = "failed"
)

// Terminal reports whether a job in this state will not change any more.
func (s State) Terminal() bool { return s == StateCompleted || s == StateFailed }

// StateOf maps a service status word (asyncJobStatus.status) to a State.
// Words are compared case-insensitively; unknown words count as running, so a
// new status the service invents cannot end a job early.
func StateOf(raw string) State {
	switch strings.ToLower(raw) {
	case "completed":
		return StateCompleted
	case "failed", "deletefailed", "cancelled", "canceled":
		return StateFailed
	default: // notStarted, inProgress, updating, waiting, deletePending, cancelPending, …
		return StateRunning
	}
}

// Status is one poll's reading of a monitor URL, as a Poller reports it.
type Status struct {
	// State may be left empty: the tracker then derives it from Raw with StateOf.
	State State
	// Raw is the service's status word ("inProgress"); "" for a bare 303.
	Raw string
	// Percent is percentageComplete, 0..100.
	Percent float64
	// ResourceID is the new item's id (resourceId in the body). When empty and
	// ResourceURL names an item (…/items/{id}), the tracker takes the id from it.
	ResourceID string
	// ResourceURL is a 303 Location or the body's resourceLocation. It may be
	// pre-authenticated: it is never logged.
	ResourceURL string
	// ErrorCode and ErrorMessage come from the body's error object on failure.
	ErrorCode, ErrorMessage string
	// RetryAfter, from a Retry-After header on an otherwise good answer, asks
	// that this job be polled no sooner than that.
	RetryAfter time.Duration
}

// Spec describes a copy the service has accepted. The tracker uses only
// MonitorURL; the other fields are carried for the caller (OnDone, status
// JSON, LatestForSource).
type Spec struct {
	SourceID     string `json:"sourceId,omitempty"`
	SourcePath   string `json:"sourcePath,omitempty"`
	DestParentID string `json:"destParentId,omitempty"`
	DestName     string `json:"destName,omitempty"`
	DestPath     string `json:"destPath,omitempty"`
	// MonitorURL is the Location of the 202. It is a credential: it is never
	// marshalled with the Job (see the package doc, "Secrets"), and it is
	// cleared once the job has finished.
	MonitorURL string `json:"-"`
	Size       int64  `json:"size,omitempty"` // bytes to copy, if known
	IsFolder   bool   `json:"isFolder,omitempty"`
	Origin     string `json:"origin,omitempty"` // "cp" or "xattr"
	// The source version copied: a failed job is completed from it, and a
	// reader of the destination is served it until the job completes.
	SourceCTag string `json:"sourceCTag,omitempty"`
	SourceETag string `json:"sourceETag,omitempty"`
	SourceHash string `json:"sourceHash,omitempty"` // quickXorHash
	// Then holds the changes made to the destination while the job ran,
	// applied by the caller when it completes (Amend records them).
	Then Then `json:"then,omitzero"`
}

// Then is what happened to a copy's destination while its job ran.
type Then struct {
	Name     string    `json:"name,omitempty"`     // renamed to
	ParentID string    `json:"parentId,omitempty"` // moved into
	ModTime  time.Time `json:"modTime,omitzero"`   // times set
	Delete   bool      `json:"delete,omitempty"`   // deleted
}

// JobError is why a job failed: the service's code and message, or one of the
// tracker's own codes (CodeMonitorGone, CodeMonitorUnreachable, CodeCopyFailed).
type JobError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *JobError) Error() string { return "copy failed: " + e.Code + ": " + e.Message }

// Codes the tracker sets in JobError.Code when the service gave none.
const (
	// CodeMonitorGone: the monitor answered "not found" (or "no longer
	// authorised") MaxGonePolls times in a row. The copy's outcome is unknown;
	// the caller may look for the destination item.
	CodeMonitorGone = "monitorGone"
	// CodeMonitorUnreachable: polls kept failing (network, 5xx, bad body) for
	// MaxConsecutiveErrors polls and MaxErrorDuration.
	CodeMonitorUnreachable = "monitorUnreachable"
	// CodeCopyFailed: the service reported failure without an error code.
	CodeCopyFailed = "copyFailed"
)

// Job is a snapshot of one tracked copy. Jobs are values: the tracker hands
// out copies, and a Job never changes under its holder.
type Job struct {
	// ID is local to this tracker: short, unique, and ordered by creation time.
	ID string `json:"id"`
	Spec
	State State `json:"state"`
	// Raw is the service's last status word ("" before the first answer).
	Raw         string  `json:"raw,omitempty"`
	Percent     float64 `json:"percent"`
	ResourceID  string  `json:"resourceId,omitempty"`
	ResourceURL string  `json:"-"` // may be pre-authenticated; persisted, never marshalled with the Job
	// Error is set when State is StateFailed, nil otherwise.
	Error    *JobError `json:"error,omitempty"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated,omitzero"`  // last poll (answered or not)
	Finished time.Time `json:"finished,omitzero"` // when it became terminal
	Polls    int       `json:"polls,omitempty"`   // polls made, successful or not
}

// StatusDoc is the JSON document the file system exposes for a job (the
// user.onedrive.copy.status and user.onedrive.copy.jobs extended attributes).
// Tools that read those attributes can unmarshal into it.
type StatusDoc struct {
	ID          string `json:"id"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	// Status is a service word: "notStarted" before the first answer, the
	// service's word while running ("inProgress", "waiting", …), and exactly
	// "completed" or "failed" once finished, whatever word the service used
	// (the service's reason is then in Error).
	Status             string    `json:"status"`
	PercentageComplete float64   `json:"percentageComplete"`
	Error              *JobError `json:"error"` // null unless failed
}

// StatusDoc returns the job in the status-document shape.
func (j Job) StatusDoc() StatusDoc {
	d := StatusDoc{
		ID:                 j.ID,
		Source:             j.SourcePath,
		Destination:        j.DestPath,
		PercentageComplete: j.Percent,
		Error:              j.Error,
	}
	if d.Source == "" {
		d.Source = j.SourceID
	}
	if d.Destination == "" {
		d.Destination = j.DestName
	}
	switch {
	case j.State.Terminal():
		d.Status = string(j.State)
	case j.State == StateQueued || j.Raw == "":
		d.Status = "notStarted"
	default:
		d.Status = j.Raw
	}
	return d
}

// StatusJSON returns {"id","source","destination","status","percentageComplete","error"}.
func (j Job) StatusJSON() ([]byte, error) { return json.Marshal(j.StatusDoc()) }

// StatusListJSON returns the status documents of jobs as a JSON array, in the
// order given ("[]" when there are none).
func StatusListJSON(jobs []Job) ([]byte, error) {
	docs := make([]StatusDoc, 0, len(jobs))
	for _, j := range jobs {
		docs = append(docs, j.StatusDoc())
	}
	return json.Marshal(docs)
}
