package copyjob

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
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
	p := PollerFunc(func(ctx context.Context, _ string) (Status, error) {
		if polls.Add(1) == target {
			close(reached)
		}
		return Status{Raw: "inProgress", Percent: 50}, nil
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
