package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// FragmentUnit is the size every upload-session fragment but the last must be
// a multiple of (320 KiB).
const FragmentUnit = 320 << 10

const (
	// defaultFragmentSize: 40 MiB. Measured with BenchmarkUploadFragmentSize
	// (256 MiB through the fake, 2026-12-04): without latency every size
	// from 5 to 59.7 MiB uploads at 670-700 MB/s; with 20 ms per fragment
	// request, 10 MiB gives 281 MB/s, 20 MiB 389, 40 MiB 478, 59.7 MiB 459.
	// A fragment cut by a broken connection is sent again whole, which
	// bounds it from above.
	defaultFragmentSize      = 128 * FragmentUnit
	maxFragmentSize          = 60 << 20 // fragments must stay below 60 MiB
	defaultSimpleUploadLimit = 4 << 20
)

// Config of a Client.
type Config struct {
	// GraphURL is the API base, e.g. "https://graph.microsoft.com/v1.0" or
	// "http://127.0.0.1:8080/v1.0" for the fake server.
	GraphURL string
	// DriveID selects the drive: "" (or "me") → /me/drive, else /drives/{DriveID}.
	DriveID string
	// Tokens supplies access tokens; required. It should cache tokens (as
	// remote.TokenSource does): it is asked once per request. If it also
	// implements interface{ Invalidate() }, a 401 from the API makes the
	// client call Invalidate() and repeat the request once.
	Tokens oauth2.TokenSource
	// Transport is the base transport of both HTTP clients; nil → a clone of
	// net/http's default transport. The API client wraps it with an
	// oauth2.Transport; the plain client (pre-authenticated download, upload
	// session and monitor URLs) uses it as is and never sends a token.
	// Neither client follows redirects.
	Transport http.RoundTripper
	// Logger receives debug lines about retries and waits; nil → discard.
	// URLs are never logged.
	Logger *slog.Logger
	// Retry bounds the retries of transient failures; zero → defaults.
	Retry RetryPolicy
	// FragmentSize is the upload-session fragment size, a multiple of
	// FragmentUnit below 60 MiB; 0 → 40 MiB.
	FragmentSize int64
	// SimpleUploadLimit: files up to this size (0 bytes included) are sent in
	// one PUT, larger ones through an upload session; 0 → 4 MiB.
	SimpleUploadLimit int64
	// Clock tells the time (Retry-After dates, the throttling gate, the
	// lifetime of cached download URLs); nil → time.Now.
	Clock func() time.Time
	// DetectOffline turns on offline detection (offline.go): a connection
	// that cannot be opened takes the Client's Link down, and requests then
	// fail at once with ErrOffline until Probe reaches the service. With a
	// nil Transport, connection attempts are also bounded to a few seconds.
	DetectOffline bool
}

// Client is a Microsoft Graph drive client. It is safe for concurrent use.
// Every request goes through one retry loop (retry.go), which also holds all
// requests back while the service throttles this client.
//
// A Client addresses one drive (Config.DriveID); OnDrive returns a Client of
// another drive of the same account that shares everything else with it
// (connections, tokens, the throttling gate, cached download URLs), so that
// the items of a shared folder or a SharePoint library are reached with the
// same methods, by their drive id and item id.
type Client struct {
	*clientCore
	driveURL string // e.g. "https://graph.microsoft.com/v1.0/me/drive"; set by New or OnDrive
}

// clientCore is what every Client of an account shares. Its fields are set
// by New and only read afterwards, except gate, urls and me, which have
// their own locks, and tooLarge, which is atomic.
type clientCore struct {
	graphBase *url.URL // parsed Config.GraphURL: links handed out must point at its host
	api       *http.Client
	plain     *http.Client
	// fresh is plain over connections never reused (probes and checks,
	// offline.go: sent without a token, any answer of the service counts);
	// closeIdle closes the idle connections api and plain keep.
	fresh     *http.Client
	closeIdle func()
	tokens    oauth2.TokenSource
	log       *slog.Logger
	retry     RetryPolicy
	fragment  int64
	simple    int64
	now       func() time.Time
	// sleep waits for d or until ctx is done; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
	// jitter returns a uniformly random duration in [0, d]; tests may replace it.
	jitter func(d time.Duration) time.Duration

	gate gate
	urls downloadURLs
	// tooLarge is the smallest size the service refused (413) in a simple
	// upload; 0 → none. Files of that size or more go through a session.
	tooLarge atomic.Int64
	// me caches the signed-in user (sharing.go).
	me meCache
	// budget is the service's last word on the request budget (budget.go).
	budget budgetNote
	// detectOffline and link: offline detection (offline.go).
	detectOffline bool
	link          *Link
}

