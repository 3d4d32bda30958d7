package remote

// Test harness shared by the client's tests: a scripted httptest server, a
// fake token source, a fake clock whose sleeps return at once, and fixture
// loading. The fake OneDrive (remote/graphtest) is exercised by integration
// tests elsewhere; these tests script each reply themselves.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// rotatingTokens hands out "tok-N"; Invalidate moves to the next N.
type rotatingTokens struct {
	mu          sync.Mutex
	gen         int // GUARDED_BY(mu)
	invalidated int // GUARDED_BY(mu)
}

func (f *rotatingTokens) Token() (*oauth2.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &oauth2.Token{AccessToken: fmt.Sprintf("tok-%d", f.gen+1), TokenType: "Bearer",
		Expiry: time.Now().Add(time.Hour)}, nil
}

func (f *rotatingTokens) Invalidate() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	f.invalidated++
}

func (f *rotatingTokens) invalidations() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.invalidated
}

// stepClock is a clock whose Sleep records the wait and advances time at
// once (unless ctx is done).
type stepClock struct {
	mu     sync.Mutex
	now    time.Time       // GUARDED_BY(mu)
	sleeps []time.Duration // GUARDED_BY(mu)
}

func newStepClock() *stepClock {
	return &stepClock{now: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	if d > 0 {
		c.now = c.now.Add(d)
	}
	return nil
}

func (c *stepClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// clientEnv is a Client wired to a scripted server.
type clientEnv struct {
	t      *testing.T
	srv    *httptest.Server
	c      *Client
	clock  *stepClock
	tokens *rotatingTokens
}

// newClientEnv starts a server running h and a Client pointed at it
// (GraphURL = server + "/v1.0"). Connections are not kept alive, so that a
// broken connection reaches the client's retry loop rather than being
// retried silently by net/http on a reused connection.
func newClientEnv(t *testing.T, h http.Handler, opts ...func(*Config)) *clientEnv {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	clock := newStepClock()
	tokens := &rotatingTokens{}
	cfg := Config{
		GraphURL:  srv.URL + "/v1.0",
		Tokens:    tokens,
		Transport: &http.Transport{DisableKeepAlives: true},
		Clock:     clock.Now,
		Retry:     RetryPolicy{MaxAttempts: 5, BaseDelay: 100 * time.Millisecond, MaxDelay: 2 * time.Second},
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := New(cfg)
	require.NoError(t, err)
	c.sleep = clock.Sleep
	return &clientEnv{t: t, srv: srv, c: c, clock: clock, tokens: tokens}
}

// base is the server's Graph drive URL prefix as seen by handlers.
const drivePrefix = "/v1.0/me/drive"

// requireBearer fails the test unless r carries the client's bearer token.
func requireBearer(t *testing.T, r *http.Request) {
	t.Helper()
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok-") {
		t.Errorf("%s %s: API request without a bearer token", r.Method, r.URL.Path)
	}
}

// requireNoAuth fails the test if r carries an Authorization header: the
// pre-authenticated URLs must never see the token.
func requireNoAuth(t *testing.T, r *http.Request) {
	t.Helper()
	if v := r.Header.Get("Authorization"); v != "" {
		t.Errorf("%s %s: Authorization header sent to a pre-authenticated URL", r.Method, r.URL.Path)
	}
}

// replyJSON writes v (or raw JSON bytes) with a status.
func replyJSON(w http.ResponseWriter, status int, v any) {
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	case string:
		b = []byte(x)
	default:
		var err error
		b, err = json.Marshal(v)
		if err != nil {
			panic(err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// graphError writes a Graph error body.
func graphError(w http.ResponseWriter, status int, code, inner string) {
	body := map[string]any{"error": map[string]any{
		"code": code, "message": "scripted " + code,
		"innerError": map[string]any{"code": inner, "request-id": "req-1", "date": "2024-05-06T07:08:09"},
	}}
	replyJSON(w, status, body)
}

// abort breaks the connection without a reply (the client sees a reset/EOF).
func breakConn() { panic(http.ErrAbortHandler) }

// fixture reads testdata/graph/name.
func graphFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "graph", name))
	require.NoError(t, err)
	return b
}

// graphFixtureFor reads a fixture and points its graph.microsoft.com links at
// the test server.
func graphFixtureFor(t *testing.T, name string, r *http.Request) []byte {
	t.Helper()
	s := strings.ReplaceAll(string(graphFixture(t, name)), "https://graph.microsoft.com", "http://"+r.Host)
	return []byte(s)
}

// itemJSON is a minimal driveItem.
func itemJSON(id, name string, size int64) map[string]any {
	return map[string]any{
		"id": id, "name": name, "size": size, "eTag": "etag-" + id,
		"parentReference":      map[string]any{"driveId": "d1", "id": "parent"},
		"lastModifiedDateTime": "2024-01-02T03:04:05Z",
		"file":                 map[string]any{"mimeType": "application/octet-stream"},
	}
}

// hitCounter counts hits per key.
type hitCounter struct {
	mu sync.Mutex
	n  map[string]int // GUARDED_BY(mu)
}

func (c *hitCounter) inc(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[key]++
	return c.n[key]
}

func (c *hitCounter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// advanceTo moves the clock forward to t (never back).
func (c *stepClock) advanceTo(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
}

// gatedSleeper is a sleep func that reports each wait on events and blocks
// until release is closed, then moves the clock to the wait's end.
type gatedSleeper struct {
	clock   *stepClock
	events  chan time.Duration
	release chan struct{}
}

func newGatedSleeper(clock *stepClock) *gatedSleeper {
	return &gatedSleeper{clock: clock, events: make(chan time.Duration, 16), release: make(chan struct{})}
}

func (g *gatedSleeper) Sleep(ctx context.Context, d time.Duration) error {
	start := g.clock.Now()
	g.events <- d
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.clock.advanceTo(start.Add(d))
	return nil
}

// next returns the next reported wait, failing the test after a while.
func (g *gatedSleeper) next(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-g.events:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no wait was reported")
		return 0
	}
}

// requestLog records request URIs as handlers see them.
type requestLog struct {
	mu   sync.Mutex
	uris []string // GUARDED_BY(mu)
}

func (l *requestLog) add(uri string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.uris = append(l.uris, uri)
}

func (l *requestLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.uris...)
}
