package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// --- 10. cp -r of a tree of small files ---

// treeCopyLatency is the fake's copy latency in the tree scenario: the
// fake-server's default, which the demo's 1.5 s is close to.
const treeCopyLatency = 2 * time.Second

// benchTree copies a tree of small files with `cp -r` (one server-side job
// per file, cp returning as each is accepted) against `cp -r
// --reflink=never` (the bytes down and up), then `sync DIR` until every copy
// is on the service.
func (b *bench) benchTree(ctx context.Context, rep *report) error {
	folders, per, size := 10, 50, 4096
	if b.cfg.quick {
		folders, per = 2, 10
	}
	n := folders * per
	for d := range folders {
		for i := range per {
			p := fmt.Sprintf("bench/tree/src/d%02d/f%03d.txt", d, i)
			if i%2 == 1 {
				p = fmt.Sprintf("bench/tree/src/d%02d/sub/f%03d.txt", d, i)
			}
			if _, ok := b.fake.ItemByPath(p); ok {
				continue
			}
			if err := b.putRandom(p, int64(size), uint64(1000*d+i)); err != nil {
				return err
			}
		}
	}
	prev := b.fake.CopyOptions()
	opts := prev
	opts.Latency = treeCopyLatency
	if err := b.fake.SetCopyOptions(opts); err != nil {
		return err
	}
	defer func() { _ = b.fake.SetCopyOptions(prev) }()

	var ssCp, ssAll, ssBytes, ssReq, refCp, refBytes, refReq samples
	jobs := 0
	runs := min(b.cfg.runs, 3)
	for r := range runs {
		one := func(serverSide bool) error {
			if err := b.remount(ctx, true); err != nil {
				return err
			}
			if _, err := run(ctx, b.mnt, "ls", "-R", "bench/tree/src"); err != nil {
				return err
			}
			kind, args := "ref", []string{"-r", "--reflink=never"}
			if serverSide {
				kind, args = "ss", []string{"-r"}
			}
			dst := fmt.Sprintf("bench/tree/dst-%s-%d", kind, r)
			settle()
			b.fake.ResetStats()
			t0 := time.Now()
			wall, err := run(ctx, b.mnt, "cp", append(args, "bench/tree/src", dst)...)
			if err != nil {
				return err
			}
			all := wall
			if serverSide {
				sw, err := run(ctx, b.mnt, "sync", dst)
				if err != nil {
					return err
				}
				all += sw
			}
			st := b.fake.Stats()
			if serverSide {
				ssCp = append(ssCp, wall.Seconds())
				ssAll = append(ssAll, all.Seconds())
				ssBytes = append(ssBytes, float64(transferred(st)))
				ssReq = append(ssReq, float64(st.RequestsTotal))
				jobs += len(b.jobsSince(t0))
			} else {
				refCp = append(refCp, wall.Seconds())
				refBytes = append(refBytes, float64(transferred(st)))
				refReq = append(refReq, float64(st.RequestsTotal))
			}
			if err := b.unmount(); err != nil {
				return err
			}
			return b.deleteItem(ctx, dst)
		}
		if err := alternate(r, func() error { return one(true) }, func() error { return one(false) }); err != nil {
			return err
		}
	}
	t := rep.table(fmt.Sprintf("10. cp -r of %d small files", n),
		fmt.Sprintf("`cp -r` of a tree of %d files of %d bytes in %d folders (nested two deep) inside the mount, against "+
			"`cp -r --reflink=never` of the same tree (every byte down and up), a fresh mount for each, the source listed "+
			"first. The fake's copy jobs take %s each (the fake-server's default). `cp -r` returns as the copies are "+
			"accepted; `sync DIR` then waits until every copy is on the service (\"all on the service\"). Medians of %d runs.",
			n, size, folders*2, treeCopyLatency, runs),
		"command", "cp returns, s", "all on the service, s", "KiB down+up", "requests", "server-side jobs")
	t.add("`cp -r`", ssCp.format(2), ssAll.format(2), kibs(ssBytes).format(0), ssReq.format(0), fmt.Sprintf("%d in %d runs", jobs, runs))
	t.add("`cp -r --reflink=never`", refCp.format(2), refCp.format(2), kibs(refBytes).format(0), refReq.format(0), "–")
	_, maxBytes := ssBytes.minmax()
	rep.target(fmt.Sprintf("cp -r of %d small files: cp no slower than the byte path's, zero bytes moved", n),
		fmt.Sprintf("cp returns after %s s against %s s; %.0f bytes moved", fmtNum(ssCp.median(), 2),
			fmtNum(refCp.median(), 2), maxBytes),
		yesNo(ssCp.median() <= refCp.median() && maxBytes == 0))
	rep.target(fmt.Sprintf("cp -r of %d small files: all on the service no later than the byte path's copy (each job lasts %v on the fake)", n, treeCopyLatency),
		fmt.Sprintf("all on the service after %s s against %s s", fmtNum(ssAll.median(), 2), fmtNum(refCp.median(), 2)),
		yesNo(ssAll.median() <= refCp.median()))
	return nil
}

