package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Scenarios of the data path at the machine's limit (issue 12): random
// reads, the kernel read-ahead with and without, the local FUSE limit (a
// trivial go-fuse loopback of the same file, served by this binary as a
// child), and an append to a file just written.

// --- random reads ---

func (b *bench) benchRandom(ctx context.Context, rep *report) error {
	size := b.cfg.readSize
	src := "bench/read/big.bin"
	if err := b.putRandom(src, size, 200); err != nil {
		return err
	}
	const block = 4 << 10
	reads := b.cfg.randomReads
	var ratio, down, req, rate, cpu samples
	for r := range b.cfg.runs {
		if err := b.remount(ctx, true); err != nil {
			return err
		}
		if _, err := os.Stat(b.path(src)); err != nil {
			return err
		}
		settle()
		b.fake.ResetStats()
		m := b.startCPU()
		f, err := os.Open(b.path(src))
		if err != nil {
			return err
		}
		rng := rand.New(rand.NewPCG(uint64(r), 12))
		buf := make([]byte, block)
		start := time.Now()
		for range reads {
			off := rng.Int64N(size/block) * block
			if _, err := f.ReadAt(buf, off); err != nil {
				f.Close()
				return fmt.Errorf("random read at %d: %w", off, err)
			}
		}
		d := time.Since(start)
		f.Close()
		mountCPU, _ := m.stop()
		st := b.fake.Stats()
		read := float64(reads * block)
		down = append(down, float64(st.BytesDownloaded)/(1<<10))
		ratio = append(ratio, float64(st.BytesDownloaded)/read)
		req = append(req, float64(st.RequestsTotal))
		rate = append(rate, float64(reads)/d.Seconds())
		cpu = append(cpu, mountCPU/(read/(1<<30)))
		b.log.Info("random", "reads/s", int(rate[len(rate)-1]), "downloaded_KiB", int(down[len(down)-1]), "requests", formatOps(st.Requests))
		if err := b.unmount(); err != nil {
			return err
		}
	}
	t := rep.table(fmt.Sprintf("3. Random 4 KiB reads over a %s file", sizeLabel(size)),
		fmt.Sprintf("%d pread() calls of 4 KiB at random 4 KiB-aligned offsets of the read scenario's file, from a fresh mount "+
			"with an empty cache (one run per mount). Downloaded: bytes the fake sent; the target is at most twice the "+
			"bytes read. Requests: every request the fake received (the file's lookup is done before). CPU: seconds of "+
			"the mount process per GiB read.", reads),
		"KiB read", "KiB downloaded", "downloaded / read", "requests", "reads/s", "CPU s/GiB, mount")
	t.add(fmt.Sprint(reads*block/1024), down.format(0), ratio.format(2), req.format(0), rate.format(0), cpu.format(1))
	rep.target("random 4 KiB reads fetch ≤ 2× the bytes read",
		fmt.Sprintf("%s× (%s KiB for %d KiB read)", fmtNum(ratio.median(), 2), fmtNum(down.median(), 0), reads*block/1024),
		yesNo(ratio.median() <= 2))
	return nil
}

// --- kernel read-ahead ---

// benchReadAhead reads the read scenario's file cold and warm with the
// kernel's default read-ahead (--read-ahead 0), beside the same reads with
// the mount's default, to measure what raising the bdi's read_ahead_kb buys.
func (b *bench) benchReadAhead(ctx context.Context, rep *report) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: the bdi's read_ahead_kb can only be raised by root", errSkipped)
	}
	size := b.cfg.readSize
	src := "bench/read/big.bin"
	if err := b.putRandom(src, size, 200); err != nil {
		return err
	}
	saved := b.cfg.mountFlags
	defer func() { b.cfg.mountFlags = saved }()
	type row struct{ cold, warm, coldCPU, warmCPU samples }
	rows := map[string]*row{}
	labels := []string{"4 MiB (default)", "128 KiB (kernel default)"}
	flags := map[string][]string{labels[0]: saved, labels[1]: append(append([]string(nil), saved...), "--read-ahead", "0")}
	gib := float64(size) / (1 << 30)
	for r := range b.cfg.runs {
		for i := range labels {
			label := labels[(i+r)%2]
			b.cfg.mountFlags = flags[label]
			if err := b.remount(ctx, true); err != nil {
				return err
			}
			if _, err := os.Stat(b.path(src)); err != nil {
				return err
			}
			if rows[label] == nil {
				rows[label] = &row{}
			}
			rw := rows[label]
			for _, into := range []struct{ speed, cpu *samples }{{&rw.cold, &rw.coldCPU}, {&rw.warm, &rw.warmCPU}} {
				settle()
				m := b.startCPU()
				n, d, err := readAll(b.path(src))
				if err != nil {
					return err
				}
				if n != size {
					return fmt.Errorf("read through the mount: %d bytes of %d", n, size)
				}
				mc, _ := m.stop()
				*into.speed = append(*into.speed, mbps(n, d.Seconds()))
				*into.cpu = append(*into.cpu, mc/gib)
			}
			if err := b.unmount(); err != nil {
				return err
			}
		}
	}
	t := rep.table("4. Kernel read-ahead of the mount",
		"The read scenario's cold and warm reads (1 MiB read() calls), with the read-ahead the mount sets in its bdi "+
			"(/sys/class/bdi/MAJOR:MINOR/read_ahead_kb, as root) and with the kernel's default (`--read-ahead 0`), "+
			"alternating. CPU: seconds of the mount process per GiB.",
		"read-ahead", "cold MB/s", "warm MB/s", "CPU s/GiB cold", "CPU s/GiB warm")
	for _, l := range labels {
		rw := rows[l]
		t.add(l, rw.cold.format(0), rw.warm.format(0), rw.coldCPU.format(2), rw.warmCPU.format(2))
	}
	return nil
}

