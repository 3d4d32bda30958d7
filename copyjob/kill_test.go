package copyjob

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKilledTrackerLosesNothingItReported re-runs the test binary as a helper
// that Adds and Amends jobs in a jobs directory as fast as it can, reporting
// each call that returned on stdout, and kills it with SIGKILL mid-way (no
// Close, no deferred cleanup; possibly during an append or a compaction).
// A new Tracker on the directory must then hold every job and every
// amendment that was reported.
func TestKilledTrackerLosesNothingItReported(t *testing.T) {
	dir := t.TempDir()
	const steps = 700 // past the first compaction (some 256 KiB of records)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), killDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var lines []string
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "step "); ok {
			lines = append(lines, line)
		}
		if !killed && len(lines) >= steps {
			require.NoError(t, cmd.Process.Kill())
			killed = true
		}
	}
	if !killed {
		_ = cmd.Process.Kill()
	}
	_ = cmd.Wait()
	require.GreaterOrEqual(t, len(lines), steps, "helper stopped early")

	added := map[string]int{}      // job id → n of specFor(n)
	renamed := map[string]string{} // job id → the last name it was amended to
	for _, l := range lines {
		var op, id, arg string
		_, err := fmt.Sscan(l, &op, &id, &arg)
		require.NoError(t, err, l)
		switch op {
		case "add":
			var n int
			_, err := fmt.Sscan(arg, &n)
			require.NoError(t, err)
			added[id] = n
		case "amend":
			renamed[id] = arg
		}
	}

	tr, err := New(Config{Dir: dir, Poller: newFakePoller()})
	require.NoError(t, err)
	defer tr.Close()
	all := tr.Jobs()
	assert.LessOrEqual(t, len(all), len(added)+1, "at most the Add that was cut short is extra")
	for id, n := range added {
		j, ok := tr.Get(id)
		if !assert.True(t, ok, "job %s (Add %d) was reported and is lost", id, n) {
			continue
		}
		want := specFor(n)
		want.Then.Name = renamed[id]
		if _, reported := renamed[id]; !reported && j.Then.Name != "" {
			// The kill came between this job's Add and its Amend's report:
			// the Amend may have reached the disk, or not.
			want.Then.Name = amendedName(n)
		}
		assert.Equal(t, want, j.Spec, "job %s", id)
		assert.Equal(t, StateQueued, j.State)
	}
}

const killDirEnv = "ONEDRIVEFS_COPYJOB_KILL_DIR"

// amendedName is the name the helper amends job n (every third) to.
func amendedName(n int) string { return fmt.Sprintf("renamed-%d", n) }

// TestKillHelper is the helper process body; it does nothing in a normal run.
func TestKillHelper(t *testing.T) {
	dir := os.Getenv(killDirEnv)
	if dir == "" {
		t.Skip("helper process for TestKilledTrackerLosesNothingItReported")
	}
	never := PollerFunc(func(ctx context.Context, _ string) (*remote.JobStatus, error) {
		return &remote.JobStatus{State: remote.JobRunning, Status: "inProgress"}, nil
	})
	tr, err := New(Config{Dir: dir, Poller: never})
	if err != nil {
		panic(err)
	}
	w := bufio.NewWriter(os.Stdout)
	for n := 0; ; n++ {
		j, err := tr.Add(specFor(n))
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(w, "step add %s %d\n", j.ID, n)
		_ = w.Flush()
		if n%3 == 0 {
			name := amendedName(n)
			if _, err := tr.Amend(j.ID, func(s *Spec) { s.Then.Name = name }); err != nil {
				panic(err)
			}
			fmt.Fprintf(w, "step amend %s %s\n", j.ID, name)
			_ = w.Flush()
		}
	}
}
