package metastore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/onedrivefs/onedrivefs/remote"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "meta.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func root() *remote.Item {
	return &remote.Item{ID: "R!1", Name: "root", IsFolder: true, IsRoot: true, DriveID: "r"}
}

func folder(id, parent, name string) *remote.Item {
	return &remote.Item{ID: id, ParentID: parent, Name: name, IsFolder: true, DriveID: "r"}
}

func file(id, parent, name string) *remote.Item {
	return &remote.Item{ID: id, ParentID: parent, Name: name, Size: int64(len(name)), DriveID: "r",
		ETag: "e-" + id, CTag: "c-" + id}
}

func names(items []*remote.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Name)
	}
	return out
}

func TestRecordRoundTrip(t *testing.T) {
	full := &remote.Item{
		ID: "ABC!12", Name: "Résumé 2024.docx", DriveID: "abc", ParentID: "ABC!3", IsFolder: false,
		ChildCount: 0, Size: 1 << 40, ETag: `"{ABC!12},4"`, CTag: `"c:{ABC!12},2"`,
		QuickXorHash: "aCgDG9jwBhDc4Q1yawMZAAAAAAA=", SHA256: "00FF", MimeType: "application/msword",
		Package: "", WebURL: "https://example.invalid/abc",
		Created:    time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC),
		Modified:   time.Date(2021, 1, 2, 3, 4, 5, 0, time.UTC),
		FSCreated:  time.Date(1969, 7, 20, 20, 17, 40, 999_999_999, time.UTC), // before the epoch
		FSModified: time.Unix(0, 0).UTC(),                                     // the epoch itself is not "zero"
	}
	shortcut := &remote.Item{ID: "S1", Name: "Team share", ParentID: "R", IsFolder: true, Shortcut: true,
		RemoteDriveID: "b!other", RemoteID: "OTHER!9", RemoteParentID: "OTHER!1", Role: remote.Role("read")}
	for _, it := range []*remote.Item{full, {ID: "x"}, root(), {ID: "n", Size: -5, IsFolder: true, ChildCount: 7, Package: "oneNote"}, shortcut} {
		got, err := decode(it.ID, it.ParentID, encode(nil, it))
		require.NoError(t, err)
		assert.Equal(t, it, got)
	}
	// A version 1 record (before the remote facet) still decodes.
	v1 := encode(nil, full)
	v1[0] = 1
	got, err := decode(full.ID, full.ParentID, v1)
	require.NoError(t, err)
	assert.Equal(t, full, got)

	rec := encode(nil, full)
	for _, bad := range [][]byte{nil, {9}, rec[:len(rec)-1], append(append([]byte{}, rec...), 0), encode(nil, shortcut)[:len(encode(nil, shortcut))-2]} {
		_, err := decode("x", "p", bad)
		assert.ErrorIs(t, err, ErrCorrupt, "%v", bad)
	}
}

func TestPutGetChildren(t *testing.T) {
	s := openTemp(t)
	require.NoError(t, s.Update(func(tx *Tx) error {
		for _, it := range []*remote.Item{root(), folder("R!2", "R!1", "Docs"), file("R!3", "R!2", "b.txt"),
			file("R!4", "R!2", "A.txt"), file("R!5", "R!2", "c.TXT"), file("R!6", "R!1", "top.txt")} {
			if err := tx.Put(it); err != nil {
				return err
			}
		}
		return nil
	}))
	kids, err := s.Children("R!2")
	require.NoError(t, err)
	assert.Equal(t, []string{"A.txt", "b.txt", "c.TXT"}, names(kids), "by folded name, case kept")
	kids, err = s.Children("R!1")
	require.NoError(t, err)
	assert.Equal(t, []string{"Docs", "top.txt"}, names(kids))
	kids, err = s.Children("R!3")
	require.NoError(t, err)
	assert.Empty(t, kids)

	it, err := s.Child("R!2", "C.txt")
	require.NoError(t, err)
	assert.Equal(t, "R!5", it.ID)
	_, err = s.Child("R!2", "d.txt")
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = s.Item("R!99")
	assert.ErrorIs(t, err, ErrNotFound)
	got, err := s.Item("R!3")
	require.NoError(t, err)
	assert.Equal(t, file("R!3", "R!2", "b.txt"), got)

	require.NoError(t, s.View(func(tx *ReadTx) error {
		assert.Equal(t, "R!1", tx.RootID())
		assert.Equal(t, 6, tx.Count())
		return nil
	}))
}

