package copyjob

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPersistAndResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "jobs")

		// First mount: job 1 completes, job 2 is still running at unmount.
		a := newHarness(t, Config{Dir: dir})
		a.poller.script(monitorURL(1), running("inProgress", 50), completed("NEW1"))
		a.poller.script(monitorURL(2), running("inProgress", 10), running("inProgress", 42.5))
		j1, j2 := a.add(t, 1), a.add(t, 2)
		assert.Contains(t, readStore(t, dir), j2.ID, "Add is durable before it returns")
		a.run(t)
		_, err := a.tr.Wait(t.Context(), j1.ID)
		require.NoError(t, err)
		time.Sleep(3 * time.Second)
		require.NoError(t, a.tr.Close())

		info, err := os.Stat(dir)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())
		info, err = os.Stat(filepath.Join(dir, jobsFile))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
		data := readDir(t, dir)
		assert.NotContains(t, string(data), pathSecret+"1", "a finished job's monitor URL is not kept")
		assert.Contains(t, string(data), monitorURL(2), "an unfinished job's monitor URL is kept to resume")
		leftovers, _ := filepath.Glob(filepath.Join(dir, jobsTempGlob))
		assert.Empty(t, leftovers)

		// Second mount.
		b := newHarness(t, Config{Dir: dir})
		b.poller.script(monitorURL(2), running("inProgress", 90), completed("NEW2"))
		got1, ok := b.tr.Get(j1.ID)
		require.True(t, ok)
		assert.Equal(t, StateCompleted, got1.State)
		assert.Equal(t, "NEW1", got1.ResourceID)
		got2, ok := b.tr.Get(j2.ID)
		require.True(t, ok)
		assert.Equal(t, StateRunning, got2.State)
		assert.Equal(t, 42.5, got2.Percent, "progress was saved")
		assert.Equal(t, specFor(2), got2.Spec, "the spec, monitor URL included, survives")
		assert.Equal(t, j2.Created.UTC(), got2.Created.UTC())

		b.run(t)
		got2, err = b.tr.Wait(t.Context(), j2.ID)
		require.NoError(t, err)
		assert.Equal(t, StateCompleted, got2.State)
		assert.Equal(t, "NEW2", got2.ResourceID)
		done := b.doneJobs()
		require.Len(t, done, 1, "OnDone fires for the resumed job only")
		assert.Equal(t, j2.ID, done[0].ID)

		j3 := b.add(t, 3)
		assert.Greater(t, j3.ID, j2.ID, "new ids sort after loaded ones")
	})
}

func TestTerminalStateIsDurableBeforeOnDoneAndOnDoneIsRetriedAfterACrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir, crashDir := t.TempDir(), t.TempDir()
		// OnDone copies the jobs files as they are on disk when OnDone runs: the
		// state a crash at that moment would leave behind.
		a := start(t, Config{Dir: dir, OnDone: func(Job) { copyStore(t, dir, crashDir) }})
		a.poller.script(monitorURL(1), completed("NEW1"))
		j := a.add(t, 1)
		_, err := a.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)

		rec := readStore(t, crashDir)[j.ID]
		assert.Equal(t, StateCompleted, rec.State, "the outcome was on disk before OnDone ran")
		assert.False(t, rec.Notified)

		b := newHarness(t, Config{Dir: crashDir})
		got, ok := b.tr.Get(j.ID)
		require.True(t, ok)
		assert.Equal(t, StateRunning, got.State, "not reported terminal until OnDone has run")
		b.run(t)
		got, err = b.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		assert.Equal(t, StateCompleted, got.State)
		assert.Equal(t, "NEW1", got.ResourceID)
		assert.Len(t, b.doneJobs(), 1, "OnDone runs again after the crash")
		assert.Empty(t, b.poller.allTimes(), "a finished job is not polled again")

		require.NoError(t, b.tr.Close())
		assert.True(t, readStore(t, crashDir)[j.ID].Notified)
		c := newHarness(t, Config{Dir: crashDir})
		c.run(t)
		time.Sleep(time.Minute)
		assert.Empty(t, c.doneJobs(), "and only until it has returned once")
	})
}