// --- the local FUSE limit ---

// loopbackArg makes odbench serve a go-fuse loopback file system instead of
// benchmarking: odbench loopback-serve DIR MOUNTPOINT passthrough|daemon.
const loopbackArg = "loopback-serve"

// serveLoopback mounts go-fuse's loopback of dir on mnt with the request
// sizes and read-ahead of onedrivefs mount, and serves it until SIGTERM.
// With mode "daemon" its files do not offer FUSE passthrough (which go-fuse
// uses when root: the kernel then reads the backing file itself), so every
// read is served by this process, as onedrivefs serves its reads.
func serveLoopback(dir, mnt, mode string) error {
	rootNode, err := gofs.NewLoopbackRoot(dir)
	if err != nil {
		return err
	}
	if mode == "daemon" {
		rootNode = &daemonNode{rootNode.(*gofs.LoopbackNode)}
	}
	server, err := gofs.Mount(mnt, rootNode, &gofs.Options{MountOptions: fuse.MountOptions{
		FsName: "odbench-loopback", Name: "loopback", DirectMount: os.Geteuid() == 0,
		MaxWrite: 1 << 20, MaxReadAhead: 1 << 20, DisableSplice: true,
	}})
	if err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if err := setBDIReadAhead(mnt, 4<<20); err != nil {
			fmt.Fprintln(os.Stderr, "loopback: read_ahead_kb:", err)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-sig
		_ = server.Unmount()
	}()
	server.Wait()
	return nil
}

// daemonNode is a loopback node whose open files have no passthrough; its
// children are daemonNodes too.
type daemonNode struct{ *gofs.LoopbackNode }

var _ = (gofs.NodeWrapChilder)((*daemonNode)(nil))

func (n *daemonNode) WrapChild(ctx context.Context, ops gofs.InodeEmbedder) gofs.InodeEmbedder {
	return &daemonNode{ops.(*gofs.LoopbackNode)}
}

func (n *daemonNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return daemonFile{fh}, fl, 0
}

// daemonFile offers reading, not passthrough, of a loopback file.
type daemonFile struct{ fh gofs.FileHandle }

func (f daemonFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return f.fh.(gofs.FileReader).Read(ctx, dest, off)
}

func (f daemonFile) Release(ctx context.Context) syscall.Errno {
	return f.fh.(gofs.FileReleaser).Release(ctx)
}

func (f daemonFile) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return f.fh.(gofs.FileGetattrer).Getattr(ctx, out)
}

// setBDIReadAhead sets the kernel read-ahead of the mount on dir, as
// onedrivefs mount does.
func setBDIReadAhead(dir string, bytes int64) error {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return err
	}
	major := (st.Dev >> 8) & 0xfff
	minor := (st.Dev & 0xff) | ((st.Dev >> 12) & 0xfff00)
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", major, minor)
	return os.WriteFile(path, []byte(strconv.FormatInt(bytes>>10, 10)+"\n"), 0)
}

