package remote_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/onedrivefs/onedrivefs/remote"
	"github.com/onedrivefs/onedrivefs/remote/graphtest"
)

// repeatAt is an io.ReaderAt of size bytes repeating block.
type repeatAt struct{ block []byte }

func (r repeatAt) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], r.block[(off+int64(n))%int64(len(r.block)):])
		n += k
	}
	return n, nil
}

// BenchmarkUploadFragmentSize uploads 256 MiB through an upload session
// with fragment sizes within the service's rules (multiples of 320 KiB,
// below 60 MiB), against the fake on loopback: with no added latency (the
// client's and the fake's CPU cost per fragment) and with 20 ms per
// fragment request (a round trip and the service's commit of each
// fragment, which dominate on a real link). MB/s is b.SetBytes' figure;
// fragments/op is the requests one upload takes.
func BenchmarkUploadFragmentSize(b *testing.B) {
	const size = 256 << 20
	block := make([]byte, 1<<20+7) // not a divisor of anything: no accidental alignment
	for i := range block {
		block[i] = byte(i*131 + i>>7)
	}
	for _, latency := range []time.Duration{0, 20 * time.Millisecond} {
		for _, units := range []int64{16, 32, 64, 128, 191} { // 5, 10, 20, 40, 59.7 MiB
			frag := units * remote.FragmentUnit
			b.Run(fmt.Sprintf("latency=%s/fragment=%.1fMiB", latency, float64(frag)/(1<<20)), func(b *testing.B) {
				fake := graphtest.NewServer(graphtest.Options{})
				defer fake.Close()
				if latency > 0 {
					fake.SetFaults(graphtest.FaultOptions{SlowBy: latency, Ops: []string{"upload.fragment"}})
				}
				c, err := remote.New(remote.Config{
					GraphURL:     fake.GraphURL(),
					Tokens:       oauth2.StaticTokenSource(&oauth2.Token{AccessToken: fake.IssueToken(), TokenType: "Bearer"}),
					FragmentSize: frag,
					Logger:       slog.New(slog.DiscardHandler),
				})
				if err != nil {
					b.Fatal(err)
				}
				root, ok := fake.ItemByPath("/")
				if !ok {
					b.Fatal("no root")
				}
				b.SetBytes(size)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					_, err := c.Upload(context.Background(), remote.UploadRequest{
						ParentID: root.ID, Name: fmt.Sprintf("f%d.bin", i), Content: repeatAt{block}, Size: size,
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(fake.Stats().Requests["upload.fragment"])/float64(b.N), "fragments/op")
			})
		}
	}
}
