package graphtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a fake server. The zero value is a usable default: one
// personal drive with 1 TiB of quota, state in a temporary directory removed
// on Close, tokens valid for an hour, device codes approved on first poll.
type Options struct {
	// DataDir persists the drive (metadata and content) across restarts.
	// Empty: a temporary directory, removed by Close.
	DataDir string
	// DriveID of the default drive (`/me/drive`); empty: a fixed 16-hex id.
	DriveID string
	// OtherDriveIDs are extra drives the server owns (addressed only as
	// /drives/{id}); used to exercise cross-drive behaviour.
	OtherDriveIDs []string
	// DriveType reported for every drive: "personal" (default) or "business".
	DriveType string
	// QuotaTotal in bytes; 0 → 1 TiB.
	QuotaTotal int64
	// SimpleUploadLimit is the largest body a simple PUT accepts; 0 → 4 MiB.
	SimpleUploadLimit int64
	// PageSize is the default page size for children and delta; 0 → 200.
	PageSize int
	// MaxPageSize caps $top; 0 → 1000.
	MaxPageSize int
	// UploadSessionLifetime before an idle upload session expires; 0 → 1h.
	UploadSessionLifetime time.Duration
	// DownloadURLLifetime of pre-authenticated download URLs; 0 → 1h.
	DownloadURLLifetime time.Duration

	// ResourceUnitsPerMinute meters Graph requests as the service meters an
	// application (budget.go); 0 → off.
	ResourceUnitsPerMinute int

	Auth   AuthOptions
	Copy   CopyOptions
	Faults FaultOptions
	// Forms choose among the forms the service answers in where it varies
	// (docs/graph-contract.md); the zero value is the fake's default forms.
	Forms FormOptions

	// Clock returns the current time; nil → time.Now.
	Clock func() time.Time
	// Logger receives one line per request at debug level; nil → discard.
	Logger *slog.Logger
}

// Server is a fake OneDrive. It is an http.Handler; NewServer also starts it
// on a loopback listener, like httptest.NewServer.
type Server struct {
	// URL is the base URL of a started server, e.g. http://127.0.0.1:41234,
	// with no trailing slash. The Graph API is under URL+"/v1.0", the OAuth
	// endpoints under URL+"/{tenant}/oauth2/v2.0".
	URL string

	opts    Options
	log     *slog.Logger
	now     func() time.Time
	dataDir string
	tempDir bool // dataDir was created by us and is removed by Close
	blobs   *blobStore
	// net is the API listener (when the fake owns it) and the network mode
	// (network.go); its own lock.
	net network
	// transport is what Client hands out; set by Start.
	transport *http.Transport
	// frontForms mirrors opts.Forms for the answers given before the lock
	// is taken (anonymous.go).
	frontForms atomic.Pointer[FormOptions]

	mu sync.Mutex
	// The fields below are guarded by mu.
	drives      map[string]*drive // by lower-case drive id
	defaultID   string            // id of the /me/drive drive
	seq         int64             // change sequence, advanced on every mutation (delta)
	nextID      int64             // item id counter
	sessions    map[string]*uploadSession
	jobs        map[string]*copyJob
	auth        authState
	faults      faultState
	delta       deltaState // cursors of multi-page delta rounds (delta.go)
	changes     changeLog  // stamps by sequence number (changelog.go)
	stats       statsState
	budget      budgetState // resource units metered (budget.go)
	dirty       bool        // metadata changed since the last save
	grantKey    []byte      // signs download grants (content.go); set by load
	closed      bool
	saveStop    chan struct{}
	saveStopped chan struct{}

	saveMu sync.Mutex // serialises Save (persist.go); taken before mu

	// sharing: users, sites, drive owners and shares (users.go); guarded by mu.
	sharing sharingState
}

// NewServer starts a fake server on a loopback port (Start). It panics if
// the options are invalid, the data directory cannot be used or it cannot
// listen, as httptest.NewServer does. Close it when done.
func NewServer(opts Options) *Server {
	s, err := New(opts)
	if err == nil {
		err = s.Start("127.0.0.1:0")
	}
	if err != nil {
		panic(fmt.Sprintf("graphtest: %v", err))
	}
	return s
}

// New returns a fake server that is not listening: Start it, or serve it
// with your own http.Server. Close it when done to save its state.
func New(opts Options) (*Server, error) {
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		now:      opts.Clock,
		drives:   map[string]*drive{},
		sessions: map[string]*uploadSession{},
		jobs:     map[string]*copyJob{},
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.applyDefaults()
	if err := s.opts.Validate(); err != nil {
		return nil, err
	}
	s.dataDir = opts.DataDir
	if s.dataDir == "" {
		d, err := os.MkdirTemp("", "graphtest-")
		if err != nil {
			return nil, err
		}
		s.dataDir, s.tempDir = d, true
	}
	blobs, err := openBlobStore(s.dataDir)
	if err != nil {
		return nil, err
	}
	s.blobs = blobs
	s.auth.init()
	s.net.init()
	forms := s.opts.Forms
	s.frontForms.Store(&forms)
	s.faults.set(s.opts.Faults, s.now())
	s.budget = budgetState{perMinute: max(s.opts.ResourceUnitsPerMinute, 0)}
	if err := s.load(); err != nil {
		return nil, fmt.Errorf("loading %s: %w", s.dataDir, err)
	}
	return s, nil
}