func TestProgressIsSavedDebounced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		h := start(t, Config{Dir: dir, SaveDelay: 1500 * ms, FirstInterval: time.Second, MaxInterval: time.Second})
		h.poller.script(monitorURL(1), running("inProgress", 10), running("inProgress", 20), running("inProgress", 30))
		j := h.add(t, 1)

		time.Sleep(time.Second) // t=1s: first answer, 10%
		synctest.Wait()
		assert.Equal(t, StateQueued, readStore(t, dir)[j.ID].State, "progress is not written at once")
		time.Sleep(time.Second) // t=2s: second answer, 20%; still within SaveDelay of the first change
		synctest.Wait()
		assert.Equal(t, StateQueued, readStore(t, dir)[j.ID].State)
		time.Sleep(600 * ms) // t=2.6s: SaveDelay after the first change has passed
		synctest.Wait()
		rec := readStore(t, dir)[j.ID]
		assert.Equal(t, StateRunning, rec.State)
		assert.Equal(t, "inProgress", rec.Raw)
		assert.Equal(t, 20.0, rec.Percent)
	})
}

func TestHistoryIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		h := start(t, Config{Dir: dir, MaxHistory: 3})
		var jobs []Job
		for n := range 6 {
			h.poller.script(monitorURL(n), completed("NEW"))
			jobs = append(jobs, h.add(t, n))
		}
		for _, j := range jobs {
			_, _ = h.tr.Wait(t.Context(), j.ID)
		}
		want := []string{jobs[5].ID, jobs[4].ID, jobs[3].ID}
		assert.Equal(t, want, ids(h.tr.Jobs()), "the newest finished are kept")
		_, ok := h.tr.Get(jobs[0].ID)
		assert.False(t, ok)
		_, err := h.tr.Wait(t.Context(), jobs[0].ID)
		assert.ErrorIs(t, err, ErrNotFound)
		assert.Len(t, h.doneJobs(), 6)

		require.NoError(t, h.tr.Close())
		assert.Len(t, readStore(t, dir), 3)
		again := newHarness(t, Config{Dir: dir, MaxHistory: 2})
		assert.Equal(t, want[:2], ids(again.tr.Jobs()), "a smaller bound applies to loaded history")
	})
}

func TestAddReportsAWriteFailureButTracksTheJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "jobs")
		h := newHarness(t, Config{Dir: dir})
		require.NoError(t, os.RemoveAll(dir))
		require.NoError(t, os.WriteFile(dir, nil, 0o600)) // the directory is now a file
		require.NoError(t, h.tr.store.logFile.Close())    // and the open log fails its next write

		j, err := h.tr.Add(specFor(1))
		assert.ErrorIs(t, err, ErrNotPersisted)
		assert.NotContains(t, err.Error(), querySecret)
		_, ok := h.tr.Get(j.ID)
		assert.True(t, ok, "the copy runs on the service anyway: keep tracking it")

		h.poller.script(monitorURL(1), completed("NEW1"))
		h.run(t)
		got, err := h.tr.Wait(t.Context(), j.ID)
		require.NoError(t, err)
		assert.Equal(t, StateCompleted, got.State)
		time.Sleep(time.Minute)
		synctest.Wait()
		retries := strings.Count(h.logs.String(), "progress not saved")
		assert.Positive(t, retries, "the loop retries the write")
		assert.LessOrEqual(t, retries, 61, "at most once per SaveDelay, not in a tight loop")
		assert.Error(t, h.tr.Close(), "Close reports that the state could not be saved")
		require.NoError(t, os.Remove(dir))
		require.NoError(t, os.Mkdir(dir, 0o700)) // writable again: the cleanup's Close succeeds
	})
}

