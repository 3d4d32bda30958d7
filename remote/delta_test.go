package remote

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDeltaPagesDeletedItemsAndLink(t *testing.T) {
	var seen requestLog
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requireBearer(t, r)
		seen.add(r.RequestURI)
		switch r.URL.Query().Get("token") {
		case "saved":
			replyJSON(w, http.StatusOK, map[string]any{
				"value":           []any{itemJSON("A!1", "first.txt", 1)},
				"@odata.nextLink": "http://" + r.Host + drivePrefix + "/root/delta?token=page2",
			})
		case "page2":
			replyJSON(w, http.StatusOK, graphFixtureFor(t, "delta-page.json", r))
		default:
			t.Errorf("unexpected %s", r.RequestURI)
		}
	}))
	saved := env.srv.URL + drivePrefix + "/root/delta?token=saved"
	page, err := env.c.Delta(context.Background(), saved)
	require.NoError(t, err)
	require.Len(t, page.Items, 4)
	assert.Equal(t, "A!1", page.Items[0].ID)
	assert.True(t, page.Items[1].IsRoot)
	assert.Equal(t, "EB6D096301B2BF10!1001", page.Items[2].ParentID)
	assert.Empty(t, page.Items[2].ParentPath, "delta omits paths")
	assert.False(t, page.Items[2].Deleted)
	assert.True(t, page.Items[3].Deleted)
	assert.Equal(t, "EB6D096301B2BF10!1999", page.Items[3].ID)
	assert.Equal(t, env.srv.URL+"/v1.0/me/drive/root/delta?token=MzslMjM0OyUyMzE7Mzs3YjJlZjQ0Ny1hYmNkLTQ", page.DeltaLink)
	assert.Equal(t, "MzslMjM0OyUyMzE7Mzs3YjJlZjQ0Ny1hYmNkLTQ", DeltaToken(page.DeltaLink))
	assert.Equal(t, []string{drivePrefix + "/root/delta?token=saved", drivePrefix + "/root/delta?token=page2"}, seen.all())
}

func TestDeltaStartingPoints(t *testing.T) {
	var seen requestLog
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.add(r.RequestURI)
		replyJSON(w, http.StatusOK, map[string]any{"value": []any{},
			"@odata.deltaLink": "http://" + r.Host + drivePrefix + "/root/delta?token=next"})
	}))
	ctx := context.Background()
	for _, link := range []string{"", "latest", "a token/with+odd=chars"} {
		page, err := env.c.Delta(ctx, link)
		require.NoError(t, err)
		assert.Empty(t, page.Items)
		assert.Equal(t, "next", DeltaToken(page.DeltaLink))
	}
	assert.Equal(t, []string{
		drivePrefix + "/root/delta",
		drivePrefix + "/root/delta?token=latest",
		drivePrefix + "/root/delta?token=a+token%2Fwith%2Bodd%3Dchars",
	}, seen.all())
}

// A stale delta link answers 410 with a fresh link; the client reports it as
// a resync error carrying that link, which then works.
func TestDeltaStaleTokenRequiresResync(t *testing.T) {
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requireBearer(t, r)
		switch r.URL.Query().Get("token") {
		case "stale":
			w.Header().Set("Location", "http://"+r.Host+drivePrefix+"/root/delta?token=fresh")
			replyJSON(w, http.StatusGone, graphFixture(t, "error-resync.json"))
		case "fresh":
			replyJSON(w, http.StatusOK, map[string]any{"value": []any{itemJSON("x", "x", 1)},
				"@odata.deltaLink": "http://" + r.Host + drivePrefix + "/root/delta?token=after"})
		}
	}))
	ctx := context.Background()
	_, err := env.c.Delta(ctx, env.srv.URL+drivePrefix+"/root/delta?token=stale")
	require.ErrorIs(t, err, ErrResyncRequired)
	var e *Error
	require.True(t, errors.As(err, &e))
	assert.Equal(t, "resyncRequired", e.Code)
	assert.Equal(t, "resyncChangesApplyDifferences", e.InnerCode)
	assert.Equal(t, env.srv.URL+drivePrefix+"/root/delta?token=fresh", e.Location)

	page, err := env.c.Delta(ctx, e.Location)
	require.NoError(t, err)
	assert.Len(t, page.Items, 1)
}

func TestDeltaPagesCallbackStops(t *testing.T) {
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		replyJSON(w, http.StatusOK, map[string]any{"value": []any{itemJSON("x", "x", 1)},
			"@odata.nextLink": "http://" + r.Host + drivePrefix + "/root/delta?token=more"})
	}))
	stop := errors.New("enough")
	_, err := env.c.DeltaPages(context.Background(), "", func([]*Item) error { return stop })
	require.ErrorIs(t, err, stop)
}

func TestDeltaLinkToAnotherHostRefused(t *testing.T) {
	env := newClientEnv(t, http.NotFoundHandler())
	_, err := env.c.Delta(context.Background(), "https://elsewhere.example/v1.0/me/drive/root/delta?token=x")
	require.Error(t, err)
}

func TestDeltaToken(t *testing.T) {
	cases := map[string]string{
		"https://graph.microsoft.com/v1.0/me/drive/root/delta?token=abc%3D":        "abc=",
		"https://graph.microsoft.com/v1.0/me/drive/root/delta(token='1230919asd')": "1230919asd",
		"https://graph.microsoft.com/v1.0/me/drive/root/delta":                     "",
		"https://graph.microsoft.com/v1.0/me/drive/root/delta?$select=id":          "",
	}
	for in, want := range cases {
		assert.Equal(t, want, DeltaToken(in), in)
	}
}
