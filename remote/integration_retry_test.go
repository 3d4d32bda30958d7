package remote_test

// Integration tests of the client's resilience and its sign-in: throttling
// (429/503 with Retry-After, all requests held), connection resets, the
// device-code sign-in, access tokens refreshed on expiry and on 401, and
// pre-authenticated URLs that must never see the token.

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// signalHandler is a slog.Handler that closes a channel the first time a
// record with the given message is logged.
type signalHandler struct {
	msg  string
	once *sync.Once
	ch   chan struct{}
}

func newSignalHandler(msg string) *signalHandler {
	return &signalHandler{msg: msg, once: &sync.Once{}, ch: make(chan struct{})}
}

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.ch) })
	}
	return nil
}
func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *signalHandler) WithGroup(string) slog.Handler      { return h }

// codeWriter receives DeviceLogin's instructions and hands over the user
// code they show.
type codeWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer // GUARDED_BY(mu)
	once sync.Once
	code chan string
}

func newCodeWriter() *codeWriter { return &codeWriter{code: make(chan string, 1)} }

var userCodeRE = regexp.MustCompile(`enter the code:\s+(\S+)`)

func (w *codeWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := userCodeRE.FindSubmatch(w.buf.Bytes()); m != nil {
		w.once.Do(func() { w.code <- string(m[1]) })
	}
	return len(p), nil
}

func (w *codeWriter) userCode(t *testing.T) string {
	t.Helper()
	select {
	case c := <-w.code:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("DeviceLogin showed no user code")
		return ""
	}
}

// ---- Throttling ----

func TestIntegrationThrottleHoldsEveryRequest(t *testing.T) {
	t.Parallel()
	throttled := newSignalHandler("throttled; holding all requests")
	e := newEnv(t, envConfig{client: func(c *remote.Config) { c.Logger = slog.New(throttled) }})
	id := e.put("/a.txt", []byte("a"))
	root := e.rootID()
	_, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)
	e.fake.SetFaults(graphtest.FaultOptions{ThrottleEvery: 1, Ops: []string{"item.get"}, RetryAfter: time.Second})
	e.fake.ResetStats()

	// A: its first attempt is throttled (every item.get is, until the
	// faults are lifted below); the client waits Retry-After.
	start := time.Now()
	aDone := make(chan error, 1)
	go func() {
		_, err := e.client.Item(e.ctx, id)
		aDone <- err
	}()
	select {
	case <-throttled.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the client was never throttled")
	}
	e.fake.SetFaults(graphtest.FaultOptions{})

	// B: another operation, which the fake does not throttle, issued while
	// the client is held: it waits for the gate as well.
	kids, err := e.client.Children(e.ctx, root)
	require.NoError(t, err)
	assert.Len(t, kids, 1)
	require.NoError(t, <-aDone)
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "Retry-After was honoured")

	var throttledAt time.Time
	var retry, children *exchange
	exs := e.rec.exchanges()
	for i := range exs {
		ex := &exs[i]
		switch {
		case ex.Status == http.StatusTooManyRequests:
			throttledAt = ex.Done
		case !throttledAt.IsZero() && strings.HasSuffix(ex.Path, "/children"):
			children = ex
		case !throttledAt.IsZero() && strings.Contains(ex.Path, "/items/") && retry == nil:
			retry = ex
		}
	}
	require.False(t, throttledAt.IsZero())
	require.NotNil(t, retry, "the throttled request was repeated")
	require.NotNil(t, children)
	assert.GreaterOrEqual(t, retry.Sent.Sub(throttledAt), time.Second, "the retry waited Retry-After")
	assert.GreaterOrEqual(t, children.Sent.Sub(throttledAt), time.Second, "the other request was held too")
	st := e.fake.Stats()
	assert.Equal(t, int64(1), st.Throttled)
	assert.Equal(t, int64(2), st.Requests["item.get"])
	assert.Equal(t, int64(1), st.Requests["children.list"])
}

func TestIntegrationThrottleEveryNth(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{})
			content := pattern(200_000, 14)
			id := e.put("/a.bin", content)
			// Every 3rd Graph request and pre-authenticated request alike.
			e.fake.SetFaults(graphtest.FaultOptions{ThrottleEvery: 3, ThrottleStatus: status, RetryAfter: time.Second})
			start := time.Now()
			for range 3 {
				_, err := e.client.Item(e.ctx, id)
				require.NoError(t, err)
				assert.Equal(t, content, e.download(id))
			}
			st := e.fake.Stats()
			assert.GreaterOrEqual(t, st.Throttled, int64(2))
			assert.GreaterOrEqual(t, time.Since(start), time.Duration(st.Throttled)*time.Second,
				"each throttled request waited its Retry-After")
			seen := 0
			for _, ex := range e.rec.exchanges() {
				if ex.Status == status {
					seen++
				}
			}
			assert.Equal(t, int(st.Throttled), seen)
		})
	}
}

