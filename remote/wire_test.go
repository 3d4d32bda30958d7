package remote

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func decodeItemFixture(t *testing.T, name string) *Item {
	t.Helper()
	var w wireItem
	require.NoError(t, json.Unmarshal(graphFixture(t, name), &w))
	return w.toItem()
}

func TestDriveItemFixtures(t *testing.T) {
	file := decodeItemFixture(t, "driveitem-file.json")
	assert.Equal(t, &Item{
		ID:           "01NKDM7HMOJTVYMDOSXFDK2QJDXCDI3WUK",
		Name:         "Report Q1.docx",
		DriveID:      "b!t18F8ybsHUq1z3LTz8xvZqP8zaSWjkFNhsME-Fepo75dTf9vQKfeRblBZjoSQrd7",
		ParentID:     "01NKDM7HN6Y2GOVW7725BZO354PWSELRRZ",
		ParentPath:   "/drives/b!t18F8ybsHUq1z3LTz8xvZqP8zaSWjkFNhsME-Fepo75dTf9vQKfeRblBZjoSQrd7/root:/Documents",
		Size:         11,
		ETag:         `"{0F4B2B26-CF55-4F4A-B2A7-3F3A9E0A2C51},7"`,
		CTag:         `"c:{0F4B2B26-CF55-4F4A-B2A7-3F3A9E0A2C51},4"`,
		QuickXorHash: "aCgDG9jwBhDc4Q1yawMZAAAAAAA=",
		MimeType:     "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
		Created:      time.Date(2016, 3, 21, 20, 1, 37, 0, time.UTC),
		Modified:     time.Date(2016, 3, 21, 20, 1, 37, 123e6, time.UTC),
		FSCreated:    time.Date(2016, 3, 20, 11, 0, 0, 0, time.UTC),
		FSModified:   time.Date(2016, 3, 21, 19, 59, 58, 0, time.UTC),
		WebURL:       "https://contoso-my.sharepoint.com/personal/ryan_contoso_com/Documents/Documents/Report%20Q1.docx",
		DownloadURL:  "https://public.dm.files.1drv.com/y4mFAKEdownloadTOKEN/Report%20Q1.docx?download&psid=1",
	}, file)

	folder := decodeItemFixture(t, "driveitem-folder-personal.json")
	assert.True(t, folder.IsFolder)
	assert.False(t, folder.IsRoot)
	assert.Equal(t, 3, folder.ChildCount)
	assert.Equal(t, "Pictures #1 & 100% done", folder.Name)
	assert.Equal(t, "/drive/root:", folder.ParentPath)
	assert.NotEmpty(t, folder.CTag, "folders on Personal have a cTag")

	root := decodeItemFixture(t, "driveitem-root.json")
	assert.True(t, root.IsRoot)
	assert.True(t, root.IsFolder)
	assert.Empty(t, root.ParentID, "the root has no parent id")
	assert.Equal(t, "eb6d096301b2bf10", root.DriveID)

	direct := decodeItemFixture(t, "driveitem-direct-api.json")
	assert.Equal(t, "https://public.bn1302.livefilestore.com/y2pFAKETOKEN/notes.txt", direct.DownloadURL,
		"the direct API's @content.downloadUrl is accepted")
	assert.Equal(t, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", direct.SHA256)
	assert.Empty(t, direct.Package, "package: null is no package")

	note := decodeItemFixture(t, "driveitem-onenote.json")
	assert.Equal(t, "oneNote", note.Package)
	assert.False(t, note.IsFolder)
}

func TestWireTime(t *testing.T) {
	cases := map[string]time.Time{
		`"2016-03-21T20:01:37Z"`:         time.Date(2016, 3, 21, 20, 1, 37, 0, time.UTC),
		`"2016-03-21T20:01:37.1234567Z"`: time.Date(2016, 3, 21, 20, 1, 37, 123456700, time.UTC),
		`"2016-03-21T22:01:37+02:00"`:    time.Date(2016, 3, 21, 20, 1, 37, 0, time.UTC),
		`"2016-03-21T20:01:37"`:          time.Date(2016, 3, 21, 20, 1, 37, 0, time.UTC),
		`"0001-01-01T00:00:00Z"`:         {},
		`""`:                             {},
		`null`:                           {},
		`"garbage"`:                      {},
	}
	for in, want := range cases {
		var wt wireTime
		require.NoError(t, json.Unmarshal([]byte(in), &wt), in)
		assert.True(t, want.Equal(wt.Time), "%s: got %v", in, wt.Time)
	}
	b, err := json.Marshal(wireTime{time.Date(2024, 1, 2, 3, 4, 5, 600e6, time.FixedZone("x", 3600))})
	require.NoError(t, err)
	assert.Equal(t, `"2024-01-02T02:04:05.6Z"`, string(b), "UTC with a literal Z")
}

func TestUploadSessionFixture(t *testing.T) {
	var s wireUploadSession
	require.NoError(t, json.Unmarshal(graphFixture(t, "upload-session.json"), &s))
	assert.Equal(t, "https://sn3302.up.1drv.com/up/fe6987415ace7X4e1eF866337", s.UploadURL)
	assert.Equal(t, int64(12345), firstRangeStart(s.NextExpectedRanges))
	assert.Equal(t, int64(-1), firstRangeStart(nil))
	assert.Equal(t, int64(26), firstRangeStart([]string{"26-"}))
	assert.Equal(t, int64(-1), firstRangeStart([]string{"x-"}))
}

func TestErrorFixtures(t *testing.T) {
	cases := []struct {
		file               string
		status             int
		code, inner, reqID string
		is                 []error
		isNot              []error
	}{
		{"error-itemnotfound.json", 404, "itemNotFound", "", "8c1e1f5e-9a0e-4f3e-b9a3-6f2a1c9d0e11",
			[]error{ErrNotFound}, []error{ErrConflict, ErrInvalidName}},
		{"error-invalidname.json", 400, "invalidRequest", "nameContainsInvalidCharacters", "b1a2c3d4-0000-4000-8000-000000000001",
			[]error{ErrInvalidName}, []error{ErrNotFound}},
		// A bare invalidRequest (the trailing-character case) is not
		// recognised: only codes are matched, never messages.
		{"error-trailing-character.json", 400, "invalidRequest", "", "17d20551-9958-4195-8184-ccd45c1b5e31",
			nil, []error{ErrInvalidName}},
		{"error-nested-innererror.json", 416, "invalidRange", "fragmentOverlap", "",
			[]error{ErrInvalidRange}, nil},
		{"error-resync.json", 410, "resyncRequired", "resyncChangesApplyDifferences", "0f0e0d0c-0b0a-4909-8807-060504030201",
			[]error{ErrResyncRequired}, nil},
		{"error-throttled.json", 429, "activityLimitReached", "throttledRequest", "aa0e0d0c-0b0a-4909-8807-060504030201",
			[]error{ErrThrottled}, nil},
		{"error-unauthenticated.json", 401, "InvalidAuthenticationToken", "", "cc0e0d0c-0b0a-4909-8807-060504030201",
			[]error{ErrUnauthorized}, nil},
		{"error-quota.json", 507, "quotaLimitReached", "", "dd0e0d0c-0b0a-4909-8807-060504030201",
			[]error{ErrQuotaExceeded}, []error{ErrThrottled}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			e := errorFromBody("test", tc.status, http.Header{}, graphFixture(t, tc.file), time.Now())
			assert.Equal(t, tc.status, e.StatusCode)
			assert.Equal(t, tc.code, e.Code)
			assert.Equal(t, tc.inner, e.InnerCode)
			assert.Equal(t, tc.reqID, e.RequestID)
			assert.NotEmpty(t, e.Message)
			for _, target := range tc.is {
				assert.ErrorIs(t, e, target)
			}
			for _, target := range tc.isNot {
				assert.NotErrorIs(t, e, target)
			}
		})
	}
}

