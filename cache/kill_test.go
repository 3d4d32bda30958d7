package cache

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests here re-run the test binary as a helper process that works in a
// directory, reports each durable step on stdout, and is killed with SIGKILL
// by the parent at an arbitrary point: no deferred cleanup, no Close. The
// parent then reopens the directory and checks every reported step survived.

const (
	killModeEnv = "ONEDRIVEFS_CACHE_KILL_MODE"
	killDirEnv  = "ONEDRIVEFS_CACHE_KILL_DIR"
)

// killedHelperSize is the content size of step i.
func killedHelperSize(i int) int64 { return 20_000 + int64(i)*1_531 }

// runKilledHelper starts the helper in mode, kills it once it has reported
// `steps` steps and returns every line it reported: the helper runs on while
// the parent reads, so the pipe may hold more steps than were read before the
// kill, and those are read to the end too.
func runKilledHelper(t *testing.T, mode, dir string, steps int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), killModeEnv+"="+mode, killDirEnv+"="+dir)
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
			require.NoError(t, cmd.Process.Kill()) // SIGKILL, mid-way through some later step
			killed = true
		}
	}
	if !killed {
		_ = cmd.Process.Kill()
	}
	_ = cmd.Wait() // after the reads: Wait closes the pipe
	require.GreaterOrEqual(t, len(lines), steps, "helper stopped early")
	return lines
}

// TestKillHelper is the helper process body; it does nothing in a normal run.
func TestKillHelper(t *testing.T) {
	mode, dir := os.Getenv(killModeEnv), os.Getenv(killDirEnv)
	if mode == "" {
		t.Skip("helper process for the kill tests")
	}
	switch mode {
	case "staging":
		s, err := OpenStaging(StagingOptions{Dir: dir})
		if err != nil {
			panic(err)
		}
		for i := 0; ; i++ {
			id := NewRecordID()
			sf, err := s.Stage(id)
			if err != nil {
				panic(err)
			}
			if _, err := sf.File().WriteAt(pattern(int64(i), killedHelperSize(i)), 0); err != nil {
				panic(err)
			}
			if _, err := s.Commit(Record{ID: id, Name: strconv.Itoa(i)}); err != nil {
				panic(err)
			}
			fmt.Printf("step %s %d\n", id, i)
			_ = sf.Close()
		}
	case "content":
		c, err := OpenContent(ContentOptions{Dir: dir, MaxBytes: 1 << 30})
		if err != nil {
			panic(err)
		}
		for i := 0; ; i++ {
			h, err := c.Open(Key{ID: strconv.Itoa(i), CTag: "c"}, killedHelperSize(i))
			if err != nil {
				panic(err)
			}
			// Shifted content per item, so a mixed-up file would show.
			err = h.Fetch(context.Background(), 0, h.Size(), itemFetch(int64(i)))
			if err != nil {
				panic(err)
			}
			if err := h.Release(); err != nil {
				panic(err)
			}
			fmt.Printf("step %d\n", i)
		}
	}
}

// itemFetch serves item i: the pattern shifted by i*1000, so that bytes of
// one item showing up in another would be caught.
func itemFetch(i int64) FetchFunc {
	return func(_ context.Context, off, n int64, w io.Writer) error {
		for pos := off; pos < off+n; pos += 4096 {
			if _, err := w.Write(pattern(pos+i*1000, min(4096, off+n-pos))); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestStagingSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a helper process")
	}
	dir := t.TempDir()
	lines := runKilledHelper(t, "staging", dir, 25)

	s := openTestStaging(t, dir)
	pending := s.Pending()
	byID := make(map[string]Record)
	for _, r := range pending {
		byID[r.ID] = r
	}
	for _, line := range lines {
		var id string
		var i int
		_, err := fmt.Sscanf(line, "%s %d", &id, &i)
		require.NoError(t, err)
		r, ok := byID[id]
		require.True(t, ok, "committed record %s lost", id)
		assert.Equal(t, strconv.Itoa(i), r.Name)
	}
	// Every record found, reported or caught between Commit and the report,
	// has its full content.
	assert.GreaterOrEqual(t, len(pending), len(lines))
	assert.LessOrEqual(t, len(pending), len(lines)+1)
	for _, r := range pending {
		i, err := strconv.Atoi(r.Name)
		require.NoError(t, err)
		data, err := os.ReadFile(r.StagedPath)
		require.NoError(t, err)
		require.Equal(t, pattern(int64(i), killedHelperSize(i)), data, "content of record %d", i)
		assert.Equal(t, killedHelperSize(i), r.Size)
	}
}

func TestContentSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a helper process")
	}
	dir := t.TempDir()
	lines := runKilledHelper(t, "content", dir, 10)

	c := openTestContent(t, dir, 1<<30)
	for _, line := range lines {
		i, err := strconv.Atoi(line)
		require.NoError(t, err)
		h := mustOpen(t, c, line, "c", killedHelperSize(i))
		assert.True(t, h.Complete(), "released entry %d lost its ranges", i)
		require.NoError(t, h.Release())
	}
	// Whatever was loaded, reported or not, serves only the right bytes.
	for _, id := range cached(c) {
		i, err := strconv.Atoi(id)
		require.NoError(t, err)
		h := mustOpen(t, c, id, "c", killedHelperSize(i))
		buf := make([]byte, killedHelperSize(i))
		n, _ := h.ReadAt(buf, 0)
		assert.Equal(t, pattern(int64(i)*1000, int64(n)), buf[:n], "entry %d", i)
		require.NoError(t, h.Release())
	}
}
