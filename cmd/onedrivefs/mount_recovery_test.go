package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// Nothing written through the mount is lost or stuck when the service
// changes under it: an item or folder deleted remotely while a file is open
// for writing, uploads that fail while the folder goes away, interrupted
// and racing server-side copies.

// pollWait is long enough for at least one delta poll at --poll-interval 1s
// to have run and been applied.
const pollWait = 2500 * time.Millisecond

// A file open for writing whose item, or whose folder, is deleted on the
// service before close (with a delta poll in between) is sent again at its
// path, and the log says so.
func TestRecoveryRemoteDeleteWhileOpen(t *testing.T) {
	cases := []struct {
		name   string
		seed   string // on the fake before the mount; "" → created through the mount
		file   string
		delete string // what the other device deletes
	}{
		{"item", "/r/doc.txt", "/r/doc.txt", "/r/doc.txt"},
		{"new item, uploaded", "", "/r/new.txt", "/r/new.txt"},
		{"folder", "/r/sub/doc.txt", "/r/sub/doc.txt", "/r/sub"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := newMountEnv(t, graphtest.Options{})
			_, err := env.srv.MkdirAll("/r")
			require.NoError(t, err)
			if c.seed != "" {
				_, err := env.srv.PutFile(c.seed, []byte("old content"), time.Time{})
				require.NoError(t, err)
			}
			env.mount()

			var f *os.File
			if c.seed != "" {
				f, err = os.OpenFile(env.path(c.file), os.O_WRONLY|os.O_TRUNC, 0)
				require.NoError(t, err)
			} else {
				f, err = os.OpenFile(env.path(c.file), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
				require.NoError(t, err)
				_, err = f.WriteString("first version\n")
				require.NoError(t, err)
				require.NoError(t, f.Sync())
				env.waitRemoteContent(c.file, []byte("first version\n"), 5*time.Second, "sent at fsync")
			}
			t.Cleanup(func() { _ = f.Close() })
			oldID := env.remoteItem(c.file).ID
			_, err = f.WriteString("new content, not yet sent\n")
			require.NoError(t, err)

			env.remoteDelete(c.delete)
			time.Sleep(pollWait)
			require.NoError(t, f.Close(), "close after the remote delete")

			want := "new content, not yet sent\n"
			if c.seed == "" {
				want = "first version\n" + want
			}
			env.waitRemoteContent(c.file, []byte(want), 5*time.Second, "re-created on the service")
			assert.NotEqual(t, oldID, env.remoteItem(c.file).ID, "a new item")
			if c.delete != c.file {
				assert.True(t, env.remoteItem(c.delete).IsFolder, "the folder is re-created as a folder")
			}
			assert.True(t, mentionsRecreation(env.stderr.String()), "the log says the content was re-created")
			assert.Empty(t, env.conflictCopies("/r"))
			eventually(t, 5*time.Second, func() bool { return len(env.journalRecords()) == 0 }, "a journal record is left")
		})
	}
}

// A new file whose upload fails (close returns 0: journaled) in a folder
// that is then deleted on the service reaches the service at its path once
// the service answers again: while mounted with polling off, and after a
// kill -9 and a remount. Nothing stays in the journal.
func TestRecoveryJournaledIntoDeletedFolder(t *testing.T) {
	refuseUploads := graphtest.FaultOptions{ThrottleFor: time.Hour, ThrottleStatus: 503, Ops: []string{"upload"}}
	content := []byte("written while the service refused uploads\n")

	t.Run("while mounted", func(t *testing.T) {
		env := newMountEnv(t, graphtest.Options{})
		_, err := env.srv.MkdirAll("/j")
		require.NoError(t, err)
		env.mount("--poll-interval", "-1s")
		env.sh("ls j")

		env.srv.SetFaults(refuseUploads)
		require.NoError(t, os.WriteFile(env.path("j/new.txt"), content, 0o644), "close journals the file")
		_, ok := env.srv.ItemByPath("/j/new.txt")
		require.False(t, ok, "the upload was refused")
		env.remoteDelete("/j")
		env.srv.SetFaults(graphtest.FaultOptions{})

		env.waitRemoteContent("/j/new.txt", content, 10*time.Second, "sent in the background once the service answers")
		assert.True(t, env.remoteItem("/j").IsFolder)
		eventually(t, 5*time.Second, func() bool { return len(env.journalRecords()) == 0 }, "a journal record is left")
		assert.Empty(t, env.conflictCopies("/j"))
	})

	t.Run("after kill and remount", func(t *testing.T) {
		env := newMountEnv(t, graphtest.Options{})
		_, err := env.srv.MkdirAll("/j")
		require.NoError(t, err)
		env.mount("--poll-interval", "-1s")
		env.sh("ls j")

		env.srv.SetFaults(refuseUploads)
		require.NoError(t, os.WriteFile(env.path("j/new.txt"), content, 0o644), "close journals the file")
		env.kill()
		require.NotEmpty(t, env.journalRecords(), "journaled before the kill")
		env.remoteDelete("/j")
		env.srv.SetFaults(graphtest.FaultOptions{})

		env.mount("--poll-interval", "-1s")
		env.waitRemoteContent("/j/new.txt", content, 10*time.Second, "sent after the remount")
		eventually(t, 5*time.Second, func() bool { return len(env.journalRecords()) == 0 }, "a journal record is left")
		env.unmount()
		assert.Empty(t, env.journalRecords(), "nothing journaled at unmount")
		assert.NotRegexp(t, `(?i)not journaled`, env.stderr.String())
	})
}

