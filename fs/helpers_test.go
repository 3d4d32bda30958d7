package fs

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/cache"
	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// testEnv is a filesystem over a fake drive, without a mount: tests call the
// FS methods the nodes call, so that a failure points at the code, not at
// FUSE.
type testEnv struct {
	t     *testing.T
	srv   *graphtest.Server
	fs    *FS
	cache string // cache dir
}

type envOption func(*graphtest.Options, *Config)

// newTestEnv starts a fake server and a started FS over it.
func newTestEnv(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	var gopts graphtest.Options
	var cfg Config
	for _, o := range opts {
		o(&gopts, &cfg)
	}
	srv := graphtest.NewServer(gopts)
	t.Cleanup(func() { _ = srv.Close() })
	env := &testEnv{t: t, srv: srv, cache: t.TempDir()}
	env.fs = env.newFS(cfg)
	require.NoError(t, env.fs.start(context.Background()))
	return env
}

// newFS returns a new (unstarted) FS over env's server and cache dir, as a
// new mount would.
func (env *testEnv) newFS(cfg Config) *FS {
	t := env.t
	t.Helper()
	rc, err := remote.New(remote.Config{
		GraphURL: env.srv.GraphURL(),
		Tokens:   oauth2.StaticTokenSource(&oauth2.Token{AccessToken: env.srv.IssueToken(), Expiry: time.Now().Add(time.Hour)}),
		Retry:    remote.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
	})
	require.NoError(t, err)
	content, err := cache.OpenContent(cache.ContentOptions{Dir: filepath.Join(env.cache, "content"), MaxBytes: 1 << 30})
	require.NoError(t, err)
	t.Cleanup(func() { _ = content.Close() })
	staging, err := cache.OpenStaging(cache.StagingOptions{Dir: env.cache})
	require.NoError(t, err)
	state, err := cache.OpenState(env.cache, nil)
	require.NoError(t, err)
	cfg.Remote, cfg.Content, cfg.Staging, cfg.State = rc, content, staging, state
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = -1
	}
	f, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(f.bg.stop)
	return f
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("ONEDRIVEFS_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// walk resolves a slash-separated path from the root.
func (env *testEnv) walk(p string) (*entry, error) {
	ctx := context.Background()
	e := env.fs.root
	for _, name := range splitTestPath(p) {
		c, err := env.fs.lookup(ctx, e, name)
		if err != nil {
			return nil, err
		}
		e = c
	}
	return e, nil
}

func (env *testEnv) mustWalk(p string) *entry {
	env.t.Helper()
	e, err := env.walk(p)
	require.NoError(env.t, err, p)
	return e
}

func splitTestPath(p string) []string {
	var out []string
	cur := ""
	for _, r := range p {
		if r == '/' {
			if cur != "" {
				out = append(out, cur)
			}
			cur = ""
			continue
		}
		cur += string(r)
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

// writeFile creates (or opens) dir/name, writes data, closes it.
func (env *testEnv) writeFile(dir *entry, name string, data []byte) *entry {
	t := env.t
	t.Helper()
	ctx := context.Background()
	e, created, err := env.fs.create(ctx, dir, name, false)
	require.NoError(t, err)
	h, err := env.fs.open(ctx, e, !created)
	require.NoError(t, err)
	if len(data) > 0 {
		n, err := h.write(ctx, data, 0)
		require.NoError(t, err)
		require.Equal(t, len(data), n)
	}
	require.NoError(t, h.flush(ctx))
	require.NoError(t, h.release(ctx))
	return e
}

// readAll reads e's whole content through a handle.
func (env *testEnv) readAll(e *entry) []byte {
	t := env.t
	t.Helper()
	ctx := context.Background()
	h, err := env.fs.open(ctx, e, false)
	require.NoError(t, err)
	defer func() { require.NoError(t, h.release(ctx)) }()
	var out []byte
	buf := make([]byte, 128<<10)
	for off := int64(0); ; {
		n, err := h.read(ctx, buf, off)
		require.NoError(t, err)
		if n == 0 {
			return out
		}
		out = append(out, buf[:n]...)
		off += int64(n)
	}
}

// requests returns the fake's count of operation op.
func (env *testEnv) requests(op string) int64 {
	return env.srv.Stats().Requests[op]
}

type (
	graphOptions = graphtest.Options
	remoteItem   = remote.Item
)

type remoteUpdate = remote.ItemUpdate
