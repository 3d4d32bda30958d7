package graphtest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// getRoot asks for the root item with ctx, through hc (keep-alive on).
func getRoot(ctx context.Context, h *fakeHarness, hc *http.Client) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.GraphURL()+"/me/drive/root", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestNetworkRefuse(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	hc := &http.Client{Transport: &http.Transport{}}
	ctx := context.Background()
	st, err := getRoot(ctx, h, hc) // leaves an idle keep-alive connection
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, st)
	url := h.srv.URL

	require.NoError(t, h.srv.SetNetwork(graphtest.NetworkRefuse))
	assert.Equal(t, graphtest.NetworkRefuse, h.srv.Network())
	// A deadline far away: refused, not left waiting.
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = getRoot(waitCtx, h, hc)
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "want connection refused, got %v", err)
	// Refusing twice is no change.
	require.NoError(t, h.srv.SetNetwork(graphtest.NetworkRefuse))

	require.NoError(t, h.srv.SetNetwork(graphtest.NetworkUp))
	assert.Equal(t, url, h.srv.URL, "the same port")
	st, err = getRoot(ctx, h, hc)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, st)
}

func TestNetworkRefuseClosesOpenConnections(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	// Far larger than the socket buffers, so the server is still writing.
	_, err := h.srv.SparseFile("/big.bin", 256<<20, []byte("end"))
	require.NoError(t, err)
	r := h.api("GET", "/me/drive/root:/big.bin:/content", nil)
	require.Equal(t, http.StatusFound, r.status)
	resp, err := http.Get(r.header.Get("Location"))
	require.NoError(t, err)
	defer resp.Body.Close()
	buf := make([]byte, 1024)
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)

	require.NoError(t, h.srv.SetNetwork(graphtest.NetworkRefuse))
	_, err = io.Copy(io.Discard, resp.Body)
	assert.Error(t, err, "a download in progress is cut")
}

func TestNetworkBlackhole(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	hc := &http.Client{Transport: &http.Transport{}}
	_, err := getRoot(context.Background(), h, hc) // an open connection, kept alive
	require.NoError(t, err)

	served := h.srv.Stats().Requests["item.get"]
	require.NoError(t, h.srv.SetNetwork(graphtest.NetworkBlackhole))
	for _, client := range []*http.Client{hc, {Transport: &http.Transport{}}} { // open and new connections
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		_, err = getRoot(ctx, h, client)
		cancel()
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	}
	assert.Equal(t, int64(2), h.srv.Stats().Blackholed)
	assert.Equal(t, served, h.srv.Stats().Requests["item.get"], "no request was served")

	// A request waiting in the blackhole is served when the network is back.
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		st, err := getRoot(context.Background(), h, hc)
		done <- result{st, err}
	}()
	require.Eventually(t, func() bool { return h.srv.Stats().Blackholed == 3 }, 5*time.Second, 5*time.Millisecond)
	select {
	case <-done:
		t.Fatal("answered while blackholed")
	case <-time.After(100 * time.Millisecond):
	}
	require.NoError(t, h.srv.SetNetwork(graphtest.NetworkUp))
	res := <-done
	require.NoError(t, res.err)
	assert.Equal(t, http.StatusOK, res.status)
}

// A download being sent when the network goes silent stops mid-body (a
// chunk at most goes on); once the network is back the rest comes, intact.
func TestNetworkBlackholeStallsDownload(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	data := bytes.Repeat([]byte("0123456789abcdef"), 24<<20/16) // more than the socket buffers hold
	id, err := h.srv.PutFile("/big.bin", data, time.Time{})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodGet, h.srv.GraphURL()+"/me/drive/items/"+id+"/content", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := h.hc.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	_ = resp.Body.Close()
	resp, err = http.Get(resp.Header.Get("Location"))
	require.NoError(t, err)
	defer resp.Body.Close()
	head := make([]byte, 1<<20)
	_, err = io.ReadFull(resp.Body, head)
	require.NoError(t, err)

	require.NoError(t, h.srv.SetNetwork(graphtest.NetworkBlackhole))
	done := make(chan []byte, 1)
	go func() {
		rest, _ := io.ReadAll(resp.Body)
		done <- rest
	}()
	select {
	case <-done:
		t.Fatal("the whole body came through a silent network")
	case <-time.After(500 * time.Millisecond):
	}
	require.NoError(t, h.srv.SetNetwork(graphtest.NetworkUp))
	rest := <-done
	assert.True(t, bytes.Equal(data, append(head, rest...)), "the rest comes, intact, once the network is back")
}

