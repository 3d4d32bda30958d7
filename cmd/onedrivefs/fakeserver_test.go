package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeProcess is a running `onedrivefs fake-server`.
type fakeProcess struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:PORT
	stdout []string
	done   chan error
}

// startFakeProcess runs the binary with args and waits for its Graph URL.
func startFakeProcess(t *testing.T, bin string, args ...string) *fakeProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"fake-server", "--addr", "127.0.0.1:0", "--log-level", "warn"}, args...)...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &mountLog{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	p := &fakeProcess{cmd: cmd, done: make(chan error, 1)}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	deadline := time.After(30 * time.Second)
	for ready := false; !ready; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the fake server exited early: %s", stderr.String())
			}
			p.stdout = append(p.stdout, line)
			if u, found := strings.CutPrefix(line, "Graph API: "); found {
				p.base = strings.TrimSuffix(u, "/v1.0")
			}
			ready = strings.HasPrefix(line, "Data: ") // the last line of the banner
		case <-deadline:
			t.Fatalf("no Graph URL printed; stderr: %s", stderr.String())
		}
	}
	go func() { // drain the rest
		for range lines {
		}
	}()
	return p
}

// line returns the first line of the banner that starts with prefix.
func (p *fakeProcess) line(prefix string) string {
	for _, l := range p.stdout {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// stop sends SIGINT and waits for a clean exit.
func (p *fakeProcess) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-p.done:
		require.NoError(t, err, "exit status after SIGINT")
	case <-time.After(30 * time.Second):
		t.Fatal("the fake server did not stop on SIGINT")
	}
}

// fakeClient talks to a fake server the way the README's curl lines do.
type fakeClient struct {
	t     *testing.T
	base  string
	token string
	hc    *http.Client
}

func (c *fakeClient) do(method, target string, body io.Reader, header http.Header) (*http.Response, []byte) {
	c.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = c.base + target
	}
	req, err := http.NewRequest(method, target, body)
	require.NoError(c.t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return resp, raw
}

func (c *fakeClient) graph(method, path string, body io.Reader, ctype string) (*http.Response, map[string]any) {
	c.t.Helper()
	h := http.Header{"Authorization": {"Bearer " + c.token}}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	if strings.HasPrefix(path, "/") {
		path = "/v1.0" + path
	}
	resp, raw := c.do(method, path, body, h)
	var m map[string]any
	if len(raw) > 0 {
		require.NoError(c.t, json.Unmarshal(raw, &m), "%s %s: %s", method, path, raw)
	}
	return resp, m
}

