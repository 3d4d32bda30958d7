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
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

const fakeServerDescription = `Run the fake OneDrive: the Microsoft Graph drive API under /v1.0, the
Microsoft identity platform's OAuth endpoints under /{tenant}/oauth2/v2.0
(any tenant; device codes are approved on their first poll unless
--manual-approval), and a JSON control API under /_fake/ (counters, fault
injection, copy knobs, answer forms; it needs no authentication, so keep
--addr on loopback). The drive persists under --data across restarts. Stop
with Ctrl-C: the state is saved.

Where the real service answers in more than one form, the fake answers in
one of them; the --download-*, --inner-error-*, --nested-inner-errors,
--delta-link-form, --upload-*-status, --monitor-* and --retry-after-form
flags pick the others (also at run time: PUT /_fake/forms, /_fake/copy,
/_fake/faults).

The network can go away and come back, to see what a client does when the
service is unreachable: PUT /_fake/network {"mode":"refuse"} closes the API
port (connections refused, open ones closed), "blackhole" accepts
connections and answers nothing, "up" serves again on the same port. While
the API port is down the control API on it is down too: --control-addr
serves the control API on a listener of its own that stays up, and
--network refuse|blackhole starts with the API port down.

--generate folders=N,files=M builds a drive of N folders of M small files
each in memory (all sharing one blob), for scale tests: 10,000 folders of
100 files take a few seconds and about 500 MB. Such a drive is not saved:
--data and --seed cannot be given with it.`

