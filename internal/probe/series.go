// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"github.com/crmon-dev/crmon/internal/collect"
)

// seriesKey is one series of series() within its cgroup (or among the
// collector's own): its family and other label values. A histogram's is
// all of its series.
type seriesKey struct {
	f  *family
	lv [2]string
}

// AppendSeries implements collect.SeriesAppender: the series Collect
// emits, from the last update, as the store takes them at every tick. A
// cgroup's series are its labels' (cgroupLabels), made the first time
// they are served and kept while its name and image stay; through
// client_golang's gather and the agent's interning, the probes' 4 000
// series beside 150 idle containers cost what a scrape of them did, some
// 12 ms, at every tick.
func (c *collector) AppendSeries(dst []collect.Point) []collect.Point {
	c.mu.Lock()
	snap, cgroups, capped := c.snap, c.cgroups, c.capped
	c.mu.Unlock()
	c.seriesMu.Lock()
	defer c.seriesMu.Unlock()
	c.series(snap, cgroups, capped, func(s *series) {
		ss := c.seriesOf(s)
		if s.h == nil {
			dst = append(dst, collect.Point{Series: ss[0], Value: s.v})
			return
		}
		cum := promCounts(s.h)
		for i := firstBucket; i < NumBuckets; i++ {
			dst = append(dst, collect.Point{Series: ss[i-firstBucket], Value: float64(cum[i])})
		}
		n := NumBuckets - firstBucket
		dst = append(dst,
			collect.Point{Series: ss[n], Value: s.h.Sum.Seconds()},
			collect.Point{Series: ss[n+1], Value: float64(cum[NumBuckets-1])})
	})
	return dst
}

// seriesOf returns the series of s: one, or a histogram's buckets (+Inf
// the last), _sum and _count. c.seriesMu must be held.
func (c *collector) seriesOf(s *series) []*collect.Series {
	m := &c.own
	if s.cg != nil {
		m = &s.cg.series
	}
	key := seriesKey{s.f, s.lv}
	if ss, ok := (*m)[key]; ok {
		return ss
	}
	f := s.f
	var ls []collect.Label
	if s.cg != nil {
		ls = append(ls, collect.Label{Name: "id", Value: s.cg.id}, collect.Label{Name: "image", Value: s.cg.image},
			collect.Label{Name: "name", Value: s.cg.name})
	}
	for i, n := range f.before {
		ls = append(ls, collect.Label{Name: n, Value: s.lv[i]})
	}
	for i, n := range f.after {
		ls = append(ls, collect.Label{Name: n, Value: s.lv[len(f.before)+i]})
	}
	var ss []*collect.Series
	if s.h == nil {
		ss = []*collect.Series{collect.NewSeries(f.name, ls)}
	} else {
		for b := firstBucket; b < NumBuckets; b++ {
			ss = append(ss, collect.NewSeries(f.name+"_bucket", append(append([]collect.Label(nil), ls...),
				collect.Label{Name: "le", Value: collect.FormatBound(promBound(b))})))
		}
		ss = append(ss, collect.NewSeries(f.name+"_sum", append([]collect.Label(nil), ls...)),
			collect.NewSeries(f.name+"_count", append([]collect.Label(nil), ls...)))
	}
	if *m == nil {
		*m = map[seriesKey][]*collect.Series{}
	}
	(*m)[key] = ss
	return ss
}