func TestPutRenameMoveAndSwap(t *testing.T) {
	s := openTemp(t)
	require.NoError(t, s.ApplyDelta([]*remote.Item{root(), folder("R!2", "R!1", "D1"), folder("R!3", "R!1", "D2"),
		file("R!4", "R!2", "a"), file("R!5", "R!2", "b")}, ""))

	// Rename, then move to another folder.
	require.NoError(t, s.ApplyDelta([]*remote.Item{file("R!4", "R!2", "A2")}, ""))
	kids, _ := s.Children("R!2")
	assert.Equal(t, []string{"A2", "b"}, names(kids))
	require.NoError(t, s.ApplyDelta([]*remote.Item{file("R!4", "R!3", "A2")}, ""))
	kids, _ = s.Children("R!2")
	assert.Equal(t, []string{"b"}, names(kids))
	kids, _ = s.Children("R!3")
	assert.Equal(t, []string{"A2"}, names(kids))

	// A case-only rename keeps one entry, with the new case.
	require.NoError(t, s.ApplyDelta([]*remote.Item{file("R!5", "R!2", "B")}, ""))
	kids, _ = s.Children("R!2")
	assert.Equal(t, []string{"B"}, names(kids))

	// Two items swap names in one page, in either order.
	require.NoError(t, s.ApplyDelta([]*remote.Item{file("R!6", "R!2", "x"), file("R!7", "R!2", "y")}, ""))
	require.NoError(t, s.ApplyDelta([]*remote.Item{file("R!6", "R!2", "y"), file("R!7", "R!2", "x")}, ""))
	x, err := s.Child("R!2", "x")
	require.NoError(t, err)
	assert.Equal(t, "R!7", x.ID)
	y, err := s.Child("R!2", "y")
	require.NoError(t, err)
	assert.Equal(t, "R!6", y.ID)
	kids, _ = s.Children("R!2")
	assert.Equal(t, []string{"B", "x", "y"}, names(kids))
}

func TestDeleteRemovesTheSubtree(t *testing.T) {
	s := openTemp(t)
	require.NoError(t, s.ApplyDelta([]*remote.Item{root(), folder("R!2", "R!1", "D"), folder("R!3", "R!2", "E"),
		file("R!4", "R!3", "f"), file("R!5", "R!2", "g"), file("R!6", "R!1", "keep")}, "link-1"))
	// A child moved out of D in the same page survives D's deletion.
	require.NoError(t, s.ApplyDelta([]*remote.Item{file("R!5", "R!1", "g"),
		{ID: "R!2", Deleted: true}, {ID: "R!404", Deleted: true}}, "link-2"))
	for _, id := range []string{"R!2", "R!3", "R!4"} {
		_, err := s.Item(id)
		assert.ErrorIs(t, err, ErrNotFound, id)
	}
	kids, _ := s.Children("R!1")
	assert.Equal(t, []string{"g", "keep"}, names(kids))
	link, err := s.DeltaLink()
	require.NoError(t, err)
	assert.Equal(t, "link-2", link)
	assert.ErrorIs(t, s.Update(func(tx *Tx) error { return tx.Delete("R!404") }), ErrNotFound)
}

