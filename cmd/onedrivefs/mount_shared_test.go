package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// Beyond the user's own drive, through a real mount: folders a second fake
// user (bob) shared and the mount's user added as shortcuts, the virtual
// "Shared with me" folder, copies out of a share, and sharing links.

// bob is the second user of a shared-folder test.
const bobID = "b0b0b0b0b0b0b0b0"

// addBob adds bob, his folders /Proj (shared read-write, added as the
// shortcut "Proj"), /Ro (read-only, shortcut "Ro") and /Loose (shared, not
// added), each with a file, and returns his drive id.
func (env *mountEnv) addBob() string {
	t := env.t
	t.Helper()
	bob, err := env.srv.AddUser(graphtest.UserOptions{ID: bobID, DisplayName: "Bob"})
	require.NoError(t, err)
	for p, content := range map[string]string{
		"/Proj/a.txt": "from bob\n", "/Ro/r.txt": "read only\n", "/Loose/l.txt": "loose\n",
	} {
		_, err := env.srv.PutFileIn(bob.DriveID, p, []byte(content), time.Time{})
		require.NoError(t, err)
	}
	me := env.srv.DefaultDriveID()
	for _, s := range []graphtest.ShareOptions{
		{Owner: bobID, Path: "/Proj", With: me, Role: "write", Shortcut: "Proj"},
		{Owner: bobID, Path: "/Ro", With: me, Role: "read", Shortcut: "Ro"},
		{Owner: bobID, Path: "/Loose", With: me, Role: "read"},
	} {
		_, err := env.srv.Share(s)
		require.NoError(t, err, "%+v", s)
	}
	return bob.DriveID
}

// bobItem returns the item at p in bob's drive.
func (env *mountEnv) bobItem(drive, p string) (graphtest.ItemInfo, bool) {
	return env.srv.ItemByPathIn(drive, p)
}

