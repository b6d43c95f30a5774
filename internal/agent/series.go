// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package agent

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// ErrSuperseded is returned by Series for a sample whose tick is no longer
// the last one: the collectors keep only their last update, so the series
// of an older tick are gone. A consumer that gets it fell behind by a whole
// interval, and counts the sample as lost.
var ErrSuperseded = errors.New("a newer tick has replaced the sample's series")

// ErrNoGatherer is returned by Series when SetGatherer was never called.
var ErrNoGatherer = errors.New("the agent has no gatherer: nothing serves its series")

// series memoises, for one sample, the families its readers share.
type series struct {
	once sync.Once
	fams []*dto.MetricFamily
	err  error
}

// SetGatherer names what Series gathers: the registry that /metrics serves
// (web.Gatherer), so that what consumers read is what a scrape would read.
func (a *Agent) SetGatherer(g prometheus.Gatherer) {
	a.mu.Lock()
	a.gatherer = g
	a.mu.Unlock()
}

// Series returns every series /metrics serves, with the values of sample
// s: the one way a consumer (an exporter, the store) enumerates them per
// tick. The first reader of a sample gathers; every other reader of the
// same sample gets the same families, which it must not change. Values
// carry no timestamps: they are the values at s.Time.
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
