package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// A 300 MiB file written through the mount goes up in an upload session and
// reads back identical.
func TestMountLargeFileRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("300 MiB round trip")
	}
	env := newMountEnv(t, graphtest.Options{})
	env.mount()

	env.sh("head -c 314572800 /dev/urandom > /tmp/odfs-big.$$ && cp /tmp/odfs-big.$$ big.bin && " +
		"sha256sum < /tmp/odfs-big.$$ > big.sum.local && rm /tmp/odfs-big.$$")
	st := env.srv.Stats()
	assert.Greater(t, st.Requests["upload.fragment"], int64(1), "uploaded in a session: %v", st.Requests)
	data, err := env.srv.ReadFile("/big.bin")
	require.NoError(t, err)
	require.Len(t, data, 300<<20)
	sum := sha256.Sum256(data)
	want := strings.Fields(env.sh("cat big.sum.local"))[0]
	assert.Equal(t, want, hex.EncodeToString(sum[:]), "server content")

	got := strings.Fields(env.sh("sha256sum < big.bin"))[0]
	assert.Equal(t, want, got, "read back through the mount")
}

// Reading the start of a 5 GiB file downloads a little, not the file.
func TestMountReadStartOfHugeFile(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.SparseFile("/huge.iso", 5<<30, []byte("TAIL"))
	require.NoError(t, err)
	env.mount()
	env.srv.ResetStats()
	out := env.sh("head -c 4096 huge.iso | wc -c")
	assert.Equal(t, "4096", strings.TrimSpace(out))
	assert.Less(t, env.srv.Stats().BytesDownloaded, int64(64<<20))
	assert.Equal(t, "TAIL", env.sh("tail -c 4 huge.iso"))
	assert.Less(t, env.srv.Stats().BytesDownloaded, int64(128<<20))
}

func TestMountManySmallFilesConcurrently(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.mount()
	env.sh("mkdir many")
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			name := env.path(fmt.Sprintf("many/f%03d.txt", i))
			if err := os.WriteFile(name, []byte(fmt.Sprintf("content %d\n", i)), 0o644); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, err := env.srv.List("/many")
	require.NoError(t, err)
	assert.Len(t, list, 100)
	for i := range 100 {
		got, err := env.srv.ReadFile(fmt.Sprintf("/many/f%03d.txt", i))
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("content %d\n", i), string(got))
	}
	assert.Len(t, lines(env.sh("ls many")), 100)
}

// A change made directly on the service shows up within one poll interval
// (the mount polls every second in these tests).
func TestMountRemoteChangesAppear(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/r/old.txt", []byte("old"), time.Time{})
	require.NoError(t, err)
	env.mount()
	assert.Equal(t, "old.txt\n", env.sh("ls r"))
	assert.Equal(t, "old", env.sh("cat r/old.txt"))

	_, err = env.srv.PutFile("/r/new.txt", []byte("fresh"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.PutFile("/r/old.txt", []byte("changed"), time.Time{})
	require.NoError(t, err)
	eventually(t, 10*time.Second, func() bool {
		out, _ := env.shErr("ls r")
		return out == "new.txt\nold.txt\n"
	}, "the new file did not appear")
	eventually(t, 10*time.Second, func() bool {
		out, _ := env.shErr("cat r/old.txt")
		return out == "changed"
	}, "the changed content did not appear")
}

// Listing a folder of 5,000 children costs a handful of requests, and a
// repeated ls within the listing TTL costs none.
func TestMountListingRequestCounts(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	for i := range 5000 {
		_, err := env.srv.PutFile(fmt.Sprintf("/d/f%04d", i), nil, time.Time{})
		require.NoError(t, err)
	}
	env.mount("--poll-interval", "1h")
	env.srv.ResetStats()
	assert.Equal(t, 5003, len(lines(env.sh("ls -la d"))), "total, ., .. and 5,000 files")
	first := env.srv.Stats().RequestsTotal
	assert.LessOrEqual(t, first, int64(10), "%v", env.srv.Stats().Requests)
	assert.Equal(t, 5003, len(lines(env.sh("ls -la d"))))
	assert.Equal(t, first, env.srv.Stats().RequestsTotal, "%v", env.srv.Stats().Requests)
}

// kill -9 right after a close loses nothing: with the service failing
// uploads, close() succeeds once the file is in the journal, and the next
// mount sends it.
func TestMountKillAfterCloseThenRemount(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.mount()
	env.sh("echo 'sent at once' > direct.txt")
	env.kill()
	got, err := env.srv.ReadFile("/direct.txt")
	require.NoError(t, err)
	assert.Equal(t, "sent at once\n", string(got))

	env.mount()
	env.srv.SetFaults(graphtest.FaultOptions{ThrottleFor: time.Hour, ThrottleStatus: 503, Ops: []string{"upload"}})
	env.sh("echo 'journaled' > later.txt")
	env.kill()
	_, err = env.srv.ReadFile("/later.txt")
	require.Error(t, err, "the upload was refused")

	env.srv.SetFaults(graphtest.FaultOptions{})
	env.mount()
	got, err = env.srv.ReadFile("/later.txt")
	require.NoError(t, err, "replayed at mount:\n%s", env.stderr.String())
	assert.Equal(t, "journaled\n", string(got))
	assert.Equal(t, "journaled\n", env.sh("cat later.txt"))
}
