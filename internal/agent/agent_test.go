// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package agent

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// counting is a collector that counts its updates and reports the count
// as the snapshot's process count and as a gauge.
type counting struct {
	name    string
	err     error
	updates atomic.Int64
	desc    *prometheus.Desc
}

func newCounting(name string, err error) *counting {
	return &counting{name: name, err: err, desc: prometheus.NewDesc("test_"+name+"_updates", "Updates.", nil, nil)}
}

func (c *counting) Name() string { return c.name }
func (c *counting) Update(context.Context, time.Time) error {
	c.updates.Add(1)
	return c.err
}
func (c *counting) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *counting) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(c.updates.Load()))
}
func (c *counting) Fill(m *metrics.ResourceMetrics) { m.System.Processes += uint32(c.updates.Load()) }

func TestTickPublishesAndReportsCollectorStatus(t *testing.T) {
	ok, nodata, failed := newCounting("ok", nil), newCounting("nodata", collect.ErrNoData), newCounting("failed", errors.New("boom"))
	a := New([]collect.Collector{ok, nodata, failed}, time.Second, nil)
	sub := a.Subscribe("test", 1)
	if a.Latest() != nil {
		t.Fatal("Latest before the first tick should be nil")
	}
	s := a.Tick(context.Background())
	if got := <-sub.C(); got != s || a.Latest() != s {
		t.Fatal("the tick's sample is not what subscribers and Latest see")
	}
	if s.Metrics.System.Processes != 3 {
		t.Errorf("every collector's Fill should run: processes = %d, want 3", s.Metrics.System.Processes)
	}
	// A subscriber that doesn't read loses samples; the loop doesn't wait.
	a.Tick(context.Background())
	a.Tick(context.Background())

	want := `
# HELP crmon_collector_success Whether a collector's last update succeeded (1) or had no data or failed (0).
# TYPE crmon_collector_success gauge
crmon_collector_success{collector="failed"} 0
crmon_collector_success{collector="nodata"} 0
crmon_collector_success{collector="ok"} 1
# HELP crmon_collections_total Collection cycles the agent completed.
# TYPE crmon_collections_total counter
crmon_collections_total 3
# HELP crmon_samples_dropped_total Samples a subscriber lost because its buffer was full: it read too slowly.
# TYPE crmon_samples_dropped_total counter
crmon_samples_dropped_total{subscriber="test"} 1
# HELP test_ok_updates Updates.
# TYPE test_ok_updates gauge
test_ok_updates 3
`
	if err := testutil.CollectAndCompare(a, strings.NewReader(want),
		"crmon_collector_success", "crmon_collections_total", "crmon_samples_dropped_total", "test_ok_updates"); err != nil {
		t.Error(err)
	}
}

func TestRunTicksAlignedAndStops(t *testing.T) {
	c := newCounting("ok", nil)
	a := New([]collect.Collector{c}, 20*time.Millisecond, nil)
	if d := a.untilNext(time.Unix(0, 25*int64(time.Millisecond))); d != 15*time.Millisecond {
		t.Errorf("untilNext at 25ms with a 20ms interval = %v, want 15ms", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := c.updates.Load(); n < 3 {
		t.Errorf("%d updates in 200ms at a 20ms interval, want several", n)
	}
}

// TestRunAfterTickWaitsForTheNextTick: when the caller has just ticked
// (crmon run does, to serve a complete first scrape), Run does not tick
// again at once, which left the readers of the first sample (exporters,
// the store) finding it superseded.
func TestRunAfterTickWaitsForTheNextTick(t *testing.T) {
	c := newCounting("ok", nil)
	a := New([]collect.Collector{c}, time.Hour, nil)
	// Not within seconds of the hour's aligned tick.
	for a.untilNext(time.Now()) < 5*time.Second {
		time.Sleep(a.untilNext(time.Now()) + 10*time.Millisecond)
	}
	a.Tick(t.Context())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := c.updates.Load(); n != 1 {
		t.Errorf("%d collections, want 1: Run ticked again right after the caller's tick", n)
	}
}

// waitUpdates waits until c has at least n updates, or fails after a
// deadline generous enough for a loaded machine.
func waitUpdates(t *testing.T, c *counting, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.updates.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d updates after 10 s, want %d", c.updates.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSetIntervalRestartsTheRunningLoop checks that a new interval takes
// effect on a running loop at once, not after the old interval's timer:
// from an hour to 20 ms ticks start within seconds, and from 20 ms back to
// an hour they stop.
func TestSetIntervalRestartsTheRunningLoop(t *testing.T) {
	c := newCounting("ok", nil)
	a := New([]collect.Collector{c}, time.Hour, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitUpdates(t, c, 1) // Run's first tick is immediate
	a.SetInterval(20 * time.Millisecond)
	if a.Interval() != 20*time.Millisecond {
		t.Errorf("Interval() = %v after SetInterval(20ms)", a.Interval())
	}
	waitUpdates(t, c, 4)

	a.SetInterval(time.Hour)
	// A tick already under way may still finish; after that, none.
	time.Sleep(50 * time.Millisecond)
	before := c.updates.Load()
	time.Sleep(300 * time.Millisecond)
	if after := c.updates.Load(); after > before+1 {
		t.Errorf("%d ticks in 300 ms after the interval went back to an hour", after-before)
	}
}