func TestIntegrationThrottledUploadFragment(t *testing.T) {
	t.Parallel()
	// A throttled fragment was not received: it is sent again after the
	// wait, in the same session.
	e := newEnv(t, envConfig{client: func(c *remote.Config) { c.FragmentSize = 4 * remote.FragmentUnit }})
	content := pattern(5<<20, 15)
	e.fake.SetFaults(graphtest.FaultOptions{ThrottleEvery: 2, Ops: []string{"upload.fragment"}, RetryAfter: time.Second})
	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "t.bin",
		Content: bytes.NewReader(content), Size: int64(len(content))})
	require.NoError(t, err)
	assert.Equal(t, qxh(content), it.QuickXorHash)
	st := e.fake.Stats()
	assert.GreaterOrEqual(t, st.Throttled, int64(1))
	assert.Equal(t, int64(len(content)), st.BytesUploaded)
	assert.Equal(t, int64(1), st.Requests["upload.create"])
}

func TestIntegrationThrottleLongerThanAllowed(t *testing.T) {
	t.Parallel()
	// A Retry-After beyond RetryPolicy.MaxRetryAfter is handed to the
	// caller at once.
	e := newEnv(t, envConfig{client: func(c *remote.Config) { c.Retry.MaxRetryAfter = time.Second }})
	e.fake.SetFaults(graphtest.FaultOptions{ThrottleEvery: 1, Ops: []string{"drive.get"}, RetryAfter: 30 * time.Second})
	_, err := e.client.Drive(e.ctx)
	require.ErrorIs(t, err, remote.ErrThrottled)
	var re *remote.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 30*time.Second, re.RetryAfter)
	assert.Equal(t, "activityLimitReached", re.Code)
	assert.Equal(t, int64(1), e.fake.Stats().Requests["drive.get"])
}

func TestIntegrationThrottledMonitor(t *testing.T) {
	t.Parallel()
	// Monitor does not wait: the caller gets ErrThrottled and the wait.
	e := newEnv(t, envConfig{fake: graphtest.Options{Copy: graphtest.CopyOptions{MonitorStyle: "200"}}})
	id := e.put("/a.txt", []byte("a"))
	monitor, err := e.client.StartCopy(e.ctx, id, remote.CopyRequest{Name: "b.txt"})
	require.NoError(t, err)
	e.fake.SetFaults(graphtest.FaultOptions{ThrottleEvery: 1, Ops: []string{"monitor"}, RetryAfter: 2 * time.Second})
	_, err = e.client.Monitor(e.ctx, monitor)
	require.ErrorIs(t, err, remote.ErrThrottled)
	var re *remote.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 2*time.Second, re.RetryAfter)
	e.fake.SetFaults(graphtest.FaultOptions{})
	st, err := e.client.Monitor(e.ctx, monitor)
	require.NoError(t, err)
	assert.Equal(t, remote.JobCompleted, st.State)
}

// ---- Connection resets ----

func TestIntegrationConnectionResetsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	root := e.rootID()
	id := e.put("/a.txt", []byte("a"))
	// Every other request (Graph and pre-authenticated) is dropped.
	e.fake.SetFaults(graphtest.FaultOptions{ResetEvery: 2})

	_, err := e.client.Drive(e.ctx)
	require.NoError(t, err)
	_, err = e.client.Item(e.ctx, id)
	require.NoError(t, err)
	_, err = e.client.ItemByPath(e.ctx, "/a.txt")
	require.NoError(t, err)
	_, err = e.client.Children(e.ctx, root)
	require.NoError(t, err)
	f, err := e.client.CreateFolder(e.ctx, root, "dir", remote.ConflictFail)
	require.NoError(t, err)
	_, err = e.client.Update(e.ctx, id, remote.ItemUpdate{ParentID: f.ID})
	require.NoError(t, err)
	up, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: f.ID, Name: "b.txt",
		Content: strings.NewReader("bbb"), Size: 3})
	require.NoError(t, err)
	assert.Equal(t, "a", string(e.download(id)))
	_, err = e.client.Delta(e.ctx, "")
	require.NoError(t, err)
	require.NoError(t, e.client.Delete(e.ctx, up.ID, ""))

	st := e.fake.Stats()
	assert.GreaterOrEqual(t, st.Resets, int64(5))
	info, ok := e.fake.ItemByPath("/dir/a.txt")
	require.True(t, ok)
	assert.Equal(t, id, info.ID)
	_, ok = e.fake.ItemByPath("/dir/b.txt")
	assert.False(t, ok)
}

