package fs

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/onedrivefs/onedrivefs/copyjob"
)

// The mount's state at a glance, for `onedrivefs status` and for systemd's
// STATUS= line: the value of user.onedrive.status on the mount's root, a
// JSON Status.

// xattrStatus names the status attribute of the mount's root.
const xattrStatus = "user.onedrive.status"

// Status is a snapshot of a mount.
type Status struct {
	// MountPoint is where the drive is mounted ("" before Mount).
	MountPoint string `json:"mountPoint"`
	ReadOnly   bool   `json:"readOnly"`
	// Online: the service is not known to be unreachable and the last
	// request of the poll loop (a delta poll, or the quota's drive request,
	// made at mount too) reached it.
	Online bool `json:"online"`
	// Offline: the service is unreachable (a connection could not be
	// opened); the mount serves its local copy and journals changes
	// (offline.go). OfflineSince is when that was detected.
	Offline      bool       `json:"offline"`
	OfflineSince *time.Time `json:"offlineSince,omitempty"`
	// OfflineChanges counts the metadata changes (mkdir, rename, unlink)
	// made offline and not yet sent.
	OfflineChanges int `json:"offlineChanges"`
	// Pinned are the paths kept available offline (pin.go).
	Pinned []string `json:"pinned"`
	// LastPoll is the last delta poll of the poll loop, nil before the
	// first.
	LastPoll *PollStatus `json:"lastPoll"`
	// PendingUploads are the closed files whose content is committed to the
	// local journal but not yet confirmed on OneDrive (being sent, or to be
	// sent again); PendingBytes is the sum of their sizes.
	PendingUploads []PendingUpload `json:"pendingUploads"`
	PendingBytes   int64           `json:"pendingBytes"`
	// JournalRecords counts the records in the journal (each pending upload
	// has one).
	JournalRecords int `json:"journalRecords"`
	// CopyJobs are the server-side copy jobs still running.
	CopyJobs []copyjob.StatusDoc `json:"copyJobs"`
	// Quota is the drive's quota as last fetched; nil before.
	Quota *QuotaStatus `json:"quota"`
}

// PendingUpload is a file waiting to be sent.
type PendingUpload struct {
	Name  string    `json:"name"`
	Size  int64     `json:"size"`
	Since time.Time `json:"since"`
}

// PollStatus is the outcome of one delta poll.
type PollStatus struct {
	Time  time.Time `json:"time"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
}

// QuotaStatus is the drive's quota in bytes.
type QuotaStatus struct {
	Total     int64  `json:"total"`
	Used      int64  `json:"used"`
	Remaining int64  `json:"remaining"`
	State     string `json:"state,omitempty"`
}

// Status returns a snapshot of the mount's state.
func (f *FS) Status() Status {
	s := Status{ReadOnly: f.readOnly, PendingUploads: []PendingUpload{}, CopyJobs: []copyjob.StatusDoc{}}
	f.mu.Lock()
	s.MountPoint = f.mountDir
	if q := f.quota; q != nil {
		s.Quota = &QuotaStatus{Total: q.Total, Used: q.Used, Remaining: q.Remaining, State: q.State}
	}
	f.mu.Unlock()
	f.polls.mu.Lock()
	if p := f.polls.last; !p.Time.IsZero() {
		s.LastPoll = &p
	}
	s.Online = f.polls.contact.OK
	f.polls.mu.Unlock()
	if st := f.remote.Link().State(); st.Offline {
		s.Online, s.Offline = false, true
		since := st.Since
		s.OfflineSince = &since
	}
	s.OfflineChanges = int(f.metaRecords.Load())
	s.Pinned = f.pinnedPaths() // pin.go
	for _, r := range f.staging.Pending() {
		s.JournalRecords++
		s.PendingUploads = append(s.PendingUploads, PendingUpload{Name: r.Name, Size: r.Size, Since: r.CreatedAt})
		s.PendingBytes += r.Size
	}
	if f.copies != nil {
		for _, j := range f.copies.Jobs() {
			if !j.State.Terminal() {
				s.CopyJobs = append(s.CopyJobs, j.StatusDoc())
			}
		}
	}
	return s
}

// statusJSON is the value of user.onedrive.status.
func (f *FS) statusJSON() ([]byte, error) { return json.Marshal(f.Status()) }

// pollLog records the outcome of the poll loop's requests, for Status:
// the delta polls (notePoll, from pollLoop) and the quota's drive requests
// (noteContact, from refreshQuota, which runs at mount too).
type pollLog struct {
	mu      sync.Mutex
	last    PollStatus // GUARDED_BY(mu): the last delta poll; zero Time: none yet
	contact PollStatus // GUARDED_BY(mu): the last request of either kind
}

// notePoll records a delta poll's outcome. A cancelled poll (unmount) is
// not an outcome.
func (f *FS) notePoll(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	st := f.noteContact(ctx, err)
	f.polls.mu.Lock()
	f.polls.last = st
	f.polls.mu.Unlock()
}

// noteContact records whether a request of the poll loop reached the
// service, and returns the record.
func (f *FS) noteContact(ctx context.Context, err error) PollStatus {
	st := PollStatus{Time: f.now(), OK: err == nil}
	if err != nil {
		st.Error = err.Error()
	}
	if ctx.Err() != nil {
		return st
	}
	f.polls.mu.Lock()
	f.polls.contact = st
	f.polls.mu.Unlock()
	return st
}
