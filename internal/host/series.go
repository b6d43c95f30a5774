// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"sync"

	"github.com/crmon-dev/crmon/internal/collect"
)

// AppendSeries implements collect.SeriesAppender with the samples Collect
// emits, in the order Update added them.
func (m *metricSet) AppendSeries(dst []collect.Point) []collect.Point {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ids := &m.ids
	ids.mu.Lock()
	defer ids.mu.Unlock()
	ids.gen++
	ids.seen = 0
	for i := range m.cur {
		s := &m.cur[i]
		dst = append(dst, collect.Point{Series: ids.get(s.desc, s.lv), Value: s.value})
	}
	ids.sweep()
	return dst
}

// seriesIDs gives each sample of a metricSet its collect.Series, the same
// object from one tick to the next while the sample is there.
//
// The collectors hand the same immutable label-value slice for a device or
// state every tick (labelCache, per-interface structs), so a series is
// found by its descriptor and the address of its label values: one map
// lookup and a comparison of string headers that point to the same bytes.
// A sample whose values come in a new slice (a label rebuilt each tick, or
// repaired by ValidLabelValues) is found again by the values themselves,
// and its entry moves to the new slice.
type seriesIDs struct {
	mu      sync.Mutex // AppendSeries may run for two samples at once
	byLV    map[lvKey]*seriesEntry
	byValue map[string]*seriesEntry
	gen     uint64
	// seen counts the entries this call found or made: when it is all of
	// them, nothing went, and sweep has nothing to look for.
	seen int
	key  []byte
}

// lvKey is a sample's descriptor and the address of its label values
// (nil without labels).
type lvKey struct {
	d  *metricDesc
	lv *string
}

type seriesEntry struct {
	s    *collect.Series
	key  lvKey
	vkey string
	seen uint64
}

// is reports whether e is the series of label values lv of d: the same
// strings, which a cached slice's are (a comparison of their addresses),
// unless the slice was changed in place.
func (e *seriesEntry) is(d *metricDesc, lv []string) bool {
	for i, j := range d.order {
		if e.s.Labels[i].Value != lv[j] {
			return false
		}
	}
	return true
}

// get is the series of d with label values lv.
func (ids *seriesIDs) get(d *metricDesc, lv []string) *collect.Series {
	k := lvKey{d: d}
	if len(lv) > 0 {
		k.lv = &lv[0]
	}
	e := ids.byLV[k]
	if e == nil || !e.is(d, lv) {
		e = ids.byValues(d, lv)
		if old := ids.byLV[e.key]; old == e {
			delete(ids.byLV, e.key)
		}
		e.key = k
		ids.byLV[k] = e
	}
	if e.seen != ids.gen {
		e.seen = ids.gen
		ids.seen++
	}
	return e.s
}

// byValues finds or makes the entry of d{lv} by its label values.
func (ids *seriesIDs) byValues(d *metricDesc, lv []string) *seriesEntry {
	if ids.byLV == nil {
		ids.byLV = map[lvKey]*seriesEntry{}
		ids.byValue = map[string]*seriesEntry{}
	}
	// 0xff never occurs in UTF-8, and the values are UTF-8 (metricSet.add).
	b := append(ids.key[:0], d.name...)
	for _, v := range lv {
		b = append(b, 0xff)
		b = append(b, v...)
	}
	ids.key = b
	if e := ids.byValue[string(b)]; e != nil {
		return e
	}
	ls := make([]collect.Label, len(lv))
	for i, j := range d.order {
		ls[i] = collect.Label{Name: d.labels[j], Value: lv[j]}
	}
	e := &seriesEntry{s: &collect.Series{Name: d.name, Labels: ls}, vkey: string(b)}
	ids.byValue[e.vkey] = e
	return e
}

// sweep forgets the series this call did not see.
func (ids *seriesIDs) sweep() {
	if ids.seen == len(ids.byValue) {
		return
	}
	for k, e := range ids.byValue {
		if e.seen != ids.gen {
			delete(ids.byValue, k)
			if ids.byLV[e.key] == e {
				delete(ids.byLV, e.key)
			}
		}
	}
}