// Must show: a shortcut to a folder shared read-write is a folder: ls, cat,
// and writes that land in the owner's drive; a read-only share refuses
// every change with EACCES and a clear log line; what the owner changes
// shows within the poll interval.
func TestMountSharedFolderShortcut(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	bob := env.addBob()
	env.mount()

	assert.Equal(t, "Proj\nRo\n", env.sh("ls"))
	assert.Equal(t, "a.txt\n", env.sh("ls Proj"))
	assert.Equal(t, "from bob\n", env.sh("cat Proj/a.txt"))
	assert.Equal(t, "directory\n", env.sh("stat -c %F Proj"))

	// Writes go to bob's drive.
	env.sh("echo mine > Proj/new.txt && mkdir Proj/sub && echo deeper > Proj/sub/deep.txt && echo more >> Proj/a.txt")
	for p, size := range map[string]int64{"/Proj/new.txt": 5, "/Proj/sub/deep.txt": 7, "/Proj/a.txt": 14} {
		it, ok := env.bobItem(bob, p)
		require.True(t, ok, "%s is in bob's drive", p)
		assert.Equal(t, size, it.Size, p)
		_, inMine := env.srv.ItemByPath(p)
		assert.False(t, inMine, "%s is not in the user's own drive", p)
	}
	assert.Equal(t, "from bob\nmore\n", env.sh("cat Proj/a.txt"))
	// A move out of the share is a copy and a delete (mv sees EXDEV).
	env.sh("mv Proj/new.txt moved-out.txt")
	env.waitRemoteContent("/moved-out.txt", []byte("mine\n"), 10*time.Second, "moved into the user's drive")
	eventually(t, 10*time.Second, func() bool {
		_, ok := env.bobItem(bob, "/Proj/new.txt")
		return !ok
	}, "the source was not deleted from bob's drive once copied")

	// The read-only share: reads work, every change is EACCES.
	assert.Equal(t, "read only\n", env.sh("cat Ro/r.txt"))
	for _, cmd := range []string{
		"echo x > Ro/new.txt", "echo x >> Ro/r.txt", "mkdir Ro/d", "rm Ro/r.txt",
		"mv Ro/r.txt Ro/s.txt", "touch Ro/r.txt", "truncate -s 0 Ro/r.txt",
	} {
		out, err := env.shErr(cmd)
		require.Error(t, err, cmd)
		assert.Contains(t, out, "Permission denied", cmd)
	}
	ro, ok := env.bobItem(bob, "/Ro/r.txt")
	require.True(t, ok)
	assert.Equal(t, int64(len("read only\n")), ro.Size, "nothing changed in bob's read-only folder")
	list, err := env.srv.ListIn(bob, "/Ro")
	require.NoError(t, err)
	assert.Len(t, list, 1)
	assert.Contains(t, env.stderr.String(), `shared with you read-only (role read)`)
	assert.NotContains(t, env.stderr.String(), "journal", "nothing refused was journaled")

	// Bob changes his folder: the mount shows it within the poll interval
	// (1 s here), through the share's own delta.
	_, err = env.srv.PutFileIn(bob, "/Proj/from-bob-later.txt", []byte("later\n"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.PutFileIn(bob, "/Proj/sub/deep.txt", []byte("bob rewrote it\n"), time.Time{})
	require.NoError(t, err)
	eventually(t, 10*time.Second, func() bool {
		out, err := env.shErr("cat Proj/from-bob-later.txt Proj/sub/deep.txt")
		return err == nil && out == "later\nbob rewrote it\n"
	}, "bob's changes did not show in the mount")
	assert.Contains(t, env.sh("ls Proj"), "from-bob-later.txt")
}

// Must show: the virtual "Shared with me" folder lists what was shared and
// not added as a shortcut, read-only (EROFS).
func TestMountSharedWithMeFolder(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.addBob()
	env.sharedWithMe = true
	env.mount("--shared-with-me", "Shared with me")

	assert.Equal(t, "Proj\nRo\nShared with me\n", env.sh("ls"))
	assert.Equal(t, "Loose\n", env.sh("ls 'Shared with me'"), "only the share that is not a shortcut")
	assert.Equal(t, "loose\n", env.sh("cat 'Shared with me/Loose/l.txt'"))
	for _, cmd := range []string{
		"echo x > 'Shared with me/Loose/new.txt'", "rm 'Shared with me/Loose/l.txt'",
		"mkdir 'Shared with me/x'", "rmdir 'Shared with me'",
	} {
		out, err := env.shErr(cmd)
		require.Error(t, err, cmd)
		assert.Contains(t, out, "Read-only file system", cmd)
	}
	// Copying out of it into the user's own drive works, server-side.
	env.srv.ResetStats()
	env.sh("cp 'Shared with me/Loose/l.txt' l-copy.txt && sync .")
	requireNoBytesMoved(t, env.srv.Stats())
	assert.Equal(t, "loose\n", string(env.serverFile("/l-copy.txt")))
}

// The virtual folder is off with --no-shared-with-me (as every other mount
// test runs), and takes its name from --shared-with-me.
func TestMountSharedWithMeNamed(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.addBob()
	env.sharedWithMe = true
	env.mount("--shared-with-me", "From others")
	assert.Equal(t, "From others\nProj\nRo\n", env.sh("ls"))
	assert.Equal(t, "Loose\n", env.sh("ls 'From others'"))
}

// Must show: cp, cp -r and the copy attribute of a 1 GiB file and a folder
// of 100 files, from bob's shared folder into the user's drive, are
// server-side copies across drives: no content byte crosses the client, and
// the copies hold bob's content (the fake's hashes compared).
func TestMountSharedCopyOutServerSide(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	bob := env.addBob()
	const size = 1 << 30
	tail := randomBytes(t, 4096)
	_, err := env.srv.SparseFileIn(bob, "/Proj/big.bin", size, tail)
	require.NoError(t, err)
	for i := range 100 {
		_, err := env.srv.PutFileIn(bob, fmt.Sprintf("/Proj/many/f%03d.txt", i), randomBytes(t, 1000+i), time.Time{})
		require.NoError(t, err)
	}
	env.mount()
	env.sh("ls -R Proj > /dev/null")
	env.srv.ResetStats()

	env.sh("cp Proj/big.bin big.bin && cp -r Proj/many many && sync . many")
	env.sh(`setfattr -n user.onedrive.copy -v "$PWD/big-x.bin" Proj/big.bin`)
	env.sh(`setfattr -n user.onedrive.copy -v "$PWD/many-x" Proj/many`)
	eventually(t, 30*time.Second, func() bool {
		_, a := env.srv.ItemByPath("/big-x.bin")
		l, err := env.srv.List("/many-x")
		return a && err == nil && len(l) == 100
	}, "the attribute copies did not complete")

	st := env.srv.Stats()
	requireNoBytesMoved(t, st)
	assert.Equal(t, int64(1+100+2), st.CopyJobsStarted, "one job per file by cp, one per attribute copy: %v", st.Requests)
	assert.Zero(t, st.CopyJobsFailed)

	src, ok := env.bobItem(bob, "/Proj/big.bin")
	require.True(t, ok)
	for _, p := range []string{"/big.bin", "/big-x.bin"} {
		got, ok := env.srv.ItemByPath(p)
		require.True(t, ok, p)
		assert.Equal(t, int64(size), got.Size, p)
		assert.Equal(t, src.QuickXorHash, got.QuickXorHash, p)
	}
	want := env.bobTree(bob, "/Proj/many")
	require.Len(t, want, 100)
	assert.Equal(t, want, env.serverTree("/many"))
	assert.Equal(t, want, env.serverTree("/many-x"))
	assert.Equal(t, string(tail[len(tail)-16:]), env.sh("tail -c 16 big.bin"))

	// And back into the share (bob gave write access), server-side too.
	env.srv.ResetStats()
	env.sh(`cp big.bin Proj/big-back.bin && cp -r many Proj/many-cp && sync Proj Proj/many-cp && ` +
		`setfattr -n user.onedrive.copy -v "$PWD/Proj/many-back" many`)
	eventually(t, 30*time.Second, func() bool {
		l, err := env.srv.ListIn(bob, "/Proj/many-back")
		return err == nil && len(l) == 100
	}, "the copy into the share did not complete")
	st = env.srv.Stats()
	requireNoBytesMoved(t, st)
	t.Logf("copies into the share: %d jobs, %d monitor polls, %d listings", st.CopyJobsStarted, st.Requests["monitor"], st.Requests["children.list"])
	assert.Less(t, st.Requests["monitor"], int64(50),
		"the 100 copies into the share are confirmed by listing its folder (in bob's drive), not polled one by one")
	back, ok := env.bobItem(bob, "/Proj/big-back.bin")
	require.True(t, ok)
	assert.Equal(t, src.QuickXorHash, back.QuickXorHash)
	assert.Equal(t, want, env.bobTree(bob, "/Proj/many-back"))
	assert.Equal(t, want, env.bobTree(bob, "/Proj/many-cp"), "cp -r into the share")
	eventually(t, 10*time.Second, func() bool {
		out, err := env.shErr("ls Proj")
		return err == nil && strings.Contains(out, "many-back")
	}, "the copy into the share does not show in it")
}

// bobTree is serverTree in drive d.
func (env *mountEnv) bobTree(d, p string) map[string]string {
	env.t.Helper()
	out := map[string]string{}
	list, err := env.srv.ListIn(d, p)
	require.NoError(env.t, err, p)
	for _, it := range list {
		if it.IsFolder {
			continue
		}
		out[it.Name] = fmt.Sprintf("%d %s", it.Size, it.QuickXorHash)
	}
	return out
}

// Must show: user.onedrive.share creates a link that the service resolves
// to the item; getfattr prints it; `onedrivefs share` wraps both; on a
// read-only share it fails with EACCES.
func TestMountShareLinks(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	bob := env.addBob()
	_, err := env.srv.PutFile("/doc.txt", []byte("mine\n"), time.Time{})
	require.NoError(t, err)
	env.mount()

	env.sh("setfattr -n user.onedrive.share -v view doc.txt")
	link := env.sh("getfattr --only-values -n user.onedrive.share doc.txt")
	require.NotEmpty(t, link)
	doc, ok := env.srv.ItemByPath("/doc.txt")
	require.True(t, ok)
	assert.Equal(t, doc.ID, env.resolveShare(link), "the link opens doc.txt")

	// The command, with an edit link on a file of bob's read-write share.
	cmd := exec.Command(mountBinary, "share", "--edit", "--expires", time.Now().AddDate(0, 1, 0).Format(time.DateOnly), env.path("Proj/a.txt"))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	a, ok := env.bobItem(bob, "/Proj/a.txt")
	require.True(t, ok)
	assert.Equal(t, a.ID, env.resolveShare(strings.TrimSpace(string(out))))
	assert.NotContains(t, env.stderr.String(), strings.TrimSpace(string(out)), "a link is never logged")

	// A read-only share: no link, EACCES, and the command says why.
	out2, err := env.shErr("setfattr -n user.onedrive.share -v view Ro/r.txt")
	require.Error(t, err)
	assert.Contains(t, out2, "Permission denied")
	out, err = exec.Command(mountBinary, "share", env.path("Ro/r.txt")).CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "read-only")

	// Bad values are refused before anything is sent.
	out2, err = env.shErr("setfattr -n user.onedrive.share -v publish doc.txt")
	require.Error(t, err)
	assert.Contains(t, out2, "Invalid argument")
}

// resolveShare asks the fake which item a link opens, as the service's
// /shares/{id}/driveItem would for whoever holds it.
func (env *mountEnv) resolveShare(link string) string {
	env.t.Helper()
	rc, err := remote.New(remote.Config{GraphURL: env.srv.GraphURL(),
		Tokens: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: env.srv.IssueToken(), Expiry: time.Now().Add(time.Hour)})})
	require.NoError(env.t, err)
	it, err := rc.ResolveShare(env.t.Context(), strings.TrimSpace(link))
	require.NoError(env.t, err)
	return it.ID
}

