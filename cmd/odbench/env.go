package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// bench is the environment every scenario runs in: the fake drive served by
// this process on a loopback port, a sign-in for it, and at most one
// `onedrivefs mount` child process serving the mount. This process never
// serves the mount, so it may call into it (read, write, exec cp and ls).
type bench struct {
	cfg    config
	log    *slog.Logger
	fake   *graphtest.Server
	http   *http.Server
	base   string // http://127.0.0.1:PORT
	token  string
	client *http.Client // direct (reference) requests; follows no redirect

	work     string // the run's scratch directory
	mnt      string // mount point
	cfgDir   string
	cacheDir string

	mount *mountProc // nil when not mounted
	// warmRead is the median warm read (MB/s) of the read scenario, for the
	// target that compares it with the local FUSE limit.
	warmRead float64
	warmCPU  float64 // its mount CPU seconds per GiB
	// peakRSS is the largest VmHWM (bytes) of the mount processes since the
	// last takePeakRSS.
	peakRSS int64
}

func newBench(cfg config, log *slog.Logger) (*bench, error) {
	b := &bench{cfg: cfg, log: log, work: cfg.work}
	b.mnt = filepath.Join(b.work, "mnt")
	b.cfgDir = filepath.Join(b.work, "config")
	b.cacheDir = filepath.Join(b.work, "cache")
	for _, d := range []string{b.mnt, b.cfgDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	fake, err := graphtest.New(graphtest.Options{
		DataDir: filepath.Join(b.work, "drive"),
		Copy:    graphtest.CopyOptions{Latency: cfg.copyLatency, Rate: cfg.copyRate},
		Auth:    graphtest.AuthOptions{TokenLifetime: 6 * time.Hour},
	})
	if err != nil {
		return nil, err
	}
	b.fake = fake
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = fake.Close()
		return nil, err
	}
	b.base = "http://" + ln.Addr().String()
	b.http = &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = b.http.Serve(ln) }()

	// The same transport settings for the reference requests as a sane
	// client would use; no redirect is followed (pre-authenticated URLs are
	// fetched without the token).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	b.client = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	b.token = fake.IssueToken()
	p := remote.Profile{GraphURL: b.base + "/v1.0", AuthURL: b.base}.WithDefaults()
	if err := remote.SaveProfile(b.cfgDir, p, nil); err != nil {
		b.close()
		return nil, err
	}
	tok := &oauth2.Token{AccessToken: b.token, TokenType: "Bearer", Expiry: time.Now().Add(6 * time.Hour)}
	if err := remote.NewTokenStore(b.cfgDir, nil).Save(tok); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// close unmounts, stops the fake and leaves no process behind.
func (b *bench) close() {
	if b.mount != nil {
		if err := b.unmount(); err != nil {
			b.log.Warn("unmounting", "err", err)
		}
	}
	forceUnmount(b.mnt)
	if b.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = b.http.Shutdown(ctx)
		cancel()
		_ = b.http.Close()
	}
	if b.fake != nil {
		_ = b.fake.Close()
	}
}

// mountProc is a running `onedrivefs mount` child.
type mountProc struct {
	cmd     *exec.Cmd
	logPath string
	waited  chan struct{}
}

// remount starts a new mount process; fresh also wipes the cache directory
// first (a cold content cache, no listings, no journal).
func (b *bench) remount(ctx context.Context, fresh bool) error {
	if b.mount != nil {
		if err := b.unmount(); err != nil {
			return err
		}
	}
	if fresh {
		if err := os.RemoveAll(b.cacheDir); err != nil {
			return err
		}
	}
	logPath := filepath.Join(b.work, fmt.Sprintf("mount-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"mount", "--config-dir", b.cfgDir, "--cache-dir", b.cacheDir,
		"--log-level", b.cfg.mountLogLevel, "--cache-size", "20G"}
	args = append(args, b.cfg.mountFlags...)
	args = append(args, b.mnt)
	cmd := exec.Command(b.cfg.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), b.cfg.mountEnv...)
	if err := cmd.Start(); err != nil {
		return err
	}
	m := &mountProc{cmd: cmd, logPath: logPath, waited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(m.waited)
	}()
	b.mount = m
	deadline := time.Now().Add(30 * time.Second)
	for !isMounted(b.mnt) {
		select {
		case <-m.waited:
			b.mount = nil
			return fmt.Errorf("onedrivefs mount exited: %s", tail(logPath))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the mount did not appear in 30 s: %s", tail(logPath))
		}
	}
	return nil
}

