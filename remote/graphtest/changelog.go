package graphtest

import (
	"cmp"
	"slices"
	"sort"
)

// The change log lets delta find what changed after a token without
// looking at every item of the drive: each stamp (a new sequence number
// given to an item) is appended as (seq, item), so the log is ordered by
// sequence number. An item changed twice has two entries; only the one
// whose seq is still the item's Seq is live, and a removed item (Seq set
// to 0 by remove) has none. The log is compacted to its live entries when
// it has grown to twice its size after the last compaction, so it costs
// amortised constant time per change and at most about two entries per
// live item. Rebuilt from the items at load. Guarded by Server.mu.
type changeLog struct {
	entries   []change
	compactAt int
}

type change struct {
	seq int64
	it  *item
}

// stamp gives it a new sequence number and logs the change. Called with
// s.mu held.
func (s *Server) stamp(it *item) {
	it.Seq = s.bumpSeq()
	l := &s.changes
	l.entries = append(l.entries, change{seq: it.Seq, it: it})
	if len(l.entries) >= l.compactAt {
		l.compact()
	}
}

// compact keeps the live entries.
func (l *changeLog) compact() {
	live := l.entries[:0]
	for _, e := range l.entries {
		if e.it.Seq == e.seq {
			live = append(live, e)
		}
	}
	clear(l.entries[len(live):]) // let removed items go
	l.entries = live
	l.compactAt = 2*len(live) + 4096
}

// rebuild makes the log from the items of every drive (after a load).
func (l *changeLog) rebuild(drives map[string]*drive) {
	l.entries = l.entries[:0]
	for _, d := range drives {
		for _, it := range d.Items {
			l.entries = append(l.entries, change{seq: it.Seq, it: it})
		}
	}
	slices.SortFunc(l.entries, func(a, b change) int { return cmp.Compare(a.seq, b.seq) })
	l.compactAt = 2*len(l.entries) + 4096
}

// since returns the live entries with seq > from, in sequence order.
func (l *changeLog) since(from int64) []change {
	i := sort.Search(len(l.entries), func(i int) bool { return l.entries[i].seq > from })
	var out []change
	for _, e := range l.entries[i:] {
		if e.it.Seq == e.seq {
			out = append(out, e)
		}
	}
	return out
}