func TestJobsLoadedFromADirectoryThatCannotBeWrittenAreKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		a := newHarness(t, Config{Dir: dir})
		j1 := a.add(t, 1)
		require.NoError(t, a.tr.Close())
		logs := logFiles(t, dir)
		require.Len(t, logs, 1)
		var seq int
		_, err := fmt.Sscanf(logs[0], "jobs-%d.log", &seq)
		require.NoError(t, err)
		// The next log's name is taken by a directory: no snapshot can be written.
		blocker := filepath.Join(dir, fmt.Sprintf("jobs-%06d.log", seq+1))
		require.NoError(t, os.Mkdir(blocker, 0o700))

		b := newHarness(t, Config{Dir: dir})
		_, ok := b.tr.Get(j1.ID)
		assert.True(t, ok, "the loaded jobs are tracked anyway")
		_, err = b.tr.Add(specFor(2))
		assert.ErrorIs(t, err, ErrNotPersisted)

		require.NoError(t, os.Remove(blocker))
		j3, err := b.tr.Add(specFor(3))
		require.NoError(t, err, "writable again: the next save writes everything")
		assert.Len(t, readStore(t, dir), 3)
		assert.Contains(t, readStore(t, dir), j3.ID)
	})
}

func TestLoadingDamagedFiles(t *testing.T) {
	t.Run("corrupt file is moved aside", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, jobsFile), []byte("{not json"), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "jobs-123.tmp"), []byte("half"), 0o600))
		tr, err := New(Config{Dir: dir, Poller: newFakePoller()})
		require.NoError(t, err)
		assert.Empty(t, tr.Jobs())
		_, err = os.Stat(filepath.Join(dir, jobsFile+corruptSuffix))
		assert.NoError(t, err)
		_, err = os.Stat(filepath.Join(dir, "jobs-123.tmp"))
		assert.ErrorIs(t, err, os.ErrNotExist, "leftover temporary files are removed")
		assert.NoError(t, tr.Close())
	})
	t.Run("newer version is refused", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, jobsFile), []byte(`{"version":99,"jobs":[]}`), 0o600))
		_, err := New(Config{Dir: dir, Poller: newFakePoller()})
		assert.ErrorContains(t, err, "version 99")
	})
	t.Run("unfinished job without monitor URL fails", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, jobsFile),
				[]byte(`{"version":1,"jobs":[{"id":"00000000000a","state":"running","created":"2000-01-01T00:00:00Z"}]}`), 0o600))
			h := start(t, Config{Dir: dir})
			got, err := h.tr.Wait(context.Background(), "00000000000a")
			require.NoError(t, err)
			assert.Equal(t, StateFailed, got.State)
			assert.Equal(t, CodeMonitorGone, got.Error.Code)
			assert.Len(t, h.doneJobs(), 1)
		})
	})
}

func ids(jobs []Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

// readDir returns the contents of every file in dir, concatenated.
func readDir(t *testing.T, dir string) []byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var all []byte
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		all = append(all, data...)
	}
	return all
}

// logFiles returns the names of the logs in dir.
func logFiles(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, logGlob))
	require.NoError(t, err)
	for i, p := range paths {
		paths[i] = filepath.Base(p)
	}
	return paths
}

func lineCount(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.Count(string(data), "\n")
}

func TestAddAppendsOneRecordAndTheLogIsCompacted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		h := newHarness(t, Config{Dir: dir})
		logs := logFiles(t, dir)
		require.Len(t, logs, 1, "New starts a log")
		logPath := filepath.Join(dir, logs[0])
		snapshot, err := os.ReadFile(filepath.Join(dir, jobsFile))
		require.NoError(t, err)
		for n := range 3 {
			h.add(t, n)
			assert.Equal(t, n+1, lineCount(t, logPath), "one line per Add, not the whole list")
		}
		after, err := os.ReadFile(filepath.Join(dir, jobsFile))
		require.NoError(t, err)
		assert.Equal(t, snapshot, after, "Add does not rewrite the snapshot")

		const total = 1000 // some 600 KiB of records: more than one compaction
		for n := 3; n < total; n++ {
			h.add(t, n)
		}
		logs = logFiles(t, dir)
		require.Len(t, logs, 1, "a compaction removes the log it replaces")
		assert.NotEqual(t, filepath.Base(logPath), logs[0], "the log was compacted")
		info, err := os.Stat(filepath.Join(dir, logs[0]))
		require.NoError(t, err)
		snap, err := os.Stat(filepath.Join(dir, jobsFile))
		require.NoError(t, err)
		assert.LessOrEqual(t, info.Size(), max(2*snap.Size(), minCompactLog)+2048, "the log stays within its bound")
		recs := readStore(t, dir)
		assert.Len(t, recs, total, "every job is on disk")
		for _, j := range h.tr.Jobs() {
			assert.Equal(t, j.Spec, recs[j.ID].job().Spec)
		}
	})
}

func TestLoadingTheLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		a := newHarness(t, Config{Dir: dir})
		j1, j2 := a.add(t, 1), a.add(t, 2)
		_, err := a.tr.Amend(j1.ID, func(s *Spec) { s.Then.Name = "later.bin" })
		require.NoError(t, err)
		logs := logFiles(t, dir)
		require.Len(t, logs, 1)

		crashDir := t.TempDir()
		copyStore(t, dir, crashDir)
		// What a crash can leave: a torn last record (an append that had
		// not returned), and a log no snapshot names (a compaction cut short).
		logPath := filepath.Join(crashDir, logs[0])
		f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteString(`{"id":"` + j2.ID + `","state":"failed","sourceId":"TO`)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		stray := filepath.Join(crashDir, "jobs-999999.log")
		require.NoError(t, os.WriteFile(stray, []byte(`{"id":"`+j1.ID+`","state":"failed"}`+"\n"), 0o600))

		b := newHarness(t, Config{Dir: crashDir})
		got1, ok := b.tr.Get(j1.ID)
		require.True(t, ok)
		assert.Equal(t, "later.bin", got1.Then.Name, "the log's last record of a job wins")
		assert.Equal(t, StateQueued, got1.State, "a log no snapshot names is ignored")
		got2, ok := b.tr.Get(j2.ID)
		require.True(t, ok)
		assert.Equal(t, StateQueued, got2.State, "a torn record is skipped")
		assert.Equal(t, specFor(2), got2.Spec)
		assert.NotContains(t, b.logs.String(), "damaged record", "a torn tail is expected, not damage")
		assert.NotContains(t, logFiles(t, crashDir), "jobs-999999.log", "stray logs are removed")
		assert.NotContains(t, logFiles(t, crashDir), logs[0], "the loaded log was compacted away")

		// Damage in the middle of a log is reported and skipped.
		damaged := t.TempDir()
		copyStore(t, dir, damaged)
		data, err := os.ReadFile(filepath.Join(damaged, logs[0]))
		require.NoError(t, err)
		lines := strings.SplitAfter(string(data), "\n")
		require.Len(t, lines, 4) // 2 Adds, 1 Amend, "" after the last newline
		lines[0] = "{garbage\n"
		require.NoError(t, os.WriteFile(filepath.Join(damaged, logs[0]), []byte(strings.Join(lines, "")), 0o600))
		c := newHarness(t, Config{Dir: damaged})
		got1, ok = c.tr.Get(j1.ID)
		require.True(t, ok, "a later record of the job still counts")
		assert.Equal(t, "later.bin", got1.Then.Name)
		assert.Contains(t, c.logs.String(), "damaged record")
	})
}

func TestCloseWritesOnceAndLeavesNoLogOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		h := newHarness(t, Config{Dir: dir})
		h.add(t, 1)
		require.NoError(t, h.tr.Close())
		logs := logFiles(t, dir)
		require.Len(t, logs, 1)
		snap, err := os.ReadFile(filepath.Join(dir, jobsFile))
		require.NoError(t, err)
		assert.Nil(t, h.tr.store.logFile, "Close closes the log")

		require.NoError(t, h.tr.Close())
		assert.Equal(t, logs, logFiles(t, dir), "a second Close writes nothing")
		again, err := os.ReadFile(filepath.Join(dir, jobsFile))
		require.NoError(t, err)
		assert.Equal(t, snap, again)
	})
}
