// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestAppendSeriesMatchesCollect checks, collector by collector, that the
// points AppendSeries gives are exactly the series Collect emits, both
// ways, on the fixture trees and on this host, every collector on, and
// that a second update keeps the *collect.Series of every series still
// there.
func TestAppendSeriesMatchesCollect(t *testing.T) {
	for name, paths := range map[string]collect.Paths{"fixture": fixturePaths(t), "host": collect.DefaultPaths()} {
		t.Run(name, func(t *testing.T) {
			s := newFullSet(t, paths, Options{FilesystemNoStatfs: name == "fixture"})
			first := map[collect.Collector][]collect.Point{}
			for round := range 2 {
				s.update(time.Now())
				for _, c := range s.cs {
					sa, ok := c.(collect.SeriesAppender)
					if !ok {
						t.Errorf("%s: not a collect.SeriesAppender", c.Name())
						continue
					}
					reg := prometheus.NewPedanticRegistry()
					reg.MustRegister(c)
					fams, err := reg.Gather()
					if err != nil {
						t.Fatalf("%s: %v", c.Name(), err)
					}
					pts := sa.AppendSeries(nil)
					testenv.ComparePoints(t, pts, fams)
					if round == 0 {
						first[c] = pts
						continue
					}
					// A series of both updates keeps its *collect.Series;
					// on a live host others may come or go (a container's
					// veth, a process state).
					had := map[string]*collect.Series{}
					for _, p := range first[c] {
						had[fmt.Sprint(p.Series.Name, p.Series.Labels)] = p.Series
					}
					for _, p := range pts {
						if old, ok := had[fmt.Sprint(p.Series.Name, p.Series.Labels)]; ok && old != p.Series {
							t.Errorf("%s: %s%v has a new *collect.Series at the second update", c.Name(), p.Series.Name, p.Series.Labels)
						}
					}
				}
			}
		})
	}
}

// TestSeriesIdentity covers how a metricSet keeps a series' identity:
// through a cached label-value slice, through a slice rebuilt each update
// with the same values, with invalid UTF-8 repaired each update; a series
// that goes is forgotten, and one that comes back is a new series.
func TestSeriesIdentity(t *testing.T) {
	var m metricSet
	d := newDesc("test", "x", "Help.", "b", "a")
	nl := newDesc("test", "n", "Help.")
	cached := []string{"1", "2"}
	tick := func(withCached bool) []collect.Point {
		m.begin()
		if withCached {
			m.add(d, prometheus.GaugeValue, 1, cached)
		}
		m.add(d, prometheus.GaugeValue, 2, []string{"fresh", "x"})
		m.add(d, prometheus.GaugeValue, 3, []string{"bad\xff", "y"})
		m.add(nl, prometheus.GaugeValue, 4, nil)
		m.publish(nil)
		return m.AppendSeries(nil)
	}
	a, b := tick(true), tick(true)
	if len(a) != 4 || len(b) != 4 {
		t.Fatalf("%d and %d points, want 4", len(a), len(b))
	}
	for i := range a {
		if a[i].Series != b[i].Series {
			t.Errorf("%s%v: a new *collect.Series at the second update", a[i].Series.Name, a[i].Series.Labels)
		}
	}
	if got := a[0].Series.Labels; len(got) != 2 || got[0] != (collect.Label{Name: "a", Value: "2"}) || got[1] != (collect.Label{Name: "b", Value: "1"}) {
		t.Errorf("labels %v, want a=2, b=1 (sorted by name)", got)
	}
	if got := a[2].Series.Labels[1].Value; got != "bad\uFFFD" {
		t.Errorf("repaired value %q", got)
	}
	if len(m.ids.byValue) != 4 || len(m.ids.byLV) != 4 {
		t.Errorf("%d series by value, %d by label slice, want 4", len(m.ids.byValue), len(m.ids.byLV))
	}
	c := tick(false)
	if len(m.ids.byValue) != 3 || len(m.ids.byLV) != 3 {
		t.Errorf("after a series went: %d series by value, %d by label slice, want 3", len(m.ids.byValue), len(m.ids.byLV))
	}
	if c[0].Series != a[1].Series {
		t.Error("a series that stayed got a new *collect.Series")
	}
	if d := tick(true); d[0].Series == a[0].Series {
		t.Error("a series that went and came back kept its old *collect.Series")
	}

	// A slice changed in place (which collectors must not do) is a new
	// series, not the old one with new labels.
	cached[0] = "changed"
	e := tick(true)
	if e[0].Series.Labels[1].Value != "changed" {
		t.Errorf("a changed label value: %v", e[0].Series.Labels)
	}
}