// A new file written into a folder that was deleted on the service (the
// mount has not heard of it: polling is off) closes with 0 and reaches the
// service at its path; nothing stays in the journal, and the unmount does
// not report it as lost.
func TestRecoveryNewFileInRemotelyDeletedFolder(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.MkdirAll("/gone")
	require.NoError(t, err)
	env.mount("--poll-interval", "-1s")
	env.sh("ls gone")
	env.remoteDelete("/gone")

	content := []byte("written into a folder deleted elsewhere\n")
	assert.NoError(t, os.WriteFile(env.path("gone/new.txt"), content, 0o644), "write and close")
	env.waitRemoteContent("/gone/new.txt", content, 10*time.Second, "sent at its path")
	assert.True(t, env.remoteItem("/gone").IsFolder)
	eventually(t, 5*time.Second, func() bool { return len(env.journalRecords()) == 0 }, "a journal record is left")
	env.unmount()
	assert.Empty(t, env.journalRecords())
	assert.NotRegexp(t, `(?i)not journaled`, env.stderr.String())
}

// With polling off, a journaled file (its upload failed) is retried in the
// background while mounted and lands once the service answers.
func TestRecoveryJournalRetriedWithoutPolling(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	env.mount("--poll-interval", "-1s")
	env.srv.SetFaults(graphtest.FaultOptions{ThrottleFor: time.Hour, ThrottleStatus: 503, Ops: []string{"upload"}})
	content := []byte("retried in the background\n")
	require.NoError(t, os.WriteFile(env.path("bg.txt"), content, 0o644), "close journals the file")
	time.Sleep(500 * time.Millisecond)
	_, ok := env.srv.ItemByPath("/bg.txt")
	require.False(t, ok, "the upload was refused")
	require.NotEmpty(t, env.journalRecords())

	env.srv.SetFaults(graphtest.FaultOptions{})
	env.waitRemoteContent("/bg.txt", content, 10*time.Second, "retried while mounted, polling off")
	eventually(t, 5*time.Second, func() bool { return len(env.journalRecords()) == 0 }, "a journal record is left")
}

