package copyjob

import (
	"encoding/json"
	"time"
)

// State is where a job stands in its life in the tracker: queued until its
// first answer, then running, then completed or failed. The service's own
// status word (remote.JobStatus.Status) is kept beside it in Job.Raw.
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

// Spec describes a copy the service has accepted. The tracker uses only
// MonitorURL; the other fields are carried for the caller (OnDone, status
// JSON, LatestForSource, Pending) and persisted with the job.
type Spec struct {
	SourceID   string `json:"sourceId,omitempty"`
	SourcePath string `json:"sourcePath,omitempty"`
	// The source's version that was copied, as the caller read it when it
	// started the copy: its cTag and eTag, and its quickXorHash (base64).
	// With them a caller can serve reads of the pending copy from that
	// version, and complete a failed job from it through the byte path
	// (or know that the version is gone).
	SourceCTag   string `json:"sourceCTag,omitempty"`
	SourceETag   string `json:"sourceETag,omitempty"`
	SourceHash   string `json:"sourceHash,omitempty"`
	DestParentID string `json:"destParentId,omitempty"`
	DestName     string `json:"destName,omitempty"`
	DestPath     string `json:"destPath,omitempty"`
	// DestIsNew: the destination name held nothing on the service when the
	// copy started, so a file found there later with the source's size and
	// SourceHash is the copy's result (confirm.go).
	DestIsNew bool `json:"destIsNew,omitempty"`
	// MonitorURL is the Location of the 202. It is a credential: it is never
	// marshalled with the Job (see the package doc, "Secrets"), and it is
	// cleared once the job has finished.
	MonitorURL string `json:"-"`
	Size       int64  `json:"size,omitempty"` // bytes to copy, if known
	IsFolder   bool   `json:"isFolder,omitempty"`
	Origin     string `json:"origin,omitempty"` // "cp" or "xattr"
	// Then holds what the caller did to the destination while the job ran,
	// for the caller to apply to the new item once the job completes. Change
	// it with Tracker.Amend.
	Then Then `json:"then,omitzero"`
}

// Then is what happens to a copy's new item once its job completes: the
// changes a user made to the pending destination (a rename or move, a new
// modification time, an unlink), recorded with Tracker.Amend and applied by
// the caller (OnDone, or whoever finds the job completed after a restart).
// The tracker only stores it. Zero fields mean "no change".
type Then struct {
	// Name and ParentID: the destination was renamed or moved there.
	Name     string `json:"name,omitempty"`
	ParentID string `json:"parentId,omitempty"`
	// ModTime: the destination's modification time was set (utimensat).
	ModTime time.Time `json:"modTime,omitzero"`
	// Delete: the destination was unlinked; the new item is to be deleted.
	Delete bool `json:"delete,omitempty"`
}

// IsZero reports whether t asks for nothing.
func (t Then) IsZero() bool {
	return t.Name == "" && t.ParentID == "" && t.ModTime.IsZero() && !t.Delete
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
