package cache

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadahead(t *testing.T) {
	const k = 1 << 10
	type read struct {
		off, n int64
		want   Range
	}
	tests := []struct {
		name  string
		reads []read
	}{
		{"sequential doubles up to max", []read{
			{0, 4 * k, Range{4 * k, 12 * k}},       // min 8k
			{4 * k, 4 * k, Range{8 * k, 24 * k}},   // 16k
			{8 * k, 4 * k, Range{12 * k, 44 * k}},  // 32k
			{12 * k, 4 * k, Range{16 * k, 80 * k}}, // 64k = max
			{16 * k, 4 * k, Range{20 * k, 84 * k}}, // stays at max
		}},
		{"first read away from the start is random", []read{
			{100 * k, 4 * k, Range{}},
			{104 * k, 4 * k, Range{108 * k, 116 * k}}, // then sequential from there
		}},
		{"random access resets", []read{
			{0, 4 * k, Range{4 * k, 12 * k}},
			{4 * k, 4 * k, Range{8 * k, 24 * k}},
			{900 * k, 4 * k, Range{}},
			{904 * k, 4 * k, Range{908 * k, 916 * k}}, // starts over at min
		}},
		{"slightly out of order stays sequential", []read{
			{0, 4 * k, Range{4 * k, 12 * k}},
			{8 * k, 4 * k, Range{12 * k, 28 * k}}, // skipped ahead within the window
			{4 * k, 4 * k, Range{8 * k, 40 * k}},  // the late one arrives
		}},
		{"backwards beyond the window is random", []read{
			{0, 4 * k, Range{4 * k, 12 * k}},
			{4 * k, 4 * k, Range{8 * k, 24 * k}},
			{8 * k, 4 * k, Range{12 * k, 44 * k}},
			{0, 4 * k, Range{4 * k, 68 * k}}, // within the 32k window: still sequential
			{1000 * k, 4 * k, Range{}},
			{0, 4 * k, Range{}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReadahead(8*k, 64*k)
			for i, rd := range tt.reads {
				assert.Equal(t, rd.want, r.Next(rd.off, rd.n), "read %d at %d", i, rd.off)
			}
		})
	}
}

func TestReadaheadReset(t *testing.T) {
	r := NewReadahead(10, 100)
	r.Next(0, 10)
	r.Next(10, 10)
	r.Reset()
	assert.Equal(t, Range{10, 20}, r.Next(0, 10), "back to the first-read rule and min window")
	assert.Equal(t, Range{}, NewReadahead(10, 100).Next(50, 10))
	// Bounds are sanitised.
	assert.Equal(t, Range{1, 2}, NewReadahead(0, 0).Next(0, 1))
}

func TestReadaheadStreamable(t *testing.T) {
	r := NewReadahead(1<<20, 16<<20)
	r.Next(0, 4<<10)
	assert.False(t, r.Streamable(), "a short run is not worth a stream")
	r.Next(4<<10, 256<<10)
	assert.True(t, r.Streamable())
	lim, moved := r.Limit()
	assert.Equal(t, int64(260<<10+2<<20), lim, "furthest end plus the window (doubled once)")

	stopped := 0
	tok, ok := r.Attach(func() { stopped++ })
	require.True(t, ok)
	_, ok = r.Attach(func() {})
	assert.False(t, ok, "one stream per handle")
	assert.True(t, r.Streaming())

	r.Next(500<<20, 4<<10) // a seek far away
	assert.Equal(t, 1, stopped, "random access stops the stream")
	assert.False(t, r.Streamable())
	assert.False(t, r.Streaming())
	select {
	case <-moved:
	default:
		t.Fatal("the limit moved without a signal")
	}
	r.Detach(tok) // the ended stream detaches; nothing else is touched
	tok2, ok := r.Attach(func() { stopped++ })
	require.True(t, ok)
	r.Detach(tok)
	assert.True(t, r.Streaming(), "a stale token leaves the new stream attached")
	r.Stop()
	assert.Equal(t, 2, stopped)
	r.Detach(tok2)
}
