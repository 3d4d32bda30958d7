package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// raceReport starts a report of the race detector.
const raceReport = "WARNING: DATA RACE"

// testedWithRace reports whether this test binary was built with the race
// detector (go test -race).
func testedWithRace() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// raceBinary builds onedrivefs with the race detector for the test t and
// returns its path, or "" when the tests do not run with -race. (The
// packages are already built with -race for the test binary: this costs a
// link, seconds.)
func raceBinary(t *testing.T) string {
	t.Helper()
	if !testedWithRace() {
		return ""
	}
	bin := filepath.Join(t.TempDir(), "onedrivefs-race")
	out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build -race: %s", out)
	return bin
}

// renameOnFake renames the item with the given id on the fake, for use
// outside the test's goroutine (it reports, it does not fail the test).
func renameOnFake(srv *graphtest.Server, id, name string) error {
	body, err := json.Marshal(map[string]any{"name": name})
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPatch, srv.GraphURL()+"/me/drive/items/"+id, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+srv.IssueToken())
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PATCH %s → %s: %s", id, name, resp.Status)
	}
	return nil
}

// Uploads that fail at once (and are journaled, and logged with the file's
// name) race renames made on the service, which the delta poll applies.
// Under go test -race the mount runs built with the race detector, and its
// log must hold no race report. In any case, once the service takes
// uploads again, the last content is at the last name, and nowhere else.
func TestMountRaceFailingUploadsVsDeltaRenames(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.bin = raceBinary(t)
	if env.bin == "" {
		t.Log("not run with -race: the mount is not checked for data races, only for lost data")
	}
	id, err := env.srv.PutFile("/race/doc-0.txt", []byte("initial\n"), time.Time{})
	require.NoError(t, err)
	// Logging little: every log line takes the log handler's lock, which
	// orders the two sides for the race detector and hides the race.
	env.mount("--poll-interval", "25ms", "--log-level", "error")
	env.sh("ls race")

	fd, err := unix.Open(env.path("race/doc-0.txt"), unix.O_RDWR, 0)
	require.NoError(t, err)
	closeOnCleanup(t, &fd)
	// Every upload is refused at once: the Retry-After is longer than the
	// client waits for inside a call.
	env.srv.SetFaults(graphtest.FaultOptions{ThrottleFor: time.Hour, ThrottleStatus: 503,
		RetryAfter: 10 * time.Minute, Ops: []string{"upload"}})

	stop := make(chan struct{})
	type result struct {
		name    string
		renames int
		err     error
	}
	done := make(chan result, 1)
	go func() {
		r := result{name: "doc-0.txt"}
		defer func() { done <- r }()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			next := fmt.Sprintf("doc-%d.txt", i)
			if r.err = renameOnFake(env.srv, id, next); r.err != nil {
				return
			}
			r.name, r.renames = next, i
		}
	}()

	var content []byte
	sends := 0
	// Up to 6 s; a race report ends it early (the detector sees a race
	// only when the two accesses meet with nothing ordering them, which
	// takes a few tries).
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
		sends++
		content = []byte(fmt.Sprintf("version %06d\n", sends))
		pwriteAll(t, fd, content, 0)
		_ = unix.Fsync(fd) // refused: journaled or failed, logged either way
		if sends%20 == 0 && strings.Contains(env.stderr.String(), raceReport) {
			break
		}
	}
	close(stop)
	r := <-done
	require.NoError(t, r.err)
	st := env.srv.Stats()
	t.Logf("%d sends (%d refused by the fake) raced %d remote renames", sends, st.Throttled, r.renames)
	time.Sleep(500 * time.Millisecond) // the last rename reaches the mount

	env.srv.SetFaults(graphtest.FaultOptions{})
	require.NoError(t, unix.Close(fd))
	fd = -1
	env.waitRemoteContent("/race/"+r.name, content, 15*time.Second, "the last content at the last name")
	assert.Equal(t, []string{r.name}, env.remoteNames("/race"), "nothing under an older name, no conflict copy")
	if log := env.stderr.String(); strings.Contains(log, raceReport) {
		i := strings.Index(log, raceReport)
		t.Errorf("the mount's race detector reports a data race:\n%s", log[i:min(len(log), i+2500)])
	}
}