func (b *bench) benchLoopback(ctx context.Context, rep *report) error {
	size := b.cfg.readSize
	dir := filepath.Join(b.work, "loopback-src")
	mnt := filepath.Join(b.work, "loopback-mnt")
	for _, d := range []string{dir, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	file := filepath.Join(dir, "big.bin")
	if err := writeRandomFile(file, size, 200); err != nil {
		return err
	}
	var rows [2]samples
	var cpus [2]samples
	modes := []string{"passthrough", "daemon"}
	for i, mode := range modes {
		if err := b.loopbackRuns(ctx, dir, mnt, mode, size, &rows[i], &cpus[i]); err != nil {
			return err
		}
	}
	t := rep.table("5. The local FUSE limit",
		"go-fuse's loopback file system of a local copy of the read scenario's file, served by a child process with the "+
			"same request size, read-ahead and splice setting as onedrivefs mount, read the same way (1 MiB read() calls, "+
			"the local file in the page cache). Passthrough: go-fuse's default as root, the kernel reads the backing file "+
			"itself (FUSE passthrough) and the daemon serves no read. Daemon: the same loopback with passthrough withheld, "+
			"so every read is answered by the daemon (ReadResultFd), as onedrivefs answers them: the limit of a Go FUSE "+
			"daemon on this kernel and machine. Beside them, onedrivefs's warm read from scenario 2.",
		"path", "MB/s", "CPU s/GiB, daemon")
	t.add("go-fuse loopback, passthrough", rows[0].format(0), cpus[0].format(2))
	t.add("go-fuse loopback, daemon", rows[1].format(0), cpus[1].format(2))
	if b.warmRead > 0 {
		t.add("onedrivefs, warm cache (scenario 2)", fmtNum(b.warmRead, 0), fmtNum(b.warmCPU, 2))
		goal := min(3000, rows[1].median())
		rep.target("warm sequential read ≥ 3 GB/s (2× 1.5 GB/s) or the local FUSE limit (daemon loopback), whichever is lower",
			fmt.Sprintf("%s MB/s against %s (loopback: daemon %s, passthrough %s)", fmtNum(b.warmRead, 0), fmtNum(goal, 0),
				fmtNum(rows[1].median(), 0), fmtNum(rows[0].median(), 0)),
			yesNo(b.warmRead >= goal))
	}
	return nil
}

// loopbackRuns mounts the loopback helper in mode and reads its file
// b.cfg.runs times.
func (b *bench) loopbackRuns(ctx context.Context, dir, mnt, mode string, size int64, speed, cpu *samples) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, loopbackArg, dir, mnt, mode)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	waited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(waited)
	}()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
		forceUnmount(mnt)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !isMounted(mnt) {
		select {
		case <-waited:
			return errors.New("the loopback helper exited before mounting")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("the loopback mount did not appear in 30 s")
		}
	}
	gib := float64(size) / (1 << 30)
	for range b.cfg.runs {
		settle()
		before := cpuSeconds(cmd.Process.Pid)
		n, d, err := readAll(filepath.Join(mnt, "big.bin"))
		if err != nil {
			return err
		}
		if n != size {
			return fmt.Errorf("loopback read: %d bytes of %d", n, size)
		}
		*speed = append(*speed, mbps(n, d.Seconds()))
		*cpu = append(*cpu, (cpuSeconds(cmd.Process.Pid)-before)/gib)
	}
	return nil
}

