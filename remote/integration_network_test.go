package remote_test

import (
	"context"
	"errors"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// The service going away and coming back (graphtest.SetNetwork), as the
// client sees it: a refused connection is a transport error (after the
// client's retries), a blackholed one the caller's context running out; a
// Client used before the outage works again afterwards, with no new
// Client. The client keeps connections alive here, as in production.
func TestClientNetworkOutage(t *testing.T) {
	e := newEnv(t, envConfig{client: func(c *remote.Config) { c.Transport = &http.Transport{} }})
	id := e.put("/a.txt", []byte("abc"))
	ctx := context.Background()
	_, err := e.client.Item(ctx, id) // an open connection, kept alive
	require.NoError(t, err)

	require.NoError(t, e.fake.SetNetwork(graphtest.NetworkRefuse))
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = e.client.Item(waitCtx, id)
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "want connection refused, got %v", err)
	assert.NoError(t, waitCtx.Err(), "refused, not timed out")
	var apiErr *remote.Error
	assert.False(t, errors.As(err, &apiErr), "no reply of the service: %v", err)

	require.NoError(t, e.fake.SetNetwork(graphtest.NetworkBlackhole))
	shortCtx, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	_, err = e.client.Item(shortCtx, id)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.GreaterOrEqual(t, e.fake.Stats().Blackholed, int64(1))

	require.NoError(t, e.fake.SetNetwork(graphtest.NetworkUp))
	it, err := e.client.Item(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "a.txt", it.Name)
	assert.Equal(t, []byte("abc"), e.download(id))
}

// Delta items carry parentReference.path when a personal drive sends it,
// and the client keeps it.
func TestClientDeltaParentPath(t *testing.T) {
	e := newEnv(t, envConfig{fake: graphtest.Options{Forms: graphtest.FormOptions{DeltaParentPath: true}}})
	e.put("/Docs/a.txt", []byte("a"))
	page, err := e.client.Delta(context.Background(), "")
	require.NoError(t, err)
	paths := map[string]string{}
	for _, it := range page.Items {
		paths[it.Name] = it.ParentPath
	}
	assert.Equal(t, "/drive/root:/Docs", paths["a.txt"])
	assert.Equal(t, "/drive/root:", paths["Docs"])
}
