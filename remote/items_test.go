package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A folder of 2,500 children is listed in 3 requests of up to 1,000, each
// following the absolute nextLink the service handed out.
func TestChildren2500InThreeRequests(t *testing.T) {
	const total = 2500
	var requests atomic.Int32
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		requireBearer(t, r)
		require.Equal(t, drivePrefix+"/items/big/children", r.URL.Path)
		top, err := strconv.Atoi(r.URL.Query().Get("$top"))
		require.NoError(t, err)
		assert.Equal(t, 1000, top)
		start, _ := strconv.Atoi(r.URL.Query().Get("$skiptoken"))
		end := min(start+top, total)
		var value []map[string]any
		for i := start; i < end; i++ {
			value = append(value, itemJSON(fmt.Sprintf("id%04d", i), fmt.Sprintf("f%04d", i), int64(i)))
		}
		page := map[string]any{"value": value}
		if end < total {
			page["@odata.nextLink"] = fmt.Sprintf("http://%s%s/items/big/children?$top=%d&$skiptoken=%d", r.Host, drivePrefix, top, end)
		}
		replyJSON(w, http.StatusOK, page)
	}))
	items, err := env.c.Children(context.Background(), "big")
	require.NoError(t, err)
	require.Len(t, items, total)
	for i, it := range items {
		require.Equal(t, fmt.Sprintf("id%04d", i), it.ID)
	}
	assert.Equal(t, int32(3), requests.Load())
}

func TestChildrenFixturePages(t *testing.T) {
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requireBearer(t, r)
		if r.URL.Query().Get("$skiptoken") == "" {
			replyJSON(w, http.StatusOK, graphFixtureFor(t, "children-page1.json", r))
			return
		}
		// The nextLink is followed verbatim, '!' and '$' included.
		assert.Equal(t, drivePrefix+"/items/EB6D096301B2BF10!101/children?$top=2&$skiptoken=UGFnZWQ9VFJVRSZwX0lEPTEwMDI", r.RequestURI)
		replyJSON(w, http.StatusOK, graphFixtureFor(t, "children-page2.json", r))
	}))
	items, err := env.c.Children(context.Background(), "EB6D096301B2BF10!101")
	require.NoError(t, err)
	require.Len(t, items, 3)
	assert.True(t, items[0].IsFolder)
	assert.Equal(t, 2, items[0].ChildCount)
	assert.Equal(t, "hello.txt", items[1].Name)
	assert.Equal(t, "aCgDG9jwBhDc4Q1yawMZAAAAAAA=", items[1].QuickXorHash)
	assert.Equal(t, "Ünïcode ☃.txt", items[2].Name)
	assert.Equal(t, time.Date(2020, 1, 4, 0, 0, 0, 123456700, time.UTC), items[2].Modified)
}

func TestNextLinkToAnotherHostRefused(t *testing.T) {
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		replyJSON(w, http.StatusOK, map[string]any{"value": []any{},
			"@odata.nextLink": "https://elsewhere.example/v1.0/me/drive/items/x/children?$skiptoken=2"})
	}))
	_, err := env.c.Children(context.Background(), "x")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "elsewhere.example")
}

func TestEscapeSegment(t *testing.T) {
	cases := map[string]string{
		"plain.txt":          "plain.txt",
		"a b":                "a%20b",
		"#1":                 "%231",
		"100%":               "100%25",
		"ü":                  "%C3%BC",
		"☃":                  "%E2%98%83",
		"a/b":                "a%2Fb",
		"a:b":                "a%3Ab",
		"q?x=1":              "q%3Fx=1",
		"x+y,z;w=v@h!$&'()*": "x+y,z;w=v@h!$&'()*",
		"tab\tnl\n":          "tab%09nl%0A",
		"~-._":               "~-._",
		"[x]{y}|\\^`\"<>":    "%5Bx%5D%7By%7D%7C%5C%5E%60%22%3C%3E",
	}
	for in, want := range cases {
		assert.Equal(t, want, escapeSegment(in), "%q", in)
	}
	assert.Equal(t, "a%20b/%23c/d", escapePath("/a b//#c/d/"))
	assert.Equal(t, "", escapePath("/"))
}