// unmount records the mount process's peak RSS, then stops it with SIGTERM
// (it sends unsent changes and unmounts) and makes sure no mount is left.
func (b *bench) unmount() error {
	m := b.mount
	if m == nil {
		return nil
	}
	b.notePeakRSS()
	b.mount = nil
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-m.waited:
	case <-time.After(2 * time.Minute):
		_ = m.cmd.Process.Kill()
		<-m.waited
		err = fmt.Errorf("onedrivefs mount did not stop within 2 min of SIGTERM: %s", tail(m.logPath))
	}
	forceUnmount(b.mnt)
	return err
}

// settle writes dirty pages out before a measurement (syscall.Sync), so
// that the writeback of earlier work (staged files, cache, the fake's
// blobs) does not slow the next figure down.
func settle() { syscall.Sync() }

// dropCaches empties the page cache (as root; otherwise it does nothing), so
// that each scenario starts without the previous one's files in memory.
func dropCaches() {
	syscall.Sync()
	_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0)
}

// pid of the mount process (0 when not mounted).
func (b *bench) pid() int {
	if b.mount == nil {
		return 0
	}
	return b.mount.cmd.Process.Pid
}

// notePeakRSS folds the mount process's VmHWM into peakRSS.
func (b *bench) notePeakRSS() {
	if b.mount == nil {
		return
	}
	if v := procStatusBytes(b.pid(), "VmHWM"); v > b.peakRSS {
		b.peakRSS = v
	}
}

// takePeakRSS returns the peak RSS since the last call, including the
// current mount's, and starts a new period.
func (b *bench) takePeakRSS() int64 {
	b.notePeakRSS()
	v := b.peakRSS
	b.peakRSS = 0
	if b.mount != nil {
		// Reset the kernel's high-water mark of the running process, so
		// that the next period starts from its current RSS.
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", b.pid()), []byte("5"), 0)
	}
	return v
}

// procStatusBytes reads a "kB" field of /proc/PID/status.
func procStatusBytes(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == field {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

// cpuSeconds is the user+system CPU time of process pid (0: this process).
func cpuSeconds(pid int) float64 {
	if pid == 0 {
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
			return 0
		}
		return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces): state is the
	// 3rd field of the line, utime the 14th, stime the 15th.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuMeter measures the CPU time the mount process and this process (the
// fake and the reader or writer) spend on one figure.
type cpuMeter struct {
	b           *bench
	mount, self float64
}

func (b *bench) startCPU() cpuMeter {
	return cpuMeter{b: b, mount: cpuSeconds(b.pid()), self: cpuSeconds(0)}
}

// stop returns the CPU seconds of the mount and of this process since start.
func (m cpuMeter) stop() (mount, self float64) {
	if m.b.pid() != 0 {
		mount = cpuSeconds(m.b.pid()) - m.mount
	}
	return mount, cpuSeconds(0) - m.self
}

// tail is the end of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// isMounted reports whether dir is a mount point (from /proc/self/mountinfo).
func isMounted(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.ReplaceAll(fields[4], `\040`, " ") == dir {
			return true
		}
	}
	return false
}

// forceUnmount leaves no mount behind: fusermount3 -u, then umount -l.
func forceUnmount(dir string) {
	for i := 0; i < 3 && isMounted(dir); i++ {
		if exec.Command("fusermount3", "-u", dir).Run() == nil {
			continue
		}
		_ = exec.Command("umount", "-l", dir).Run()
	}
}

// path is the path of a drive path (slash-separated) inside the mount.
func (b *bench) path(drivePath string) string {
	return filepath.Join(b.mnt, filepath.FromSlash(drivePath))
}

// --- seeding ---

// randomReader returns n pseudo-random (incompressible) bytes, the same for
// the same seed.
func randomReader(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8(seedBytes(seed)), n)
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	for i := range 4 {
		for j := range 8 {
			s[i*8+j] = byte(seed >> (8 * j))
		}
		seed = seed*6364136223846793005 + 1442695040888963407
	}
	return s
}

