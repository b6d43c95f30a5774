// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
)

// sep separates the parts of a series key. 0xff never occurs in UTF-8,
// and client_golang refuses label values that are not UTF-8.
const sep = "\xff"

// series is one series as an exporter knows it, shared by every queued
// sample of it: its identity, and what each sender renders of it once
// rather than at every tick.
type series struct {
	// key is the series' identity (see interner.key).
	key  string
	name string
	// at is the series' place in the last tick, and seen the tick's
	// number, for the interner.
	at   int
	seen uint64
	// labels are the series' own labels and the exporter's, the series'
	// winning, sorted by name (as mergeLabels).
	labels []label

	// What follows belongs to the exporter's sender goroutine: it fills
	// it the first time a series is sent and reads it afterwards.

	// enc is the sender's rendering of the series (InfluxDB: the line's
	// measurement and tags; remote write 1.0 its labels, see rw1).
	enc []byte
	// unfit is set when the sender's format cannot carry the series.
	unfit bool
	rw1   []prompb.Label
	// syms are the series' label strings as remote write 2.0's symbol
	// dictionary numbers them, in dictionary generation symGen.
	syms   []uint32
	symGen uint64
	// grp is the series' Elasticsearch sample group.
	grp *esGroup
	// qid is the series' number in the on-disk queue segment qseg
	// (diskQueue.wgen), the intake's (diskQueue.encode). rgen is the
	// reader's segment generation that last defined it.
	qseg uint64
	qid  uint32
	rgen uint64

	// stamp and slot place the series in the request being built: slot
	// is its index there when stamp is that request's number.
	stamp uint64
	slot  int
}

// interner turns families into points whose series are shared from one
// tick to the next. It keeps the series of the last tick only: a series
// that disappears (a container that exits) is forgotten at the next tick,
// and the series of queued ticks are kept alive by the ticks themselves.
//
// The agent serves its series in the same order every tick, so a series
// is looked for first where it was in the last tick (one comparison of
// keys), and only when it is not there in an index of the last tick's
// series, built then. With a map lookup per sample, interning was a
// quarter of the InfluxDB exporter's CPU at host + 50 containers.
type interner struct {
	prev, cur []*series
	// pos is where in prev the next series is expected.
	pos int
	// index is prev's series by key, built on the tick's first miss.
	index   map[string]*series
	indexed bool
	buf     []byte
	lbuf    []label
	// bounds and boundStr are the last bucket bounds (or quantiles)
	// formatted, see bound.
	bounds   []float64
	boundStr []string
	// labels are the exporter's own labels, merged into each series'.
	labels []label
	// shared, when set, is told of every series the interner makes and
	// forgets; tick numbers the calls of points, for series.seen.
	shared *seriesTable
	tick   uint64
}

// seriesTable is the intake's series of the last tick by key, which the
// reader of the queue on disk takes rather than making series of its own
// for what it reads back: one copy of each series' name and labels, and
// of what the sender renders of it, not two (4.8 MB at host + 50
// containers). The intake writes only its own fields of a series (at,
// seen, qseg, qid), the sender only its own.
type seriesTable struct {
	mu sync.Mutex
	m  map[string]*series
}

func newSeriesTable() *seriesTable { return &seriesTable{m: map[string]*series{}} }

func (t *seriesTable) put(s *series) {
	t.mu.Lock()
	t.m[s.key] = s
	t.mu.Unlock()
}

// forget removes the series of prev not seen at tick.
func (t *seriesTable) forget(prev []*series, tick uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range prev {
		if s.seen != tick && t.m[s.key] == s {
			delete(t.m, s.key)
		}
	}
}

// get is the series of key; nil when the intake has none (t nil too).
func (t *seriesTable) get(key string) *series {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[key]
}

func newInterner(labels []label) *interner {
	return &interner{index: map[string]*series{}, labels: labels}
}

// points expands fams the way the text format does: a histogram is its
// _bucket{le}, _sum and _count series, a summary its {quantile}, _sum and
// _count series.
func (in *interner) points(fams []*dto.MetricFamily) []point { return in.pointsInto(nil, fams) }