// Validate reports what New would refuse in o: a knob of Copy, Forms or
// Faults that takes one of a few values and has another, or a negative
// count or copy timing. Commands that build Options from flags call it to
// tell a usage error from a failure to start.
func (o Options) Validate() error {
	o.Copy.applyDefaults() // zero values stand for the defaults
	if err := o.Copy.validate(); err != nil {
		return err
	}
	if err := o.Forms.validate(); err != nil {
		return err
	}
	return o.Faults.validate()
}

func (s *Server) applyDefaults() {
	o := &s.opts
	if o.DriveID == "" {
		o.DriveID = "b7d2a1c3e4f50617"
	}
	if o.DriveType == "" {
		o.DriveType = "personal"
	}
	if o.QuotaTotal == 0 {
		o.QuotaTotal = 1 << 40
	}
	if o.SimpleUploadLimit == 0 {
		o.SimpleUploadLimit = 4 << 20
	}
	if o.PageSize == 0 {
		o.PageSize = 200
	}
	if o.MaxPageSize == 0 {
		o.MaxPageSize = 1000
	}
	if o.UploadSessionLifetime == 0 {
		o.UploadSessionLifetime = time.Hour
	}
	if o.DownloadURLLifetime == 0 {
		o.DownloadURLLifetime = time.Hour
	}
	o.Auth.applyDefaults()
	businessCopyForms(o)
	o.Copy.applyDefaults()
}

// GraphURL is the Graph API base of a started server (URL + "/v1.0").
func (s *Server) GraphURL() string { return s.URL + "/v1.0" }

// AuthURL is the OAuth base of a started server; endpoints live under
// AuthURL + "/{tenant}/oauth2/v2.0/".
func (s *Server) AuthURL() string { return s.URL }

// Client returns an HTTP client for a started server (see
// httptest.Server.Client): its idle connections are closed by Close.
func (s *Server) Client() *http.Client {
	if s.transport == nil {
		return &http.Client{}
	}
	return &http.Client{Transport: s.transport}
}

// Close stops a started server, saves the drive when it persists to a data
// directory the caller chose, and removes a temporary one.
func (s *Server) Close() error {
	s.stopServing()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stopAutoSave()
	var err error
	if !s.tempDir {
		err = s.Save()
	}
	if s.tempDir {
		if rerr := os.RemoveAll(s.dataDir); err == nil {
			err = rerr
		}
	}
	return err
}

// ServeHTTP routes a request: OAuth endpoints, the /_fake/ control API,
// pre-authenticated URLs (download, upload session, monitor) and the Graph
// API. Every request is counted by operation and may be hit by an injected
// fault first. While the network is blackholed or refusing (SetNetwork),
// requests wait or go unanswered first.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.awaitNetwork(r) {
		panic(http.ErrAbortHandler) // the network is down: no answer (network.go)
	}
	if s.refuseAnonymous(w, r) { // anonymous.go
		return
	}
	r = s.withRequestInfo(r)
	rt := s.route(r)
	s.countRequest(rt.op)
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "op", rt.op)
	if rt.kind != routeControl {
		var answered bool
		if w, answered = s.injectFault(w, r, rt.op); answered {
			return
		}
		if dw, ok := w.(*dropWriter); ok {
			// Serve the request for real, then lose the reply.
			defer dw.drop()
		}
	}
	s.advanceJobs() // copy jobs complete lazily, on the next request after their time
	switch rt.kind {
	case routeOAuth:
		s.serveOAuth(w, r, rt)
	case routeControl:
		s.serveControl(w, r, rt)
	case routeDownload, routeUpload, routeMonitor:
		if s.rejectAuthorization(w, r) {
			return
		}
		switch rt.kind {
		case routeDownload:
			s.serveDownload(w, r, rt)
		case routeUpload:
			s.serveUploadFragment(w, r, rt)
		default:
			s.serveMonitor(w, r, rt)
		}
	case routeGraph:
		if !s.checkBearer(w, r) {
			return
		}
		if s.chargeBudget(w, r, rt.op) {
			return
		}
		s.serveGraph(w, r, rt)
	default:
		writeError(w, r, http.StatusNotFound, "itemNotFound", "The resource could not be found.", "")
	}
}

// baseURL is scheme://host as the client sees this server: from
// X-Forwarded-Proto/X-Forwarded-Host when a proxy sets them, else from the
// request itself.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = strings.TrimSpace(strings.Split(p, ",")[0])
	}
	host := r.Host
	if h := r.Header.Get("X-Forwarded-Host"); h != "" {
		host = strings.TrimSpace(strings.Split(h, ",")[0])
	}
	return scheme + "://" + host
}

// base returns the base URL stored in a request's context by ServeHTTP.
func base(r *http.Request) string {
	if info, ok := r.Context().Value(requestInfoKey{}).(requestInfo); ok {
		return info.base
	}
	return baseURL(r)
}

// randomToken returns n random bytes as lower-case hex.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}
