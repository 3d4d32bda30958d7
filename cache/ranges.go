package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// Range is the half-open byte interval [Start, End).
type Range struct {
	Start, End int64
}

// Len is the number of bytes in r (0 for an empty or inverted range).
func (r Range) Len() int64 {
	if r.End <= r.Start {
		return 0
	}
	return r.End - r.Start
}

func (r Range) String() string { return fmt.Sprintf("[%d,%d)", r.Start, r.End) }

// RangeSet is a set of byte offsets, kept as sorted, disjoint, non-adjacent
// ranges (adding [0,4) and [4,8) stores [0,8)). The zero value is an empty set.
// A RangeSet is not safe for concurrent use; Entry guards its own with a mutex.
//
// INVARIANT: for all i, rs[i].Start < rs[i].End < rs[i+1].Start, and total is
// the sum of rs[i].Len().
type RangeSet struct {
	rs    []Range
	total int64
}

// Add inserts [off, off+n) and returns how many of those bytes were not in the
// set before. n <= 0 or off < 0 adds nothing.
func (s *RangeSet) Add(off, n int64) (added int64) {
	if n <= 0 || off < 0 {
		return 0
	}
	start, end := off, off+n
	// First range that touches or follows start (End >= start merges adjacency).
	i := sort.Search(len(s.rs), func(k int) bool { return s.rs[k].End >= start })
	// j is one past the last range that touches [start, end].
	j := i
	var overlap int64
	for j < len(s.rs) && s.rs[j].Start <= end {
		r := s.rs[j]
		overlap += min(r.End, off+n) - max(r.Start, off) // 0 when r only touches
		start = min(start, r.Start)
		end = max(end, r.End)
		j++
	}
	added = n - overlap
	if added == 0 {
		return 0
	}
	merged := Range{start, end}
	switch {
	case j == i: // no range touched: insert
		s.rs = append(s.rs, Range{})
		copy(s.rs[i+1:], s.rs[i:])
		s.rs[i] = merged
	default: // replace rs[i:j] by merged
		s.rs[i] = merged
		s.rs = append(s.rs[:i+1], s.rs[j:]...)
	}
	s.total += added
	return added
}

// Missing returns the parts of [off, off+n) that are not in the set, in
// ascending order; nil when all of it is present.
func (s *RangeSet) Missing(off, n int64) []Range {
	if n <= 0 {
		return nil
	}
	end := off + n
	var out []Range
	pos := off
	i := sort.Search(len(s.rs), func(k int) bool { return s.rs[k].End > off })
	for ; i < len(s.rs) && s.rs[i].Start < end; i++ {
		r := s.rs[i]
		if r.Start > pos {
			out = append(out, Range{pos, r.Start})
		}
		pos = max(pos, r.End)
	}
	if pos < end {
		out = append(out, Range{pos, end})
	}
	return out
}

// Contains reports whether all of [off, off+n) is in the set. An empty
// interval is always contained.
func (s *RangeSet) Contains(off, n int64) bool {
	if n <= 0 {
		return true
	}
	return s.RunEnd(off) >= off+n
}

// RunEnd returns the end of the present run that contains off, or off itself
// when off is not in the set: bytes [off, RunEnd(off)) are all present.
func (s *RangeSet) RunEnd(off int64) int64 {
	i := sort.Search(len(s.rs), func(k int) bool { return s.rs[k].End > off })
	if i < len(s.rs) && s.rs[i].Start <= off {
		return s.rs[i].End
	}
	return off
}

// NextStart returns the start of the first present range after off, or
// limit when there is none before it: bytes [off, NextStart) hold no start
// of a present run.
func (s *RangeSet) NextStart(off, limit int64) int64 {
	i := sort.Search(len(s.rs), func(k int) bool { return s.rs[k].Start > off })
	if i < len(s.rs) && s.rs[i].Start < limit {
		return s.rs[i].Start
	}
	return limit
}

// Covered is the total number of bytes in the set.
func (s *RangeSet) Covered() int64 { return s.total }

// Ranges returns a copy of the set's ranges in ascending order.
func (s *RangeSet) Ranges() []Range {
	return append([]Range(nil), s.rs...)
}

// Clone returns an independent copy of s.
func (s *RangeSet) Clone() RangeSet {
	return RangeSet{rs: s.Ranges(), total: s.total}
}

// MarshalJSON encodes the set as [[start,end],...].
func (s RangeSet) MarshalJSON() ([]byte, error) {
	out := make([][2]int64, len(s.rs))
	for i, r := range s.rs {
		out[i] = [2]int64{r.Start, r.End}
	}
	return json.Marshal(out)
}

var errBadRangeSet = errors.New("cache: malformed range set")

// UnmarshalJSON decodes [[start,end],...] and rejects anything that breaks
// the RangeSet invariant (negative, empty, unsorted, overlapping or adjacent
// ranges), so that a corrupt sidecar is never trusted.
func (s *RangeSet) UnmarshalJSON(b []byte) error {
	var in [][2]int64
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("%w: %w", errBadRangeSet, err)
	}
	var t RangeSet
	prevEnd := int64(-1)
	for _, p := range in {
		r := Range{p[0], p[1]}
		if r.Start < 0 || r.End <= r.Start || r.Start <= prevEnd {
			return fmt.Errorf("%w: range %v after end %d", errBadRangeSet, r, prevEnd)
		}
		t.rs = append(t.rs, r)
		t.total += r.Len()
		prevEnd = r.End
	}
	*s = t
	return nil
}
