package remote_test

// Integration tests of limits the client learns from the service. Replies
// lost after the service acted are tested against the fake's own fault
// (DropNextReplies, DropReplyEvery) in integration_forms_test.go.

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

func TestIntegrationSimpleUploadCapLowerThanClient(t *testing.T) {
	t.Parallel()
	// The service's simple-upload cap is not certain (docs/graph-contract.md
	// §3: 4 MB in older documents, 4 MiB in rclone, 250 MB today). A service
	// whose cap is below the client's answers 413; the client must still get
	// the file there, through a session.
	e := newEnv(t, envConfig{fake: graphtest.Options{SimpleUploadLimit: 1 << 20}})
	content := pattern(3<<20, 20)
	mtime := time.Date(2016, 6, 6, 6, 6, 6, 0, time.UTC)
	it, err := e.client.Upload(e.ctx, remote.UploadRequest{ParentID: e.rootID(), Name: "mid.bin",
		Content: bytes.NewReader(content), Size: int64(len(content)), FSModified: mtime})
	require.NoError(t, err)
	assert.Equal(t, qxh(content), it.QuickXorHash)
	assert.True(t, mtime.Equal(it.FSModified))
	got, err := e.fake.ReadFile("/mid.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(content, got))
}