func kibs(s samples) samples {
	out := make(samples, len(s))
	for i, v := range s {
		out[i] = v / 1024
	}
	return out
}

// --- 11. a thousand jobs ---

// benchScale starts 1,000 server-side copies at once through the xattr:
// 500 files and 500 folders of 100 items, and waits until all are visible,
// for the daemon's peak RSS (scenario table "Peak RSS").
func (b *bench) benchScale(ctx context.Context, rep *report) error {
	files, folders, items := 500, 500, 100
	if b.cfg.quick {
		files, folders, items = 20, 20, 10
	}
	t0 := time.Now()
	for i := range files {
		p := fmt.Sprintf("bench/scale/files/f%03d.txt", i)
		if _, ok := b.fake.ItemByPath(p); !ok {
			if _, err := b.fake.PutFile(p, []byte(fmt.Sprintf("file %d\n", i)), time.Time{}); err != nil {
				return err
			}
		}
	}
	for d := range folders {
		for i := range items {
			p := fmt.Sprintf("bench/scale/folders/d%03d/i%03d.txt", d, i)
			if _, ok := b.fake.ItemByPath(p); !ok {
				if _, err := b.fake.PutFile(p, []byte("x"), time.Time{}); err != nil {
					return err
				}
			}
		}
	}
	seeded := time.Since(t0)
	if err := b.remount(ctx, true); err != nil {
		return err
	}
	dst := "bench/scale/dst"
	if err := os.MkdirAll(b.path(dst+"/files"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(b.path(dst+"/folders"), 0o755); err != nil {
		return err
	}
	b.takePeakRSS()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, files+folders)
	fileNames := make([]string, files)
	folderNames := make([]string, folders)
	sem := make(chan struct{}, 64) // the callers, not the mount, are bounded
	for i := range files {
		fileNames[i] = fmt.Sprintf("f%03d.txt", i)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = setxattrRetry(b.path("bench/scale/files/"+fileNames[i]), copyXattr, []byte(b.path(dst+"/files/"+fileNames[i])))
		})
	}
	for d := range folders {
		folderNames[d] = fmt.Sprintf("d%03d", d)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[files+d] = setxattrRetry(b.path("bench/scale/folders/"+folderNames[d]), copyXattr, []byte(b.path(dst+"/folders/"+folderNames[d])))
		})
	}
	wg.Wait()
	accepted := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("setxattr: %w", err)
	}
	if err := b.waitVisible(ctx, b.path(dst+"/files"), fileNames, nil); err != nil {
		return err
	}
	if err := b.waitVisible(ctx, b.path(dst+"/folders"), folderNames, nil); err != nil {
		return err
	}
	visible := time.Since(start)
	b.notePeakRSS()
	peak := b.peakRSS
	failed := 0
	for _, j := range b.jobsSince(start) {
		if j.Status != "completed" {
			failed++
		}
	}
	var copied int
	if list, err := b.fake.List("/" + dst + "/folders/d000"); err == nil {
		copied = len(list)
	}
	t := rep.table(fmt.Sprintf("11. %d concurrent jobs", files+folders),
		fmt.Sprintf("%d file copies and %d folder copies of %d items each, started at once by `setxattr user.onedrive.copy` "+
			"(64 callers at a time), on a fresh mount; every job takes %s on the fake. Peak RSS is the mount's VmHWM "+
			"from the first setxattr until every copy is visible in the mount.", files, folders, items, b.cfg.copyLatency),
		"figure", "value")
	t.add("seeding the fake, s", fmtNum(seeded.Seconds(), 1))
	t.add("all setxattr calls returned, s", fmtNum(accepted.Seconds(), 2))
	t.add("all copies visible, s", fmtNum(visible.Seconds(), 2))
	t.add("jobs not completed", fmt.Sprint(failed))
	t.add("items in one copied folder", fmt.Sprint(copied))
	t.add("daemon peak RSS, MiB", fmtNum(float64(peak)/(1<<20), 1))
	rep.target(fmt.Sprintf("%d concurrent jobs: all complete and visible, daemon RSS < 150 MiB", files+folders),
		fmt.Sprintf("%d not completed, %s MiB at most", failed, fmtNum(float64(peak)/(1<<20), 1)),
		yesNo(failed == 0 && copied == items && peak < 150<<20))
	return nil
}
