// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/prompb"

	"github.com/crmon-dev/crmon/internal/collect"
)

// sep separates the parts of a series key. 0xff never occurs in UTF-8,
// and client_golang refuses label values that are not UTF-8.
const sep = "\xff"

// series is one series as an exporter knows it, shared by every queued
// sample of it: its identity, and what each sender renders of it once
// rather than at every tick.
type series struct {
	// key is the series' identity: its name and labels (see
	// interner.newSeries), which the queue on disk keeps.
	key  string
	name string
	// src is the agent's series this one is made of; nil for one read
	// back from the queue on disk.
	src *collect.Series
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

// interner turns the agent's points (agent.Points, which the store reads
// too, built once a tick) into the exporter's: the exporter's series of
// each *collect.Series, with the exporter's labels merged in and what its
// sender renders of it. It keeps the series of the last tick only: a
// series that disappears (a container that exits) is forgotten at the
// next tick, and the series of queued ticks are kept alive by the ticks
// themselves.
//
// The agent's points come in the same order every tick, so a series is
// looked for first where it was in the last tick (one pointer
// comparison), and only when it is not there in an index of the last
// tick's series by *collect.Series, built then.
type interner struct {
	prev, cur []*series
	// pos is where in prev the next series is expected.
	pos int
	// index is prev's series by source, built on the tick's first miss.
	index   map[*collect.Series]*series
	indexed bool
	buf     []byte
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
	return &interner{index: map[*collect.Series]*series{}, labels: labels}
}

// points are src's points as the exporter's series.
func (in *interner) points(src []collect.Point) []point { return in.pointsInto(nil, src) }

// pointsInto is points, appended to dst[:0].
func (in *interner) pointsInto(dst []point, src []collect.Point) []point {
	in.tick++
	pts := dst[:0]
	if cap(pts) < len(src) {
		pts = make([]point, 0, len(src))
	}
	for _, p := range src {
		pts = append(pts, point{in.series(p.Series), p.Value})
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

// last is the number of series of the last tick.
func (in *interner) last() int { return len(in.prev) }

// series is the exporter's series of cs.
func (in *interner) series(cs *collect.Series) *series {
	var s *series
	if in.pos < len(in.prev) && in.prev[in.pos].src == cs {
		s = in.prev[in.pos]
		in.pos++
	} else {
		if !in.indexed {
			for _, p := range in.prev {
				in.index[p.src] = p
			}
			in.indexed = true
		}
		if s = in.index[cs]; s != nil {
			in.pos = s.at + 1
		} else {
			s = in.newSeries(cs)
		}
	}
	s.at, s.seen = len(in.cur), in.tick
	in.cur = append(in.cur, s)
	return s
}

// newSeries makes the exporter's series of cs: its key (name and labels,
// sorted by name, as splitKey reads them back), and its labels merged with
// the exporter's.
func (in *interner) newSeries(cs *collect.Series) *series {
	b := append(in.buf[:0], cs.Name...)
	ls := make([]label, 0, len(cs.Labels)+len(in.labels))
	for _, l := range cs.Labels {
		b = append(b, sep...)
		b = append(b, l.Name...)
		b = append(b, sep...)
		b = append(b, l.Value...)
		ls = append(ls, label{l.Name, l.Value})
	}
	in.buf = b
	s := &series{key: string(b), name: cs.Name, src: cs, labels: mergeLabels(ls, in.labels)}
	if in.shared != nil {
		in.shared.put(s)
	}
	return s
}

// label is one name and value.
type label struct{ name, value string }

// splitKey returns a key's metric name and labels, sorted by name.
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