// Ctrl-C on a cp inside the mount leaves no "(conflict …)" file beside
// the destination once the copy job has ended. The service is slow to
// accept the copy (1 s) and the job takes 2 s, so that the signal reaches
// cp inside copy_file_range; the destination is new or an existing file.
func TestRecoveryInterruptedCpLeavesNoConflict(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{Copy: graphtest.CopyOptions{Latency: 2 * time.Second}})
	data := env.putRandom("/src/slow.bin", 256<<10)
	env.mount()
	env.sh("ls src")
	env.srv.SetFaults(graphtest.FaultOptions{SlowBy: time.Second, Ops: []string{"copy.start"}})

	cases := []struct {
		after  time.Duration
		exists bool // cp onto an existing file
	}{{100 * time.Millisecond, false}, {500 * time.Millisecond, true}}
	for _, c := range cases {
		dst := "dst-" + c.after.String()
		if c.exists {
			dst += "-existing"
		}
		t.Run(dst, func(t *testing.T) {
			require.NoError(t, os.Mkdir(env.path(dst), 0o755))
			if c.exists {
				require.NoError(t, os.WriteFile(env.path(dst+"/slow.bin"), []byte("older"), 0o644))
				env.waitRemoteContent("/"+dst+"/slow.bin", []byte("older"), 5*time.Second, "the existing file")
			}
			jobsBefore := len(env.srv.CopyJobs())
			cmd := exec.Command("/bin/cp", "src/slow.bin", dst+"/slow.bin")
			cmd.Dir = env.dir
			require.NoError(t, cmd.Start())
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			time.Sleep(c.after)
			require.NoError(t, cmd.Process.Signal(syscall.SIGINT), "cp still runs")
			select {
			case err := <-exited:
				require.Error(t, err, "cp was interrupted")
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				t.Fatal("cp hung after SIGINT")
			}

			// Wait for the copy jobs to end; whether the interrupted
			// request started one is the mount's affair.
			eventually(t, 15*time.Second, func() bool {
				for _, j := range env.srv.CopyJobs() {
					if j.Status != "completed" && j.Status != "failed" {
						return false
					}
				}
				return true
			}, "the copy job did not end")
			started := len(env.srv.CopyJobs()) > jobsBefore
			if started {
				// A job that completes becomes the destination; the mount
				// learns of it by polling the monitor.
				eventually(t, 15*time.Second, func() bool {
					_, err := env.shErr("cmp src/slow.bin " + dst + "/slow.bin")
					return err == nil
				}, "the finished copy did not become the destination")
			}
			time.Sleep(pollWait) // a late placeholder upload or conflict copy would show by now

			assert.Empty(t, env.conflictCopies("/"+dst), "conflict copies on the fake")
			assert.NotContains(t, env.sh("ls "+dst), "(conflict", "conflict copies in the mount")
			assert.Subset(t, []string{"slow.bin"}, env.remoteNames("/"+dst), "on the fake")
			if started {
				assert.Equal(t, data, env.serverFile("/"+dst+"/slow.bin"))
			}
			t.Logf("copy job started: %v", started)
		})
	}
}

// Concurrent user.onedrive.copy requests to one DEST: exactly one starts a
// job, the others get EEXIST, and the fake ends with one completed job.
func TestRecoveryConcurrentCopyXattrOneDest(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{Copy: graphtest.CopyOptions{Latency: time.Second}})
	data := env.putRandom("/src.bin", 64<<10)
	env.mount()
	env.sh("ls")

	const n = 50
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = unix.Setxattr(env.path("src.bin"), "user.onedrive.copy", []byte("dest.bin"), 0)
		})
	}
	close(start)
	wg.Wait()
	ok, exist := 0, 0
	var other []error
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, unix.EEXIST):
			exist++
		default:
			other = append(other, err)
		}
	}
	assert.Equal(t, 1, ok, "setxattr calls that returned 0")
	assert.Equal(t, n-1, exist, "setxattr calls that returned EEXIST")
	assert.Empty(t, other, "other answers")

	eventually(t, 15*time.Second, func() bool {
		for _, j := range env.srv.CopyJobs() {
			if j.Status != "completed" && j.Status != "failed" {
				return false
			}
		}
		return true
	}, "copy jobs did not end")
	completed, failed := 0, 0
	for _, j := range env.srv.CopyJobs() {
		switch j.Status {
		case "completed":
			completed++
		case "failed":
			failed++
		}
	}
	assert.Equal(t, 1, completed, "completed copy jobs on the fake")
	assert.Zero(t, failed, "failed copy jobs on the fake")
	assert.Equal(t, data, env.serverFile("/dest.bin"))
}

// A 64 KiB user.onedrive.copy value fails cleanly, and the mount's log
// stays bounded (no line over 4 KiB).
func TestRecoveryHugeCopyXattrValue(t *testing.T) {
	env := newMountEnv(t, graphtest.Options{})
	_, err := env.srv.PutFile("/src.txt", []byte("src"), time.Time{})
	require.NoError(t, err)
	env.mount()
	env.sh("ls")

	for name, value := range map[string]string{
		"one name":      strings.Repeat("a", 64<<10),
		"many segments": strings.Repeat("x/", 32<<10),
	} {
		t.Run(name, func(t *testing.T) {
			require.Len(t, value, 64<<10)
			err := unix.Setxattr(env.path("src.txt"), "user.onedrive.copy", []byte(value), 0)
			assert.Error(t, err, "a 64 KiB destination is refused")
		})
	}
	assert.Equal(t, "src.txt\n", env.sh("ls"), "the mount is healthy and nothing was created")
	assert.Equal(t, []string{"src.txt"}, env.remoteNames("/"))
	assert.Zero(t, env.srv.Stats().CopyJobsStarted)
	for i, line := range strings.Split(env.stderr.String(), "\n") {
		assert.LessOrEqual(t, len(line), 4<<10, "log line %d is %d bytes long: %.200s…", i+1, len(line), line)
	}
}
