// Command odbench runs the onedrivefs benchmark scenarios (issue 6) and
// writes BENCHMARKS.md: it serves the fake OneDrive itself (on a loopback
// port), mounts it with a child `onedrivefs mount` process, drives the mount
// from this process (a process must not serve a FUSE mount and call into it),
// and measures every figure side by side with its reference, several times.
//
// It never fails on a number: figures are read from the table. It exits
// non-zero only when a scenario could not run to its end.
//
//	go run ./cmd/odbench -bin bin/onedrivefs            # the full run (writes BENCHMARKS.md)
//	go run ./cmd/odbench -bin bin/onedrivefs -quick     # a smoke run (prints only)
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

type config struct {
	bin           string
	work          string
	runs          int
	copyLatency   time.Duration
	copyRate      int64
	copySizes     []int64
	readSize      int64
	writeSize     int64
	appendSize    int64 // the file appended to in the append scenario
	randomReads   int   // 4 KiB reads of the random scenario
	metaFolders   int
	metaFiles     int
	jobs          int
	jobTimeout    time.Duration
	mountLogLevel string
	mountFlags    []string // extra flags of `onedrivefs mount`
	mountEnv      []string // extra environment of the mount process
	coreutils     string   // cp --version, first line's version
	quick         bool     // a smoke run: small sizes
}

// defaultAnalysis is the hand-written analysis appended to the report, as
// seen from the repository's root (where make runs).
const defaultAnalysis = "cmd/odbench/analysis.md"

var scenarioNames = []string{"copy", "read", "random", "readahead", "loopback", "write", "append", "edit", "meta", "jobs", "tree", "scale"}

