package remote_test

// Integration tests of delta: a full enumeration, token=latest, changes,
// deletions, both link forms, and an expired token.

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// byID keeps the last state of each item (delta may repeat an item).
func byID(items []*remote.Item) map[string]*remote.Item {
	m := map[string]*remote.Item{}
	for _, it := range items {
		m[it.ID] = it
	}
	return m
}

func names(items map[string]*remote.Item) map[string]bool {
	out := map[string]bool{}
	for _, it := range items {
		out[it.Name] = true
	}
	return out
}

func TestIntegrationDelta(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	for i := range 450 { // more than two default pages of 200
		e.put(fmt.Sprintf("/bulk/f%03d", i), nil)
	}
	aID := e.put("/docs/a.txt", []byte("a"))
	bID := e.put("/docs/b.txt", []byte("b"))
	docs, _ := e.fake.ItemByPath("/docs")
	e.fake.ResetStats()

	// From scratch: everything, parents before children, paged.
	full, err := e.client.Delta(e.ctx, "")
	require.NoError(t, err)
	assert.Greater(t, e.fake.Stats().Requests["delta"], int64(1), "several pages were followed")
	items := byID(full.Items)
	assert.Len(t, items, 450+2+3, "files, folders and the root")
	pos := map[string]int{}
	for i, it := range full.Items {
		pos[it.ID] = i
	}
	for _, it := range full.Items {
		assert.False(t, it.Deleted)
		assert.Empty(t, it.ParentPath, "delta omits parentReference.path")
		if it.ParentID != "" {
			p, ok := pos[it.ParentID]
			require.True(t, ok, "parent of %q listed", it.Name)
			assert.Less(t, p, pos[it.ID], "parent of %q first", it.Name)
		} else {
			assert.True(t, it.IsRoot)
		}
	}
	assert.Equal(t, docs.ID, items[aID].ParentID)
	assert.NotEmpty(t, items[aID].QuickXorHash)
	require.NotEmpty(t, full.DeltaLink)
	assert.NotEmpty(t, remote.DeltaToken(full.DeltaLink))

	// Nothing changed: nothing reported (the service may repeat the root).
	again, err := e.client.Delta(e.ctx, full.DeltaLink)
	require.NoError(t, err)
	for _, it := range again.Items {
		assert.True(t, it.IsRoot, "unexpected %q", it.Name)
	}

	// Changes through the client: a new file, a rename, a deletion, new
	// content.
	c, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: docs.ID, Name: "c.txt",
		Content: strings.NewReader("c"), Size: 1})
	require.NoError(t, err)
	_, err = e.client.Update(e.ctx, aID, remote.ItemUpdate{Name: "a2.txt"})
	require.NoError(t, err)
	require.NoError(t, e.client.Delete(e.ctx, bID, ""))
	bulk, _ := e.fake.ItemByPath("/bulk")
	require.NoError(t, e.client.Delete(e.ctx, bulk.ID, ""))

	changes, err := e.client.Delta(e.ctx, again.DeltaLink)
	require.NoError(t, err)
	ch := byID(changes.Items)
	require.Contains(t, ch, c.ID)
	assert.False(t, ch[c.ID].Deleted)
	require.Contains(t, ch, aID)
	assert.Equal(t, "a2.txt", ch[aID].Name)
	require.Contains(t, ch, bID)
	assert.True(t, ch[bID].Deleted, "deleted facet")
	require.Contains(t, ch, bulk.ID)
	assert.True(t, ch[bulk.ID].Deleted)
	deleted := 0
	for _, it := range ch {
		if it.Deleted {
			deleted++
		}
	}
	assert.Equal(t, 2+450, deleted, "the folder and every file in it")
	for _, it := range ch {
		if strings.HasPrefix(it.Name, "f") {
			assert.True(t, it.Deleted, "%q reported alive", it.Name)
		}
	}

	// A bare token works like the link.
	tok := remote.DeltaToken(changes.DeltaLink)
	next, err := e.client.Delta(e.ctx, tok)
	require.NoError(t, err)
	for _, it := range next.Items {
		assert.True(t, it.IsRoot || it.ID == docs.ID, "unexpected %q", it.Name)
	}
}