func TestIntegrationResetCopyNotRepeated(t *testing.T) {
	t.Parallel()
	// A copy request is not safe to repeat: a reset after it was sent is
	// reported as ErrOutcomeUnknown, and no second copy is started.
	e := newEnv(t, envConfig{})
	id := e.put("/a.txt", []byte("a"))
	e.fake.SetFaults(graphtest.FaultOptions{ResetEvery: 1, Ops: []string{"copy.start"}})
	_, err := e.client.StartCopy(e.ctx, id, remote.CopyRequest{Name: "b.txt"})
	require.ErrorIs(t, err, remote.ErrOutcomeUnknown)
	st := e.fake.Stats()
	assert.Equal(t, int64(1), st.Requests["copy.start"])
	assert.Zero(t, st.CopyJobsStarted)

	// Likewise a folder created with rename.
	e.fake.SetFaults(graphtest.FaultOptions{ResetEvery: 1, Ops: []string{"folder.create"}})
	_, err = e.client.CreateFolder(e.ctx, e.rootID(), "x", remote.ConflictRename)
	require.ErrorIs(t, err, remote.ErrOutcomeUnknown)
	assert.Equal(t, int64(1), e.fake.Stats().Requests["folder.create"])
}

// ---- Sign-in and tokens ----

// signIn runs the device-code flow against the fake and returns a token
// source backed by a token file in a temporary directory.
func signIn(t *testing.T, fake *graphtest.Server) (*remote.TokenSource, *remote.TokenStore, *oauth2.Token) {
	t.Helper()
	p := remote.Profile{GraphURL: fake.GraphURL(), AuthURL: fake.AuthURL()}.WithDefaults()
	require.NoError(t, p.Validate())
	cfg := p.OAuthConfig()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := remote.DeviceLogin(ctx, cfg, &out)
	require.NoError(t, err)
	require.NotEmpty(t, tok.AccessToken)
	require.NotEmpty(t, tok.RefreshToken, "offline_access gives a refresh token")
	assert.Contains(t, out.String(), fake.URL+"/devicelogin")
	store := remote.NewTokenStore(t.TempDir(), nil)
	require.NoError(t, store.Save(tok))
	return remote.NewTokenSource(context.Background(), cfg, store, tok, nil), store, tok
}

func TestIntegrationDeviceLogin(t *testing.T) {
	t.Parallel()
	fake := graphtest.NewServer(graphtest.Options{})
	t.Cleanup(func() { _ = fake.Close() })
	ts, _, tok := signIn(t, fake)
	st := fake.Stats()
	assert.Equal(t, int64(1), st.Requests["oauth.devicecode"])
	assert.Equal(t, int64(1), st.Requests["oauth.token"])
	assert.Equal(t, "Bearer", tok.Type())
	assert.WithinDuration(t, time.Now().Add(time.Hour), tok.Expiry, time.Minute)

	c, err := remote.New(remote.Config{GraphURL: fake.GraphURL(), Tokens: ts})
	require.NoError(t, err)
	d, err := c.Drive(context.Background())
	require.NoError(t, err)
	assert.Equal(t, fake.DefaultDriveID(), d.ID)
	assert.Equal(t, int64(1), fake.Stats().Requests["oauth.token"], "the signed-in token was used as is")

	// A declined sign-in.
	fake.SetAuthOptions(graphtest.AuthOptions{ManualApproval: true, PollInterval: time.Second})
	p := remote.Profile{GraphURL: fake.GraphURL(), AuthURL: fake.AuthURL()}.WithDefaults()
	out := newCodeWriter()
	done := make(chan error, 1)
	go func() {
		_, err := remote.DeviceLogin(context.Background(), p.OAuthConfig(), out)
		done <- err
	}()
	code := out.userCode(t)
	require.NoError(t, fake.DeclineDeviceCode(code))
	assert.ErrorIs(t, <-done, remote.ErrSignInDeclined)
}