// Paths reach the server encoded segment by segment.
func TestPathAddressing(t *testing.T) {
	var seen requestLog
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requireBearer(t, r)
		seen.add(r.RequestURI)
		replyJSON(w, http.StatusOK, itemJSON("x", "x", 0))
	}), func(c *Config) { c.DriveID = "b!drive 1" })
	ctx := context.Background()
	_, err := env.c.ItemByPath(ctx, "/a b/#1 100%/ü:x")
	require.NoError(t, err)
	_, err = env.c.ItemByPath(ctx, "/")
	require.NoError(t, err)
	_, err = env.c.Child(ctx, "P!1", "new file?.txt")
	require.NoError(t, err)
	_, err = env.c.Item(ctx, "ID!7")
	require.NoError(t, err)
	_, err = env.c.Root(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"/v1.0/drives/b!drive%201/root:/a%20b/%231%20100%25/%C3%BC%3Ax:",
		"/v1.0/drives/b!drive%201/root",
		"/v1.0/drives/b!drive%201/items/P!1:/new%20file%3F.txt:",
		"/v1.0/drives/b!drive%201/items/ID!7",
		"/v1.0/drives/b!drive%201/root",
	}, seen.all())
}

func TestDriveQuota(t *testing.T) {
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requireBearer(t, r)
		require.Equal(t, drivePrefix, r.URL.Path)
		replyJSON(w, http.StatusOK, graphFixture(t, "drive.json"))
	}))
	d, err := env.c.Drive(context.Background())
	require.NoError(t, err)
	assert.Equal(t, &Drive{ID: "eb6d096301b2bf10", DriveType: "personal", Owner: "Ryan Gregg", Quota: Quota{
		Total: 1099511627776, Used: 294018707, Remaining: 1099217352131, Deleted: 256938, State: "normal"}}, d)
}

func TestCreateFolder(t *testing.T) {
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requireBearer(t, r)
		require.Equal(t, http.MethodPost, r.Method)
		require.Equal(t, drivePrefix+"/items/parent/children", r.URL.Path)
		var body map[string]any
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		assert.Equal(t, map[string]any{"name": "New Folder", "folder": map[string]any{},
			"@microsoft.graph.conflictBehavior": "fail"}, body)
		it := itemJSON("new", "New Folder", 0)
		delete(it, "file")
		it["folder"] = map[string]any{"childCount": 0}
		replyJSON(w, http.StatusCreated, it)
	}))
	it, err := env.c.CreateFolder(context.Background(), "parent", "New Folder", ConflictFail)
	require.NoError(t, err)
	assert.True(t, it.IsFolder)
	assert.Equal(t, "new", it.ID)
}

func TestCreateFolderConflict(t *testing.T) {
	var posts atomic.Int32
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		graphError(w, http.StatusConflict, "nameAlreadyExists", "")
	}))
	_, err := env.c.CreateFolder(context.Background(), "parent", "x", ConflictFail)
	require.ErrorIs(t, err, ErrConflict)
	assert.Equal(t, int32(1), posts.Load(), "a first-attempt conflict is the caller's")
}

// The first POST creates the folder but its reply is lost; the repeated
// POST meets 409, and the client recognises its own folder.
func TestCreateFolderConflictAfterLostReply(t *testing.T) {
	var hits hitCounter
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requireBearer(t, r)
		switch {
		case r.Method == http.MethodPost:
			_, _ = io.Copy(io.Discard, r.Body)
			if hits.inc("post") == 1 {
				breakConn()
			}
			graphError(w, http.StatusConflict, "nameAlreadyExists", "")
		case r.RequestURI == drivePrefix+"/items/parent:/Docs:":
			hits.inc("get")
			it := itemJSON("docs", "Docs", 0)
			delete(it, "file")
			it["folder"] = map[string]any{}
			replyJSON(w, http.StatusOK, it)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.RequestURI)
		}
	}))
	it, err := env.c.CreateFolder(context.Background(), "parent", "Docs", ConflictFail)
	require.NoError(t, err)
	assert.Equal(t, "docs", it.ID)
	assert.Equal(t, 2, hits.get("post"))
	assert.Equal(t, 1, hits.get("get"))
}

