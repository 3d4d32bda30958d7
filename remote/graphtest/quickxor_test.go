package graphtest

import (
	"encoding/base64"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// naiveQuickXor is the definition of docs/graph-contract.md §9, bit by bit.
func naiveQuickXor(data []byte) string {
	var a [160]bool
	for i, b := range data {
		shift := (11 * i) % 160
		for bit := 0; bit < 8; bit++ {
			if b&(1<<bit) != 0 {
				pos := (shift + bit) % 160
				a[pos] = !a[pos]
			}
		}
	}
	var out [20]byte
	for pos, set := range a {
		if set {
			out[pos/8] |= 1 << (pos % 8)
		}
	}
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(len(data)))
	for i := range l {
		out[12+i] ^= l[i]
	}
	return base64.StdEncoding.EncodeToString(out[:])
}

func qxOf(data []byte) string {
	var q quickXor
	_, _ = q.Write(data)
	return q.base64()
}

func TestQuickXorContractVectors(t *testing.T) {
	for in, want := range map[string]string{
		"":            "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"J":           "SgAAAAAAAAAAAAAAAQAAAAAAAAA=",
		"abc":         "YRDDGAAAAAAAAAAAAwAAAAAAAAA=",
		"hello world": "aCgDG9jwBhDc4Q1yawMZAAAAAAA=",
		"The quick brown fox jumps over the lazy dog": "bMSlbysmxJL6S75XwfMcQZOpcr4=",
	} {
		assert.Equal(t, want, qxOf([]byte(in)), "%q", in)
		assert.Equal(t, want, naiveQuickXor([]byte(in)), "naive %q", in)
	}
}

func TestQuickXorMatchesDefinitionAcrossChunkings(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 159, 160, 161, 319, 320, 1000, 4096, 10007} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		want := naiveQuickXor(data)
		require.Equal(t, want, qxOf(data), "n=%d whole", n)

		// Random chunking through Write.
		var q quickXor
		for rest := data; len(rest) > 0; {
			k := 1 + rng.IntN(min(len(rest), 400))
			_, _ = q.Write(rest[:k])
			rest = rest[k:]
		}
		require.Equal(t, want, q.base64(), "n=%d chunked", n)

		// writeAt in a scrambled order of ranges, then setLength.
		var qa quickXor
		cuts := []int{0, n / 3, n / 2, n}
		for _, i := range []int{2, 0, 1} {
			qa.writeAt(data[cuts[i]:cuts[i+1]], int64(cuts[i]))
		}
		qa.setLength(int64(n))
		require.Equal(t, want, qa.base64(), "n=%d writeAt", n)
	}
}

func TestQuickXorSkipsZeroRuns(t *testing.T) {
	// A sparse layout: zeros, data, zeros, data. Hashing only the data at
	// their offsets plus the total length equals hashing every byte.
	data := make([]byte, 50_000)
	copy(data[12_345:], "middle bytes")
	copy(data[len(data)-7:], "the end")
	var q quickXor
	q.writeAt(data[12_345:12_345+12], 12_345)
	q.writeAt(data[len(data)-7:], int64(len(data)-7))
	q.setLength(int64(len(data)))
	assert.Equal(t, naiveQuickXor(data), q.base64())
}
