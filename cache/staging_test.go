package cache

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is an injectable clock that advances one second per reading.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time // guarded by mu
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

func openTestStaging(t *testing.T, dir string, opts ...func(*StagingOptions)) *Staging {
	t.Helper()
	o := StagingOptions{Dir: dir, Clock: newFakeClock().Now}
	for _, f := range opts {
		f(&o)
	}
	s, err := OpenStaging(o)
	require.NoError(t, err)
	return s
}

// stage writes content into a new staged file and returns its id.
func stage(t *testing.T, s *Staging, content []byte) string {
	t.Helper()
	id := NewRecordID()
	sf, err := s.Stage(id)
	require.NoError(t, err)
	_, err = sf.File().WriteAt(content, 0)
	require.NoError(t, err)
	require.NoError(t, sf.Close())
	return id
}

func TestStagingCommitPendingDone(t *testing.T) {
	dir := t.TempDir()
	s := openTestStaging(t, dir)
	assert.Empty(t, s.Pending())

	content := pattern(0, 5000)
	id := stage(t, s, content)
	mod := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	rec, err := s.Commit(Record{ID: id, ParentID: "P1", Name: "report.docx", BaseETag: `"e1"`, ModTime: mod, Size: 1})
	require.NoError(t, err)
	assert.Equal(t, int64(5000), rec.Size, "size comes from the staged file")
	assert.False(t, rec.CreatedAt.IsZero())
	assert.Equal(t, filepath.Join(dir, "staging", id), rec.StagedPath)

	assert.Equal(t, []Record{rec}, s.Pending())

	// A later commit (more writes) keeps CreatedAt and updates the size.
	sf, err := s.Stage(id)
	require.NoError(t, err)
	require.NoError(t, sf.File().Truncate(7000))
	require.NoError(t, sf.Close())
	rec2, err := s.Commit(Record{ID: id, ParentID: "P1", Name: "report.docx", BaseETag: `"e1"`})
	require.NoError(t, err)
	assert.Equal(t, rec.CreatedAt, rec2.CreatedAt)
	assert.Equal(t, int64(7000), rec2.Size)

	require.NoError(t, s.Done(id))
	assert.Empty(t, s.Pending())
	assert.NoFileExists(t, rec.StagedPath)
	assert.NoFileExists(t, filepath.Join(dir, "journal", id+journalExt))
	require.NoError(t, s.Done(id), "Done of an unknown id is fine")

	// Reopen: nothing comes back.
	assert.Empty(t, openTestStaging(t, dir).Pending())
}

func TestStagingCommitNeedsStagedFile(t *testing.T) {
	s := openTestStaging(t, t.TempDir())
	_, err := s.Commit(Record{ID: NewRecordID(), Name: "x"})
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Empty(t, s.Pending())
	_, err = s.Commit(Record{ID: "../etc/passwd"})
	assert.Error(t, err)
	_, err = s.Stage("a/b")
	assert.Error(t, err)
}

func TestStagingUpdateAndModify(t *testing.T) {
	dir := t.TempDir()
	s := openTestStaging(t, dir)
	id := stage(t, s, []byte("hello"))
	rec, err := s.Commit(Record{ID: id, ParentID: "P1", Name: "a.txt"})
	require.NoError(t, err)

	_, err = s.Modify("nope", func(r *Record) { r.Name = "b" })
	assert.ErrorIs(t, err, ErrNoRecord)

	// The file was renamed while pending; the first upload created the item.
	got, err := s.Modify(id, func(r *Record) {
		r.ParentID, r.Name, r.RemoteItemID = "P2", "b.txt", "ITEM!7"
		r.Size, r.CreatedAt = 999, time.Time{} // not Modify's business
	})
	require.NoError(t, err)
	assert.Equal(t, "P2", got.ParentID)
	assert.Equal(t, "b.txt", got.Name)
	assert.Equal(t, "ITEM!7", got.RemoteItemID)
	assert.Equal(t, rec.Size, got.Size)
	assert.Equal(t, rec.CreatedAt, got.CreatedAt)

	got, err = s.Modify(id, func(r *Record) { r.BaseETag = `"e9"` })
	require.NoError(t, err)
	assert.Equal(t, `"e9"`, got.BaseETag)
	assert.Equal(t, "b.txt", got.Name)

	// Durable: a new Staging on the same dir sees the updates.
	again := openTestStaging(t, dir)
	assert.Equal(t, []Record{got}, again.Pending())
}