func TestCreateFolderRenameNotRepeated(t *testing.T) {
	var posts atomic.Int32
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		breakConn()
	}))
	_, err := env.c.CreateFolder(context.Background(), "parent", "x", ConflictRename)
	require.ErrorIs(t, err, ErrOutcomeUnknown)
	assert.Equal(t, int32(1), posts.Load())
}

func TestUpdate(t *testing.T) {
	mtime := time.Date(2023, 4, 5, 6, 7, 8, 0, time.UTC)
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requireBearer(t, r)
		require.Equal(t, http.MethodPatch, r.Method)
		assert.Equal(t, drivePrefix+"/items/it1", r.URL.Path)
		assert.Equal(t, "replace", r.URL.Query().Get("@microsoft.graph.conflictBehavior"))
		if r.Header.Get("If-Match") != "etag-1" {
			graphError(w, http.StatusPreconditionFailed, "resourceModified", "")
			return
		}
		var body map[string]any
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		assert.Equal(t, map[string]any{
			"name":            "renamed.txt",
			"parentReference": map[string]any{"id": "newparent"},
			"fileSystemInfo":  map[string]any{"lastModifiedDateTime": "2023-04-05T06:07:08Z"},
		}, body)
		replyJSON(w, http.StatusOK, itemJSON("it1", "renamed.txt", 5))
	}))
	u := ItemUpdate{Name: "renamed.txt", ParentID: "newparent", FSModified: mtime, IfMatch: "etag-1", Conflict: ConflictReplace}
	it, err := env.c.Update(context.Background(), "it1", u)
	require.NoError(t, err)
	assert.Equal(t, "renamed.txt", it.Name)

	u.IfMatch = "stale"
	_, err = env.c.Update(context.Background(), "it1", u)
	require.ErrorIs(t, err, ErrPreconditionFailed)
}

// A PATCH with If-Match whose first attempt landed (reply lost) meets 412
// when repeated; the client sees its change applied and succeeds.
func TestUpdateAfterLostReply(t *testing.T) {
	var hits hitCounter
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPatch:
			_, _ = io.Copy(io.Discard, r.Body)
			if hits.inc("patch") == 1 {
				breakConn()
			}
			graphError(w, http.StatusPreconditionFailed, "resourceModified", "")
		case http.MethodGet:
			hits.inc("get")
			replyJSON(w, http.StatusOK, itemJSON("it1", "renamed.txt", 5))
		}
	}))
	it, err := env.c.Update(context.Background(), "it1", ItemUpdate{Name: "renamed.txt", IfMatch: "etag-1"})
	require.NoError(t, err)
	assert.Equal(t, "renamed.txt", it.Name)
	assert.Equal(t, 2, hits.get("patch"))
	assert.Equal(t, 1, hits.get("get"))

	// Had someone else changed it, the 412 stands.
	_, err = env.c.Update(context.Background(), "it1", ItemUpdate{Name: "other.txt", IfMatch: "etag-1"})
	require.ErrorIs(t, err, ErrPreconditionFailed)
}

func TestDelete(t *testing.T) {
	var hits hitCounter
	env := newClientEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requireBearer(t, r)
		require.Equal(t, http.MethodDelete, r.Method)
		switch r.URL.Path {
		case drivePrefix + "/items/ok":
			assert.Equal(t, "etag-ok", r.Header.Get("If-Match"))
			w.WriteHeader(http.StatusNoContent)
		case drivePrefix + "/items/changed":
			graphError(w, http.StatusPreconditionFailed, "resourceModified", "")
		case drivePrefix + "/items/lost":
			if hits.inc("lost") == 1 {
				breakConn()
			}
			graphError(w, http.StatusNotFound, "itemNotFound", "")
		case drivePrefix + "/items/missing":
			graphError(w, http.StatusNotFound, "itemNotFound", "")
		}
	}))
	ctx := context.Background()
	require.NoError(t, env.c.Delete(ctx, "ok", "etag-ok"))
	require.ErrorIs(t, env.c.Delete(ctx, "changed", "etag"), ErrPreconditionFailed)
	require.NoError(t, env.c.Delete(ctx, "lost", ""), "404 after a lost reply: our own delete")
	require.ErrorIs(t, env.c.Delete(ctx, "missing", ""), ErrNotFound)
}
