package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

const fakeServerDescription = `Run the fake OneDrive: the Microsoft Graph drive API under /v1.0, the
Microsoft identity platform's OAuth endpoints under /{tenant}/oauth2/v2.0
(any tenant; device codes are approved on their first poll unless
--manual-approval), and a JSON control API under /_fake/ (counters, fault
injection, copy knobs; it needs no authentication, so keep --addr on
loopback). The drive persists under --data across restarts. Stop with
Ctrl-C: the state is saved.`

// runFakeServer serves a graphtest fake until ctx is cancelled.
func runFakeServer(ctx context.Context, e *env, args []string) error {
	fset := newFlagSet(e, "fake-server", "", fakeServerDescription)
	addr := fset.String("addr", "127.0.0.1:8080", "listen on `HOST:PORT` (port 0: any free port)")
	dataDir := fset.String("data", "", "`DIR` where the drive persists (default $XDG_DATA_HOME/onedrivefs/fake or ~/.local/share/onedrivefs/fake)")
	seedDir := fset.String("seed", "", "import the local tree `DIR` into the root of the drive when the drive is empty (its first start); sparse files stay sparse")
	driveID := fset.String("drive-id", "", "id of the default drive (default b7d2a1c3e4f50617)")
	driveType := fset.String("drive-type", "personal", "drive type reported: personal or business")
	quota := fset.String("quota", "1T", "quota total in bytes (suffixes K, M, G, T: powers of 1024)")
	simpleLimit := fset.String("simple-upload-limit", "4M", "largest simple (single PUT) upload")
	tokenLifetime := fset.Duration("token-lifetime", time.Hour, "lifetime of access tokens")
	manualApproval := fset.Bool("manual-approval", false, "device codes wait for approval at /devicelogin or POST /_fake/devicecodes/CODE/approve")
	copyLatency := fset.Duration("copy-latency", 2*time.Second, "time every server-side copy job takes before its size is counted")
	copyRate := fset.String("copy-rate", "200M", "bytes per second a copy job copies (suffixes K, M, G; 0: size costs no time)")
	monitorStyle := fset.String("monitor-style", "303", "how the copy monitor reports completion: 303 (See Other to the new item), 200 or 202 (status body with resourceId)")
	throttleEvery := fset.Int("throttle-every", 0, "answer every `N`th API request with --throttle-status and Retry-After (0: never)")
	throttleStatus := fset.Int("throttle-status", http.StatusTooManyRequests, "status of throttled answers: 429 or 503")
	retryAfter := fset.Duration("retry-after", time.Second, "Retry-After of throttled answers")
	resetEvery := fset.Int("reset-every", 0, "reset the connection of every `N`th API request (downloads are cut after half their body; 0: never)")
	slow := fset.Duration("slow", 0, "delay every API request by this long")
	failCopyEvery := fset.Int("fail-copy-every", 0, "make every `N`th copy job fail (0: never)")
	logLevel := fset.String("log-level", "info", "log level: debug (one line per request), info, warn or error")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	usage := func(format string, a ...any) error {
		fmt.Fprintf(e.stderr, "onedrivefs fake-server: "+format+"\n", a...)
		return errUsage
	}
	if fset.NArg() > 0 {
		return usage("unexpected arguments: %v", fset.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usage("--log-level %q: use debug, info, warn or error", *logLevel)
	}
	quotaBytes, err := parseSize(*quota)
	if err != nil {
		return usage("--quota: %v", err)
	}
	simpleBytes, err := parseSize(*simpleLimit)
	if err != nil {
		return usage("--simple-upload-limit: %v", err)
	}
	rate, err := parseSize(*copyRate)
	if err != nil {
		return usage("--copy-rate: %v", err)
	}
	switch *monitorStyle {
	case "303", "200", "202":
	default:
		return usage("--monitor-style %q: use 303, 200 or 202", *monitorStyle)
	}
	if *throttleStatus != http.StatusTooManyRequests && *throttleStatus != http.StatusServiceUnavailable {
		return usage("--throttle-status %d: use 429 or 503", *throttleStatus)
	}
	if *driveType != "personal" && *driveType != "business" {
		return usage("--drive-type %q: use personal or business", *driveType)
	}
	if *tokenLifetime <= 0 || *copyLatency < 0 || *retryAfter < 0 || *slow < 0 {
		return usage("durations cannot be negative (and --token-lifetime must be positive)")
	}
	dir, err := fakeDataDir(e, *dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}

	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	fake, err := graphtest.New(graphtest.Options{
		DataDir:           dir,
		DriveID:           *driveID,
		DriveType:         *driveType,
		QuotaTotal:        quotaBytes,
		SimpleUploadLimit: simpleBytes,
		Auth:              graphtest.AuthOptions{TokenLifetime: *tokenLifetime, ManualApproval: *manualApproval},
		Copy:              graphtest.CopyOptions{Latency: *copyLatency, Rate: rate, MonitorStyle: *monitorStyle},
		Faults: graphtest.FaultOptions{
			ThrottleEvery: *throttleEvery, ThrottleStatus: *throttleStatus, RetryAfter: *retryAfter,
			ResetEvery: *resetEvery, SlowBy: *slow, FailCopyEvery: *failCopyEvery,
		},
		Logger: log,
	})
	if err != nil {
		return err
	}
	closeFake := func() error {
		if err := fake.Close(); err != nil {
			return fmt.Errorf("saving the drive to %s: %w", dir, err)
		}
		return nil
	}
	if *seedDir != "" {
		if err := seedIfEmpty(fake, *seedDir, e, log); err != nil {
			_ = closeFake()
			return err
		}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		_ = closeFake()
		return err
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(e.stdout, "Graph API: %s/v1.0\n", base)
	fmt.Fprintf(e.stdout, "OAuth: %s (tenant any; endpoints /{tenant}/oauth2/v2.0/devicecode, token, authorize)\n", base)
	fmt.Fprintf(e.stdout, "Control: %s/_fake/\n", base)
	fmt.Fprintf(e.stdout, "Data: %s\n", dir)

	// No write timeout: downloads of large files take as long as they take.
	hs := &http.Server{
		Handler:           fake,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	fake.StartAutoSave(2 * time.Second)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("stopping the fake server")
	case serveErr = <-served:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		_ = hs.Close() // downloads still running after the grace period
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return errors.Join(serveErr, closeFake())
}

// fakeDataDir is --data, or $XDG_DATA_HOME/onedrivefs/fake (~/.local/share
// when unset).
func fakeDataDir(e *env, flagValue string) (string, error) {
	if flagValue != "" {
		return filepath.Abs(flagValue)
	}
	base := e.getenv("XDG_DATA_HOME")
	if base == "" || !filepath.IsAbs(base) {
		home := e.getenv("HOME")
		if home == "" {
			return "", errors.New("cannot tell where the data directory is: set HOME or pass --data")
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "onedrivefs", "fake"), nil
}

// seedIfEmpty imports dir into a drive that has nothing in its root yet, so
// that restarting with the same --seed keeps the changes made since.
// Entries the service would refuse are skipped with a warning.
func seedIfEmpty(fake *graphtest.Server, dir string, e *env, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--seed: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--seed %s: not a directory", dir)
	}
	root, err := fake.List("/")
	if err != nil {
		return err
	}
	if len(root) > 0 {
		log.Info("the drive is not empty: not importing the seed", "seed", dir)
		return nil
	}
	start := time.Now()
	if err := fake.SeedFromDir(dir); err != nil {
		log.Warn("seeding", "err", err)
	}
	fmt.Fprintf(e.stdout, "Seeded from %s in %s\n", dir, time.Since(start).Round(time.Millisecond))
	return nil
}