// newFakeServerCmd serves a graphtest fake until the context is cancelled.
func newFakeServerCmd(e *env) *cobra.Command {
	c := &cobra.Command{Use: "fake-server [flags]", Short: "run the fake OneDrive (Graph + OAuth) server", Long: fakeServerDescription}
	fset := c.Flags()
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
	monitorStyle := fset.String("monitor-style", "303", "how the copy monitor reports completion: 303 (See Other to the new item, no body), 303-body (the same with the status body), 200 or 202 (status body with resourceId)")
	monitorRunning := fset.Int("monitor-running-status", http.StatusAccepted, "HTTP status of monitor polls while a copy runs: 202, or 200 (as Business answers)")
	monitorFailed := fset.Int("monitor-failed-status", http.StatusOK, "HTTP status of monitor polls once a copy has failed: 200, 202 or a 4xx/5xx status (500: the 2017 service, with a valid status body)")
	monitorBody := fset.String("monitor-body", "graph", "shape of the monitor's status body: graph (asyncJobStatus: operation, percentageComplete, status, resourceId) or sharepoint (@odata.context, id, createdDateTime, lastActionDateTime, percentageComplete, percentComplete, resourceId, resourceLocation, status)")
	monitorOperation := fset.String("monitor-operation", "ItemCopy", "`NAME` of the operation in graph-shaped monitor bodies (itemCopy is also seen)")
	monitorFailure := fset.String("monitor-failure", "error", "how a failed copy's status body says why: error (error{code,message}), details (error{message,details[{code,message}]}, no top-level code) or errorCode (errorCode and statusDescription)")
	ruPerMinute := fset.Int("resource-units-per-minute", 0, "meter Graph requests as the service meters an application: `N` resource units a minute (1 a single-item read, 2 a listing or a write, 5 a permission call), RateLimit-* headers from 80%, 429 beyond (0: off)")
	throttleEvery := fset.Int("throttle-every", 0, "answer every `N`th API request with --throttle-status and Retry-After (0: never)")
	throttleStatus := fset.Int("throttle-status", http.StatusTooManyRequests, "status of throttled answers: 429, 503 or 509 (bandwidth limit)")
	retryAfter := fset.Duration("retry-after", time.Second, "Retry-After of throttled answers")
	retryAfterForm := fset.String("retry-after-form", "seconds", "how Retry-After is written: seconds (\"2\") or date (an HTTP date)")
	resetEvery := fset.Int("reset-every", 0, "reset the connection of every `N`th API request before serving it (downloads are cut after half their body; 0: never)")
	dropReplyEvery := fset.Int("drop-reply-every", 0, "serve every `N`th API request, then drop the connection instead of answering: the service acted but the client sees a reset (0: never)")
	faultOps := fset.String("fault-ops", "", "comma-separated operation `NAMES` (e.g. folder.create,upload.fragment; see GET /_fake/stats) that --throttle-every, --reset-every, --drop-reply-every and --slow apply to (default: every API request)")
	slow := fset.Duration("slow", 0, "delay every API request by this long")
	failCopyEvery := fset.Int("fail-copy-every", 0, "make every `N`th copy job fail (0: never)")
	ignoreRange := fset.Bool("download-ignores-range", false, "download URLs ignore Range and answer 200 with the whole body, as the service may")
	urlAnnotation := fset.String("download-url-annotation", "graph", "property of file items holding the download URL: graph (@microsoft.graph.downloadUrl) or content (@content.downloadUrl, the direct API's spelling)")
	innerSpelling := fset.String("inner-error-spelling", "innerError", "key of the inner error in error bodies: innerError (Graph) or innererror (OneDrive docs)")
	nestedInner := fset.Bool("nested-inner-errors", false, "put error detail codes in an inner error nested inside the inner error")
	deltaLinkForm := fset.String("delta-link-form", "query", "form of delta's nextLink and deltaLink: query (…/delta?token=X) or path (…/delta(token='X'))")
	createdStatus := fset.Int("upload-created-status", http.StatusCreated, "status of an upload (simple or last fragment) that created a file: 201 or 200")
	replacedStatus := fset.Int("upload-replaced-status", http.StatusOK, "status of an upload that replaced a file's content: 200 or 201")
	controlAddr := fset.String("control-addr", "", "also serve the control API (/_fake/ only) on `HOST:PORT`, a listener that stays up whatever the network mode (port 0: any free port)")
	network := fset.String("network", "up", "network mode at start: up, refuse (the API port refuses connections) or blackhole (it accepts them and answers nothing); switch with PUT /_fake/network")
	generate := fset.String("generate", "", "generate a drive of `folders=N,files=M` (N folders of M small files under the root) in memory, not saved; excludes --data and --seed")
	deltaParentPath := fset.Bool("delta-parent-path", false, "delta items carry parentReference.path, as personal drives have been seen to send (no effect with --drive-type business)")
	logLevel := fset.String("log-level", "info", "log level: debug (one line per request), info, warn or error")
	sharing := addSharingFlags(fset) // --user, --site, --share, … (fakeserver_sharing.go)
	c.RunE = func(c *cobra.Command, args []string) error {
		ctx := c.Context()
		usage := func(format string, a ...any) error {
			fmt.Fprintf(e.stderr, "onedrivefs fake-server: "+format+"\n", a...)
			return errUsage
		}
		if len(args) > 0 {
			return usage("unexpected arguments: %v", args)
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
		if *monitorOperation == "" {
			return usage("--monitor-operation cannot be empty")
		}
		var ops []string
		for _, op := range strings.Split(*faultOps, ",") {
			if op = strings.TrimSpace(op); op != "" {
				ops = append(ops, op)
			}
		}
		if *driveType != "personal" && *driveType != "business" {
			return usage("--drive-type %q: use personal or business", *driveType)
		}
		if *tokenLifetime <= 0 || *copyLatency < 0 || *retryAfter < 0 || *slow < 0 {
			return usage("durations cannot be negative (and --token-lifetime must be positive)")
		}
		opts := graphtest.Options{
			DriveID:                *driveID,
			DriveType:              *driveType,
			QuotaTotal:             quotaBytes,
			SimpleUploadLimit:      simpleBytes,
			ResourceUnitsPerMinute: *ruPerMinute,
			Auth:                   graphtest.AuthOptions{TokenLifetime: *tokenLifetime, ManualApproval: *manualApproval},
			Copy: graphtest.CopyOptions{
				Latency: *copyLatency, Rate: rate, MonitorStyle: *monitorStyle,
				MonitorRunningStatus: *monitorRunning, MonitorFailedStatus: *monitorFailed,
				MonitorBody: *monitorBody, MonitorOperation: *monitorOperation, MonitorFailure: *monitorFailure,
			},
			Faults: graphtest.FaultOptions{
				ThrottleEvery: *throttleEvery, ThrottleStatus: *throttleStatus, RetryAfter: *retryAfter,
				RetryAfterForm: *retryAfterForm, Ops: ops, ResetEvery: *resetEvery, DropReplyEvery: *dropReplyEvery,
				SlowBy: *slow, FailCopyEvery: *failCopyEvery,
			},
			Forms: graphtest.FormOptions{
				DownloadIgnoresRange: *ignoreRange, DownloadURLAnnotation: *urlAnnotation,
				InnerErrorSpelling: *innerSpelling, NestedInnerErrors: *nestedInner, DeltaLinkForm: *deltaLinkForm,
				DeltaParentPath:     *deltaParentPath,
				UploadCreatedStatus: *createdStatus, UploadReplacedStatus: *replacedStatus,
			},
		}
		sharing.configure(&opts)
		businessMonitorForms(fset, &opts)
		if err := sharing.validate(); err != nil {
			return usage("%v", err)
		}
		mode := graphtest.NetworkMode(*network)
		switch mode {
		case graphtest.NetworkUp, graphtest.NetworkRefuse, graphtest.NetworkBlackhole:
		default:
			return usage("--network %q: use up, refuse or blackhole", *network)
		}
		var spec graphtest.GenerateSpec
		if *generate != "" {
			if spec, err = graphtest.ParseGenerateSpec(*generate); err != nil {
				return usage("--generate: %v", err)
			}
			if *dataDir != "" || *seedDir != "" {
				return usage("--generate builds a drive in memory that is not saved: drop --data and --seed")
			}
		}
		// The fake checks its knobs itself (monitor forms, throttle status,
		// answer forms, negative counts); a refusal here is a usage error.
		if err := opts.Validate(); err != nil {
			return usage("%v", err)
		}
		log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
		opts.Logger = log
		dir := "" // a generated drive lives in a temporary directory, removed at exit
		if *generate == "" {
			if dir, err = fakeDataDir(e, *dataDir); err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			opts.DataDir = dir
		}
		fake, err := graphtest.New(opts)
		if err != nil {
			return err
		}
		closeFake := func() error {
			err := fake.Close()
			switch {
			case err != nil && dir == "":
				return fmt.Errorf("closing the fake: %w", err)
			case err != nil:
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
		if *generate != "" {
			start := time.Now()
			if err := fake.Generate(spec); err != nil {
				_ = closeFake()
				return err
			}
			fmt.Fprintf(e.stdout, "Generated %s (%d items) in %s\n", spec, spec.Items(), time.Since(start).Round(time.Millisecond))
		}
		sharingNotes, err := sharing.apply(fake)
		if err != nil {
			_ = closeFake()
			return err
		}

		if err := fake.Start(*addr); err != nil {
			_ = closeFake()
			return err
		}
		ctlURL := fake.URL
		var ctl *http.Server
		if *controlAddr != "" {
			ln, err := net.Listen("tcp", *controlAddr)
			if err != nil {
				_ = closeFake()
				return fmt.Errorf("--control-addr: %w", err)
			}
			ctlURL = "http://" + ln.Addr().String()
			ctl = &http.Server{Handler: fake.ControlHandler(), ReadHeaderTimeout: 10 * time.Second,
				ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
			go func() { _ = ctl.Serve(ln) }() // ends at ctl.Shutdown below
		}
		if err := fake.SetNetwork(mode); err != nil {
			if ctl != nil {
				_ = ctl.Close()
			}
			_ = closeFake()
			return err
		}
		fmt.Fprintf(e.stdout, "Graph API: %s/v1.0\n", fake.URL)
		fmt.Fprintf(e.stdout, "OAuth: %s (tenant any; endpoints /{tenant}/oauth2/v2.0/devicecode, token, authorize)\n", fake.URL)
		fmt.Fprintf(e.stdout, "Control: %s/_fake/\n", ctlURL)
		if mode != graphtest.NetworkUp {
			fmt.Fprintf(e.stdout, "Network: %s (PUT %s/_fake/network {\"mode\":\"up\"} to serve)\n", mode, ctlURL)
		}
		for _, note := range sharingNotes {
			fmt.Fprintln(e.stdout, note)
		}
		if *generate != "" {
			fmt.Fprintln(e.stdout, "Data: (in memory, not saved)")
		} else {
			fmt.Fprintf(e.stdout, "Data: %s\n", dir)
			fake.StartAutoSave(2 * time.Second)
		}

		<-ctx.Done()
		log.Info("stopping the fake server")
		if ctl != nil {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := ctl.Shutdown(shutdownCtx); err != nil {
				_ = ctl.Close()
			}
		}
		return closeFake()
	}
	return c
}

// fakeDataDir is --data, or $XDG_DATA_HOME/onedrivefs/fake (~/.local/share
// when unset).
func fakeDataDir(e *env, flagValue string) (string, error) {
	if flagValue != "" {
		return filepath.Abs(flagValue)
	}
	if dir := xdgDir(e, "XDG_DATA_HOME", filepath.Join(".local", "share"), "fake"); dir != "" {
		return dir, nil
	}
	return "", errors.New("cannot tell where the data directory is: set HOME or pass --data")
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
