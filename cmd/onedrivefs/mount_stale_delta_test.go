package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// deltaHolder is a reverse proxy between the mount and the fake that can
// hold back one delta page: the first page, once armed, that mentions a
// given item. The fake has served it (it states the item as it was then);
// the mount receives it hold later. The delta pages after it are slow too
// (each waits until quiet after the held one is let through), so that what
// the held page did stays visible for a while.
type deltaHolder struct {
	srv         *httptest.Server
	hold, quiet time.Duration

	mu        sync.Mutex
	armed     string        // item id to wait for; "" → pass everything
	held      chan struct{} // closed when a page is being held
	slowUntil time.Time     // delta pages wait until then
}

func newDeltaHolder(t *testing.T, fake *graphtest.Server, hold time.Duration) *deltaHolder {
	target, err := url.Parse(fake.URL)
	require.NoError(t, err)
	h := &deltaHolder{hold: hold, quiet: 3 * time.Second}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded() // the fake builds its links to the proxy
		},
		ModifyResponse: h.modify,
	}
	h.srv = httptest.NewServer(proxy)
	t.Cleanup(h.srv.Close)
	return h
}

// arm makes the proxy hold the next delta page that mentions id; the
// returned channel is closed when it does.
func (h *deltaHolder) arm(id string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed, h.held = id, make(chan struct{})
	return h.held
}

func (h *deltaHolder) modify(resp *http.Response) error {
	if !strings.Contains(resp.Request.URL.Path, "/delta") {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	h.mu.Lock()
	hit := h.armed != "" && bytes.Contains(body, []byte(h.armed))
	var held chan struct{}
	wait := time.Until(h.slowUntil)
	if hit {
		held, h.armed = h.held, ""
		wait = h.hold
		h.slowUntil = time.Now().Add(h.hold + h.quiet)
	}
	h.mu.Unlock()
	if hit {
		close(held)
	}
	if wait > 0 {
		time.Sleep(wait)
	}
	return nil
}

// A delta page fetched before an upload but applied after it never rolls
// the file back: stat keeps the uploaded size, and the next upload replaces
// the file on the service (no 412, no conflict copy).
func TestMountStaleDeltaDoesNotRollBack(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	id, err := env.srv.PutFile("/stale/f.txt", []byte("v0\n"), time.Time{})
	require.NoError(t, err)
	proxy := newDeltaHolder(t, env.srv, 1500*time.Millisecond)
	p := remote.Profile{GraphURL: proxy.srv.URL + "/v1.0", AuthURL: env.srv.AuthURL()}.WithDefaults()
	require.NoError(t, remote.SaveProfile(env.cfg, p, nil))
	env.mount("--poll-interval", "200ms")
	env.sh("ls stale")

	send := func(content string) {
		t.Helper()
		require.NoError(t, os.WriteFile(env.path("stale/f.txt"), []byte(content), 0o644))
		env.waitRemoteContent("/stale/f.txt", []byte(content), 5*time.Second, "sent at close")
	}

	// The page that reports version 1 is held back while version 2 is
	// sent; it reaches the mount afterwards.
	held := proxy.arm(id)
	send("version 1\n")
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("no delta page mentioned the file after its upload")
	}
	v2 := "version 2, longer than the first\n"
	send(v2)
	time.Sleep(proxy.hold + 500*time.Millisecond) // the stale page is applied

	assert.Equal(t, int64(len(v2)), statOf(t, env.path("stale/f.txt")).Size, "stat after the stale page")

	v3 := "version 3\n"
	require.NoError(t, os.WriteFile(env.path("stale/f.txt"), []byte(v3), 0o644))
	var got []byte
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if got, err = env.srv.ReadFile("/stale/f.txt"); err == nil && string(got) == v3 {
			break
		}
	}
	assert.Equal(t, v3, string(got), "the newest version on the fake")
	assert.Equal(t, []string{"f.txt"}, env.remoteNames("/stale"), "no conflict copy")
	assert.Equal(t, v3, env.sh("cat stale/f.txt"), "read back through the mount")
}