// Copies the service refuses across drives (a Personal and a Business
// drive) fall back to the byte path for cp; the copy attribute, which only
// starts server-side copies, answers EXDEV.
func TestMountSharedCopyRefusedAcrossDrives(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{Copy: graphtest.CopyOptions{RefuseCrossDrive: true}})
	bob := env.addBob()
	data := randomBytes(t, 3<<20)
	_, err := env.srv.PutFileIn(bob, "/Proj/data.bin", data, time.Time{})
	require.NoError(t, err)
	env.mount()
	env.sh("ls Proj > /dev/null")
	env.srv.ResetStats()

	env.sh("cp Proj/data.bin copied.bin && sync .")
	env.waitRemoteContent("/copied.bin", data, 10*time.Second, "the bytes were copied instead")
	st := env.srv.Stats()
	assert.Zero(t, st.CopyJobsStarted, "%v", st.Requests)
	assert.Equal(t, int64(len(data)), st.BytesUploaded, "the byte path")
	assert.Contains(t, env.stderr.String(), "copying the bytes")

	out, err := env.shErr(`setfattr -n user.onedrive.copy -v "$PWD/x.bin" Proj/data.bin`)
	require.Error(t, err)
	assert.Contains(t, out, "Invalid cross-device link")
	assert.Contains(t, env.stderr.String(), "does not copy between these two drives")
}