func TestStagingPendingOldestFirst(t *testing.T) {
	s := openTestStaging(t, t.TempDir())
	var ids []string
	for i := 0; i < 5; i++ {
		id := stage(t, s, []byte{byte(i)})
		_, err := s.Commit(Record{ID: id, Name: string(rune('a' + i))})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	// Touching the oldest does not move it.
	_, err := s.Modify(ids[0], func(r *Record) { r.Name = "renamed" })
	require.NoError(t, err)
	var got []string
	for _, r := range s.Pending() {
		got = append(got, r.ID)
	}
	assert.Equal(t, ids, got)
}

func TestStagingConcurrentModify(t *testing.T) {
	s := openTestStaging(t, t.TempDir())
	id := stage(t, s, []byte("x"))
	_, err := s.Commit(Record{ID: id, Name: "x"})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Modify(id, func(r *Record) { r.Name += "+" })
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	r := s.Pending()
	require.Len(t, r, 1)
	assert.Equal(t, "x"+strings.Repeat("+", 20), r[0].Name, "no lost update")
	r2 := openTestStaging(t, filepath.Dir(filepath.Dir(r[0].StagedPath))).Pending()
	require.Len(t, r2, 1)
	assert.Equal(t, r[0].Name, r2[0].Name, "the file holds the last write")
}

// logBuffer returns a logger at debug level and what it wrote so far.
func logBuffer() (*slog.Logger, *lockedBuffer) {
	b := &lockedBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// lockedBuffer is a bytes.Buffer safe for concurrent Write and String.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestStagingCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	s := openTestStaging(t, dir)

	// Committed, never Done: the process "died" before the upload finished.
	kept := pattern(0, 100_000)
	keptID := stage(t, s, kept)
	keptRec, err := s.Commit(Record{ID: keptID, ParentID: "P", Name: "kept.bin", BaseETag: `"e"`})
	require.NoError(t, err)

	// Committed, then written to without a new Commit.
	grownID := stage(t, s, []byte("short"))
	_, err = s.Commit(Record{ID: grownID, Name: "grown.txt"})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "staging", grownID), []byte("longer content"), 0o600))

	// Record whose staged file vanished.
	lostID := stage(t, s, []byte("lost"))
	_, err = s.Commit(Record{ID: lostID, Name: "lost.txt"})
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(dir, "staging", lostID)))

	// Staged but never committed.
	orphanID := stage(t, s, []byte("never committed"))

	// Died in the middle of writing a record: a torn temp file.
	torn := filepath.Join(dir, "journal", NewRecordID()+journalExt+tempInfix+"42")
	require.NoError(t, os.WriteFile(torn, []byte(`{"version":1,"id":"ab`), 0o600))

	// A record file damaged on disk: set aside, its content kept.
	badID := stage(t, s, []byte("bad record"))
	_, err = s.Commit(Record{ID: badID, Name: "bad.txt"})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "journal", badID+journalExt), []byte("{not json"), 0o600))

	log, logs := logBuffer()
	s2 := openTestStaging(t, dir, func(o *StagingOptions) { o.Logger = log })
	pending := s2.Pending()
	require.Len(t, pending, 2)
	assert.Equal(t, keptRec, pending[0])
	assert.Equal(t, grownID, pending[1].ID)
	assert.Equal(t, int64(len("longer content")), pending[1].Size)

	data, err := os.ReadFile(pending[0].StagedPath)
	require.NoError(t, err)
	assert.Equal(t, kept, data, "content intact")

	assert.NoFileExists(t, torn)
	assert.NoFileExists(t, filepath.Join(dir, "journal", lostID+journalExt))
	assert.NoFileExists(t, filepath.Join(dir, "staging", orphanID))
	assert.FileExists(t, filepath.Join(dir, "journal", badID+journalExt+corruptExt))
	assert.FileExists(t, filepath.Join(dir, "staging", badID))
	out := logs.String()
	assert.Contains(t, out, "torn temporary record")
	assert.Contains(t, out, "record without staged content skipped")
	assert.Contains(t, out, "removing uncommitted staged file")
	assert.Contains(t, out, "unreadable record set aside")
	assert.Contains(t, out, "written after its last commit")

	// A second load finds the same records.
	s3 := openTestStaging(t, dir)
	assert.Equal(t, pending, s3.Pending())
}