func TestNetworkBlackholeThenRefuse(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	require.NoError(t, h.srv.SetNetwork(graphtest.NetworkBlackhole))
	done := make(chan error, 1)
	go func() {
		_, err := getRoot(context.Background(), h, &http.Client{Transport: &http.Transport{}})
		done <- err
	}()
	require.Eventually(t, func() bool { return h.srv.Stats().Blackholed == 1 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, h.srv.SetNetwork(graphtest.NetworkRefuse))
	select {
	case err := <-done:
		assert.Error(t, err, "the waiting request's connection is closed")
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting request was not released")
	}
	require.NoError(t, h.srv.SetNetwork(graphtest.NetworkBlackhole), "from refuse straight to blackhole")
	require.NoError(t, h.srv.SetNetwork(graphtest.NetworkUp))
	st, err := getRoot(context.Background(), h, &http.Client{})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, st)
}

func TestNetworkCloseReleasesWaitingRequests(t *testing.T) {
	srv := graphtest.NewServer(graphtest.Options{})
	h := newHarness(t, srv)
	require.NoError(t, srv.SetNetwork(graphtest.NetworkBlackhole))
	done := make(chan error, 1)
	go func() {
		_, err := getRoot(context.Background(), h, &http.Client{})
		done <- err
	}()
	require.Eventually(t, func() bool { return srv.Stats().Blackholed == 1 }, 5*time.Second, 5*time.Millisecond)
	start := time.Now()
	require.NoError(t, srv.Close())
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Error(t, <-done)
}

func TestNetworkControlAPI(t *testing.T) {
	h := startFake(t, graphtest.Options{})
	ctl := httptest.NewServer(h.srv.ControlHandler())
	t.Cleanup(ctl.Close)
	ctlReq := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, ctl.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	st, body := ctlReq("GET", "/_fake/network", "")
	assert.Equal(t, http.StatusOK, st)
	assert.JSONEq(t, `{"mode":"up"}`, body)

	// Switched to refuse through the API port itself: the reply comes first.
	r := h.plain("PUT", "/_fake/network", `{"mode":"refuse"}`)
	assert.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"mode":"refuse"}`, string(r.body))
	_, err := getRoot(context.Background(), h, &http.Client{})
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "%v", err)

	// The control listener stays up.
	st, body = ctlReq("PUT", "/_fake/network", `{"mode":"sideways"}`)
	assert.Equal(t, http.StatusBadRequest, st)
	assert.Contains(t, body, "network mode must be")
	st, body = ctlReq("PUT", "/_fake/network", `{"mode":"blackhole"}`)
	assert.Equal(t, http.StatusOK, st)
	assert.JSONEq(t, `{"mode":"blackhole"}`, body)
	st, _ = ctlReq("GET", "/_fake/stats", "")
	assert.Equal(t, http.StatusOK, st)
	st, _ = ctlReq("GET", "/v1.0/me/drive", "")
	assert.Equal(t, http.StatusNotFound, st, "only the control API on the control listener")
	st, body = ctlReq("PUT", "/_fake/network", `{"mode":"up"}`)
	assert.Equal(t, http.StatusOK, st)
	assert.JSONEq(t, `{"mode":"up"}`, body)

	got, err := getRoot(context.Background(), h, &http.Client{})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, got)
}

func TestNetworkRefuseNeedsOwnListener(t *testing.T) {
	srv, err := graphtest.New(graphtest.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, srv.Close()) })
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	assert.ErrorIs(t, srv.SetNetwork(graphtest.NetworkRefuse), graphtest.ErrNotListening)
	assert.Equal(t, graphtest.NetworkUp, srv.Network())
	assert.Error(t, srv.SetNetwork("down"))

	// Blackholing works on any listener.
	require.NoError(t, srv.SetNetwork(graphtest.NetworkBlackhole))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/v1.0/me/drive", nil)
	_, err = http.DefaultClient.Do(req)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, srv.SetNetwork(graphtest.NetworkUp))
}