func main() {
	if len(os.Args) == 5 && os.Args[1] == loopbackArg {
		if err := serveLoopback(os.Args[2], os.Args[3], os.Args[4]); err != nil {
			fmt.Fprintf(os.Stderr, "odbench %s: %v\n", loopbackArg, err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := runBench(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "odbench: %v\n", err)
		os.Exit(1)
	}
}

// runBench runs the benchmarks with the given flags and prints the report to
// stdout.
func runBench(ctx context.Context, args []string, stdout io.Writer) error {
	fset := flag.NewFlagSet("odbench", flag.ContinueOnError)
	bin := fset.String("bin", "bin/onedrivefs", "the onedrivefs `binary` to mount with")
	quick := fset.Bool("quick", false, "a smoke run: small sizes, 2 runs, prints the tables without writing -out unless it is given")
	runs := fset.Int("runs", 5, "runs of every figure (median and spread are reported)")
	out := fset.String("out", "BENCHMARKS.md", "write the report to `FILE` (\"\": print only)")
	only := fset.String("only", strings.Join(scenarioNames, ","), "comma-separated scenarios to run: "+strings.Join(scenarioNames, ", "))
	work := fset.String("work", "", "scratch `DIR` (default a new temporary directory, removed at the end)")
	keep := fset.Bool("keep", false, "keep the scratch directory")
	latency := fset.Duration("copy-latency", 500*time.Millisecond, "latency of every copy job on the fake")
	rate := fset.Int64("copy-rate", 1_000_000_000, "bytes per second a copy job copies on the fake")
	analysis := fset.String("analysis", defaultAnalysis, "append this hand-written markdown `FILE` (what limits the missed targets) to the report, if it exists")
	verbose := fset.Bool("v", false, "log progress (and the mount's warnings go to its log file under the scratch dir)")
	mountFlags := fset.String("mount-flags", "", "extra `FLAGS` for 'onedrivefs mount', space-separated")
	mountEnv := fset.String("mount-env", "", "extra environment for the mount process, space-separated NAME=VALUE (e.g. for profiling)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	cfg := config{
		runs: *runs, copyLatency: *latency, copyRate: *rate,
		copySizes: []int64{256 << 20, 1 << 30}, readSize: 1 << 30, writeSize: 1 << 30,
		appendSize: 512 << 20, randomReads: 2000,
		metaFolders: 100, metaFiles: 10_000, jobs: 200, jobTimeout: 3 * time.Minute,
		mountLogLevel: "warn",
		mountFlags:    strings.Fields(*mountFlags),
		mountEnv:      strings.Fields(*mountEnv),
	}
	cfg.quick = *quick
	if *quick {
		cfg.copySizes = []int64{16 << 20, 64 << 20}
		cfg.readSize, cfg.writeSize, cfg.appendSize, cfg.randomReads = 64<<20, 64<<20, 32<<20, 200
		cfg.metaFolders, cfg.metaFiles, cfg.jobs = 10, 1000, 20
		if !isSet(fset, "runs") {
			cfg.runs = 2
		}
		if !isSet(fset, "out") {
			*out = ""
		}
	}
	if cfg.runs < 1 {
		return errors.New("-runs must be at least 1")
	}
	var err error
	if cfg.bin, err = filepath.Abs(*bin); err != nil {
		return err
	}
	if _, err := os.Stat(cfg.bin); err != nil {
		return fmt.Errorf("the onedrivefs binary: %w (run 'make build' first)", err)
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(scenarioNames, s) {
			return fmt.Errorf("-only: unknown scenario %q (use %s)", s, strings.Join(scenarioNames, ", "))
		}
		want[s] = true
	}
	cfg.coreutils = coreutilsVersion()

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	cfg.work = *work
	if cfg.work == "" {
		if cfg.work, err = os.MkdirTemp("", "odbench-"); err != nil {
			return err
		}
		if !*keep {
			defer os.RemoveAll(cfg.work)
		}
	} else if cfg.work, err = filepath.Abs(cfg.work); err != nil {
		return err
	}

	b, err := newBench(cfg, log)
	if err != nil {
		return err
	}
	defer b.close()

	started := time.Now()
	rep := &report{}
	rss := map[string]int64{}
	scenarios := []struct {
		name, title string
		fn          func(context.Context, *report) error
	}{
		{"copy", "1 (copy)", b.benchCopy},
		{"read", "2 (read)", b.benchRead},
		{"random", "3 (random reads)", b.benchRandom},
		{"readahead", "4 (read-ahead)", b.benchReadAhead},
		{"loopback", "5 (FUSE limit)", b.benchLoopback},
		{"write", "6 (write)", b.benchWrite},
		{"append", "7 (append)", b.benchAppend},
		{"edit", "7b (edit)", b.benchEdit},
		{"meta", "8 (metadata)", b.benchMeta},
		{"jobs", "9 (many jobs)", b.benchJobs},
		{"tree", "10 (cp -r)", b.benchTree},
		{"scale", "11 (1,000 jobs)", b.benchScale},
	}
	var failed []error
	var ran []string
	for _, s := range scenarios {
		if !want[s.name] {
			continue
		}
		fmt.Fprintf(os.Stderr, "odbench: %s…\n", s.title)
		t0 := time.Now()
		b.takePeakRSS()
		dropCaches()
		err := s.fn(ctx, rep)
		if b.mount != nil {
			_ = b.unmount()
		}
		rss[s.title] = b.takePeakRSS()
		fmt.Fprintf(os.Stderr, "odbench: %s done in %s\n", s.title, time.Since(t0).Round(time.Second))
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted during %s", s.title)
		}
		switch {
		case errors.Is(err, errSkipped):
			rep.note("Scenario %s was skipped: %s.", s.title, strings.TrimPrefix(err.Error(), errSkipped.Error()+": "))
		case err != nil:
			failed = append(failed, fmt.Errorf("%s: %w", s.title, err))
			rep.note("Scenario %s failed: %v.", s.title, err)
		}
		ran = append(ran, s.title)
	}
	if len(ran) > 0 {
		t := rep.table("12. Peak RSS of the mount process",
			"VmHWM of the `onedrivefs mount` processes serving each scenario (reset between scenarios).",
			"scenario", "peak RSS MiB")
		worst := int64(0)
		for _, name := range ran {
			t.add(name, mib(float64(rss[name])))
			worst = max(worst, rss[name])
		}
		rep.target("daemon RSS < 150 MiB throughout", fmt.Sprintf("%s MiB at most", mib(float64(worst))), yesNo(worst < 150<<20))
	}

	var md bytes.Buffer
	writeMarkdown(&md, cfg, rep, started, time.Since(started), *quick)
	if *analysis != "" {
		switch text, err := os.ReadFile(*analysis); {
		case err == nil:
			md.WriteString("## Analysis\n\n")
			md.Write(text)
		case !errors.Is(err, os.ErrNotExist) || *analysis != defaultAnalysis:
			return fmt.Errorf("-analysis: %w", err)
		}
	}
	_, _ = stdout.Write(md.Bytes())
	if *out != "" {
		if err := os.WriteFile(*out, md.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "odbench: wrote %s\n", *out)
	}
	return errors.Join(failed...)
}

// isSet reports whether the flag called name was given on the command line.
func isSet(fset *flag.FlagSet, name string) bool {
	set := false
	fset.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// writeMarkdown renders the report.
func writeMarkdown(w io.Writer, cfg config, rep *report, started time.Time, took time.Duration, quick bool) {
	fmt.Fprintln(w, "# onedrivefs benchmarks")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Generated by `make bench` (`cmd/odbench`); do not edit by hand. Figures are read, never asserted:")
	fmt.Fprintln(w, "a missed target is reported here, it does not fail the build. Every figure is the median of")
	fmt.Fprintf(w, "%d runs with the spread (min–max) in parentheses; each is measured side by side with its reference in\n", cfg.runs)
	fmt.Fprintln(w, "the same run. The fake OneDrive runs in the benchmark process on a loopback port; the mount is a")
	fmt.Fprintln(w, "child `onedrivefs mount` process; programs and reads run from the benchmark process.")
	fmt.Fprintln(w)
	if quick {
		fmt.Fprintln(w, "**Quick mode** (`-quick`): small sizes, for smoke runs only; the targets are stated for the full sizes.")
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "## Run")
	fmt.Fprintln(w)
	for _, kv := range machineInfo(cfg) {
		fmt.Fprintf(w, "- %s: %s\n", kv[0], kv[1])
	}
	fmt.Fprintf(w, "- date: %s (took %s)\n", started.UTC().Format("2006-01-02 15:04 MST"), took.Round(time.Second))
	fmt.Fprintf(w, "- command: `%s`\n", shellJoin(append([]string{"odbench"}, os.Args[1:]...)))
	fmt.Fprintf(w, "- fake copy timing: latency %s, rate %s/s (every copy job takes latency + size / rate)\n",
		cfg.copyLatency, humanRate(cfg.copyRate))
	mf := append([]string{"--log-level", cfg.mountLogLevel, "--cache-size", "20G"}, cfg.mountFlags...)
	fmt.Fprintf(w, "- mount: `onedrivefs mount %s` (other flags at their defaults)\n", strings.Join(mf, " "))
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Targets")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | measured | met |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, t := range rep.targets {
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.name, t.measured, t.met)
	}
	fmt.Fprintln(w)
	if len(rep.notes) > 0 {
		for _, n := range rep.notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "## Figures")
	fmt.Fprintln(w)
	for _, t := range rep.tables {
		t.write(w)
	}
}

