// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package collect

import (
	"math"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// Series is one series the agent serves, as the consumers of its ticks
// (the store) know it: its name and labels, built once when the series
// first appears and then the same object at every tick while the series
// lasts. A consumer keeps what it derives from a series (a TSDB
// reference, a rendering) by its *Series and compares no labels. A Series
// is never changed once made.
type Series struct {
	// Name is the series' metric name: a histogram's or summary's family
	// name with its suffix (_bucket, _sum, _count).
	Name string
	// Labels are sorted by name, without the metric name; le and quantile
	// among them, as Prometheus stores a scraped histogram or summary.
	Labels []Label
}

// Label is one label name and value.
type Label struct{ Name, Value string }

// Point is one series' value at a tick.
type Point struct {
	Series *Series
	Value  float64
}

// SeriesAppender is implemented by the collectors that write their own
// text format (TextAppender): they give their series to the agent's
// consumers as points, without client_golang's gather and its
// per-series allocations. AppendSeries must append exactly the series
// Collect emits, with the same values, each with the same *Series at every
// call while the series exists (their tests compare it with Collect), must
// not do I/O, and may be called concurrently with Update, as Collect.
type SeriesAppender interface {
	AppendSeries(dst []Point) []Point
}

// NewSeries makes the series name{labels...}; it sorts labels by name.
func NewSeries(name string, labels []Label) *Series {
	slices.SortFunc(labels, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	return &Series{Name: name, Labels: labels}
}

// SeriesOfPairs makes the series name{pairs...}, as client_golang's label
// pairs (sorted by name) give it.
func SeriesOfPairs(name string, pairs []*dto.LabelPair) *Series {
	ls := make([]Label, len(pairs))
	for i, p := range pairs {
		ls[i] = Label{p.GetName(), p.GetValue()}
	}
	return NewSeries(name, ls)
}

// FormatBound writes a bucket's upper bound or a quantile as Prometheus
// stores it from a scrape: in the float form OpenMetrics gives ("1.0",
// "0.25", "+Inf"), which Prometheus 3 normalises the text format's to, so
// that the same query finds crmon's history and a scraper's.
func FormatBound(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// Interner turns client_golang's families into points whose series stay
// the same objects from one call to the next: the agent's way to serve
// the series of the collectors that write no points themselves (the
// eBPF collector, the agent's and the store's own metrics, the Go
// runtime's). It expands families the way a scrape stores them: a
// histogram is its _bucket{le}, _sum and _count series, a summary its
// {quantile}, _sum and _count series.
//
// It keeps the series of the last call only: one that is not in a call
// is forgotten, and gets a new *Series if it comes back. The families
// come in the same order every tick, so a series is looked for first where
// it was in the last call (one comparison of keys), and only then in an
// index of the last call's series, built on the first miss.
//
// An Interner is not safe for concurrent use.
type Interner struct {
	prev, cur []*interned
	pos       int
	index     map[string]*interned
	indexed   bool
	buf       []byte
}

type interned struct {
	key string
	s   *Series
	at  int
}

// AppendFamilies appends the points of fams to dst.
func (in *Interner) AppendFamilies(dst []Point, fams []*dto.MetricFamily) []Point {
	for _, f := range fams {
		name := f.GetName()
		for _, m := range f.GetMetric() {
			lp := m.GetLabel()
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				dst = append(dst, Point{in.series(name, "", lp, "", 0), m.GetCounter().GetValue()})
			case dto.MetricType_GAUGE:
				dst = append(dst, Point{in.series(name, "", lp, "", 0), m.GetGauge().GetValue()})
			case dto.MetricType_UNTYPED:
				dst = append(dst, Point{in.series(name, "", lp, "", 0), m.GetUntyped().GetValue()})
			case dto.MetricType_SUMMARY:
				sm := m.GetSummary()
				for _, q := range sm.GetQuantile() {
					dst = append(dst, Point{in.series(name, "", lp, "quantile", q.GetQuantile()), q.GetValue()})
				}
				dst = append(dst,
					Point{in.series(name, "_sum", lp, "", 0), sm.GetSampleSum()},
					Point{in.series(name, "_count", lp, "", 0), float64(sm.GetSampleCount())})
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				inf := false
				for _, b := range h.GetBucket() {
					inf = inf || math.IsInf(b.GetUpperBound(), 1)
					dst = append(dst, Point{in.series(name, "_bucket", lp, "le", b.GetUpperBound()), float64(b.GetCumulativeCount())})
				}
				if !inf {
					dst = append(dst, Point{in.series(name, "_bucket", lp, "le", math.Inf(1)), float64(h.GetSampleCount())})
				}
				dst = append(dst,
					Point{in.series(name, "_sum", lp, "", 0), h.GetSampleSum()},
					Point{in.series(name, "_count", lp, "", 0), float64(h.GetSampleCount())})
			}
		}
	}
	clear(in.prev)
	in.prev, in.cur = in.cur, in.prev[:0]
	in.pos = 0
	if in.indexed {
		clear(in.index)
		in.indexed = false
	}
	return dst
}

// series is the interned series name+suffix{lp, extra=bound}. Its key
// separates parts with 0xff, which no UTF-8 string holds.
func (in *Interner) series(name, suffix string, lp []*dto.LabelPair, extra string, bound float64) *Series {
	b := append(in.buf[:0], name...)
	b = append(b, suffix...)
	for _, l := range lp {
		b = append(b, 0xff)
		b = append(b, l.GetName()...)
		b = append(b, 0xff)
		b = append(b, l.GetValue()...)
	}
	if extra != "" {
		b = append(b, 0xff)
		b = append(b, extra...)
		b = append(b, 0xff)
		b = strconv.AppendFloat(b, bound, 'g', -1, 64)
	}
	in.buf = b
	var e *interned
	if in.pos < len(in.prev) && in.prev[in.pos].key == string(b) {
		e = in.prev[in.pos]
		in.pos++
	} else {
		if !in.indexed {
			if in.index == nil {
				in.index = map[string]*interned{}
			}
			for _, p := range in.prev {
				in.index[p.key] = p
			}
			in.indexed = true
		}
		if e = in.index[string(b)]; e != nil {
			in.pos = e.at + 1
		} else {
			ls := make([]Label, 0, len(lp)+1)
			for _, l := range lp {
				ls = append(ls, Label{l.GetName(), l.GetValue()})
			}
			if extra != "" {
				ls = append(ls, Label{extra, FormatBound(bound)})
			}
			e = &interned{key: string(b), s: NewSeries(name+suffix, ls)}
		}
	}
	e.at = len(in.cur)
	in.cur = append(in.cur, e)
	return e.s
}
