package fs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onedrivefs/onedrivefs/copyjob"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// Server-side copies without a mount: the FS methods the copy_file_range
// and setxattr handlers call, against the fake, with the tracker running.

// newCopyEnv is a test env whose copy-job tracker runs.
func newCopyEnv(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	env := newTestEnv(t, opts...)
	require.True(t, env.fs.bg.Go(env.fs.runCopyJobs))
	t.Cleanup(env.fs.closeCopyJobs)
	return env
}

func randomData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// copyFixture is a source on the server and a new, empty destination open
// for writing, as cp leaves them before its copy_file_range.
type copyFixture struct {
	env      *testEnv
	data     []byte
	src, dst *entry
	hin      *handle
	hout     *handle
}

func (env *testEnv) copyFixture(size int, dstName string) *copyFixture {
	t := env.t
	t.Helper()
	data := randomData(t, size)
	_, err := env.srv.PutFile("/src.bin", data, time.Time{})
	require.NoError(t, err)
	ctx := context.Background()
	src := env.mustWalk("/src.bin")
	hin, err := env.fs.open(ctx, src, false)
	require.NoError(t, err)
	dst, created, err := env.fs.create(ctx, env.fs.root, dstName, true)
	require.NoError(t, err)
	require.True(t, created)
	hout, err := env.fs.open(ctx, dst, false)
	require.NoError(t, err)
	return &copyFixture{env: env, data: data, src: src, dst: dst, hin: hin, hout: hout}
}

func (c *copyFixture) copy(ctx context.Context, offIn, offOut, n int64) (int64, error) {
	return c.env.fs.copyFileRange(ctx, copyRange{src: c.src, dst: c.dst, hin: c.hin, hout: c.hout,
		offIn: offIn, offOut: offOut, n: n})
}

// settle waits for every pending copy's job to end and be settled.
func (env *testEnv) settle() {
	env.t.Helper()
	require.NoError(env.t, env.fs.waitCopiesUnder(context.Background(), env.fs.root))
}

// close closes both files as cp does (flush, then release).
func (c *copyFixture) close() {
	t := c.env.t
	t.Helper()
	ctx := context.Background()
	require.NoError(t, c.hout.flush(ctx))
	require.NoError(t, c.hout.release(ctx))
	require.NoError(t, c.hin.release(ctx))
}

