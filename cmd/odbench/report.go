package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// samples are the values of one figure over the runs.
type samples []float64

func (s samples) sorted() []float64 {
	c := slices.Clone([]float64(s))
	slices.Sort(c)
	return c
}

// median of the samples (NaN when there are none).
func (s samples) median() float64 {
	c := s.sorted()
	switch n := len(c); {
	case n == 0:
		return math.NaN()
	case n%2 == 1:
		return c[n/2]
	default:
		return (c[n/2-1] + c[n/2]) / 2
	}
}

// quantile q in [0,1] (nearest rank).
func (s samples) quantile(q float64) float64 {
	c := s.sorted()
	if len(c) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(c)))) - 1
	return c[max(0, min(i, len(c)-1))]
}

func (s samples) minmax() (float64, float64) {
	c := s.sorted()
	if len(c) == 0 {
		return math.NaN(), math.NaN()
	}
	return c[0], c[len(c)-1]
}

// format prints "median (min–max)" with the given precision; a single
// sample prints alone.
func (s samples) format(prec int) string {
	if len(s) == 0 {
		return "–"
	}
	m := fmtNum(s.median(), prec)
	if len(s) == 1 {
		return m
	}
	lo, hi := s.minmax()
	if fmtNum(lo, prec) == fmtNum(hi, prec) {
		return m
	}
	return fmt.Sprintf("%s (%s–%s)", m, fmtNum(lo, prec), fmtNum(hi, prec))
}

func fmtNum(v float64, prec int) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

// ratios divides a by b run by run (the pairs measured side by side).
func ratios(a, b samples) samples {
	var out samples
	for i := range min(len(a), len(b)) {
		if b[i] != 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

// table is one markdown table.
type table struct {
	title string
	note  string // a paragraph under the title (method, caveats)
	head  []string
	rows  [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) {
	fmt.Fprintf(w, "### %s\n\n", t.title)
	if t.note != "" {
		fmt.Fprintf(w, "%s\n\n", t.note)
	}
	if len(t.rows) == 0 {
		fmt.Fprintln(w, "(no figures)")
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(t.head, " | "))
	seps := make([]string, len(t.head))
	for i := range seps {
		seps[i] = "---"
	}
	fmt.Fprintf(w, "|%s|\n", strings.Join(seps, "|"))
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
	fmt.Fprintln(w)
}

// target is one of the targets with what was measured.
type target struct {
	name     string
	measured string
	met      string // "yes", "no", or "pending: why"
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// report collects the tables and targets of a run.
type report struct {
	tables  []*table
	targets []target
	notes   []string // what limits a missed target, errors of skipped scenarios
}

func (r *report) table(title, note string, head ...string) *table {
	t := &table{title: title, note: note, head: head}
	r.tables = append(r.tables, t)
	return t
}

func (r *report) target(name, measured, met string) {
	r.targets = append(r.targets, target{name, measured, met})
}

func (r *report) note(format string, a ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, a...))
}

// mib formats bytes as MiB.
func mib(b float64) string { return fmt.Sprintf("%.1f", b/(1<<20)) }

// mbps is bytes per second in MB/s (10^6).
func mbps(bytes int64, secs float64) float64 { return float64(bytes) / secs / 1e6 }
