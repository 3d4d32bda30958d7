package cache

import (
	"context"
	"fmt"
	"io"
	"testing"
)

// BenchmarkFetchReadAt measures the local data path: a fetch function that
// streams from memory in 128 KiB writes, and a reader that Fetches and reads
// 1 MiB at a time through a whole file, as a sequential FUSE reader would
// (without the network). Reported as MB/s of file content.
func BenchmarkFetchReadAt(b *testing.B) {
	const (
		size  = 64 << 20
		chunk = 128 << 10
		step  = 1 << 20
	)
	block := pattern(0, chunk)
	fetch := func(_ context.Context, off, n int64, w io.Writer) error {
		for pos := off; pos < off+n; pos += chunk {
			if _, err := w.Write(block[:min(chunk, off+n-pos)]); err != nil {
				return err
			}
		}
		return nil
	}
	c, err := OpenContent(ContentOptions{Dir: b.TempDir(), MaxBytes: 2 * size})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, step)
	ctx := context.Background()
	b.SetBytes(size)
	i := 0
	for b.Loop() {
		h, err := c.Open(Key{ID: fmt.Sprint(i), CTag: "c"}, size)
		if err != nil {
			b.Fatal(err)
		}
		for off := int64(0); off < size; off += step {
			if err := h.Fetch(ctx, off, step, fetch); err != nil {
				b.Fatal(err)
			}
			if _, err := h.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
		c.Remove(h.Key().ID) // keep the disk bounded; skips the release-time fsync
		_ = h.Release()
		i++
	}
}

// BenchmarkReadAtCached measures reads of bytes already cached.
func BenchmarkReadAtCached(b *testing.B) {
	const size = 16 << 20
	c, err := OpenContent(ContentOptions{Dir: b.TempDir(), MaxBytes: size})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	h, err := c.Open(Key{ID: "x", CTag: "c"}, size)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Release()
	src := newSource()
	src.chunk = 1 << 20
	if err := h.Fetch(context.Background(), 0, size, src.fetch); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 128<<10)
	b.SetBytes(size)
	for b.Loop() {
		for off := int64(0); off < size; off += int64(len(buf)) {
			if _, err := h.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	}
}
