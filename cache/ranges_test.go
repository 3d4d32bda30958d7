package cache

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func setOf(rs ...Range) RangeSet {
	var s RangeSet
	for _, r := range rs {
		s.Add(r.Start, r.Len())
	}
	return s
}

func TestRangeSetAdd(t *testing.T) {
	tests := []struct {
		name      string
		initial   []Range
		off, n    int64
		wantAdded int64
		want      []Range
	}{
		{"into empty", nil, 10, 5, 5, []Range{{10, 15}}},
		{"zero length", []Range{{0, 4}}, 10, 0, 0, []Range{{0, 4}}},
		{"negative offset ignored", nil, -1, 5, 0, nil},
		{"disjoint before", []Range{{10, 20}}, 0, 5, 5, []Range{{0, 5}, {10, 20}}},
		{"disjoint after", []Range{{10, 20}}, 30, 5, 5, []Range{{10, 20}, {30, 35}}},
		{"adjacent before merges", []Range{{10, 20}}, 5, 5, 5, []Range{{5, 20}}},
		{"adjacent after merges", []Range{{10, 20}}, 20, 5, 5, []Range{{10, 25}}},
		{"overlap start", []Range{{10, 20}}, 5, 10, 5, []Range{{5, 20}}},
		{"overlap end", []Range{{10, 20}}, 15, 10, 5, []Range{{10, 25}}},
		{"inside", []Range{{10, 20}}, 12, 3, 0, []Range{{10, 20}}},
		{"exact", []Range{{10, 20}}, 10, 10, 0, []Range{{10, 20}}},
		{"covers one", []Range{{10, 20}}, 0, 30, 20, []Range{{0, 30}}},
		{"bridges two", []Range{{0, 10}, {20, 30}}, 10, 10, 10, []Range{{0, 30}}},
		{"bridges overlapping", []Range{{0, 10}, {20, 30}}, 5, 20, 10, []Range{{0, 30}}},
		{"swallows several", []Range{{2, 3}, {5, 6}, {8, 9}, {40, 50}}, 0, 10, 7, []Range{{0, 10}, {40, 50}}},
		{"fills a gap between", []Range{{0, 10}, {20, 30}, {40, 50}}, 12, 3, 3, []Range{{0, 10}, {12, 15}, {20, 30}, {40, 50}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := setOf(tt.initial...)
			before := s.Covered()
			got := s.Add(tt.off, tt.n)
			assert.Equal(t, tt.wantAdded, got)
			assert.Equal(t, tt.want, s.Ranges())
			assert.Equal(t, before+tt.wantAdded, s.Covered())
		})
	}
}

func TestRangeSetQueries(t *testing.T) {
	s := setOf(Range{10, 20}, Range{30, 40})
	tests := []struct {
		name        string
		off, n      int64
		wantMissing []Range
		contains    bool
	}{
		{"all before", 0, 5, []Range{{0, 5}}, false},
		{"empty interval", 3, 0, nil, true},
		{"present", 12, 5, nil, true},
		{"whole present run", 10, 10, nil, true},
		{"straddles start", 5, 10, []Range{{5, 10}}, false},
		{"straddles end", 15, 10, []Range{{20, 25}}, false},
		{"spans a gap", 15, 20, []Range{{20, 30}}, false},
		{"spans everything", 0, 50, []Range{{0, 10}, {20, 30}, {40, 50}}, false},
		{"after everything", 45, 5, []Range{{45, 50}}, false},
		{"ends at a start", 0, 10, []Range{{0, 10}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.wantMissing, s.Missing(tt.off, tt.n))
			assert.Equal(t, tt.contains, s.Contains(tt.off, tt.n))
		})
	}
	assert.Equal(t, int64(20), s.RunEnd(10))
	assert.Equal(t, int64(20), s.RunEnd(19))
	assert.Equal(t, int64(20), s.RunEnd(20), "end is exclusive: 20 is absent")
	assert.Equal(t, int64(5), s.RunEnd(5))
	assert.Equal(t, int64(20), s.Covered())
}

func TestRangeSetJSON(t *testing.T) {
	s := setOf(Range{0, 10}, Range{20, 30})
	b, err := json.Marshal(s)
	require.NoError(t, err)
	assert.JSONEq(t, `[[0,10],[20,30]]`, string(b))
	var back RangeSet
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, s.Ranges(), back.Ranges())
	assert.Equal(t, int64(20), back.Covered())

	for _, bad := range []string{
		`[[0,10],[5,20]]`,  // overlapping
		`[[0,10],[10,20]]`, // adjacent: should have been merged
		`[[20,30],[0,10]]`, // unsorted
		`[[5,5]]`,          // empty
		`[[-1,5]]`,         // negative
		`{"a":1}`,          // not a list
	} {
		var rs RangeSet
		assert.Error(t, json.Unmarshal([]byte(bad), &rs), bad)
	}
}

// TestRangeSetModel checks random operations against a byte map.
func TestRangeSetModel(t *testing.T) {
	const size = 200
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var s RangeSet
		var model [size]bool
		for op := 0; op < 30; op++ {
			off := rng.Int64N(size)
			n := rng.Int64N(size - off + 1)
			var want int64
			for i := off; i < off+n; i++ {
				if !model[i] {
					want++
					model[i] = true
				}
			}
			require.Equal(t, want, s.Add(off, n))

			qoff := rng.Int64N(size)
			qn := rng.Int64N(size - qoff + 1)
			var wantMissing []Range
			for i := qoff; i < qoff+qn; i++ {
				if model[i] {
					continue
				}
				if k := len(wantMissing); k > 0 && wantMissing[k-1].End == i {
					wantMissing[k-1].End++
				} else {
					wantMissing = append(wantMissing, Range{i, i + 1})
				}
			}
			require.Equal(t, wantMissing, s.Missing(qoff, qn))
		}
		var covered int64
		for _, b := range model {
			if b {
				covered++
			}
		}
		require.Equal(t, covered, s.Covered())
		rs := s.Ranges()
		for i := 1; i < len(rs); i++ {
			require.Less(t, rs[i-1].End, rs[i].Start, "ranges must be disjoint and non-adjacent")
		}
	}
}

func BenchmarkRangeSetAdd(b *testing.B) {
	// Sequential 128 KiB chunks, as a streaming download marks them, plus a
	// scattered pattern that keeps many ranges alive.
	b.Run("sequential", func(b *testing.B) {
		for b.Loop() {
			var s RangeSet
			for off := int64(0); off < 1<<30; off += 128 << 10 {
				s.Add(off, 128<<10)
			}
		}
	})
	b.Run("scattered", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(3, 4))
		for b.Loop() {
			var s RangeSet
			for i := 0; i < 1000; i++ {
				s.Add(rng.Int64N(1<<30), 4096)
			}
		}
	})
}

func BenchmarkRangeSetMissing(b *testing.B) {
	var s RangeSet
	for off := int64(0); off < 1<<30; off += 1 << 20 {
		s.Add(off, 512<<10) // 1024 ranges with gaps
	}
	b.ResetTimer()
	for b.Loop() {
		_ = s.Missing(300<<20, 64<<20)
	}
}
