package main

import (
	"testing"
	"time"

	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// BenchmarkOfflineFirstCall measures what a user sees when the network
// goes while the mount is in use: how long the first call after it (an
// uncached cat, which must reach the service) takes to fail, with the
// service refusing connections (found at the first connection error) and
// with a network that swallows everything (found by a check on a fresh
// connection once the request waited suspiciously long,
// remote/unanswered.go). Each iteration brings the network back and waits
// until the mount is online again, untimed. Figures are reported, never
// asserted:
//
//	go test -run '^$' -bench OfflineFirstCall -benchtime 5x ./cmd/onedrivefs/
func BenchmarkOfflineFirstCall(b *testing.B) {
	for _, mode := range []graphtest.NetworkMode{graphtest.NetworkRefuse, graphtest.NetworkBlackhole} {
		b.Run(string(mode), func(b *testing.B) {
			env := newMountEnv(b, graphtest.Options{})
			env.seedOffline()
			env.mount("--poll-interval", "1h", "--log-level", "info")
			env.sh("ls . other >/dev/null")
			var total, worst time.Duration
			n := 0
			for b.Loop() {
				took, _, err := env.firstCallInto(mode, "cat other/u.txt")
				if err == nil {
					b.Fatal("an uncached read succeeded with the network gone")
				}
				total += took
				worst = max(worst, took)
				n++
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "first-call-ms")
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-first-call-ms")
			b.ReportMetric(0, "ns/op") // an iteration includes coming back online
		})
	}
}
