// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/crmon-dev/crmon/internal/collect"
)

// updatesOf is the value of test_<name>_updates in fams.
func updatesOf(t *testing.T, fams []*dto.MetricFamily, name string) float64 {
	t.Helper()
	for _, f := range fams {
		if f.GetName() == "test_"+name+"_updates" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no test_%s_updates among %d families", name, len(fams))
	return 0
}

// TestSeriesAreTheTicksAndSharedByReaders checks Series' contract: the
// values of the sample's own tick, gathered once for all its readers, and
// ErrSuperseded once a newer tick has replaced them.
func TestSeriesAreTheTicksAndSharedByReaders(t *testing.T) {
	c := newCounting("ok", nil)
	a := New([]collect.Collector{c}, time.Second, nil)
	s := a.Tick(context.Background())
	if _, err := a.Series(s); !errors.Is(err, ErrNoGatherer) {
		t.Fatalf("Series without a gatherer: err = %v, want ErrNoGatherer", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(a)
	a.SetGatherer(reg)

	s = a.Tick(context.Background())
	first, err := a.Series(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := updatesOf(t, first, "ok"); got != 2 {
		t.Errorf("series of the second tick: updates = %v, want 2", got)
	}
	again, err := a.Series(s)
	if err != nil || len(again) == 0 || &again[0] != &first[0] {
		t.Error("a second reader of the same sample should get the same families, not a second gather")
	}

	// Read once, a sample's series stay readable after later ticks; never
	// read before the next tick, they are gone.
	unread := a.Tick(context.Background())
	a.Tick(context.Background())
	if _, err := a.Series(s); err != nil {
		t.Errorf("a sample already read stays readable: %v", err)
	}
	if _, err := a.Series(unread); !errors.Is(err, ErrSuperseded) {
		t.Errorf("a sample first read after the next tick: err = %v, want ErrSuperseded", err)
	}
}

// gatherFunc is a prometheus.Gatherer.
type gatherFunc func() ([]*dto.MetricFamily, error)

func (f gatherFunc) Gather() ([]*dto.MetricFamily, error) { return f() }

// TestSeriesRefusesAGatherThatATickOverlapped: Collect may run during
// Update, so a gather that a tick started under would mix two ticks.
func TestSeriesRefusesAGatherThatATickOverlapped(t *testing.T) {
	c := newCounting("ok", nil)
	a := New([]collect.Collector{c}, time.Second, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(a)
	overlap := true
	a.SetGatherer(gatherFunc(func() ([]*dto.MetricFamily, error) {
		if overlap {
			overlap = false
			a.Tick(context.Background())
		}
		return reg.Gather()
	}))
	s := a.Tick(context.Background())
	if _, err := a.Series(s); !errors.Is(err, ErrSuperseded) {
		t.Errorf("a gather during which a tick started: err = %v, want ErrSuperseded", err)
	}
	s = a.Tick(context.Background())
	fams, err := a.Series(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := updatesOf(t, fams, "ok"); got != 3 {
		t.Errorf("updates = %v, want 3", got)
	}
}
