// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// fixturePaths are the fixture trees at the repository root.
func fixturePaths(t testing.TB) collect.Paths {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "testdata")
	return collect.Paths{
		ProcFS: filepath.Join(root, "proc"),
		SysFS:  filepath.Join(root, "sys"),
		RootFS: filepath.Join(root, "rootfs"),
	}
}

// hostSet is every registered collector built once, as the agent builds them.
type hostSet struct {
	names []string
	cs    []collect.Collector
}

func newHostSet(t testing.TB, paths collect.Paths, o Options, skip ...string) *hostSet {
	t.Helper()
	return buildSet(t, collect.Options{Paths: paths}, o, false, skip...)
}

// newHostSetWith is newHostSet with the collectors' common options.
func newHostSetWith(t testing.TB, co collect.Options, o Options) *hostSet {
	t.Helper()
	return buildSet(t, co, o, false)
}

// newFullSet also builds the collectors that are off by default.
func newFullSet(t testing.TB, paths collect.Paths, o Options) *hostSet {
	t.Helper()
	return buildSet(t, collect.Options{Paths: paths}, o, true)
}

func buildSet(t testing.TB, co collect.Options, o Options, all bool, skip ...string) *hostSet {
	t.Helper()
	s := &hostSet{}
	skipped := map[string]bool{}
	for _, n := range skip {
		skipped[n] = true
	}
	for _, r := range RegistrationsWithOptions(o) {
		if (!r.DefaultEnabled && !all) || skipped[r.Name] {
			continue
		}
		if co.TopN == 0 {
			co.TopN = 10
		}
		c, err := r.New(co)
		if err != nil {
			t.Fatalf("building %s: %v", r.Name, err)
		}
		if c.Name() != r.Name {
			t.Errorf("collector %q registered as %q", c.Name(), r.Name)
		}
		s.names = append(s.names, r.Name)
		s.cs = append(s.cs, c)
	}
	return s
}

// update runs every Update of one tick and returns the errors by collector
// (collect.ErrNoData included).
func (s *hostSet) update(now time.Time) map[string]error {
	errs := map[string]error{}
	for _, c := range s.cs {
		if err := c.Update(context.Background(), now); err != nil {
			errs[c.Name()] = err
		}
	}
	return errs
}

func (s *hostSet) fill(now time.Time) metrics.ResourceMetrics {
	m := metrics.ResourceMetrics{Timestamp: now}
	for _, c := range s.cs {
		c.Fill(&m)
	}
	return m
}

func (s *hostSet) registry(t testing.TB) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range s.cs {
		if err := reg.Register(c); err != nil {
			t.Fatalf("registering %s: %v", c.Name(), err)
		}
	}
	return reg
}

// gatherFamilies gathers c alone, through a pedantic registry.
func gatherFamilies(t *testing.T, c prometheus.Collector) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// gatherValues gathers c alone: family name → value.
func gatherValues(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, mf := range gatherFamilies(t, c) {
		m := mf.GetMetric()[0]
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			out[mf.GetName()] = m.GetCounter().GetValue()
		default:
			out[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	return out
}
