package fs

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// shareEnv is a testEnv whose user has, from a second user (bob), a folder
// /Proj shared read-write and added as the shortcut "Proj", and a folder
// /Ro shared read-only as the shortcut "Ro"; /Loose is shared and not
// added.
type shareEnv struct {
	*testEnv
	bob    graphtest.User
	shares map[string]graphtest.Share // by bob's path
}

func newShareEnv(t *testing.T, opts ...envOption) *shareEnv {
	t.Helper()
	env := newTestEnv(t, opts...)
	bob, err := env.srv.AddUser(graphtest.UserOptions{ID: "b0b0b0b0b0b0b0b0", DisplayName: "Bob"})
	require.NoError(t, err)
	me := env.srv.DefaultDriveID()
	shares := map[string]graphtest.Share{}
	for _, p := range []string{"/Proj/sub", "/Ro", "/Loose"} {
		_, err := env.srv.MkdirAllIn(bob.DriveID, p)
		require.NoError(t, err)
	}
	_, err = env.srv.PutFileIn(bob.DriveID, "/Proj/a.txt", []byte("from bob"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.PutFileIn(bob.DriveID, "/Ro/r.txt", []byte("read only"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.PutFileIn(bob.DriveID, "/Loose/l.txt", []byte("loose"), time.Time{})
	require.NoError(t, err)
	for _, s := range []graphtest.ShareOptions{
		{Owner: bob.ID, Path: "/Proj", With: me, Role: "write", Shortcut: "Proj"},
		{Owner: bob.ID, Path: "/Ro", With: me, Role: "read", Shortcut: "Ro"},
		{Owner: bob.ID, Path: "/Loose", With: me, Role: "read"},
	} {
		sh, err := env.srv.Share(s)
		require.NoError(t, err)
		shares[s.Path] = sh
	}
	return &shareEnv{testEnv: env, bob: bob, shares: shares}
}

func (env *shareEnv) bobFile(p string) graphtest.ItemInfo {
	env.t.Helper()
	info, ok := env.srv.ItemByPathIn(env.bob.DriveID, p)
	require.True(env.t, ok, "%s in bob's drive", p)
	return info
}

func TestShortcutListReadWrite(t *testing.T) {
	env := newShareEnv(t)
	ctx := context.Background()
	proj := env.mustWalk("/Proj")
	require.True(t, proj.isDir, "a shortcut to a folder is a folder")
	list, err := env.fs.readdir(ctx, proj)
	require.NoError(t, err)
	var names []string
	for _, c := range list {
		names = append(names, c.name)
	}
	assert.Equal(t, []string{"a.txt", "sub"}, names)
	assert.Equal(t, "from bob", string(env.readAll(env.mustWalk("/Proj/a.txt"))))

	env.writeFile(proj, "mine.txt", []byte("written by me"))
	assert.Equal(t, int64(len("written by me")), env.bobFile("/Proj/mine.txt").Size, "the new file is in bob's drive")
	_, inMine := env.srv.ItemByPath("/Proj/mine.txt")
	assert.False(t, inMine)
	env.writeFile(env.mustWalk("/Proj/sub"), "deep.txt", []byte("deeper"))
	env.bobFile("/Proj/sub/deep.txt")
	// Overwrite an existing file of bob's.
	env.writeFile(proj, "a.txt", []byte("changed by me"))
	assert.Equal(t, int64(len("changed by me")), env.bobFile("/Proj/a.txt").Size)
	assert.Empty(t, env.fs.staging.Pending(), "nothing stuck in the journal")

	// mkdir, rename and delete inside the share go to bob's drive.
	_, err = env.fs.mkdir(ctx, proj, "newdir")
	require.NoError(t, err)
	env.bobFile("/Proj/newdir")
	require.NoError(t, env.fs.rename(ctx, proj, "mine.txt", env.mustWalk("/Proj/newdir"), "moved.txt", 0))
	env.bobFile("/Proj/newdir/moved.txt")
	require.NoError(t, env.fs.unlink(ctx, env.mustWalk("/Proj/newdir"), "moved.txt"))
	_, ok := env.srv.ItemByPathIn(env.bob.DriveID, "/Proj/newdir/moved.txt")
	assert.False(t, ok)

	// A move between the share and the user's own drive is EXDEV.
	err = env.fs.rename(ctx, proj, "a.txt", env.fs.root, "a.txt", 0)
	assert.Equal(t, syscall.EXDEV, errnoOf(err), "%v", err)
}

func TestReadOnlyShareRefusesChanges(t *testing.T) {
	env := newShareEnv(t)
	ctx := context.Background()
	ro := env.mustWalk("/Ro")
	assert.Equal(t, "read only", string(env.readAll(env.mustWalk("/Ro/r.txt"))))
	assert.True(t, env.fs.attrOf(ro).readOnly, "the role is read when the share is first listed")
	assert.True(t, env.fs.attrOf(env.mustWalk("/Ro/r.txt")).readOnly)
	assert.False(t, env.fs.attrOf(env.mustWalk("/Proj/a.txt")).readOnly, "a read-write share")
	err := env.fs.checkShareWritable(ctx, ro)
	require.Error(t, err)
	assert.True(t, errors.Is(err, errShareReadOnly), "%v", err)
	assert.Contains(t, err.Error(), "read-only")
	assert.Equal(t, syscall.EACCES, errnoOf(err))
	assert.NoError(t, env.fs.checkShareWritable(ctx, env.mustWalk("/Proj")))
	assert.NoError(t, env.fs.checkShareWritable(ctx, env.fs.root))
	// Removing the shortcut itself is a change to the user's own drive.
	assert.NoError(t, env.fs.checkChildWritable(ctx, env.fs.root, "Ro"))
}

func TestSharePollSeesOwnerChanges(t *testing.T) {
	env := newShareEnv(t)
	ctx := context.Background()
	proj := env.mustWalk("/Proj")
	_, err := env.fs.readdir(ctx, proj)
	require.NoError(t, err)
	_, err = env.srv.PutFileIn(env.bob.DriveID, "/Proj/new-by-bob.txt", []byte("news"), time.Time{})
	require.NoError(t, err)
	_, err = env.fs.lookup(ctx, proj, "new-by-bob.txt")
	require.ErrorIs(t, err, errNoEntry, "the cached listing does not know it yet")
	before := env.requests("delta")
	env.fs.pollShares(ctx)
	assert.Equal(t, before+1, env.requests("delta"), "one folder delta per share: %v", env.srv.Stats().Requests)
	c, err := env.fs.lookup(ctx, proj, "new-by-bob.txt")
	require.NoError(t, err)
	assert.Equal(t, "news", string(env.readAll(c)))
}

func TestSharedWithMeFolder(t *testing.T) {
	env := newShareEnv(t, func(_ *graphtest.Options, c *Config) { c.SharedWithMe = "Shared with me" })
	ctx := context.Background()
	list, err := env.fs.readdir(ctx, env.fs.root)
	require.NoError(t, err)
	var names []string
	for _, c := range list {
		names = append(names, c.name)
	}
	assert.Equal(t, []string{"Proj", "Ro", "Shared with me"}, names)
	sw := env.mustWalk("/Shared with me")
	list, err = env.fs.readdir(ctx, sw)
	require.NoError(t, err)
	require.Len(t, list, 1, "only the share not added as a shortcut")
	assert.Equal(t, "Loose", list[0].name)
	assert.Equal(t, "loose", string(env.readAll(env.mustWalk("/Shared with me/Loose/l.txt"))))
	err = env.fs.checkShareWritable(ctx, env.mustWalk("/Shared with me/Loose"))
	assert.Equal(t, syscall.EROFS, errnoOf(err), "%v", err)
	assert.Equal(t, syscall.EROFS, errnoOf(env.fs.checkChildWritable(ctx, env.fs.root, "shared with me")))
}

// Business drives have no folder delta: a share there is polled by
// relisting its cached folders, and changes deep in it show all the same.
func TestSharePollBusinessRelists(t *testing.T) {
	env := newShareEnv(t, func(o *graphtest.Options, _ *Config) { o.DriveType = "business" })
	ctx := context.Background()
	proj := env.mustWalk("/Proj")
	_, err := env.fs.readdir(ctx, env.mustWalk("/Proj/sub"))
	require.NoError(t, err)
	_, err = env.srv.PutFileIn(env.bob.DriveID, "/Proj/sub/deep.txt", []byte("deep"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.PutFileIn(env.bob.DriveID, "/Proj/a.txt", []byte("changed by bob"), time.Time{})
	require.NoError(t, err)
	env.fs.pollShares(ctx)
	c, err := env.fs.lookup(ctx, env.mustWalk("/Proj/sub"), "deep.txt")
	require.NoError(t, err, "a new file in a subfolder of the share")
	assert.Equal(t, "deep", string(env.readAll(c)))
	assert.Equal(t, "changed by bob", string(env.readAll(env.mustWalk("/Proj/a.txt"))))
	_, err = env.srv.MkdirAllIn(env.bob.DriveID, "/Proj/x") // something for the next round to see
	require.NoError(t, err)
	before := env.requests("children.list")
	env.fs.pollShares(ctx)
	assert.Equal(t, before+2, env.requests("children.list"), "the share and its one cached subfolder: %v", env.srv.Stats().Requests)
	_, err = env.fs.lookup(ctx, proj, "x")
	require.NoError(t, err)
}

// A change to a file in a shared folder that could not be sent is
// journaled with its drive: the next mount replays it into the owner's
// drive, not the user's.
func TestShareJournalReplaysIntoOwnersDrive(t *testing.T) {
	env := newShareEnv(t)
	restore := env.uploadsFail()
	env.writeFile(env.mustWalk("/Proj"), "offline.txt", []byte("written while offline"))
	env.writeFile(env.mustWalk("/Proj"), "a.txt", []byte("edited while offline"))
	recs := env.fs.staging.Pending()
	require.Len(t, recs, 2)
	for _, r := range recs {
		assert.Equal(t, env.bob.DriveID, r.DriveID, "%s", r.Name)
	}
	restore()

	next := env.newFS(Config{})
	require.NoError(t, next.start(context.Background()))
	assert.Empty(t, next.staging.Pending())
	assert.Equal(t, int64(len("written while offline")), env.bobFile("/Proj/offline.txt").Size)
	assert.Equal(t, int64(len("edited while offline")), env.bobFile("/Proj/a.txt").Size)
	_, inMine := env.srv.ItemByPath("/Proj/offline.txt")
	assert.False(t, inMine)
}

// A file shared alone, under "Shared with me", changed by its owner is read
// anew, not served from the content cache (the service's list of shared
// items gives no cTag).
func TestSharedWithMeChangedFileIsReadAnew(t *testing.T) {
	env := newShareEnv(t, func(_ *graphtest.Options, c *Config) { c.SharedWithMe = "Shared with me" })
	_, err := env.srv.PutFileIn(env.bob.DriveID, "/single.txt", []byte("first"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.Share(graphtest.ShareOptions{Owner: env.bob.ID, Path: "/single.txt", With: env.srv.DefaultDriveID(), Role: "read"})
	require.NoError(t, err)
	assert.Equal(t, "first", string(env.readAll(env.mustWalk("/Shared with me/single.txt"))))
	_, err = env.srv.PutFileIn(env.bob.DriveID, "/single.txt", []byte("FIRST"), time.Time{}) // the same size
	require.NoError(t, err)
	env.fs.invalidateListing(sharedDirID) // as when the listing's TTL has passed
	assert.Equal(t, "FIRST", string(env.readAll(env.mustWalk("/Shared with me/single.txt"))))
}

// A shortcut to a single file reads the owner's file, and is read-only.
func TestFileShortcutReadOnly(t *testing.T) {
	env := newShareEnv(t)
	ctx := context.Background()
	_, err := env.srv.PutFileIn(env.bob.DriveID, "/single.txt", []byte("a single file"), time.Time{})
	require.NoError(t, err)
	_, err = env.srv.Share(graphtest.ShareOptions{Owner: env.bob.ID, Path: "/single.txt", With: env.srv.DefaultDriveID(),
		Role: "write", Shortcut: "single.txt"})
	if err != nil {
		t.Skipf("the fake adds no shortcut to a file: %v", err)
	}
	e := env.mustWalk("/single.txt")
	require.False(t, e.isDir)
	assert.Equal(t, "a single file", string(env.readAll(e)))
	assert.Equal(t, syscall.EACCES, errnoOf(env.fs.checkShareWritable(ctx, e)))
	assert.True(t, env.fs.attrOf(e).readOnly)
	assert.NoError(t, env.fs.checkChildWritable(ctx, env.fs.root, "single.txt"), "the shortcut itself may go")
}

// The share polls keep to their budget: at most sharesPerPoll watched
// shares per round, round-robin, so every share gets its turn.
func TestSharePollBudgetRoundRobin(t *testing.T) {
	env := newShareEnv(t)
	ctx := context.Background()
	me := env.srv.DefaultDriveID()
	names := []string{"Proj", "Ro"}
	for i := range 4 {
		p := fmt.Sprintf("/Extra%d", i)
		_, err := env.srv.MkdirAllIn(env.bob.DriveID, p)
		require.NoError(t, err)
		_, err = env.srv.Share(graphtest.ShareOptions{Owner: env.bob.ID, Path: p, With: me, Role: "read", Shortcut: p[1:]})
		require.NoError(t, err)
		names = append(names, p[1:])
	}
	for _, n := range names {
		_, err := env.fs.readdir(ctx, env.mustWalk("/"+n)) // watched once listed
		require.NoError(t, err)
	}
	env.fs.mu.Lock()
	require.Len(t, env.fs.shares.byShortcut, 6)
	env.fs.mu.Unlock()
	before := env.requests("delta")
	env.fs.pollShares(ctx)
	assert.Equal(t, before+sharesPerPoll, env.requests("delta"), "one round polls sharesPerPoll shares")
	// A change in each share: two more rounds see all of them.
	for _, n := range names {
		_, err := env.srv.PutFileIn(env.bob.DriveID, "/"+n+"/late.txt", []byte(n), time.Time{})
		require.NoError(t, err)
	}
	env.fs.pollShares(ctx)
	env.fs.pollShares(ctx)
	assert.Equal(t, before+3*sharesPerPoll, env.requests("delta"))
	for _, n := range names {
		_, err := env.fs.lookup(ctx, env.mustWalk("/"+n), "late.txt")
		assert.NoError(t, err, "%s: the change was seen within two rounds", n)
	}
}

// A share its owner revokes is no longer polled (one failed poll, then
// nothing), and its folder shows the service's answer when listed again.
func TestShareRevokedIsNoLongerPolled(t *testing.T) {
	env := newShareEnv(t)
	ctx := context.Background()
	proj := env.mustWalk("/Proj")
	_, err := env.fs.readdir(ctx, proj)
	require.NoError(t, err)
	require.NoError(t, env.srv.Revoke(env.shares["/Proj"].PermissionID))
	env.fs.pollShares(ctx)
	env.fs.mu.Lock()
	assert.Len(t, env.fs.shares.byShortcut, 0)
	env.fs.mu.Unlock()
	before := env.srv.Stats().RequestsTotal
	env.fs.pollShares(ctx)
	assert.Equal(t, before, env.srv.Stats().RequestsTotal, "nothing left to poll")
	_, err = env.fs.readdir(ctx, proj)
	assert.Error(t, err, "the folder is no longer readable")
}

// Content journaled for a shared folder that is then deleted by its owner
// is never stuck in the journal: it goes to the user's own drive, under the
// recovery folder with its path in the mount.
func TestShareJournalIntoDeletedSharedFolderIsRecovered(t *testing.T) {
	env := newShareEnv(t)
	restore := env.uploadsFail()
	env.writeFile(env.mustWalk("/Proj/sub"), "mine.txt", []byte("written into bob's folder"))
	require.Len(t, env.fs.staging.Pending(), 1)
	restore()
	sub := env.bobFile("/Proj/sub")
	require.NoError(t, env.fs.remote.OnDrive(env.bob.DriveID).Delete(context.Background(), sub.ID, ""))

	next := env.newFS(Config{})
	require.NoError(t, next.start(context.Background()))
	assert.Empty(t, next.staging.Pending(), "nothing stays stuck")
	got, err := env.srv.ReadFile("/" + recoveredFolder + "/Proj/sub/mine.txt")
	require.NoError(t, err, "saved into the user's own drive")
	assert.Equal(t, "written into bob's folder", string(got))
}

// The same when the share is revoked: the owner's folder still exists but
// answers 403 (or 404) to the user; an edit of a file there is saved into
// the user's own drive.
func TestShareJournalAfterRevokeIsRecovered(t *testing.T) {
	env := newShareEnv(t)
	proj := env.mustWalk("/Proj")
	_, err := env.fs.readdir(context.Background(), proj)
	require.NoError(t, err)
	restore := env.uploadsFail()
	env.writeFile(proj, "a.txt", []byte("my edit of bob's file"))
	require.Len(t, env.fs.staging.Pending(), 1)
	restore()
	require.NoError(t, env.srv.Revoke(env.shares["/Proj"].PermissionID))

	next := env.newFS(Config{})
	require.NoError(t, next.start(context.Background()))
	assert.Empty(t, next.staging.Pending(), "nothing stays stuck")
	got, err := env.srv.ReadFile("/" + recoveredFolder + "/Proj/a.txt")
	require.NoError(t, err, "saved into the user's own drive")
	assert.Equal(t, "my edit of bob's file", string(got))
	assert.Equal(t, int64(len("from bob")), env.bobFile("/Proj/a.txt").Size, "bob's file untouched")
}
