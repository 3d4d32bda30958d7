package copyjob

import (
	"strconv"
	"strings"
	"time"
)

// Job ids are 12 base-36 digits: 9 for the milliseconds since the Unix epoch
// (enough until the year 5138), 3 for a counter within a millisecond. Fixed
// width and an alphabet in ASCII order make string order creation order.
const (
	idTimeDigits = 9
	idSeqDigits  = 3
	idSeqLimit   = 36 * 36 * 36
)

// idGen hands out increasing ids even when the clock stands still or steps
// back (the ids then run ahead of the clock until it catches up).
type idGen struct {
	lastMS int64
	seq    int64
}

func (g *idGen) next(now time.Time) string {
	ms := now.UnixMilli()
	if ms > g.lastMS {
		g.lastMS, g.seq = ms, 0
	} else if g.seq++; g.seq >= idSeqLimit {
		g.lastMS, g.seq = g.lastMS+1, 0
	}
	return pad36(g.lastMS, idTimeDigits) + pad36(g.seq, idSeqDigits)
}

// observe makes later ids sort after id (a job loaded from disk).
func (g *idGen) observe(id string) {
	if len(id) != idTimeDigits+idSeqDigits {
		return
	}
	ms, err1 := strconv.ParseInt(id[:idTimeDigits], 36, 64)
	seq, err2 := strconv.ParseInt(id[idTimeDigits:], 36, 64)
	if err1 != nil || err2 != nil {
		return
	}
	if ms > g.lastMS || (ms == g.lastMS && seq > g.seq) {
		g.lastMS, g.seq = ms, seq
	}
}

func pad36(v int64, width int) string {
	s := strconv.FormatInt(v, 36)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}
