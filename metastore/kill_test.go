package metastore

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote"
)

// Crash safety: the test binary re-runs itself as a helper process that
// writes to a store, reports each committed transaction on stdout, and is
// killed with SIGKILL by the parent: inside a transaction, or at whatever
// point of its commit the kill lands. The parent then reopens the store and
// checks that it holds exactly the committed transactions, each whole.
// (SIGKILL loses no page already written to the kernel; a power cut is the
// file system's and bbolt's fsync's business.)

const (
	killModeEnv = "ONEDRIVEFS_METASTORE_KILL_MODE"
	killPathEnv = "ONEDRIVEFS_METASTORE_KILL_PATH"
)

// itemsPerTx is the number of files each helper transaction adds.
const itemsPerTx = 300

// txItems is the folder transaction i adds, and its files.
func txItems(i int) []*remote.Item {
	id := fmt.Sprintf("T!%d", i)
	items := []*remote.Item{folder(id, "R!1", fmt.Sprintf("tx-%06d", i))}
	for j := range itemsPerTx {
		items = append(items, file(fmt.Sprintf("T!%d.%d", i, j), id, fmt.Sprintf("f-%04d", j)))
	}
	return items
}

// runKillHelper starts the helper and returns its stdout lines as they come.
func runKillHelper(t *testing.T, mode, path string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), killModeEnv+"="+mode, killPathEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		for range lines {
		}
		_ = cmd.Wait()
	})
	return cmd, lines
}

// TestKillHelper is the helper process; it does nothing in a normal run.
func TestKillHelper(t *testing.T) {
	mode := os.Getenv(killModeEnv)
	if mode == "" {
		t.Skip("helper process only")
	}
	s, err := Open(os.Getenv(killPathEnv))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if err := s.ApplyDelta([]*remote.Item{root()}, "link-0"); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	switch mode {
	case "inside":
		// One committed transaction, then one that never ends.
		if err := s.ApplyDelta(txItems(1), "link-1"); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("step 1")
		_ = s.Update(func(tx *Tx) error {
			for i := 2; i < 40; i++ {
				for _, it := range txItems(i) {
					if err := tx.Put(it); err != nil {
						return err
					}
				}
			}
			if err := tx.SetDeltaLink("link-uncommitted"); err != nil {
				return err
			}
			fmt.Println("inside")
			time.Sleep(time.Hour) // killed here
			return nil
		})
	case "loop":
		for i := 1; ; i++ {
			if err := s.ApplyDelta(txItems(i), fmt.Sprintf("link-%d", i)); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println("step", i)
		}
	}
	os.Exit(0)
}

// checkCommitted checks the store at path holds exactly transactions 1..n
// for some n ≥ atLeast, each whole, and returns n.
func checkCommitted(t *testing.T, path string, atLeast int) int {
	t.Helper()
	s, err := Open(path)
	require.NoError(t, err, "the store opens after the kill")
	defer s.Close()
	n := -1
	require.NoError(t, s.View(func(tx *ReadTx) error {
		link := tx.DeltaLink()
		var err error
		n, err = strconv.Atoi(strings.TrimPrefix(link, "link-"))
		require.NoError(t, err, "link %q", link)
		require.GreaterOrEqual(t, n, atLeast, "every reported commit survived")
		assert.Equal(t, 1+n*(1+itemsPerTx), tx.Count(), "the root and whole transactions, nothing more")
		var folders []string
		require.NoError(t, tx.EachChild("R!1", func(it *remote.Item) error {
			folders = append(folders, it.Name)
			var files int
			require.NoError(t, tx.EachChild(it.ID, func(*remote.Item) error { files++; return nil }))
			assert.Equal(t, itemsPerTx, files, "%s is whole", it.Name)
			return nil
		}))
		require.Len(t, folders, n)
		if n > 0 {
			assert.Equal(t, fmt.Sprintf("tx-%06d", n), folders[n-1])
		}
		return nil
	}))
	return n
}

func TestKilledInsideATransaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	cmd, lines := runKillHelper(t, "inside", path)
	for line := range lines {
		require.False(t, strings.HasPrefix(line, "error"), line)
		if line == "inside" {
			require.NoError(t, cmd.Process.Kill())
			break
		}
	}
	_ = cmd.Wait()
	assert.Equal(t, 1, checkCommitted(t, path, 1), "the state before the killed transaction")
}

func TestKilledWhileCommitting(t *testing.T) {
	for round := range 3 {
		path := filepath.Join(t.TempDir(), "meta.db")
		cmd, lines := runKillHelper(t, "loop", path)
		// Kill at a different point of the stream of commits each round.
		killAfter := 3 + round*4
		last := 0
		for line := range lines {
			require.False(t, strings.HasPrefix(line, "error"), line)
			if v, ok := strings.CutPrefix(line, "step "); ok {
				last, _ = strconv.Atoi(v)
			}
			if last >= killAfter {
				// A little later each round, to land at other points of
				// the commit in flight.
				time.Sleep(time.Duration(round*3) * time.Millisecond)
				require.NoError(t, cmd.Process.Kill())
				break
			}
		}
		_ = cmd.Wait()
		n := checkCommitted(t, path, last)
		t.Logf("round %d: killed after commit %d was reported; the store holds %d", round, last, n)
	}
}