// writeRandomFile writes the content putRandom gives the fake for seed.
func writeRandomFile(path string, size int64, seed uint64) error {
	if fi, err := os.Stat(path); err == nil && fi.Size() == size {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, randomReader(seed, size)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// --- append to a file just written ---

func (b *bench) benchAppend(ctx context.Context, rep *report) error {
	size := b.cfg.appendSize
	if _, err := b.fake.MkdirAll("bench/append"); err != nil {
		return err
	}
	block, err := io.ReadAll(randomReader(400, 16<<20))
	if err != nil {
		return err
	}
	src := repeatReaderAt{block}
	var down, up, secs, req, cpu samples
	for r := range b.cfg.runs {
		if err := b.remount(ctx, true); err != nil {
			return err
		}
		p := fmt.Sprintf("bench/append/a-%d.bin", r)
		f, err := os.OpenFile(b.path(p), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		buf := make([]byte, 1<<20)
		for off := int64(0); off < size; off += int64(len(buf)) {
			n := min(int64(len(buf)), size-off)
			_, _ = src.ReadAt(buf[:n], off)
			if _, err := f.Write(buf[:n]); err != nil {
				f.Close()
				return err
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
		settle()
		b.fake.ResetStats()
		m := b.startCPU()
		start := time.Now()
		f, err = os.OpenFile(b.path(p), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		if _, err := f.Write([]byte("\n.")); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		secs = append(secs, time.Since(start).Seconds())
		mc, _ := m.stop()
		st := b.fake.Stats()
		down = append(down, float64(st.BytesDownloaded))
		up = append(up, float64(st.BytesUploaded)/(1<<20))
		req = append(req, float64(st.RequestsTotal))
		cpu = append(cpu, mc)
		b.log.Info("append", "downloaded", st.BytesDownloaded, "requests", formatOps(st.Requests))
		if it, ok := b.fake.ItemByPath(p); !ok || it.Size != size+2 {
			return fmt.Errorf("after the append, %s is not on the fake with %d bytes", p, size+2)
		}
		if err := b.unmount(); err != nil {
			return err
		}
		if err := b.deleteItem(ctx, p); err != nil {
			return err
		}
	}
	t := rep.table(fmt.Sprintf("7. Appending 2 bytes to a file of %s just written", sizeLabel(size)),
		"A fresh mount writes the file (1 MiB write() calls, close: it is uploaded), then open(O_APPEND), write() of 2 "+
			"bytes, close(), timed from open to the return of close (the new version is on the fake, checked). Bytes "+
			"downloaded and uploaded, requests and the mount's CPU seconds are those of the append alone.",
		"bytes downloaded", "MiB uploaded", "append s", "requests", "CPU s, mount")
	t.add(down.format(0), up.format(1), secs.format(2), req.format(0), cpu.format(2))
	rep.target(fmt.Sprintf("appending 2 bytes to a just-written %s file downloads 0 bytes", sizeLabel(size)),
		fmt.Sprintf("%s bytes", fmtNum(down.median(), 0)), yesNo(down.quantile(1) == 0))
	return nil
}

// --- an edit in the middle of a large file never read ---

func (b *bench) benchEdit(ctx context.Context, rep *report) error {
	size := b.cfg.readSize
	if _, err := b.fake.MkdirAll("bench/edit"); err != nil {
		return err
	}
	edit := []byte("EDIT")
	off := size / 2
	var writeS, closeS, down, req, cpu samples
	for r := range b.cfg.runs {
		p := fmt.Sprintf("bench/edit/e-%d.bin", r)
		if _, err := b.fake.PutReader(p, randomReader(500+uint64(r), size), time.Time{}); err != nil {
			return err
		}
		if err := b.remount(ctx, true); err != nil {
			return err
		}
		if _, err := os.Stat(b.path(p)); err != nil {
			return err
		}
		settle()
		b.fake.ResetStats()
		m := b.startCPU()
		start := time.Now()
		f, err := os.OpenFile(b.path(p), os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt(edit, off); err != nil {
			f.Close()
			return err
		}
		wrote := time.Since(start)
		if err := f.Close(); err != nil {
			return err
		}
		closed := time.Since(start)
		mc, _ := m.stop()
		st := b.fake.Stats()
		writeS = append(writeS, wrote.Seconds())
		closeS = append(closeS, closed.Seconds())
		down = append(down, float64(st.BytesDownloaded)/(1<<20))
		req = append(req, float64(st.RequestsTotal))
		cpu = append(cpu, mc)
		b.log.Info("edit", "write", wrote, "close", closed, "downloaded", st.BytesDownloaded, "requests", formatOps(st.Requests))
		if err := b.checkEdit(p, size, off, edit); err != nil {
			return err
		}
		if err := b.unmount(); err != nil {
			return err
		}
		if err := b.deleteItem(ctx, p); err != nil {
			return err
		}
	}
	t := rep.table(fmt.Sprintf("7b. Writing 4 bytes into the middle of a file of %s never read", sizeLabel(size)),
		"A fresh mount with an empty cache: open(O_WRONLY), pwrite() of 4 bytes at the middle, close(). The write "+
			"returns without the file's content (fs/basefill.go: the bytes not written are fetched in the background, "+
			"and before the upload at the latest; OneDrive replaces whole files, so close() waits for them and for the "+
			"upload). Checked on the fake: its size and the 4 bytes. Downloaded, requests and the mount's CPU seconds "+
			"are those of open to close.",
		"write() returns, s", "close() returns, s", "MiB downloaded", "requests", "CPU s, mount")
	t.add(writeS.format(3), closeS.format(2), down.format(1), req.format(0), cpu.format(2))
	rep.target(fmt.Sprintf("a 4-byte write into a %s file never read returns without waiting for its content (no target figure)", sizeLabel(size)),
		fmt.Sprintf("write() after %s s; close() after %s s", fmtNum(writeS.median(), 3), fmtNum(closeS.median(), 2)), "–")
	return nil
}

// checkEdit checks that the fake holds drivePath with size bytes and edit
// at off.
func (b *bench) checkEdit(drivePath string, size, off int64, edit []byte) error {
	it, ok := b.fake.ItemByPath(drivePath)
	if !ok || it.Size != size {
		return fmt.Errorf("after the edit, %s is not on the fake with %d bytes", drivePath, size)
	}
	blob, err := b.fake.BlobPath(drivePath)
	if err != nil {
		return err
	}
	f, err := os.Open(blob)
	if err != nil {
		return err
	}
	defer f.Close()
	got := make([]byte, len(edit))
	if _, err := f.ReadAt(got, off); err != nil {
		return err
	}
	if !bytes.Equal(got, edit) {
		return fmt.Errorf("after the edit, %s holds %q at %d, not %q", drivePath, got, off, edit)
	}
	return nil
}