func TestCopyFileRangeWholeFile(t *testing.T) {
	env := newCopyEnv(t)
	c := env.copyFixture(300<<10, "dst.bin")
	env.srv.ResetStats()
	ctx := context.Background()

	got, err := c.copy(ctx, 0, 0, 1<<30)
	require.NoError(t, err)
	assert.Equal(t, int64(len(c.data)), got, "answers the size, not the length asked")
	assert.Equal(t, int64(len(c.data)), env.fs.attrOf(c.dst).size)
	got, err = c.copy(ctx, int64(len(c.data)), int64(len(c.data)), 1<<30)
	require.NoError(t, err)
	assert.Zero(t, got, "at the end: 0")
	c.close()
	env.settle()

	st := env.srv.Stats()
	assert.Equal(t, int64(1), st.CopyJobsStarted)
	assert.Zero(t, st.BytesUploaded+st.BytesDownloaded, "%v", st.Requests)
	assert.Zero(t, st.Requests["upload.simple"], "no empty placeholder uploaded")
	info, ok := env.srv.ItemByPath("/dst.bin")
	require.True(t, ok)
	assert.Equal(t, info.ID, c.dst.item.Load().ID, "the destination's entry is the new item")
	assert.Empty(t, env.fs.staging.Pending(), "its journal record is gone")
	got2, err := env.srv.ReadFile("/dst.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(c.data, got2))
	assert.True(t, bytes.Equal(c.data, env.readAll(c.dst)))
}

// Two calls, the first one short of the size (the kernel's clamp, or a
// caller's chunk): one job; the second is answered without I/O.
func TestCopyFileRangeContinuation(t *testing.T) {
	env := newCopyEnv(t)
	c := env.copyFixture(100<<10, "dst.bin")
	env.srv.ResetStats()
	ctx := context.Background()
	got, err := c.copy(ctx, 0, 0, 60<<10)
	require.NoError(t, err)
	assert.Equal(t, int64(60<<10), got)
	assert.Equal(t, int64(60<<10), env.fs.attrOf(c.dst).size, "stat shows what was answered")
	before := env.srv.Stats().RequestsTotal
	got, err = c.copy(ctx, 60<<10, 60<<10, 1<<30)
	require.NoError(t, err)
	assert.Equal(t, int64(40<<10), got)
	assert.Equal(t, before, env.srv.Stats().RequestsTotal, "a continuation costs no request")
	c.close()
	env.settle()
	st := env.srv.Stats()
	assert.Equal(t, int64(1), st.CopyJobsStarted)
	assert.Zero(t, st.BytesUploaded+st.BytesDownloaded)
	got2, _ := env.srv.ReadFile("/dst.bin")
	assert.True(t, bytes.Equal(c.data, got2))
}

// A caller that stops early gets exactly the bytes it copied, and so does
// the service's item; a gap goes through the data path.
func TestCopyFileRangePartial(t *testing.T) {
	env := newCopyEnv(t)
	c := env.copyFixture(3<<20, "dst.bin")
	ctx := context.Background()
	got, err := c.copy(ctx, 0, 0, 1<<20)
	require.NoError(t, err)
	require.Equal(t, int64(1<<20), got)
	// A gap: bytes 2–2.5 MiB into offset 2 MiB.
	got, err = c.copy(ctx, 2<<20, 2<<20, 512<<10)
	require.NoError(t, err)
	require.Equal(t, int64(512<<10), got)
	c.close()
	env.settle()
	want := append(append(bytes.Clone(c.data[:1<<20]), make([]byte, 1<<20)...), c.data[2<<20:5<<19]...)
	got2, err := env.srv.ReadFile("/dst.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, got2), "server has %d bytes", len(got2))
	assert.Equal(t, int64(len(want)), env.fs.attrOf(c.dst).size)

	// Stopping after the first chunk.
	d := env.copyFixture(2<<20, "first.bin")
	got, err = d.copy(ctx, 0, 0, 4096)
	require.NoError(t, err)
	require.Equal(t, int64(4096), got)
	buf := make([]byte, 8192)
	n, err := d.hout.read(ctx, buf, 0)
	require.NoError(t, err)
	assert.Equal(t, 4096, n, "reads see only the answered bytes")
	d.close()
	env.settle()
	got2, err = env.srv.ReadFile("/first.bin")
	require.NoError(t, err)
	assert.Equal(t, d.data[:4096], got2)
}

// Unsent writes of the source are sent before the service copies it.
func TestCopyFileRangeSendsSourceFirst(t *testing.T) {
	env := newCopyEnv(t)
	ctx := context.Background()
	src, _, err := env.fs.create(ctx, env.fs.root, "fresh.txt", true)
	require.NoError(t, err)
	hin, err := env.fs.open(ctx, src, false)
	require.NoError(t, err)
	_, err = hin.write(ctx, []byte("written, not closed"), 0)
	require.NoError(t, err)
	dst, _, err := env.fs.create(ctx, env.fs.root, "copy.txt", true)
	require.NoError(t, err)
	hout, err := env.fs.open(ctx, dst, false)
	require.NoError(t, err)
	got, err := env.fs.copyFileRange(ctx, copyRange{src: src, dst: dst, hin: hin, hout: hout, n: 19})
	require.NoError(t, err)
	assert.Equal(t, int64(19), got)
	assert.Equal(t, int64(1), env.srv.Stats().CopyJobsStarted)
	require.NoError(t, hout.flush(ctx))
	require.NoError(t, hout.release(ctx))
	require.NoError(t, hin.release(ctx))
	env.settle()
	b, err := env.srv.ReadFile("/copy.txt")
	require.NoError(t, err)
	assert.Equal(t, "written, not closed", string(b))
}

// A copy the service fails is made by copying the bytes.
func TestCopyFileRangeFallsBack(t *testing.T) {
	env := newCopyEnv(t, func(o *graphtest.Options, _ *Config) {
		o.Faults = graphtest.FaultOptions{FailNextCopies: 1}
	})
	c := env.copyFixture(64<<10, "dst.bin")
	got, err := c.copy(context.Background(), 0, 0, 64<<10)
	require.NoError(t, err)
	assert.Equal(t, int64(64<<10), got)
	c.close()
	env.settle()
	assert.True(t, bytes.Equal(c.data, env.readAll(c.dst)), "the bytes are there at once")
	assert.Zero(t, env.fs.sendJournal(context.Background()), "and are sent")
	st := env.srv.Stats()
	assert.Equal(t, int64(1), st.CopyJobsFailed)
	b, err := env.srv.ReadFile("/dst.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(c.data, b))
}

// copy_file_range returns as soon as the service accepted the job: the
// destination is a pending copy that reads as the source's version, and the
// job's completion binds it to the new item.
func TestCopyFileRangeReturnsAtAcceptance(t *testing.T) {
	env := newCopyEnv(t, func(o *graphtest.Options, _ *Config) {
		o.Copy = graphtest.CopyOptions{Latency: time.Second}
	})
	c := env.copyFixture(64<<10, "dst.bin")
	ctx := context.Background()
	got, err := c.copy(ctx, 0, 0, 64<<10)
	require.NoError(t, err)
	assert.Equal(t, int64(64<<10), got)
	c.close()
	assert.Zero(t, env.srv.Stats().CopyJobsCompleted, "returned before the job ended")
	assert.Equal(t, int64(64<<10), env.fs.attrOf(c.dst).size)
	assert.True(t, bytes.Equal(c.data, env.readAll(c.dst)), "reads the source's version meanwhile")
	_, ok := env.srv.ItemByPath("/dst.bin")
	assert.False(t, ok, "nothing sent for the destination itself")

	env.settle()
	info, ok := env.srv.ItemByPath("/dst.bin")
	require.True(t, ok)
	env.fs.mu.Lock()
	bound := c.dst.item.Load() != nil && c.dst.item.Load().ID == info.ID
	env.fs.mu.Unlock()
	assert.True(t, bound, "the destination's entry is the new item")
	assert.Zero(t, env.srv.Stats().BytesUploaded)
}

// Changes made to a pending copy (times, rename, unlink) land on the new
// item when its job completes; the source may change at once and the copy
// keeps the version copied.
func TestPendingCopyChangesLandAtCompletion(t *testing.T) {
	env := newCopyEnv(t, func(o *graphtest.Options, _ *Config) {
		o.Copy = graphtest.CopyOptions{Latency: 500 * time.Millisecond}
	})
	ctx := context.Background()
	c := env.copyFixture(32<<10, "a.bin")
	_, err := c.copy(ctx, 0, 0, 32<<10)
	require.NoError(t, err)
	c.close()
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	require.NoError(t, env.fs.setTimes(ctx, c.dst, mtime, time.Time{}))
	require.NoError(t, env.fs.rename(ctx, env.fs.root, "a.bin", env.fs.root, "renamed.bin", 0))
	assert.Equal(t, mtime, env.fs.attrOf(c.dst).mtime)

	// The source is overwritten right after cp returned.
	env.writeFile(env.fs.root, "src.bin", []byte("new source bytes"))

	// A second copy, deleted before its job ends.
	d, _, err := env.fs.create(ctx, env.fs.root, "gone.bin", true)
	require.NoError(t, err)
	hd, err := env.fs.open(ctx, d, false)
	require.NoError(t, err)
	_, err = env.fs.copyFileRange(ctx, copyRange{src: c.src, dst: d, hout: hd, n: 1 << 20})
	require.NoError(t, err)
	require.NoError(t, hd.release(ctx))
	require.NoError(t, env.fs.unlink(ctx, env.fs.root, "gone.bin"))

	env.settle()
	b, err := env.srv.ReadFile("/renamed.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(c.data, b), "the copy has the version copied")
	info, ok := env.srv.ItemByPath("/renamed.bin")
	require.True(t, ok)
	assert.True(t, info.FSModified.Equal(mtime), "the recorded mtime: %v", info.FSModified)
	_, ok = env.srv.ItemByPath("/a.bin")
	assert.False(t, ok)
	_, ok = env.srv.ItemByPath("/gone.bin")
	assert.False(t, ok, "the deleted copy is gone")
	require.Zero(t, env.fs.sendJournal(ctx), "the held source upload goes once the copies are done")
	b, err = env.srv.ReadFile("/src.bin")
	require.NoError(t, err)
	assert.Equal(t, "new source bytes", string(b))
}

func TestResolveCopyDest(t *testing.T) {
	env := newTestEnv(t)
	for _, p := range []string{"/a/file.txt", "/a/taken.txt", "/a/sub/x.txt", "/b/y.txt"} {
		_, err := env.srv.PutFile(p, []byte("x"), time.Time{})
		require.NoError(t, err)
	}
	env.fs.mountDir = "/mnt/od"
	src := env.mustWalk("/a/file.txt")
	ctx := context.Background()
	cases := []struct {
		dest, parent, name string
		err                error
	}{
		{"new.txt", "/a", "new.txt", nil},
		{"sub", "/a/sub", "file.txt", nil},
		{"sub/", "/a/sub", "file.txt", nil},
		{"SUB/other.txt", "/a/sub", "other.txt", nil},
		{"../b", "/b", "file.txt", nil},
		{"/mnt/od/b/z.txt", "/b", "z.txt", nil},
		{"/mnt/od", "/", "file.txt", nil},
		{"/mnt/od/", "/", "file.txt", nil},
		{"taken.txt", "", "", errExists},
		{"../b/y.txt", "", "", errExists},
		{"/mnt/other/z.txt", "", "", errCrossMount},
		{"/mnt/odd/z.txt", "", "", errCrossMount},
		{"../../z.txt", "", "", errCrossMount},
		{"none/z.txt", "", "", errNoEntry},
		{"none/", "", "", errNoEntry},
		{"taken.txt/z", "", "", errNotDir},
		{"a|b", "", "", errInvalid},
		{"", "", "", errInvalid},
	}
	for _, c := range cases {
		parent, name, err := env.fs.resolveCopyDest(ctx, src, c.dest)
		if c.err != nil {
			assert.ErrorIs(t, err, c.err, c.dest)
			continue
		}
		require.NoError(t, err, c.dest)
		env.fs.mu.Lock()
		assert.Equal(t, c.parent, env.fs.pathOfFSLocked(parent), c.dest)
		env.fs.mu.Unlock()
		assert.Equal(t, c.name, name, c.dest)
	}
	_, _, err := env.fs.resolveCopyDest(ctx, env.mustWalk("/a"), "a/sub/inner")
	assert.ErrorIs(t, err, errInvalid, "a folder into itself")
	_, _, err = env.fs.resolveCopyDest(ctx, env.fs.root, "x")
	assert.ErrorIs(t, err, errInvalid, "the root")
}

// The xattr trigger: accepted at once, nothing visible before the job
// completes, the new item in the cached listing after.
func TestXattrCopyRevealsResult(t *testing.T) {
	env := newCopyEnv(t, func(o *graphtest.Options, _ *Config) {
		o.Copy = graphtest.CopyOptions{Latency: 300 * time.Millisecond}
	})
	_, err := env.srv.PutFile("/d/one.txt", []byte("one"), time.Time{})
	require.NoError(t, err)
	ctx := context.Background()
	src := env.mustWalk("/d")
	n := &node{fsys: env.fs, e: src}
	require.Zero(t, n.Setxattr(ctx, xattrCopy, []byte("d2"), 0))
	_, err = env.walk("/d2")
	require.ErrorIs(t, err, errNoEntry, "not before completion")

	status := func() copyjob.StatusDoc {
		v, err := env.fs.getxattr(src, xattrCopyStatus)
		require.NoError(t, err)
		var d copyjob.StatusDoc
		require.NoError(t, jsonUnmarshal(v, &d))
		return d
	}
	d := status()
	assert.Equal(t, "/d", d.Source)
	assert.Equal(t, "/d2", d.Destination)
	_, err = env.fs.copies.Wait(ctx, d.ID)
	require.NoError(t, err)
	assert.Equal(t, "completed", status().Status)
	before := env.requests("children.list")
	e, err := env.walk("/d2/one.txt")
	require.NoError(t, err)
	assert.Equal(t, "one", string(env.readAll(e)))
	assert.Equal(t, before+1, env.requests("children.list"), "the root listing already had d2; only d2 is listed")

	root := &node{fsys: env.fs, e: env.fs.root}
	size, errno := root.Listxattr(ctx, nil)
	require.Zero(t, errno)
	buf := make([]byte, size)
	_, errno = root.Listxattr(ctx, buf)
	require.Zero(t, errno)
	assert.Contains(t, string(buf), xattrCopyJobs+"\x00")
	size, errno = root.Getxattr(ctx, xattrCopyJobs, nil)
	require.Zero(t, errno)
	buf = make([]byte, size)
	got, errno := root.Getxattr(ctx, xattrCopyJobs, buf)
	require.Zero(t, errno)
	assert.Less(t, got, size, "the size query leaves room for the value to grow")
	assert.Contains(t, string(buf[:got]), `"status":"completed"`)
	_, errno = n.Getxattr(ctx, xattrCopyJobs, nil)
	assert.Equal(t, syscall.ENODATA, errno)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// An interrupt that arrives while the copy request is on its way does not
// abandon it: the service may accept it, and the job must then be tracked.
// The trigger answers success once the job is tracked.
func TestXattrCopyRequestIsNotAbandonedOnInterrupt(t *testing.T) {
	env := newCopyEnv(t, func(o *graphtest.Options, _ *Config) {
		o.Faults = graphtest.FaultOptions{SlowBy: 300 * time.Millisecond, Ops: []string{"copy.start"}}
	})
	_, err := env.srv.PutFile("/a.txt", []byte("a"), time.Time{})
	require.NoError(t, err)
	src := env.mustWalk("/a.txt")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel) // an interrupt during the slow request
	n := &node{fsys: env.fs, e: src}
	require.Zero(t, n.Setxattr(ctx, xattrCopy, []byte("b.txt"), 0))
	require.Error(t, ctx.Err(), "the interrupt came before the answer")
	assert.Equal(t, int64(1), env.srv.Stats().CopyJobsStarted)
	jobs := env.fs.copies.Jobs()
	require.Len(t, jobs, 1)
	assert.Equal(t, "/b.txt", jobs[0].DestPath)
}

// The source deleted right after cp returned: the copy still gets its bytes
// (the deletion waits for the copy), and the source is deleted then.
func TestPendingCopySourceDeletedAtOnce(t *testing.T) {
	env := newCopyEnv(t, func(o *graphtest.Options, _ *Config) {
		o.Copy = graphtest.CopyOptions{Latency: 500 * time.Millisecond}
	})
	ctx := context.Background()
	c := env.copyFixture(48<<10, "b.bin")
	_, err := c.copy(ctx, 0, 0, 48<<10)
	require.NoError(t, err)
	c.close()
	require.NoError(t, env.fs.unlink(ctx, env.fs.root, "src.bin"))
	_, err = env.walk("/src.bin")
	require.ErrorIs(t, err, errNoEntry, "gone from the mount at once")
	_, ok := env.srv.ItemByPath("/src.bin")
	assert.True(t, ok, "kept on the service while the copy runs")

	env.settle()
	require.Eventually(t, func() bool { return env.fs.sendJournal(ctx) == 0 }, 10*time.Second, 50*time.Millisecond,
		"the held deletion is done once the copy has completed")
	_, ok = env.srv.ItemByPath("/src.bin")
	assert.False(t, ok, "then deleted")
	b, err := env.srv.ReadFile("/b.bin")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(c.data, b))
}