func TestIntegrationDeltaLatest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	e.put("/old.txt", []byte("old"))
	latest, err := e.client.Delta(e.ctx, "latest")
	require.NoError(t, err)
	assert.Empty(t, latest.Items)
	require.NotEmpty(t, latest.DeltaLink)

	newID := e.put("/new.txt", []byte("new"))
	d, err := e.client.Delta(e.ctx, latest.DeltaLink)
	require.NoError(t, err)
	m := byID(d.Items)
	assert.Contains(t, m, newID)
	assert.NotContains(t, names(m), "old.txt")
}

func TestIntegrationDeltaPathTokenForm(t *testing.T) {
	t.Parallel()
	// The documentation's other link form, …/delta(token='X').
	e := newEnv(t, envConfig{})
	latest, err := e.client.Delta(e.ctx, "latest")
	require.NoError(t, err)
	tok := remote.DeltaToken(latest.DeltaLink)
	require.NotEmpty(t, tok)
	newID := e.put("/p.txt", []byte("p"))
	link := e.fake.GraphURL() + "/me/drive/root/delta(token='" + url.PathEscape(tok) + "')"
	assert.Equal(t, tok, remote.DeltaToken(link))
	d, err := e.client.Delta(e.ctx, link)
	require.NoError(t, err)
	assert.Contains(t, byID(d.Items), newID)
}

func TestIntegrationDeltaResync(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	e.put("/a.txt", []byte("a"))
	first, err := e.client.Delta(e.ctx, "")
	require.NoError(t, err)

	e.fake.ExpireDeltaTokens()
	_, err = e.client.Delta(e.ctx, first.DeltaLink)
	require.Error(t, err)
	assert.ErrorIs(t, err, remote.ErrResyncRequired)
	var re *remote.Error
	require.True(t, errors.As(err, &re))
	assert.Equal(t, 410, re.StatusCode)
	assert.Equal(t, "resyncRequired", re.Code)
	require.NotEmpty(t, re.Location, "a fresh link to start from")

	// The fresh link works: a full enumeration, and a new deltaLink.
	fresh, err := e.client.Delta(e.ctx, re.Location)
	require.NoError(t, err)
	assert.Contains(t, names(byID(fresh.Items)), "a.txt")
	bID := e.put("/b.txt", []byte("b"))
	after, err := e.client.Delta(e.ctx, fresh.DeltaLink)
	require.NoError(t, err)
	assert.Contains(t, byID(after.Items), bID)

	// A bare stale token says the same.
	e.fake.ExpireDeltaTokens()
	_, err = e.client.Delta(e.ctx, remote.DeltaToken(after.DeltaLink))
	assert.ErrorIs(t, err, remote.ErrResyncRequired)
}

func TestIntegrationDeltaVisibilityDelay(t *testing.T) {
	t.Parallel()
	// Items not yet visible are left out, and reported by the next round.
	clock := &shiftClock{}
	e := newEnv(t, envConfig{fake: graphtest.Options{Clock: clock.Now}})
	latest, err := e.client.Delta(e.ctx, "latest")
	require.NoError(t, err)
	e.fake.SetFaults(graphtest.FaultOptions{VisibilityDelay: time.Minute})
	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "late.txt",
		Content: strings.NewReader("late"), Size: 4})
	require.NoError(t, err)
	d, err := e.client.Delta(e.ctx, latest.DeltaLink)
	require.NoError(t, err)
	assert.NotContains(t, byID(d.Items), it.ID)
	clock.Advance(2 * time.Minute)
	d, err = e.client.Delta(e.ctx, d.DeltaLink)
	require.NoError(t, err)
	assert.Contains(t, byID(d.Items), it.ID)
}

func TestIntegrationDeltaPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fake: graphtest.Options{PageSize: 50}})
	for i := range 120 {
		e.put(fmt.Sprintf("/f%03d", i), nil)
	}
	var sizes []int
	link, err := e.client.DeltaPages(e.ctx, "", func(items []*remote.Item) error {
		sizes = append(sizes, len(items))
		return nil
	})
	require.NoError(t, err)
	assert.NotEmpty(t, link)
	assert.Equal(t, []int{50, 50, 21}, sizes, "one call per page of the service")

	stop := errors.New("enough")
	calls := 0
	_, err = e.client.DeltaPages(e.ctx, "", func([]*remote.Item) error {
		calls++
		return stop
	})
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 1, calls)
}
