package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Running as a service: --daemon (a background mount that reports back once
// it serves) and systemd's notification protocol (Type=notify).

// readyFDEnv tells a --daemon child which file descriptor its parent waits
// on: one line, "ready PID" once the mount serves or "error MESSAGE", then
// the descriptor is closed.
const readyFDEnv = "ONEDRIVEFS_READY_FD"

// readyReporter is a --daemon child's line to its parent.
type readyReporter struct {
	f    *os.File
	once sync.Once
}

// daemonChildReporter returns the reporter of a --daemon child, nil in any
// other process.
func daemonChildReporter(e *env) *readyReporter {
	fd, err := strconv.Atoi(e.getenv(readyFDEnv))
	if err != nil || fd < 3 {
		return nil
	}
	// Not for the programs this process runs (fusermount3): only the
	// parent may hold the pipe, or it would not see the end of it.
	syscall.CloseOnExec(fd)
	return &readyReporter{f: os.NewFile(uintptr(fd), "daemon-ready")}
}

func (r *readyReporter) serving() { r.send(fmt.Sprintf("ready %d", os.Getpid())) }
func (r *readyReporter) failed(err error) {
	r.send("error " + strings.ReplaceAll(err.Error(), "\n", " "))
}

func (r *readyReporter) send(line string) {
	r.once.Do(func() {
		_, _ = io.WriteString(r.f, line+"\n")
		_ = r.f.Close()
	})
}

// startDaemon runs this command line again as a daemon (a new session, no
// terminal, stdio to --log-file or /dev/null) and waits until it serves or
// fails: the exit status then says whether the mount is there.
func startDaemon(ctx context.Context, e *env, o mountOptions, mountArg string) error {
	if len(e.argv) == 0 {
		return errors.New("--daemon: no command line to run in the background")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program to start the daemon: %w", err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	out, logWhere := devnull, "the system log (journalctl -t onedrivefs)"
	if o.logFile != "" {
		lf, err := os.OpenFile(o.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("the log file: %w", err)
		}
		defer lf.Close()
		out, logWhere = lf, o.logFile
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(exe, e.argv...)
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, out, out
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("starting the daemon: %w", err)
	}
	report := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, 64<<10)) // until the child closes it or exits
		report <- strings.TrimSpace(string(b))
	}()
	var msg string
	select {
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-report
		_ = cmd.Wait()
		return errors.New("interrupted: the daemon was stopped before it served")
	case msg = <-report:
	}
	switch {
	case strings.HasPrefix(msg, "ready "):
		_ = cmd.Process.Release()
		fmt.Fprintf(e.stderr, "onedrivefs: mounted on %s (daemon pid %s; log: %s)\n",
			mountArg, strings.TrimPrefix(msg, "ready "), logWhere)
		return nil
	case strings.HasPrefix(msg, "error "):
		_ = cmd.Wait()
		return errors.New(strings.TrimPrefix(msg, "error "))
	default:
		werr := cmd.Wait()
		return fmt.Errorf("the daemon ended before it served (%v); see %s", werr, logWhere)
	}
}

// openLog returns where the mount logs: --log-file, else the system log for
// a daemon (stderr goes nowhere), else stderr. A log file can be reopened
// (after logrotate moved it: SIGHUP); logFile is nil otherwise.
func openLog(e *env, o mountOptions, daemonChild bool) (w io.Writer, lf *logFile, closeLog func(), err error) {
	switch {
	case o.logFile != "":
		lf := &logFile{path: o.logFile}
		if err := lf.reopen(); err != nil {
			return nil, nil, nil, err
		}
		return lf, lf, lf.close, nil
	case daemonChild:
		w, err := syslog.New(syslog.LOG_INFO|syslog.LOG_DAEMON, "onedrivefs")
		if err != nil {
			return io.Discard, nil, func() {}, nil // no system log: nowhere to write
		}
		return w, nil, func() { _ = w.Close() }, nil
	}
	return e.stderr, nil, func() {}, nil
}

// logFile is the --log-file, appended to, and opened again by reopen.
type logFile struct {
	path string
	mu   sync.Mutex
	f    *os.File // GUARDED_BY(mu)
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// reopen opens the path again (a new file if it was moved away) and closes
// the old one; on failure the old one stays in use.
func (l *logFile) reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("the log file: %w", err)
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return nil
}

func (l *logFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.f.Close()
}

// systemdNotifier sends systemd's service notifications (sd_notify(3)): a
// datagram per message to the unix socket in $NOTIFY_SOCKET (a leading @
// names an abstract socket, which the net package handles). A nil
// notifier (not run by systemd) sends nothing.
type systemdNotifier struct {
	conn     *net.UnixConn
	log      *slog.Logger
	watchdog time.Duration // WATCHDOG_USEC; 0: no watchdog
}

func newSystemdNotifier(getenv func(string) string, log *slog.Logger) *systemdNotifier {
	addr := getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if addr[0] != '/' && addr[0] != '@' {
		log.Warn("NOTIFY_SOCKET is neither a path nor an abstract socket; not notifying systemd", "addr", addr)
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		log.Warn("cannot reach systemd's notification socket", "err", err)
		return nil
	}
	n := &systemdNotifier{conn: conn, log: log}
	usec, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64)
	pid := getenv("WATCHDOG_PID")
	if err == nil && usec > 0 && (pid == "" || pid == strconv.Itoa(os.Getpid())) {
		n.watchdog = time.Duration(usec) * time.Microsecond
	}
	return n
}

// notify sends one notification (newline-separated VAR=value lines).
func (n *systemdNotifier) notify(state string) {
	if n == nil {
		return
	}
	if _, err := n.conn.Write([]byte(state)); err != nil {
		n.log.Debug("notifying systemd failed", "err", err)
	}
}

// watchdogEvery is how often to send WATCHDOG=1 (half the timeout, as
// sd_watchdog_enabled(3) advises); 0 without a watchdog.
func (n *systemdNotifier) watchdogEvery() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog / 2
}

func (n *systemdNotifier) close() {
	if n != nil {
		_ = n.conn.Close()
	}
}