// New returns a Client for cfg. It starts no goroutine.
func New(cfg Config) (*Client, error) {
	if cfg.Tokens == nil {
		return nil, errors.New("remote: Config.Tokens is required")
	}
	base, err := url.Parse(strings.TrimRight(cfg.GraphURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("remote: GraphURL %q is not an absolute http(s) URL", cfg.GraphURL)
	}
	base.RawQuery, base.Fragment = "", ""
	fragment := cfg.FragmentSize
	if fragment == 0 {
		fragment = defaultFragmentSize
	}
	if fragment <= 0 || fragment%FragmentUnit != 0 || fragment >= maxFragmentSize {
		return nil, fmt.Errorf("remote: FragmentSize %d is not a multiple of %d below 60 MiB", fragment, FragmentUnit)
	}
	simple := cfg.SimpleUploadLimit
	if simple == 0 {
		simple = defaultSimpleUploadLimit
	}
	if simple < 0 {
		return nil, fmt.Errorf("remote: SimpleUploadLimit %d is negative", simple)
	}
	transport := cfg.Transport
	if transport == nil {
		transport = http.DefaultTransport.(*http.Transport).Clone()
		if cfg.DetectOffline {
			transport = offlineTransport()
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := cfg.Clock
	if now == nil {
		now = time.Now
	}
	noRedirects := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	freshTransport := transport
	if t, ok := transport.(*http.Transport); ok {
		ft := t.Clone()
		ft.DisableKeepAlives = true
		freshTransport = ft
	}
	closeIdle := func() {}
	if t, ok := transport.(interface{ CloseIdleConnections() }); ok {
		closeIdle = t.CloseIdleConnections
	}

	c := &Client{driveURL: base.String() + drivePath(cfg.DriveID), clientCore: &clientCore{
		graphBase: base,
		api: &http.Client{
			Transport:     &oauth2.Transport{Source: taggedTokens{cfg.Tokens}, Base: transport},
			CheckRedirect: noRedirects,
		},
		plain:         &http.Client{Transport: transport, CheckRedirect: noRedirects},
		fresh:         &http.Client{Transport: freshTransport, CheckRedirect: noRedirects},
		closeIdle:     closeIdle,
		detectOffline: cfg.DetectOffline,
		link:          &Link{},
		tokens:        cfg.Tokens,
		log:           logger,
		retry:         cfg.Retry.withDefaults(),
		fragment:      fragment,
		simple:        simple,
		now:           now,
		sleep:         sleepContext,
		jitter: func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return rand.N(d + 1)
		},
	}}
	c.urls.entries = make(map[string]downloadURL)
	return c, nil
}

// OnDrive returns a Client of the drive driveID ("" or "me": the signed-in
// user's own drive) that shares connections, tokens, throttling and caches
// with c. It is cheap: make one per request if need be.
func (c *Client) OnDrive(driveID string) *Client {
	return &Client{clientCore: c.clientCore, driveURL: c.graphBase.String() + drivePath(driveID)}
}

func drivePath(driveID string) string {
	if driveID == "" || driveID == "me" {
		return "/me/drive"
	}
	return "/drives/" + escapeSegment(driveID)
}

// ConflictBehavior is what the service does when a name is taken:
// "" (the service's default for the operation), fail, replace or rename.
type ConflictBehavior string

const (
	ConflictDefault ConflictBehavior = ""
	ConflictFail    ConflictBehavior = "fail"
	ConflictReplace ConflictBehavior = "replace"
	ConflictRename  ConflictBehavior = "rename"
)

// conflictQuery returns "?@microsoft.graph.conflictBehavior=…" or "".
func conflictQuery(cb ConflictBehavior) string {
	if cb == "" {
		return ""
	}
	return "?@microsoft.graph.conflictBehavior=" + url.QueryEscape(string(cb))
}

// tokenError marks a failure to obtain an access token, so that the retry
// loop does not mistake it for a network failure: the token source does its
// own retrying.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "remote: access token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

type taggedTokens struct{ src oauth2.TokenSource }

func (t taggedTokens) Token() (*oauth2.Token, error) {
	tok, err := t.src.Token()
	if err != nil {
		return nil, &tokenError{err}
	}
	return tok, nil
}

// sameHost reports whether link (absolute) points at the Graph host, so
// that following it with the API client cannot leak the token elsewhere.
func (c *Client) sameHost(link string) error {
	u, err := url.Parse(link)
	if err != nil || !u.IsAbs() {
		return fmt.Errorf("remote: link from the service is not an absolute URL")
	}
	if !strings.EqualFold(u.Scheme, c.graphBase.Scheme) || !strings.EqualFold(u.Host, c.graphBase.Host) {
		return fmt.Errorf("remote: link from the service points at host %q, not the Graph host %q", u.Host, c.graphBase.Host)
	}
	return nil
}
