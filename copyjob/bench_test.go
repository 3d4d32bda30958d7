package copyjob

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedrivefs/onedrivefs/remote"
)

// BenchmarkScheduler10kJobs measures the tracker's own cost per poll with
// 10,000 unfinished jobs in the schedule: the poller answers at once, the
// rate is unbounded and every job is always due, so the time is the loop's
// (heap, dispatch, apply, goroutine per poll). ns/op is per poll.
func BenchmarkScheduler10kJobs(b *testing.B) {
	const jobs = 10_000
	var polls atomic.Int64
	target := int64(b.N)
	reached := make(chan struct{})
	p := PollerFunc(func(ctx context.Context, _ string) (*remote.JobStatus, error) {
		if polls.Add(1) == target {
			close(reached)
		}
		return &remote.JobStatus{State: remote.JobRunning, Status: "inProgress", Percent: 50}, nil
	})
	tr, err := New(Config{
		Poller:            p,
		FirstInterval:     time.Nanosecond,
		MaxInterval:       time.Nanosecond,
		MaxPollsPerSecond: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
	for n := range jobs {
		if _, err := tr.Add(Spec{MonitorURL: fmt.Sprintf("https://example.invalid/monitor/%d", n)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	go func() { _ = tr.Run(context.Background()) }()
	<-reached
	b.StopTimer()
	if err := tr.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAddDurable measures Add with a jobs directory, as `cp -r` of n
// files does it: n Adds one after another, each durable before it returns.
// ns/op is per Add; the Adds of one iteration start from an empty directory.
func BenchmarkAddDurable(b *testing.B) {
	for _, n := range []int{500, 2000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			p := PollerFunc(func(ctx context.Context, _ string) (*remote.JobStatus, error) {
				return &remote.JobStatus{State: remote.JobRunning, Status: "inProgress"}, nil
			})
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				tr, err := New(Config{Dir: dir, Poller: p})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				for i := range n {
					spec := Spec{SourceID: fmt.Sprintf("SRC!%d", i), SourcePath: fmt.Sprintf("/Archive/notes/note-%04d.txt", i),
						DestParentID: "DST!1", DestName: fmt.Sprintf("note-%04d.txt", i), DestPath: fmt.Sprintf("/Archive-copy/notes/note-%04d.txt", i),
						MonitorURL: fmt.Sprintf("https://api.onedrive.com/v1.0/monitor/4A3407B5!%d?tempauth=x", i), Size: 4096, Origin: "cp"}
					if _, err := tr.Add(spec); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if err := tr.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/add")
		})
	}
}

// BenchmarkAddDurableConcurrent is BenchmarkAddDurable's 2000 Adds made by
// 16 goroutines at once (a file manager copying several files, xattr copies
// of many folders): concurrent Adds share a write and an fsync.
func BenchmarkAddDurableConcurrent(b *testing.B) {
	const n, workers = 2000, 16
	p := PollerFunc(func(ctx context.Context, _ string) (*remote.JobStatus, error) {
		return &remote.JobStatus{State: remote.JobRunning, Status: "inProgress"}, nil
	})
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		tr, err := New(Config{Dir: b.TempDir(), Poller: p})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < n; i += workers {
					if _, err := tr.Add(Spec{SourceID: fmt.Sprintf("SRC!%d", i), DestName: fmt.Sprintf("note-%04d.txt", i),
						MonitorURL: fmt.Sprintf("https://api.onedrive.com/v1.0/monitor/4A3407B5!%d?tempauth=x", i), Origin: "xattr"}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		if err := tr.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/add")
}

// BenchmarkTrackerHeap measures the heap a tracker holds for n concurrent
// jobs, each polled at least once (so its schedule, progress and status word
// are set), with a jobs directory: heap-MiB is the live heap after a GC, less
// the heap before the tracker was made; B/job divides it by n. The poll rate
// is unbounded so that every job is polled quickly.
func BenchmarkTrackerHeap(b *testing.B) {
	for _, n := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			var live uint64
			for b.Loop() {
				live = trackerHeap(b, n)
			}
			b.ReportMetric(float64(live)/(1<<20), "heap-MiB")
			b.ReportMetric(float64(live)/float64(n), "B/job")
		})
	}
}

// trackerHeap measures one tracker of n polled jobs. The timer runs (a
// stopped timer would make b.Loop run forever): the time is the set-up's.
func trackerHeap(b *testing.B, n int) uint64 {
	var polls atomic.Int64
	all := make(chan struct{})
	p := PollerFunc(func(ctx context.Context, _ string) (*remote.JobStatus, error) {
		if polls.Add(1) == int64(n) {
			close(all)
		}
		return &remote.JobStatus{State: remote.JobRunning, Status: "inProgress", Operation: "ItemCopy", Percent: 42.5}, nil
	})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	tr, err := New(Config{Dir: b.TempDir(), Poller: p, FirstInterval: time.Millisecond, MaxInterval: time.Hour,
		MaxPollsPerSecond: -1, MaxConcurrentPolls: 64})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		spec := Spec{SourceID: fmt.Sprintf("4A3407B5E0D1!%d", 1000+i), SourcePath: fmt.Sprintf("/Photos/2024/IMG_%05d.jpg", i),
			SourceCTag: fmt.Sprintf(`"c:{4A3407B5-E0D1-4C8E-9C1A-%012d},1"`, i), SourceETag: fmt.Sprintf(`"{4A3407B5-E0D1-4C8E-9C1A-%012d},2"`, i),
			SourceHash: "aCgDG9jwBhDc4Q1yawMZAAAAAAA=", DestParentID: "4A3407B5E0D1!77", DestName: fmt.Sprintf("IMG_%05d.jpg", i),
			DestPath: fmt.Sprintf("/Backup/Photos/2024/IMG_%05d.jpg", i), Size: 3 << 20, Origin: "cp",
			MonitorURL: fmt.Sprintf("https://my.microsoftpersonalcontent.com/personal/4a3407b5e0d1/_api/v2.0/monitor/%08x-1c3f-4b1e-9f3a-2b5d7c9e1f0a?tempauth=v1.eyJhdWQiOiIwMDAwMDAwMy0wMDAwLTBmZjEtY2UwMC0wMDAwMDAwMDAwMDAiLCJpc3MiOiJodHRwczovL3N0cyJ9.%d", i, i)}
		if _, err := tr.Add(spec); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { _ = tr.Run(ctx); close(runDone) }()
	<-all

	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(tr.Pending()) != n {
		b.Fatalf("%d jobs pending, want %d", len(tr.Pending()), n)
	}
	cancel()
	<-runDone
	if err := tr.Close(); err != nil {
		b.Fatal(err)
	}
	if after.HeapAlloc < before.HeapAlloc {
		return 0
	}
	return after.HeapAlloc - before.HeapAlloc
}