func TestIntegrationTokenRefreshedOn401(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ts, store, first := signIn(t, e.fake)
	c, err := remote.New(remote.Config{GraphURL: e.fake.GraphURL(), Tokens: ts, Transport: e.rec, Retry: testRetry})
	require.NoError(t, err)
	id := e.put("/a.txt", []byte("a"))
	_, err = c.Item(e.ctx, id)
	require.NoError(t, err)
	e.fake.ResetStats()

	// The fake forgets the token before its time: the client learns it
	// from the 401, refreshes once and repeats the request.
	e.fake.ExpireTokens()
	it, err := c.Item(e.ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "a.txt", it.Name)
	st := e.fake.Stats()
	assert.Equal(t, int64(1), st.Requests["oauth.token"], "one refresh")
	assert.Equal(t, int64(2), st.Requests["item.get"], "the refused request and its repeat")
	unauthorized := 0
	for _, ex := range e.rec.exchanges() {
		if ex.Status == http.StatusUnauthorized {
			unauthorized++
		}
	}
	assert.Equal(t, 1, unauthorized)
	saved, err := store.Load()
	require.NoError(t, err)
	assert.NotEqual(t, first.AccessToken, saved.AccessToken, "the refreshed token was saved")

	// Later requests use the new token without another refresh.
	_, err = c.Drive(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), e.fake.Stats().Requests["oauth.token"])
}

func TestIntegrationShortLivedTokens(t *testing.T) {
	t.Parallel()
	// Access tokens that live one second: the token source renews them
	// before use, and no request is refused.
	e := newEnv(t, envConfig{fake: graphtest.Options{Auth: graphtest.AuthOptions{TokenLifetime: time.Second}}})
	ts, _, first := signIn(t, e.fake)
	c, err := remote.New(remote.Config{GraphURL: e.fake.GraphURL(), Tokens: ts, Transport: e.rec, Retry: testRetry})
	require.NoError(t, err)
	content := pattern(2<<20, 16)
	time.Sleep(1100 * time.Millisecond) // the signed-in token has expired on the fake
	it, err := c.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "s.bin",
		Content: bytes.NewReader(content), Size: int64(len(content))})
	require.NoError(t, err)
	time.Sleep(1100 * time.Millisecond)
	var buf bytes.Buffer
	require.NoError(t, c.DownloadVerified(e.ctx, it, &buf))
	assert.Equal(t, content, buf.Bytes())
	time.Sleep(1100 * time.Millisecond)
	_, err = c.Delta(e.ctx, "")
	require.NoError(t, err)

	for _, ex := range e.rec.exchanges() {
		assert.NotEqual(t, http.StatusUnauthorized, ex.Status, "%s %s refused", ex.Method, ex.Kind)
	}
	// Sign-in, then a refresh before the upload and before the delta (the
	// download went through the upload reply's pre-authenticated URL).
	assert.GreaterOrEqual(t, e.fake.Stats().Requests["oauth.token"], int64(3))
	tok, err := ts.Token()
	require.NoError(t, err)
	assert.NotEqual(t, first.AccessToken, tok.AccessToken)
}

func TestIntegrationRevokedRefreshToken(t *testing.T) {
	t.Parallel()
	// Single-use refresh tokens: a client that saves the new refresh token
	// every time keeps working.
	e := newEnv(t, envConfig{fake: graphtest.Options{Auth: graphtest.AuthOptions{SingleUseRefreshTokens: true}}})
	ts, _, _ := signIn(t, e.fake)
	c, err := remote.New(remote.Config{GraphURL: e.fake.GraphURL(), Tokens: ts, Transport: e.rec, Retry: testRetry})
	require.NoError(t, err)
	for range 3 {
		e.fake.ExpireTokens()
		_, err = c.Drive(e.ctx)
		require.NoError(t, err)
	}
	assert.Equal(t, int64(4), e.fake.Stats().Requests["oauth.token"])
}

// ---- Pre-authenticated URLs ----

func TestIntegrationPreauthURLsRefuseTheToken(t *testing.T) {
	t.Parallel()
	// The fake is strict: a token sent to a download, upload or monitor URL
	// is refused. So every test's success there proves the client sent
	// none; this test shows the refusal is real.
	e := newEnv(t, envConfig{})
	id := e.put("/a.txt", []byte("a"))
	it, err := e.client.Item(e.ctx, id)
	require.NoError(t, err)
	require.NotEmpty(t, it.DownloadURL)
	req, err := http.NewRequest(http.MethodGet, it.DownloadURL, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+e.fake.IssueToken())
	resp, err := http.DefaultTransport.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// Through the client, everything works and nothing carried the token.
	assert.Equal(t, "a", string(e.download(id)))
	content := pattern(5<<20, 17)
	_, err = e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "big.bin",
		Content: bytes.NewReader(content), Size: int64(len(content))})
	require.NoError(t, err)
	monitor, err := e.client.StartCopy(e.ctx, id, remote.CopyRequest{Name: "c.txt"})
	require.NoError(t, err)
	_, err = e.client.Monitor(e.ctx, monitor)
	require.NoError(t, err)
	kinds := map[string]int{}
	for _, ex := range e.rec.exchanges() {
		kinds[ex.Kind]++
		if ex.Kind == "graph" {
			assert.True(t, ex.Auth, "%s %s without a token", ex.Method, ex.Path)
		}
	}
	assert.Positive(t, kinds["download"])
	assert.Positive(t, kinds["upload"])
	assert.Positive(t, kinds["monitor"])
	e.rec.requireNoAuthOnPreauth(t)
}

