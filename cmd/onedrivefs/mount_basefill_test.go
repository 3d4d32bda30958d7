package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// edited returns base with p written at off.
func edited(base []byte, off int, p string) []byte {
	out := append([]byte(nil), base...)
	copy(out[off:], p)
	return out
}

// Issue 12: a write into an existing large file does not first wait for the
// whole file; only the ranges not written are fetched, at upload time at the
// latest. A real program (dd conv=notrunc) edits a 48 MiB file: the service
// ends with the base and the edit, and each byte of the base came down at
// most once.
func TestMountEditOfLargeFileFetchesTheRestOnce(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	base := randomBytes(t, 48<<20)
	_, err := env.srv.PutFile("/big.bin", base, time.Time{})
	require.NoError(t, err)
	env.mount()
	env.sh("ls -l big.bin >/dev/null")
	env.srv.ResetStats()

	const off = 20_000_001
	env.sh("printf 'EDIT' | dd of=big.bin bs=1 seek=20000001 conv=notrunc status=none")
	assert.Equal(t, "EDIT", env.sh("dd if=big.bin bs=1 skip=20000001 count=4 status=none"))
	got, err := env.srv.ReadFile("/big.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(edited(base, off, "EDIT"), got), "the service holds the base with the edit")
	st := env.srv.Stats()
	assert.LessOrEqual(t, st.BytesDownloaded, int64(len(base)), "the base came down at most once")
	t.Logf("measured: %d bytes downloaded for a 4-byte edit of %d bytes", st.BytesDownloaded, len(base))
}

// The same edit made with the service gone, of a file never read: accepted
// at once (nothing of the file is here) and journaled with the ranges still
// missing; the daemon killed with -9 and mounted again offline, then the
// service back: the replay fetches the rest and the service holds the base
// with the edit — no hole sent as zeros, nothing lost. (Reading the edit
// back offline needs the kernel's whole pages around it, which are not
// here: EIO, as for any byte not available offline.)
func TestMountOfflineEditOfUncachedFileSurvivesKill(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	base := randomBytes(t, 16<<20)
	_, err := env.srv.PutFile("/big.bin", base, time.Time{})
	require.NoError(t, err)
	env.mount()
	env.sh("ls -l big.bin >/dev/null")

	env.setNetwork(graphtest.NetworkRefuse)
	const off = 9_000_000
	env.sh("printf 'EDITED OFFLINE' | dd of=big.bin bs=1 seek=9000000 conv=notrunc status=none")
	env.kill()

	env.mount()
	assert.Contains(t, env.stderr.String(), "starting offline")
	assert.Equal(t, "16777216\n", env.sh("stat -c %s big.bin"), "the journaled file shows after the remount")
	env.setNetwork(graphtest.NetworkUp)
	want := edited(base, off, "EDITED OFFLINE")
	eventually(t, backOnlineWait, func() bool {
		got, err := env.srv.ReadFile("/big.bin")
		return err == nil && bytes.Equal(want, got)
	}, "the service holds the base with the offline edit")
	assert.Equal(t, "EDITED OFFLINE", env.sh("dd if=big.bin bs=1 skip=9000000 count=14 status=none"))
	eventually(t, backOnlineWait, func() bool { return strings.Contains(env.stderr.String(), "back online") },
		"the log says the mount is back online")
}