// pointsInto is points, appended to dst[:0].
func (in *interner) pointsInto(dst []point, fams []*dto.MetricFamily) []point {
	n := 0
	for _, f := range fams {
		n += len(f.GetMetric())
	}
	in.tick++
	pts := dst[:0]
	if cap(pts) < n {
		pts = make([]point, 0, n)
	}
	for _, f := range fams {
		name := f.GetName()
		for _, m := range f.GetMetric() {
			lp := m.GetLabel()
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				pts = append(pts, point{in.key(name, "", lp, "", ""), m.GetCounter().GetValue()})
			case dto.MetricType_GAUGE:
				pts = append(pts, point{in.key(name, "", lp, "", ""), m.GetGauge().GetValue()})
			case dto.MetricType_UNTYPED:
				pts = append(pts, point{in.key(name, "", lp, "", ""), m.GetUntyped().GetValue()})
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for k, q := range s.GetQuantile() {
					pts = append(pts, point{in.key(name, "", lp, "quantile", in.bound(k, q.GetQuantile())), q.GetValue()})
				}
				pts = append(pts,
					point{in.key(name, "_sum", lp, "", ""), s.GetSampleSum()},
					point{in.key(name, "_count", lp, "", ""), float64(s.GetSampleCount())})
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				inf := false
				for k, b := range h.GetBucket() {
					if math.IsInf(b.GetUpperBound(), 1) {
						inf = true
					}
					pts = append(pts, point{in.key(name, "_bucket", lp, "le", in.bound(k, b.GetUpperBound())), float64(b.GetCumulativeCount())})
				}
				if !inf {
					pts = append(pts, point{in.key(name, "_bucket", lp, "le", "+Inf"), float64(h.GetSampleCount())})
				}
				pts = append(pts,
					point{in.key(name, "_sum", lp, "", ""), h.GetSampleSum()},
					point{in.key(name, "_count", lp, "", ""), float64(h.GetSampleCount())})
			}
		}
	}
	if in.shared != nil {
		in.shared.forget(in.prev, in.tick)
	}
	clear(in.prev)
	in.prev, in.cur = in.cur, in.prev[:0]
	in.pos = 0
	if in.indexed {
		clear(in.index)
		in.indexed = false
	}
	return pts
}

// bound is the text form of the k-th bucket bound (or quantile) v of a
// metric. The metrics of a family share their bounds, so the last
// metric's strings are kept and reused while they match: one string a
// bound, not one a bucket of every series (a tenth of the interner's
// allocations at host + 50 containers).
func (in *interner) bound(k int, v float64) string {
	// The same bits: 0 and -0 are equal, and formatted apart.
	if k < len(in.bounds) && math.Float64bits(in.bounds[k]) == math.Float64bits(v) {
		return in.boundStr[k]
	}
	if k > len(in.bounds) || k >= maxBounds {
		return formatFloat(v)
	}
	in.bounds, in.boundStr = append(in.bounds[:k], v), append(in.boundStr[:k], formatFloat(v))
	return in.boundStr[k]
}

// maxBounds bounds the bounds bound keeps.
const maxBounds = 256

// is reports whether k is the key of name+suffix{lp, extra=extraV}, as
// key would build it: the series of a tick are those of the last one,
// in the same order, and comparing in place spares building the key of
// each (it was a third of the interner's CPU at host + 50 containers).
func is(k, name, suffix string, lp []*dto.LabelPair, extra, extraV string) bool {
	var ok bool
	if k, ok = strings.CutPrefix(k, name); !ok {
		return false
	}
	if k, ok = strings.CutPrefix(k, suffix); !ok {
		return false
	}
	for _, l := range lp {
		if k, ok = cutPair(k, l.GetName(), l.GetValue()); !ok {
			return false
		}
	}
	if extra != "" {
		if k, ok = cutPair(k, extra, extraV); !ok {
			return false
		}
	}
	return k == ""
}

// cutPair cuts sep+name+sep+value off the start of k.
func cutPair(k, name, value string) (string, bool) {
	n := 2*len(sep) + len(name) + len(value)
	if len(k) < n || k[:len(sep)] != sep || k[len(sep):len(sep)+len(name)] != name ||
		k[len(sep)+len(name):2*len(sep)+len(name)] != sep || k[2*len(sep)+len(name):n] != value {
		return "", false
	}
	return k[n:], true
}

// key is the interned series of name+suffix{lp, extra=extraV}.
func (in *interner) key(name, suffix string, lp []*dto.LabelPair, extra, extraV string) *series {
	if in.pos < len(in.prev) && is(in.prev[in.pos].key, name, suffix, lp, extra, extraV) {
		s := in.prev[in.pos]
		in.pos++
		s.at, s.seen = len(in.cur), in.tick
		in.cur = append(in.cur, s)
		return s
	}
	b := append(in.buf[:0], name...)
	b = append(b, suffix...)
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
	if !in.indexed {
		for _, p := range in.prev {
			in.index[p.key] = p
		}
		in.indexed = true
	}
	s := in.index[string(b)]
	if s != nil {
		in.pos = s.at + 1
	} else {
		s = &series{key: string(b)}
		var ls []label
		s.name, ls = splitKey(s.key, in.lbuf)
		in.lbuf = ls
		s.labels = mergeLabels(slices.Clone(ls), in.labels)
		if in.shared != nil {
			in.shared.put(s)
		}
	}
	s.at, s.seen = len(in.cur), in.tick
	in.cur = append(in.cur, s)
	return s
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