func (c *fakeClient) form(path string, v url.Values) map[string]any {
	c.t.Helper()
	resp, raw := c.do("POST", path, strings.NewReader(v.Encode()), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	require.Equal(c.t, http.StatusOK, resp.StatusCode, "%s", raw)
	var m map[string]any
	require.NoError(c.t, json.Unmarshal(raw, &m))
	return m
}

func childNames(t *testing.T, c *fakeClient, path string) []string {
	t.Helper()
	resp, page := c.graph("GET", path, nil, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var names []string
	for _, v := range page["value"].([]any) {
		names = append(names, v.(map[string]any)["name"].(string))
	}
	return names
}

func buildBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "onedrivefs")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

func TestFakeServerBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	data := t.TempDir()
	seed := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(seed, "Docs"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(seed, "Docs", "hello.txt"), []byte("hello from the seed"), 0o644))
	// A 5 GiB sparse file seeds in a moment.
	big, err := os.Create(filepath.Join(seed, "big.bin"))
	require.NoError(t, err)
	require.NoError(t, big.Truncate(5<<30))
	require.NoError(t, big.Close())

	p := startFakeProcess(t, bin, "--data", data, "--seed", seed, "--copy-latency", "300ms", "--copy-rate", "100GiB")
	assert.Equal(t, "Graph API: "+p.base+"/v1.0", p.line("Graph API: "))
	assert.True(t, strings.HasPrefix(p.line("OAuth: "), "OAuth: "+p.base+" "), p.stdout)
	assert.Equal(t, "Control: "+p.base+"/_fake/", p.line("Control: "))
	assert.Equal(t, "Data: "+data, p.line("Data: "))
	assert.True(t, strings.HasPrefix(p.line("Seeded from "), "Seeded from "+seed), p.stdout)

	c := &fakeClient{t: t, base: p.base, hc: &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	// Device-code sign-in: approved on the first poll.
	dc := c.form("/common/oauth2/v2.0/devicecode", url.Values{"client_id": {"test-client"}, "scope": {"Files.ReadWrite.All offline_access"}})
	tok := c.form("/common/oauth2/v2.0/token", url.Values{
		"client_id": {"test-client"}, "grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {dc["device_code"].(string)},
	})
	c.token = tok["access_token"].(string)
	require.NotEmpty(t, c.token)

	assert.ElementsMatch(t, []string{"Docs", "big.bin"}, childNames(t, c, "/me/drive/root/children"))
	resp, it := c.graph("GET", "/me/drive/root:/big.bin", nil, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.EqualValues(t, 5<<30, it["size"])

	// Upload, then copy server-side and poll the monitor until it completes.
	resp, it = c.graph("PUT", "/me/drive/root:/Docs/up.txt:/content", strings.NewReader("uploaded"), "text/plain")
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%v", it)
	resp, _ = c.graph("POST", "/me/drive/items/"+it["id"].(string)+"/copy", strings.NewReader(`{"name":"up-copy.txt"}`), "application/json")
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	monitor := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(monitor, p.base+"/monitor/"), monitor)
	var newItem string
	for deadline := time.Now().Add(30 * time.Second); newItem == "" && time.Now().Before(deadline); {
		mresp, raw := c.do("GET", monitor, nil, nil)
		switch mresp.StatusCode {
		case http.StatusSeeOther:
			newItem = mresp.Header.Get("Location")
		case http.StatusAccepted:
			assert.Contains(t, string(raw), `"operation":"ItemCopy"`)
			time.Sleep(50 * time.Millisecond)
		default:
			t.Fatalf("monitor: %d %s", mresp.StatusCode, raw)
		}
	}
	require.NotEmpty(t, newItem, "the copy completed")
	resp, it = c.graph("GET", newItem, nil, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "up-copy.txt", it["name"])

	// The control API answers without a token.
	sresp, raw := c.do("GET", "/_fake/stats", nil, nil)
	require.Equal(t, http.StatusOK, sresp.StatusCode)
	assert.Contains(t, string(raw), `"copyJobsCompleted":1`)

	p.stop(t)

	// Restarted on the same data (the seed is not imported again into a
	// drive that has content): everything is still there, and the token
	// is still valid.
	require.NoError(t, os.WriteFile(filepath.Join(seed, "late.txt"), []byte("late"), 0o644))
	p = startFakeProcess(t, bin, "--data", data, "--seed", seed)
	c.base = p.base
	assert.ElementsMatch(t, []string{"hello.txt", "up.txt", "up-copy.txt"}, childNames(t, c, "/me/drive/root:/Docs:/children"))
	assert.NotContains(t, childNames(t, c, "/me/drive/root/children"), "late.txt")
	resp, it = c.graph("GET", "/me/drive/root:/Docs/up-copy.txt:/content", nil, "")
	require.Equal(t, http.StatusFound, resp.StatusCode, "%v", it)
	_, body := c.do("GET", resp.Header.Get("Location"), nil, nil)
	assert.Equal(t, "uploaded", string(body))
	p.stop(t)
}