func TestIntegrationDefaultTransport(t *testing.T) {
	t.Parallel()
	// The client as it is configured in production (Transport nil: pooled
	// keep-alive connections) through resets, throttling and a session.
	fake := graphtest.NewServer(graphtest.Options{})
	t.Cleanup(func() { _ = fake.Close() })
	c, err := remote.New(remote.Config{GraphURL: fake.GraphURL(), Retry: testRetry,
		Tokens:       oauth2.StaticTokenSource(&oauth2.Token{AccessToken: fake.IssueToken()}),
		FragmentSize: 4 * remote.FragmentUnit})
	require.NoError(t, err)
	ctx := context.Background()
	root, err := c.Root(ctx)
	require.NoError(t, err)
	fake.SetFaults(graphtest.FaultOptions{ResetEvery: 3, ThrottleEvery: 5, RetryAfter: time.Second})
	content := pattern(6<<20, 22)
	it, err := c.Upload(ctx, remote.UploadRequest{ParentID: root.ID, Name: "d.bin",
		Content: bytes.NewReader(content), Size: int64(len(content))})
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, c.DownloadVerified(ctx, it, &buf))
	assert.True(t, bytes.Equal(content, buf.Bytes()))
	for range 4 {
		_, err = c.Item(ctx, it.ID)
		require.NoError(t, err)
	}
	st := fake.Stats()
	assert.Positive(t, st.Resets)
	assert.Positive(t, st.Throttled)
	assert.LessOrEqual(t, st.BytesUploaded, int64(len(content)+4*remote.FragmentUnit))
}

func TestIntegrationLoadSignIn(t *testing.T) {
	// What `onedrivefs login` saves and a mount loads: profile and token in
	// a config directory, then a client whose token is refreshed and saved
	// back.
	t.Parallel()
	fake := graphtest.NewServer(graphtest.Options{})
	t.Cleanup(func() { _ = fake.Close() })
	_, _, tok := signIn(t, fake)
	dir := t.TempDir() + "/config"
	p := remote.Profile{GraphURL: fake.GraphURL(), AuthURL: fake.AuthURL()}.WithDefaults()
	require.NoError(t, remote.SaveProfile(dir, p, nil))
	require.NoError(t, remote.NewTokenStore(dir, nil).Save(tok))

	ctx := context.Background()
	loaded, ts, err := remote.LoadSignIn(ctx, dir, nil)
	require.NoError(t, err)
	assert.Equal(t, p, loaded)
	c, err := remote.New(remote.Config{GraphURL: loaded.GraphURL, DriveID: loaded.DriveID, Tokens: ts})
	require.NoError(t, err)
	_, err = c.Drive(ctx)
	require.NoError(t, err)
	fake.ExpireTokens()
	_, err = c.Drive(ctx)
	require.NoError(t, err)
	saved, err := remote.NewTokenStore(dir, nil).Load()
	require.NoError(t, err)
	assert.NotEqual(t, tok.AccessToken, saved.AccessToken)
	assert.NotEmpty(t, saved.RefreshToken)
}

// Budget reports the RateLimit headers the service sends from 80% of the
// application's budget on, and nothing before.
func TestIntegrationBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fake: graphtest.Options{ResourceUnitsPerMinute: 20}})
	root := e.rootID()
	_, ok := e.client.Budget()
	assert.False(t, ok, "nothing said yet")
	for range 8 {
		_, err := e.client.Children(e.ctx, root) // 2 units each
		require.NoError(t, err)
	}
	b, ok := e.client.Budget()
	require.True(t, ok)
	assert.Equal(t, 20, b.Limit)
	assert.LessOrEqual(t, b.Remaining, 4, "16 units of 20 used by the listings")
	assert.True(t, b.Reset.After(time.Now()) && b.Reset.Before(time.Now().Add(61*time.Second)), "reset %v", b.Reset)
}