// putRandom stores a random file of size bytes at drivePath on the fake,
// unless one of that size is there already.
func (b *bench) putRandom(drivePath string, size int64, seed uint64) error {
	if it, ok := b.fake.ItemByPath(drivePath); ok && it.Size == size {
		return nil
	}
	_, err := b.fake.PutReader(drivePath, randomReader(seed, size), time.Time{})
	return err
}

// --- direct (reference) requests to the fake ---

func (b *bench) graphURL(drivePath, suffix string) string {
	segs := strings.Split(strings.Trim(drivePath, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return b.base + "/v1.0/me/drive/root:/" + strings.Join(segs, "/") + ":" + suffix
}

func (b *bench) api(ctx context.Context, method, u string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		js, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return b.client.Do(req)
}

// download fetches the whole content of drivePath as a client would: GET
// …/content (302), then the pre-authenticated URL without the token. It
// returns the bytes read.
func (b *bench) download(ctx context.Context, drivePath string) (int64, error) {
	resp, err := b.api(ctx, http.MethodGet, b.graphURL(drivePath, "/content"), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || loc == "" {
		return 0, fmt.Errorf("GET content of %s: %s", drivePath, resp.Status)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return 0, err
	}
	resp, err = b.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("download of %s: %s", drivePath, resp.Status)
	}
	buf := make([]byte, 1<<20)
	return io.CopyBuffer(discard{}, resp.Body, buf)
}

// discard is io.Discard without ReadFrom, so that CopyBuffer uses our buffer.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// uploadSession uploads size bytes of src at drivePath as a client would:
// createUploadSession, then fragments of fragment bytes PUT in order to the
// session URL without the token.
func (b *bench) uploadSession(ctx context.Context, drivePath string, src io.ReaderAt, size, fragment int64) error {
	resp, err := b.api(ctx, http.MethodPost, b.graphURL(drivePath, "/createUploadSession"),
		map[string]any{"item": map[string]any{"@microsoft.graph.conflictBehavior": "replace"}})
	if err != nil {
		return err
	}
	var sess struct {
		UploadURL string `json:"uploadUrl"`
	}
	err = json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || sess.UploadURL == "" {
		return fmt.Errorf("createUploadSession %s: %s %v", drivePath, resp.Status, err)
	}
	for off := int64(0); off < size; off += fragment {
		n := min(fragment, size-off)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, sess.UploadURL, io.NewSectionReader(src, off, n))
		if err != nil {
			return err
		}
		req.ContentLength = n
		req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size))
		resp, err := b.client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("upload fragment at %d of %s: %s", off, drivePath, resp.Status)
		}
	}
	return nil
}

// deleteItem deletes drivePath on the fake (through the API, behind the
// mount's back: only for files the mount is done with).
func (b *bench) deleteItem(ctx context.Context, drivePath string) error {
	resp, err := b.api(ctx, http.MethodDelete, b.graphURL(drivePath, ""), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("DELETE %s: %s", drivePath, resp.Status)
	}
	// Saving removes the blobs nobody references any more: the disk (and
	// the page cache) do not fill up with the copies of earlier runs.
	return b.fake.Save()
}

// repeatReaderAt is an endless file made of one block repeated, for writes
// and uploads of any size without holding them in memory.
type repeatReaderAt struct{ block []byte }

func (r repeatReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		i := (off + int64(n)) % int64(len(r.block))
		n += copy(p[n:], r.block[i:])
	}
	return n, nil
}

// run executes a program (cp, ls, find…) and returns its wall time. Its
// output is discarded; on failure the error carries the output's end.
func run(ctx context.Context, dir string, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var errOut bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &errOut
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		msg := errOut.String()
		if len(msg) > 500 {
			msg = msg[:500]
		}
		return d, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return d, nil
}

var errSkipped = errors.New("skipped")