func TestFakeServerInProcess(t *testing.T) {
	data := t.TempDir()
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: outW, stderr: &stderr, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, e, []string{"fake-server", "--addr", "127.0.0.1:0", "--data", data, "--monitor-style", "200", "--throttle-every", "2"})
		outW.Close()
	}()
	sc := bufio.NewScanner(outR)
	require.True(t, sc.Scan(), "stderr: %s", stderr.String())
	graphURL := strings.TrimPrefix(sc.Text(), "Graph API: ")
	go func() { // drain
		for sc.Scan() {
		}
	}()

	base := strings.TrimSuffix(graphURL, "/v1.0")
	hc := &http.Client{}
	resp, err := hc.Get(base + "/_fake/copy")
	require.NoError(t, err)
	var knobs map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&knobs))
	resp.Body.Close()
	assert.Equal(t, "200", knobs["monitorStyle"])
	assert.Equal(t, "2s", knobs["latency"], "the command's realistic default")

	resp, err = hc.Get(base + "/_fake/faults")
	require.NoError(t, err)
	var faults map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&faults))
	resp.Body.Close()
	assert.EqualValues(t, 2, faults["throttleEvery"])

	cancel()
	require.Zero(t, <-done, "stderr: %s", stderr.String())
	_, err = os.Stat(filepath.Join(data, "state.json"))
	assert.NoError(t, err, "the drive was saved on the way out")
}

func TestFakeServerFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--monitor-style", "307"},
		{"--throttle-status", "500"},
		{"--copy-rate", "fast"},
		{"--drive-type", "team"},
		{"--log-level", "loud"},
		{"--network", "down"},
		{"--generate", "folders=3"},
		{"--generate", "folders=1,files=1", "--seed", "."},
		{"extra"},
	} {
		var stderr bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" }}
		code := run(context.Background(), e, append([]string{"fake-server", "--data", t.TempDir()}, args...))
		assert.Equal(t, 2, code, "%v", args)
		assert.Contains(t, stderr.String(), "Usage: onedrivefs fake-server [flags]", "%v", args)
	}
}

// The fake-server process switched off and on through its control
// listener, with a generated drive.
func TestFakeServerNetworkAndGenerate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	p := startFakeProcess(t, bin, "--control-addr", "127.0.0.1:0", "--generate", "folders=3,files=4", "--network", "blackhole")
	assert.True(t, strings.HasPrefix(p.line("Generated folders=3,files=4 (15 items) in "), "Generated"), p.stdout)
	assert.Equal(t, "Data: (in memory, not saved)", p.line("Data: "))
	ctl := strings.TrimSuffix(strings.TrimPrefix(p.line("Control: "), "Control: "), "/_fake/")
	require.NotEqual(t, p.base, ctl, "a control listener of its own")
	assert.True(t, strings.HasPrefix(p.line("Network: "), "Network: blackhole"), p.stdout)

	c := &fakeClient{t: t, base: p.base, hc: &http.Client{}}
	setNetwork := func(mode string) {
		t.Helper()
		resp, raw := c.do("PUT", ctl+"/_fake/network", strings.NewReader(`{"mode":"`+mode+`"}`), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
		assert.JSONEq(t, `{"mode":"`+mode+`"}`, string(raw))
	}
	// Blackholed at start: the API port accepts and answers nothing.
	short := &http.Client{Timeout: 300 * time.Millisecond}
	_, err := short.Get(p.base + "/_fake/stats")
	require.Error(t, err)
	var ue *url.Error
	require.ErrorAs(t, err, &ue)
	assert.True(t, ue.Timeout(), "%v", err)

	setNetwork("up")
	resp, raw := c.do("POST", "/_fake/tokens", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var tok map[string]any
	require.NoError(t, json.Unmarshal(raw, &tok))
	c.token = tok["access_token"].(string)
	assert.Equal(t, []string{"folder-00001", "folder-00002", "folder-00003"}, childNames(t, c, "/me/drive/root/children"))
	assert.Len(t, childNames(t, c, "/me/drive/root:/folder-00002:/children"), 4)

	setNetwork("refuse")
	_, err = short.Get(p.base + "/_fake/stats")
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "%v", err)

	setNetwork("up")
	assert.Len(t, childNames(t, c, "/me/drive/root:/folder-00003:/children"), 4, "the same port serves again")
	p.stop(t)
}
