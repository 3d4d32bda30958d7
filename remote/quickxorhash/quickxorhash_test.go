package quickxorhash

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var _ hash.Hash = New()

type vector struct {
	Name    string  `json:"name"`
	Source  string  `json:"source"`
	Text    *string `json:"text"`
	Base64  string  `json:"base64"`
	Pattern *struct {
		Length  int `json:"length"`
		Modulus int `json:"modulus"`
	} `json:"pattern"`
	QuickXorHash string `json:"quickXorHash"`
}

func (v vector) input(t *testing.T) []byte {
	t.Helper()
	switch {
	case v.Text != nil:
		return []byte(*v.Text)
	case v.Base64 != "":
		b, err := base64.StdEncoding.DecodeString(v.Base64)
		require.NoError(t, err, v.Name)
		return b
	case v.Pattern != nil:
		return pattern(v.Pattern.Length, v.Pattern.Modulus)
	}
	t.Fatalf("vector %q has no input", v.Name)
	return nil
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "quickxorhash.json"))
	require.NoError(t, err)
	var file struct {
		Vectors []vector `json:"vectors"`
	}
	require.NoError(t, json.Unmarshal(raw, &file))
	require.NotEmpty(t, file.Vectors)
	return file.Vectors
}

func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			in := v.input(t)
			assert.Equal(t, v.QuickXorHash, Base64(in), "Sum")

			want, err := base64.StdEncoding.DecodeString(v.QuickXorHash)
			require.NoError(t, err)
			naive := naiveSum(in)
			assert.Equal(t, want, naive[:], "the naive implementation disagrees with the vector")

			// The same input written in awkward pieces must give the same digest.
			pieces := []int{1, 3, 7, 8, 13, 64, 159, 160, 161, 4096}
			if len(in) > 1<<16 {
				pieces = []int{161, 4093, 1 << 16} // keep the -race run short
			}
			for _, piece := range pieces {
				h := New()
				for off := 0; off < len(in); off += piece {
					end := min(off+piece, len(in))
					n, err := h.Write(in[off:end])
					require.NoError(t, err)
					require.Equal(t, end-off, n)
				}
				assert.Equal(t, want, h.Sum(nil), "pieces of %d", piece)
			}
		})
	}
}

// TestFastMatchesNaive cross-checks the word-at-a-time implementation against
// the bit-by-bit one on every length 0…300 of random data, split at a random
// point so that unaligned ring positions are exercised.
func TestFastMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 300; n++ {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.IntN(256))
		}
		want := naiveSum(data)
		require.Equal(t, want, Sum(data), "length %d", n)

		split := 0
		if n > 0 {
			split = rng.IntN(n + 1)
		}
		h := New()
		_, _ = h.Write(data[:split])
		_, _ = h.Write(data[split:])
		require.Equal(t, want[:], h.Sum(nil), "length %d split at %d", n, split)
	}
}

func TestFastMatchesNaiveLarge(t *testing.T) {
	data := pattern(1<<20+5, 251)
	want := naiveSum(data)
	assert.Equal(t, want, Sum(data))
}

func TestSumDoesNotChangeState(t *testing.T) {
	h := New()
	_, _ = h.Write([]byte("hello "))
	prefix := h.Sum([]byte("keep"))
	assert.Equal(t, "keep", string(prefix[:4]), "Sum appends")
	_, _ = h.Write([]byte("world"))
	assert.Equal(t, "aCgDG9jwBhDc4Q1yawMZAAAAAAA=", base64.StdEncoding.EncodeToString(h.Sum(nil)))
}

func TestResetAndSizes(t *testing.T) {
	h := New()
	empty := h.Sum(nil)
	_, _ = h.Write([]byte{1})
	assert.NotEqual(t, empty, h.Sum(nil))
	h.Reset()
	assert.Equal(t, empty, h.Sum(nil))
	assert.Equal(t, 20, h.Size())
	assert.Equal(t, 64, h.BlockSize())
}

func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		data := pattern(size, 251)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			h := New()
			for b.Loop() {
				_, _ = h.Write(data)
			}
			_ = h.Sum(nil)
		})
	}
}

func BenchmarkNaive(b *testing.B) {
	data := pattern(4<<10, 251)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		_ = naiveSum(data)
	}
}