// stat shows a read-only share, and the Shared with me folder, without
// write permission bits.
func TestMountSharedReadOnlyModes(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.addBob()
	env.sharedWithMe = true
	env.mount()
	env.sh("ls Ro Proj 'Shared with me' > /dev/null")
	assert.Equal(t, "555 444 755 644 555 555 444\n",
		env.sh("stat -c %a Ro Ro/r.txt Proj Proj/a.txt 'Shared with me' 'Shared with me/Loose' 'Shared with me/Loose/l.txt' | tr '\\n' ' ' | sed 's/ $/\\n/'"))
}

// Under go test -race, a daemon built with the race detector serves a
// shared folder while its owner changes it and the mount polls it: no data
// race is reported.
func TestMountSharedUnderRace(t *testing.T) {
	bin := raceBinary(t)
	if bin == "" {
		t.Skip("the daemon is built with the race detector only under go test -race")
	}
	env := newMountEnv(t, graphtest.Options{})
	bob := env.addBob()
	env.bin = bin
	env.sharedWithMe = true
	env.mount()
	errs := make(chan error, 1)
	go func() {
		var first error
		for i := range 20 {
			_, err := env.srv.PutFileIn(bob, fmt.Sprintf("/Proj/b%02d.txt", i), []byte("bob"), time.Time{})
			if first == nil {
				first = err
			}
			time.Sleep(50 * time.Millisecond) // spread over several polls
		}
		errs <- first
	}()
	env.sh(`for i in $(seq 20); do echo $i > Proj/m$i.txt; cat Proj/a.txt > /dev/null; ` +
		`ls Proj 'Shared with me/Loose' > /dev/null; stat Ro/r.txt > /dev/null; done`)
	require.NoError(t, <-errs)
	eventually(t, 20*time.Second, func() bool {
		out, err := env.shErr("ls Proj")
		return err == nil && strings.Contains(out, "b19.txt") && strings.Contains(out, "m20.txt")
	}, "bob's files did not show")
	env.unmount()
	assert.NotContains(t, env.stderr.String(), raceReport)
}

// A shortcut is still a shortcut in a mount served from the metadata store:
// after a remount that lists nothing from the service, the shared folder's
// content (from its owner's drive) and its read-only share still behave.
func TestMountSharedShortcutAfterStoreRemount(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.addBob()
	env.mount("--poll-interval", "1h")
	assert.Equal(t, "Proj\nRo\n", env.sh("ls"))
	assert.Equal(t, "a.txt\n", env.sh("ls Proj"))
	env.unmount()

	env.mount("--poll-interval", "1h")
	assert.Equal(t, "Proj\nRo\n", env.sh("ls"), "the root from the store")
	assert.Equal(t, "a.txt\n", env.sh("ls Proj"), "the shortcut's content from bob's drive")
	assert.Equal(t, "from bob\n", env.sh("cat Proj/a.txt"))
	_, err := env.shErr("echo x > Ro/new.txt")
	assert.Error(t, err, "the read-only share is still read-only")
}
