package fs

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/onedrivefs/onedrivefs/copyjob"
	"github.com/onedrivefs/onedrivefs/remote"
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
	// Online: the last request of the poll loop (a delta poll, or the
	// quota's drive request, made at mount too) reached the service. There
	// is no offline mode yet: an offline mount is one whose polls fail, and
	// it answers what it has cached, like an online one.
	Online bool `json:"online"`
	// LastPoll is the last delta poll (the one at mount included), nil
	// before the first, or when the Remote is not wrapped with TrackPolls.
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
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Since    time.Time `json:"since"`
	Attempts int       `json:"attempts"`
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
	if pt, ok := f.remote.(*PollTracker); ok {
		if p, ok := pt.Last(); ok {
			s.LastPoll = &p
		}
		s.Online = pt.reached()
	}
	for _, r := range f.staging.Pending() {
		s.JournalRecords++
		s.PendingUploads = append(s.PendingUploads, PendingUpload{Name: r.Name, Size: r.Size, Since: r.CreatedAt, Attempts: r.Attempts})
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

// PollTracker is a Remote that remembers the outcome of its last Delta call
// (the delta poll) and of its last Drive call (the quota), for Status. Wrap
// the Remote given to New with TrackPolls.
type PollTracker struct {
	Remote
	now func() time.Time

	mu      sync.Mutex
	last    PollStatus // GUARDED_BY(mu); zero Time: no poll yet
	contact PollStatus // GUARDED_BY(mu): the last Delta or Drive call
}

// TrackPolls wraps r so that the filesystem's Status reports its delta polls.
func TrackPolls(r Remote) *PollTracker { return &PollTracker{Remote: r, now: time.Now} }

// Delta calls the wrapped Remote's Delta and records its outcome. A
// cancelled call (unmount) is not an outcome.
func (p *PollTracker) Delta(ctx context.Context, link string) (*remote.DeltaPage, error) {
	page, err := p.Remote.Delta(ctx, link)
	if ctx.Err() != nil {
		return page, err
	}
	st := p.record(err)
	p.mu.Lock()
	p.last = st
	p.mu.Unlock()
	return page, err
}

// Drive calls the wrapped Remote's Drive and records whether it reached
// the service.
func (p *PollTracker) Drive(ctx context.Context) (*remote.Drive, error) {
	d, err := p.Remote.Drive(ctx)
	if ctx.Err() == nil {
		p.record(err)
	}
	return d, err
}

// record notes a contact with the service and returns it.
func (p *PollTracker) record(err error) PollStatus {
	st := PollStatus{Time: p.now(), OK: err == nil}
	if err != nil {
		st.Error = err.Error()
	}
	p.mu.Lock()
	p.contact = st
	p.mu.Unlock()
	return st
}

// reached reports whether the last contact with the service succeeded.
func (p *PollTracker) reached() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.contact.OK
}

// Last returns the last poll's outcome, and false before the first.
func (p *PollTracker) Last() (PollStatus, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last, !p.last.Time.IsZero()
}
