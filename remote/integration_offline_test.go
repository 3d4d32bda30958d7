package remote_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// A client that detects offline: a refused connection takes the link down
// and fails with ErrOffline (not retried); later requests fail with
// ErrOffline without reaching the network (the fake counts no request);
// Probe brings the link back once the service answers.
func TestIntegrationOfflineDetection(t *testing.T) {
	t.Parallel()
	fake, c := newOfflineClient(t)
	ctx := context.Background()
	_, err := c.Root(ctx)
	require.NoError(t, err)
	changed := c.Link().Changed()

	require.NoError(t, fake.SetNetwork(graphtest.NetworkRefuse))
	_, err = c.Root(ctx)
	require.ErrorIs(t, err, remote.ErrOffline)
	st := c.Link().State()
	assert.True(t, st.Offline)
	assert.NotEmpty(t, st.Cause)
	select {
	case <-changed:
	default:
		t.Fatal("the link's watchers were not told it went down")
	}

	require.NoError(t, fake.SetNetwork(graphtest.NetworkUp))
	before := fake.Stats().Requests["item.get"]
	_, err = c.Root(ctx)
	require.ErrorIs(t, err, remote.ErrOffline, "down until a probe says otherwise")
	assert.Equal(t, before, fake.Stats().Requests["item.get"], "nothing sent while offline")
	assert.Positive(t, before)

	require.NoError(t, c.Probe(ctx))
	assert.False(t, c.Link().State().Offline)
	_, err = c.Root(ctx)
	require.NoError(t, err)
}

// Without DetectOffline a refused connection is an ordinary transient
// failure and the link never goes down.
func TestIntegrationOfflineDetectionOff(t *testing.T) {
	t.Parallel()
	fake := graphtest.NewServer(graphtest.Options{})
	t.Cleanup(func() { _ = fake.Close() })
	tok := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: fake.IssueToken(), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)})
	c, err := remote.New(remote.Config{GraphURL: fake.GraphURL(), Tokens: tok, Retry: remote.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}})
	require.NoError(t, err)
	require.NoError(t, fake.SetNetwork(graphtest.NetworkRefuse))
	_, err = c.Root(context.Background())
	require.Error(t, err)
	assert.NotErrorIs(t, err, remote.ErrOffline)
	assert.False(t, c.Link().State().Offline)
}

// A service that accepts connections and answers nothing: with the
// client's watcher running, a request into it is found waiting, a check on
// a fresh connection gets no answer either, the link goes down and the
// request fails with ErrOffline; later requests fail at once; a probe
// brings the link back once the network is.
func TestIntegrationOfflineSilentService(t *testing.T) {
	t.Parallel()
	fake, c := newOfflineClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.WatchUnanswered(ctx)
	_, err := c.Root(ctx)
	require.NoError(t, err)

	require.NoError(t, fake.SetNetwork(graphtest.NetworkBlackhole))
	start := time.Now()
	_, err = c.Root(ctx)
	t.Logf("measured: the first request into a silent service failed after %v", time.Since(start))
	require.ErrorIs(t, err, remote.ErrOffline)
	st := c.Link().State()
	assert.True(t, st.Offline)
	assert.Contains(t, st.Cause, "no answer")
	_, err = c.Root(ctx)
	require.ErrorIs(t, err, remote.ErrOffline, "later requests fail without waiting")

	require.NoError(t, fake.SetNetwork(graphtest.NetworkUp))
	require.NoError(t, c.Probe(ctx))
	_, err = c.Root(ctx)
	require.NoError(t, err)
}

// newOfflineClient returns a fake and a client of it that detects being
// offline.
func newOfflineClient(t *testing.T) (*graphtest.Server, *remote.Client) {
	t.Helper()
	fake := graphtest.NewServer(graphtest.Options{})
	t.Cleanup(func() { _ = fake.Close() })
	tok := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: fake.IssueToken(), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)})
	c, err := remote.New(remote.Config{GraphURL: fake.GraphURL(), Tokens: tok, DetectOffline: true})
	require.NoError(t, err)
	return fake, c
}

// stallingTokens hands out the fake's token until stall is set; then a
// refresh hangs (a token endpoint in a silent network) until release.
type stallingTokens struct {
	tok     *oauth2.Token
	stall   atomic.Bool
	release chan struct{}
}

func (s *stallingTokens) Token() (*oauth2.Token, error) {
	if s.stall.Load() {
		<-s.release
	}
	return s.tok, nil
}

// The network goes silent just as the access token needs refreshing: the
// request does not wait for the stuck refresh, it fails with ErrOffline
// once a check (sent without a token) finds the service silent; checks and
// probes need no token, so the link comes back while the refresh still
// hangs.
func TestIntegrationOfflineSilentDuringRefresh(t *testing.T) {
	t.Parallel()
	fake := graphtest.NewServer(graphtest.Options{})
	t.Cleanup(func() { _ = fake.Close() })
	tok := &stallingTokens{tok: &oauth2.Token{AccessToken: fake.IssueToken(), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)},
		release: make(chan struct{})}
	c, err := remote.New(remote.Config{GraphURL: fake.GraphURL(), Tokens: tok, DetectOffline: true})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.WatchUnanswered(ctx)
	_, err = c.Root(ctx)
	require.NoError(t, err)

	require.NoError(t, fake.SetNetwork(graphtest.NetworkBlackhole))
	tok.stall.Store(true)
	start := time.Now()
	_, err = c.Root(ctx)
	t.Logf("measured: a request whose token refresh hangs in a silent network failed after %v", time.Since(start))
	require.ErrorIs(t, err, remote.ErrOffline)

	require.NoError(t, fake.SetNetwork(graphtest.NetworkUp))
	require.NoError(t, c.Probe(ctx), "a probe needs no token")
	assert.False(t, c.Link().State().Offline)
	tok.stall.Store(false)
	close(tok.release)
	_, err = c.Root(ctx)
	require.NoError(t, err)
}
