// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package agent

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/crmon-dev/crmon/internal/collect"
)

// ErrSuperseded is returned by Series and Points for a sample whose tick
// is no longer the last one: the collectors keep only their last update,
// so the series of an older tick are gone. A consumer that gets it fell
// behind by a whole interval, and counts the sample as lost.
var ErrSuperseded = errors.New("a newer tick has replaced the sample's series")

// ErrNoGatherer is returned by Series and Points when SetExtra was never
// called: the agent does not know what else /metrics serves.
var ErrNoGatherer = errors.New("the agent has no gatherer: nothing serves its series")

// series memoises, for one sample, what its readers share: the families
// Series gathered, and the points of Points.
type series struct {
	once sync.Once
	fams []*dto.MetricFamily
	err  error

	pointsOnce sync.Once
	points     []collect.Point
	pointsErr  error
}

// SetExtra names the collectors /metrics serves besides the agent (the Go
// runtime's, the process', the alert engine's, the store's and the
// exporters' metrics), so that what consumers read through Series and
// Points is what a scrape would read.
func (a *Agent) SetExtra(extra []prometheus.Collector) {
	full, rest := prometheus.NewRegistry(), prometheus.NewRegistry()
	full.MustRegister(append([]prometheus.Collector{a}, extra...)...)
	rest.MustRegister(append([]prometheus.Collector{a.Rest()}, extra...)...)
	a.mu.Lock()
	a.gatherer, a.rest = full, rest
	a.mu.Unlock()
}

// Series returns every series /metrics serves, with the values of sample
// s, as client_golang's families: for a consumer that needs them in that
// form (the exporters). The first reader of a sample gathers; every other
// reader of the same sample gets the same families, which it must not
// change. Values carry no timestamps: they are the values at s.Time.
//
// Collectors keep only their last update, so the series of s can be read
// only until the next tick starts; after that Series returns
// ErrSuperseded. A consumer reads them as soon as it receives s, before
// any slow work.
func (a *Agent) Series(s *Sample) ([]*dto.MetricFamily, error) {
	if s.series == nil {
		return nil, ErrSuperseded
	}
	s.series.once.Do(func() {
		s.series.fams, s.series.err = a.gatherSeries(s)
	})
	return s.series.fams, s.series.err
}

func (a *Agent) gatherSeries(s *Sample) ([]*dto.MetricFamily, error) {
	a.mu.Lock()
	g := a.gatherer
	a.mu.Unlock()
	if g == nil {
		return nil, ErrNoGatherer
	}
	// A tick that starts during the gather changes the collectors under
	// it (Collect may run concurrently with Update), so the result is
	// kept only if no tick started from before the gather to after it.
	seq := a.started.Load()
	if seq != s.seq {
		return nil, ErrSuperseded
	}
	fams, err := g.Gather()
	if a.started.Load() != seq {
		return nil, ErrSuperseded
	}
	return fams, err
}

// Points returns the series Series returns, as a flat list of points
// whose *collect.Series stay the same objects from tick to tick while the
// series last: histograms and summaries expanded into the series a
// scrape stores (_bucket{le}, _sum, _count; {quantile}). It is how the
// store appends a tick without comparing labels. The collectors that
// write their own text format (host, containers) give their points
// directly (collect.SeriesAppender); the rest, a few hundred series, are
// gathered through client_golang and interned. Like Series, the first
// reader of a sample builds them, every other reader shares them (and
// must not change them), and they can be read only until the next tick
// starts (ErrSuperseded).
//
// The order of the points is not /metrics' order. A series served twice
// (which /metrics refuses) may appear twice.
func (a *Agent) Points(s *Sample) ([]collect.Point, error) {
	if s.series == nil {
		return nil, ErrSuperseded
	}
	s.series.pointsOnce.Do(func() {
		s.series.points, s.series.pointsErr = a.gatherPoints(s)
	})
	return s.series.points, s.series.pointsErr
}

// pointsState is what gatherPoints keeps from one tick to the next.
type pointsState struct {
	mu sync.Mutex // serialises gatherPoints: the interners are not concurrent
	// rest interns the rest registry's series; others those of text
	// collectors that give no points, by name.
	rest   collect.Interner
	others map[string]*collect.Interner
	last   int // the last tick's number of points, to size the next
}

func (a *Agent) gatherPoints(s *Sample) ([]collect.Point, error) {
	a.mu.Lock()
	g, cs := a.rest, a.collectors
	a.mu.Unlock()
	if g == nil {
		return nil, ErrNoGatherer
	}
	ps := &a.points
	ps.mu.Lock()
	defer ps.mu.Unlock()
	// As in gatherSeries: kept only if no tick started during the read.
	seq := a.started.Load()
	if seq != s.seq {
		return nil, ErrSuperseded
	}
	pts := make([]collect.Point, 0, ps.last+ps.last/8)
	var errs []error
	var used map[string]bool // the others' interners this read used
	for _, c := range cs {
		if _, ok := c.(collect.TextAppender); !ok {
			continue // in the rest
		}
		if sa, ok := c.(collect.SeriesAppender); ok {
			pts = a.appendSeries(c.Name(), sa, pts)
			continue
		}
		// A text collector without points of its own: through
		// client_golang, as /metrics' protobuf format serves it.
		reg := prometheus.NewRegistry()
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
			continue
		}
		fams, err := reg.Gather()
		if err != nil {
			errs = append(errs, err)
		}
		in := ps.others[c.Name()]
		if in == nil {
			in = new(collect.Interner)
			if ps.others == nil {
				ps.others = map[string]*collect.Interner{}
			}
			ps.others[c.Name()] = in
		}
		if used == nil {
			used = map[string]bool{}
		}
		used[c.Name()] = true
		pts = in.AppendFamilies(pts, fams)
	}
	for n := range ps.others {
		if !used[n] {
			delete(ps.others, n)
		}
	}
	fams, err := g.Gather()
	if err != nil {
		// What the gather could read is kept, as a scrape serves it.
		errs = append(errs, err)
	}
	pts = ps.rest.AppendFamilies(pts, fams)
	if a.started.Load() != seq {
		return nil, ErrSuperseded
	}
	ps.last = len(pts)
	return pts, errors.Join(errs...)
}