// Sentinels follow from the code alone (a 400 carrying itemNotFound) and
// from the status alone (a body that is not JSON).
func TestErrorMatching(t *testing.T) {
	byCode := errorFromBody("x", 400, http.Header{}, []byte(`{"error":{"code":"itemNotFound"}}`), time.Now())
	assert.ErrorIs(t, byCode, ErrNotFound)

	html := errorFromBody("x", 502, http.Header{"Request-Id": {"hdr-id"}}, []byte("<html>Bad Gateway</html>"), time.Now())
	assert.Empty(t, html.Code)
	assert.Equal(t, "hdr-id", html.RequestID)
	for _, s := range []error{ErrNotFound, ErrConflict, ErrThrottled, ErrInvalidName} {
		assert.NotErrorIs(t, html, s)
	}

	statuses := map[int]error{404: ErrNotFound, 409: ErrConflict, 412: ErrPreconditionFailed, 429: ErrThrottled,
		503: ErrThrottled, 401: ErrUnauthorized, 403: ErrForbidden, 507: ErrQuotaExceeded, 410: ErrResyncRequired,
		416: ErrInvalidRange}
	for status, want := range statuses {
		assert.ErrorIs(t, errorFromBody("x", status, http.Header{}, nil, time.Now()), want, "%d", status)
	}

	e := errorFromBody("get item", 404, http.Header{}, graphFixture(t, "error-itemnotfound.json"), time.Now())
	assert.Equal(t, "remote: get item: 404 Not Found (itemNotFound): Item does not exist [request-id 8c1e1f5e-9a0e-4f3e-b9a3-6f2a1c9d0e11]", e.Error())
}

// TestErrorKeepsLocationOnlyForResync: a Location header may be a
// pre-authenticated URL (a copy monitor, a download host); only delta's
// fresh link after a 410 is kept in the *Error.
func TestErrorKeepsLocationOnlyForResync(t *testing.T) {
	h := http.Header{"Location": {"https://host.test/preauth?sig=secret"}}
	assert.Empty(t, errorFromBody("start copy", http.StatusFound, h, nil, time.Now()).Location)
	assert.Empty(t, errorFromBody("download", http.StatusForbidden, h, nil, time.Now()).Location)
	assert.Equal(t, "https://host.test/preauth?sig=secret",
		errorFromBody("delta", http.StatusGone, h, nil, time.Now()).Location)
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		" 120 ":                         2 * time.Minute,
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"Mon, 06 May 2024 07:09:09 GMT": time.Minute,
		"Mon, 06 May 2024 07:00:00 GMT": 0, // in the past
	}
	for in, want := range cases {
		assert.Equal(t, want, parseRetryAfter(in, now), "%q", in)
	}
}
