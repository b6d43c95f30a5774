// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"sync"

	"github.com/crmon-dev/crmon/internal/collect"
)

// seriesMu guards every labelSet's series: label sets are per container,
// but noLabels and unreadLabels are shared by every Collector.
var seriesMu sync.Mutex

// AppendSeries implements collect.SeriesAppender: the series of Collect,
// container by container. A series is its label set's, made once for
// each family the first time it is served, so a steady tick allocates
// none; a container whose metadata changes gets new label sets, and so
// new series.
func (c *Collector) AppendSeries(dst []collect.Point) []collect.Point {
	seriesMu.Lock()
	defer seriesMu.Unlock()
	c.mu.RLock()
	defer c.mu.RUnlock()
	c.series(func(f fam, l *labelSet, v float64) {
		dst = append(dst, collect.Point{Series: l.seriesOf(f), Value: v})
	})
	return dst
}

// seriesOf is l's series of family f. seriesMu must be held.
func (l *labelSet) seriesOf(f fam) *collect.Series {
	if l.series == nil {
		l.series = new([numFams]*collect.Series)
	}
	s := l.series[f]
	if s == nil {
		s = collect.SeriesOfPairs(families[f].name, l.pairs)
		l.series[f] = s
	}
	return s
}