// shellJoin quotes the arguments that need it for a shell.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

func humanRate(r int64) string {
	switch {
	case r <= 0:
		return "unlimited"
	case r >= 1e9:
		return fmt.Sprintf("%g GB", float64(r)/1e9)
	default:
		return fmt.Sprintf("%g MB", float64(r)/1e6)
	}
}

// machineInfo describes where the figures were measured.
func machineInfo(cfg config) [][2]string {
	var u syscall.Utsname
	kernel := "?"
	if syscall.Uname(&u) == nil {
		kernel = utsString(u.Release[:])
	}
	mem := "?"
	if v := memTotal(); v > 0 {
		mem = fmt.Sprintf("%.1f GiB", float64(v)/(1<<30))
	}
	version := "?"
	if out, err := exec.Command(cfg.bin, "version").Output(); err == nil {
		version = strings.TrimSpace(string(out))
	}
	return [][2]string{
		{"machine", fmt.Sprintf("%s, %d CPUs (nproc), %s memory", cpuModel(), runtime.NumCPU(), mem)},
		{"kernel", "Linux " + kernel},
		{"go", runtime.Version()},
		{"onedrivefs", version},
		{"coreutils", cfg.coreutils},
	}
}

func utsString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int64
		if n, _ := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); n == 1 {
			return kb << 10
		}
	}
	return 0
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func coreutilsVersion() string {
	out, err := exec.Command("cp", "--version").Output()
	if err != nil {
		return "?"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	if i := strings.LastIndexByte(first, ' '); i >= 0 {
		return first[i+1:]
	}
	return first
}
