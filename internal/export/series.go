// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"math"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// sep separates the parts of a series key. 0xff never occurs in UTF-8,
// and client_golang refuses label values that are not UTF-8.
const sep = "\xff"

// interner turns families into points whose keys are shared from one
// tick to the next. It keeps the keys of the last tick only: a series that
// disappears (a container that exits) is forgotten at the next tick, and
// the strings of queued ticks are kept alive by the ticks themselves.
type interner struct {
	prev, cur map[string]string
	buf       []byte
}

func newInterner() *interner {
	return &interner{prev: map[string]string{}, cur: map[string]string{}}
}

// points expands fams the way the text format does: a histogram is its
// _bucket{le}, _sum and _count series, a summary its {quantile}, _sum and
// _count series.
func (in *interner) points(fams []*dto.MetricFamily) []point {
	n := 0
	for _, f := range fams {
		n += len(f.GetMetric())
	}
	pts := make([]point, 0, n)
	for _, f := range fams {
		name := f.GetName()
		for _, m := range f.GetMetric() {
			lp := m.GetLabel()
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				pts = append(pts, point{in.key(name, lp, "", ""), m.GetCounter().GetValue()})
			case dto.MetricType_GAUGE:
				pts = append(pts, point{in.key(name, lp, "", ""), m.GetGauge().GetValue()})
			case dto.MetricType_UNTYPED:
				pts = append(pts, point{in.key(name, lp, "", ""), m.GetUntyped().GetValue()})
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					pts = append(pts, point{in.key(name, lp, "quantile", formatFloat(q.GetQuantile())), q.GetValue()})
				}
				pts = append(pts,
					point{in.key(name+"_sum", lp, "", ""), s.GetSampleSum()},
					point{in.key(name+"_count", lp, "", ""), float64(s.GetSampleCount())})
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				inf := false
				for _, b := range h.GetBucket() {
					if math.IsInf(b.GetUpperBound(), 1) {
						inf = true
					}
					pts = append(pts, point{in.key(name+"_bucket", lp, "le", formatFloat(b.GetUpperBound())), float64(b.GetCumulativeCount())})
				}
				if !inf {
					pts = append(pts, point{in.key(name+"_bucket", lp, "le", "+Inf"), float64(h.GetSampleCount())})
				}
				pts = append(pts,
					point{in.key(name+"_sum", lp, "", ""), h.GetSampleSum()},
					point{in.key(name+"_count", lp, "", ""), float64(h.GetSampleCount())})
			}
		}
	}
	in.prev, in.cur = in.cur, in.prev
	clear(in.cur)
	return pts
}

// key is the interned key of name{lp, extra=extraV}.
func (in *interner) key(name string, lp []*dto.LabelPair, extra, extraV string) string {
	b := append(in.buf[:0], name...)
	for _, l := range lp {
		b = append(b, sep...)
		b = append(b, l.GetName()...)
		b = append(b, sep...)
		b = append(b, l.GetValue()...)
	}
	if extra != "" {
		b = append(b, sep...)
		b = append(b, extra...)
		b = append(b, sep...)
		b = append(b, extraV...)
	}
	in.buf = b
	if k, ok := in.cur[string(b)]; ok {
		return k
	}
	k, ok := in.prev[string(b)]
	if !ok {
		k = string(b)
	}
	in.cur[k] = k
	return k
}

// formatFloat writes le and quantile values as the text format does.
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// label is one name and value.
type label struct{ name, value string }

// splitKey returns a key's metric name and labels, in the order the
// family gave them (client_golang sorts them by name).
func splitKey(k string, buf []label) (string, []label) {
	name, rest, _ := strings.Cut(k, sep)
	buf = buf[:0]
	for rest != "" {
		var n, v string
		n, rest, _ = strings.Cut(rest, sep)
		v, rest, _ = strings.Cut(rest, sep)
		buf = append(buf, label{n, v})
	}
	return name, buf
}

// mergeLabels appends to ls the labels of extra it lacks (ls's own win,
// as with Prometheus' external_labels) and sorts the result by name.
func mergeLabels(ls, extra []label) []label {
	for _, el := range extra {
		if !slices.ContainsFunc(ls, func(l label) bool { return l.name == el.name }) {
			ls = append(ls, el)
		}
	}
	slices.SortFunc(ls, func(a, b label) int { return strings.Compare(a.name, b.name) })
	return ls
}