func TestApplyDeltaIsAtomic(t *testing.T) {
	s := openTemp(t)
	require.NoError(t, s.ApplyDelta([]*remote.Item{root(), file("R!2", "R!1", "a")}, "link-1"))
	// A page that fails half-way (an item without an id) changes nothing.
	err := s.ApplyDelta([]*remote.Item{file("R!2", "R!1", "renamed"), file("R!3", "R!1", "new"), {Name: "no id"}}, "link-2")
	require.Error(t, err)
	kids, _ := s.Children("R!1")
	assert.Equal(t, []string{"a"}, names(kids))
	link, _ := s.DeltaLink()
	assert.Equal(t, "link-1", link)
	// A page without a link (more pages follow) keeps the saved one.
	require.NoError(t, s.ApplyDelta([]*remote.Item{file("R!3", "R!1", "new")}, ""))
	link, _ = s.DeltaLink()
	assert.Equal(t, "link-1", link)
}

func TestNoDownloadURLOnDisk(t *testing.T) {
	s := openTemp(t)
	it := file("R!2", "R!1", "secret.txt")
	it.DownloadURL = "https://download.invalid/tempauth=SECRET-CREDENTIAL-TOKEN"
	require.NoError(t, s.ApplyDelta([]*remote.Item{root(), it}, ""))
	got, err := s.Item("R!2")
	require.NoError(t, err)
	assert.Empty(t, got.DownloadURL)
	require.NoError(t, s.Close())
	raw, err := os.ReadFile(s.Path())
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "SECRET-CREDENTIAL-TOKEN")
	assert.Contains(t, string(raw), "secret.txt", "the file is the store")
}

func TestValuesAndReset(t *testing.T) {
	s := openTemp(t)
	require.NoError(t, s.ApplyDelta([]*remote.Item{root(), file("R!2", "R!1", "a")}, "link"))
	require.NoError(t, s.Update(func(tx *Tx) error { return tx.SetValue("lastSync", []byte("yesterday")) }))
	require.Error(t, s.Update(func(tx *Tx) error { return tx.SetValue("", []byte("x")) }))
	require.NoError(t, s.Update(func(tx *Tx) error { return tx.Reset() }))
	require.NoError(t, s.View(func(tx *ReadTx) error {
		assert.Zero(t, tx.Count())
		assert.Empty(t, tx.RootID())
		assert.Empty(t, tx.DeltaLink())
		assert.Equal(t, []byte("yesterday"), tx.Value("lastSync"), "values survive a reset")
		assert.Nil(t, tx.Value("other"))
		return nil
	}))
	require.NoError(t, s.Update(func(tx *Tx) error { return tx.SetValue("lastSync", nil) }))
	require.NoError(t, s.View(func(tx *ReadTx) error {
		assert.Nil(t, tx.Value("lastSync"))
		return nil
	}))
}

func TestWalk(t *testing.T) {
	s := openTemp(t)
	require.NoError(t, s.ApplyDelta([]*remote.Item{root(), folder("R!2", "R!1", "b"), folder("R!3", "R!1", "A"),
		file("R!4", "R!3", "z"), file("R!5", "R!2", "y"), folder("R!6", "R!2", "skip"), file("R!7", "R!6", "hidden"),
		file("R!8", "R!404", "orphan")}, ""))
	var paths []string
	require.NoError(t, s.View(func(tx *ReadTx) error {
		return tx.Walk(func(path string, it *remote.Item) error {
			paths = append(paths, path)
			if it.Name == "skip" {
				return ErrSkipChildren
			}
			return nil
		})
	}))
	assert.Equal(t, []string{"", "/A", "/A/z", "/b", "/b/skip", "/b/y"}, paths)
	stop := errors.New("stop")
	n := 0
	err := s.View(func(tx *ReadTx) error {
		return tx.Walk(func(string, *remote.Item) error {
			if n++; n == 3 {
				return stop
			}
			return nil
		})
	})
	assert.ErrorIs(t, err, stop)
}

func TestPersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := Open(path)
	require.NoError(t, err)
	require.NoError(t, s.ApplyDelta([]*remote.Item{root(), file("R!2", "R!1", "a")}, "link-9"))
	require.NoError(t, s.Close())
	s, err = Open(path)
	require.NoError(t, err)
	defer s.Close()
	it, err := s.Child("R!1", "A")
	require.NoError(t, err)
	assert.Equal(t, "R!2", it.ID)
	link, _ := s.DeltaLink()
	assert.Equal(t, "link-9", link)
}

func TestOpenRefusals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := Open(path)
	require.NoError(t, err)
	_, err = Open(path)
	assert.ErrorIs(t, err, ErrLocked, "a second opener waits a moment, then gives up")
	require.NoError(t, s.Close())

	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyVersion, []byte("99")) }))
	require.NoError(t, db.Close())
	_, err = Open(path)
	assert.ErrorIs(t, err, ErrVersion)

	_, err = Open(filepath.Join(t.TempDir(), "missing", "meta.db"))
	assert.Error(t, err)

	notADB := filepath.Join(t.TempDir(), "junk.db")
	require.NoError(t, os.WriteFile(notADB, []byte(fmt.Sprint("not a database", make([]byte, 8192))), 0o600))
	_, err = Open(notADB)
	assert.Error(t, err)
}

// Readers see whole transactions: the delta link and the items it goes
// with, never a page half applied, while a writer applies page after page.
func TestReadersSeeWholeTransactions(t *testing.T) {
	s := openTemp(t)
	require.NoError(t, s.ApplyDelta([]*remote.Item{root()}, "link-0"))
	const pages, perPage = 40, 25
	done := make(chan error, 1)
	go func() {
		for i := 1; i <= pages; i++ {
			var page []*remote.Item
			for j := range perPage {
				page = append(page, file(fmt.Sprintf("P!%d.%d", i, j), "R!1", fmt.Sprintf("p%03d-%03d", i, j)))
			}
			if err := s.ApplyDelta(page, fmt.Sprintf("link-%d", i)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	reads := 0
	for finished := false; !finished; {
		select {
		case err := <-done:
			require.NoError(t, err)
			finished = true
		default:
		}
		require.NoError(t, s.View(func(tx *ReadTx) error {
			var n int
			_, err := fmt.Sscanf(tx.DeltaLink(), "link-%d", &n)
			require.NoError(t, err)
			kids := 0
			require.NoError(t, tx.EachChild("R!1", func(*remote.Item) error { kids++; return nil }))
			assert.Equal(t, n*perPage, kids, "link %d", n)
			return nil
		}))
		reads++
	}
	t.Logf("%d consistent reads during %d pages", reads, pages)
}

func TestEachValue(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"))
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Update(func(tx *Tx) error {
		for _, k := range []string{"a/2", "a/1", "b/1", "a"} {
			if err := tx.SetValue(k, []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	}))
	var got []string
	require.NoError(t, s.View(func(tx *ReadTx) error {
		return tx.EachValue("a/", func(k string, v []byte) error {
			got = append(got, k+"="+string(v))
			return nil
		})
	}))
	require.Equal(t, []string{"a/1=va/1", "a/2=va/2"}, got)
}

func TestCountChildFolders(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"))
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Update(func(tx *Tx) error {
		for _, it := range []*remote.Item{
			{ID: "r", IsRoot: true, IsFolder: true, Name: "root"},
			{ID: "a", ParentID: "r", Name: "a", IsFolder: true},
			{ID: "b", ParentID: "r", Name: "b.txt"},
			{ID: "c", ParentID: "r", Name: "c", IsFolder: true},
			{ID: "d", ParentID: "a", Name: "d", IsFolder: true},
		} {
			if err := tx.Put(it); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, s.View(func(tx *ReadTx) error {
		n, err := tx.CountChildFolders("r")
		require.NoError(t, err)
		require.Equal(t, 2, n)
		n, err = tx.CountChildFolders("b")
		require.NoError(t, err)
		require.Zero(t, n)
		return nil
	}))
}
