package copyjob

import (
	"context"
	"fmt"
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
