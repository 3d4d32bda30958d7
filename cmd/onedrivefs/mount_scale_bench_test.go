package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// BenchmarkScaleMount measures the persisted tree at scale, through a real
// mount of a generated drive: the first walk of the whole tree (find, which
// lists every folder from the service and writes the store), a remount to
// the first ls of the root, and a second walk served from the store; the
// requests each made, the daemon's resident memory (VmRSS now, VmHWM its
// peak: bbolt's file-backed mmap counts only for the pages touched) and the
// store's size. Figures are reported, never asserted. The default drive is
// small; the million items:
//
//	ONEDRIVEFS_BENCH_GENERATE=folders=10000,files=100 go test -run '^$' -bench ScaleMount -benchtime 1x -timeout 60m ./cmd/onedrivefs/
func BenchmarkScaleMount(b *testing.B) {
	v := os.Getenv("ONEDRIVEFS_BENCH_GENERATE")
	if v == "" {
		v = "folders=100,files=100"
	}
	spec, err := graphtest.ParseGenerateSpec(v)
	if err != nil {
		b.Fatalf("ONEDRIVEFS_BENCH_GENERATE: %v", err)
	}
	env := newMountEnv(b, graphtest.Options{})
	start := time.Now()
	if err := env.srv.Generate(spec); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %s (%d items) in %s", spec, spec.Items(), time.Since(start).Round(time.Millisecond))

	for b.Loop() {
		env.mount("--poll-interval", "30s", "--log-level", "info")
		env.srv.ResetStats()
		start := time.Now()
		n := countLines(benchSh(b, env, "find . | wc -l"))
		walk := time.Since(start)
		st := env.srv.Stats()
		mem := daemonMemory(b, env.cmd.Process.Pid)
		b.Logf("first walk (find | wc -l): %d entries in %s; %d requests (%d children listings); %s",
			n, walk.Round(time.Millisecond), st.RequestsTotal, st.Requests["children.list"], mem)
		b.ReportMetric(walk.Seconds(), "first-walk-s")
		b.ReportMetric(float64(st.RequestsTotal), "first-walk-requests")
		b.ReportMetric(float64(mem.hwm)/(1<<20), "first-walk-peak-RSS-MiB")
		env.unmount()
		size := fileSize(b, filepath.Join(env.cache, "tree.db"))
		b.Logf("store: %s on disk", mib(size))
		b.ReportMetric(float64(size)/(1<<20), "store-MiB")

		env.srv.ResetStats()
		start = time.Now()
		env.mount("--poll-interval", "30s", "--log-level", "info")
		mounted := time.Since(start)
		names := countLines(benchSh(b, env, "ls"))
		firstLs := time.Since(start)
		st = env.srv.Stats()
		mem = daemonMemory(b, env.cmd.Process.Pid)
		b.Logf("remount: mounted after %s, first ls of the root (%d names) after %s; %d children listings, %d requests in all (%v); %s",
			mounted.Round(time.Millisecond), names, firstLs.Round(time.Millisecond), st.Requests["children.list"], st.RequestsTotal, st.Requests, mem)
		b.ReportMetric(float64(mem.hwm)/(1<<20), "remount-ls-peak-RSS-MiB")
		b.ReportMetric(firstLs.Seconds(), "remount-first-ls-s")
		b.ReportMetric(float64(st.Requests["children.list"]), "remount-children-requests")

		env.srv.ResetStats()
		start = time.Now()
		n = countLines(benchSh(b, env, "find . | wc -l"))
		walk = time.Since(start)
		st = env.srv.Stats()
		mem = daemonMemory(b, env.cmd.Process.Pid)
		b.Logf("walk from the store: %d entries in %s; %d children listings, %d requests in all; %s",
			n, walk.Round(time.Millisecond), st.Requests["children.list"], st.RequestsTotal, mem)
		b.ReportMetric(walk.Seconds(), "store-walk-s")
		b.ReportMetric(float64(st.Requests["children.list"]), "store-walk-children-requests")
		b.ReportMetric(float64(mem.hwm)/(1<<20), "store-walk-peak-RSS-MiB")
		env.unmount()

		// The first sync by delta (--sync-tree), on a new cache dir.
		env.cache = b.TempDir()
		env.srv.ResetStats()
		start = time.Now()
		env.mount("--poll-interval", "30s", "--log-level", "info", "--sync-tree")
		eventually(b, 30*time.Minute, func() bool { return strings.Contains(env.stderr.String(), "the whole tree is stored") },
			"the full sync ends")
		sync := time.Since(start)
		st = env.srv.Stats()
		mem = daemonMemory(b, env.cmd.Process.Pid)
		b.Logf("first sync by delta (--sync-tree): %s; %d requests (%d delta pages, %d children listings); %s",
			sync.Round(time.Millisecond), st.RequestsTotal, st.Requests["delta"], st.Requests["children.list"], mem)
		b.ReportMetric(sync.Seconds(), "delta-sync-s")
		b.ReportMetric(float64(st.RequestsTotal), "delta-sync-requests")
		b.ReportMetric(float64(mem.hwm)/(1<<20), "delta-sync-peak-RSS-MiB")
		env.srv.ResetStats()
		start = time.Now()
		n = countLines(benchSh(b, env, "find . | wc -l"))
		walk = time.Since(start)
		st = env.srv.Stats()
		mem = daemonMemory(b, env.cmd.Process.Pid)
		b.Logf("walk after the delta sync: %d entries in %s; %d children listings; %s",
			n, walk.Round(time.Millisecond), st.Requests["children.list"], mem)
		b.ReportMetric(float64(mem.hwm)/(1<<20), "delta-walk-peak-RSS-MiB")
		env.unmount()
		b.Logf("store after the delta sync: %s on disk", mib(fileSize(b, filepath.Join(env.cache, "tree.db"))))
	}
}

// benchSh runs a shell command in the mount, with no time bound (a walk
// of a million items takes minutes).
func benchSh(b *testing.B, env *mountEnv, script string) string {
	b.Helper()
	cmd := exec.Command("bash", "-ec", script)
	cmd.Dir = env.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

func countLines(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return len(lines(s))
	}
	return n
}

// daemonMem is a daemon's resident memory, in bytes: VmRSS now, of it
// anonymous (the Go heap, go-fuse's buffers) and file-backed (the store's
// mapped pages), and VmHWM, the peak since it started.
type daemonMem struct{ rss, anon, file, hwm int64 }

func (m daemonMem) String() string {
	return fmt.Sprintf("daemon RSS %s (%s anonymous, %s file-backed), peak %s", mib(m.rss), mib(m.anon), mib(m.file), mib(m.hwm))
}

// daemonMemory reads the resident memory of process pid.
func daemonMemory(b *testing.B, pid int) daemonMem {
	b.Helper()
	var m daemonMem
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Logf("reading the daemon's memory: %v", err)
		return m
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.rss = kb << 10
		case "VmHWM:":
			m.hwm = kb << 10
		case "RssAnon:":
			m.anon = kb << 10
		case "RssFile:":
			m.file = kb << 10
		}
	}
	return m
}

func fileSize(b *testing.B, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		b.Logf("%v", err)
		return 0
	}
	return fi.Size()
}

func mib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB" }
