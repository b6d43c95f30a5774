// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/metrics"
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

// pointOf is the value of the point named name in pts.
func pointOf(t *testing.T, pts []collect.Point, name string) float64 {
	t.Helper()
	for _, p := range pts {
		if p.Series.Name == name {
			return p.Value
		}
	}
	t.Fatalf("no %s among %d points", name, len(pts))
	return 0
}

// TestSeriesAreTheTicksAndSharedByReaders checks Series' and Points'
// contract: the values of the sample's own tick, gathered once for all
// its readers, and ErrSuperseded once a newer tick has replaced them.
func TestSeriesAreTheTicksAndSharedByReaders(t *testing.T) {
	c := newCounting("ok", nil)
	a := New([]collect.Collector{c}, time.Second, nil)
	s := a.Tick(context.Background())
	if _, err := a.Series(s); !errors.Is(err, ErrNoGatherer) {
		t.Fatalf("Series without SetExtra: err = %v, want ErrNoGatherer", err)
	}
	if _, err := a.Points(s); !errors.Is(err, ErrNoGatherer) {
		t.Fatalf("Points without SetExtra: err = %v, want ErrNoGatherer", err)
	}
	a.SetExtra(nil)

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
	pts, err := a.Points(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := pointOf(t, pts, "test_ok_updates"); got != 2 {
		t.Errorf("points of the second tick: updates = %v, want 2", got)
	}
	if again, err := a.Points(s); err != nil || len(again) == 0 || &again[0] != &pts[0] {
		t.Error("a second reader of the same sample should get the same points, not a second gather")
	}

	// Read once, a sample's series stay readable after later ticks; never
	// read before the next tick, they are gone.
	unread := a.Tick(context.Background())
	a.Tick(context.Background())
	if _, err := a.Series(s); err != nil {
		t.Errorf("a sample already read stays readable: %v", err)
	}
	if _, err := a.Points(s); err != nil {
		t.Errorf("a sample already read stays readable: %v", err)
	}
	if _, err := a.Series(unread); !errors.Is(err, ErrSuperseded) {
		t.Errorf("a sample first read after the next tick: err = %v, want ErrSuperseded", err)
	}
	if _, err := a.Points(unread); !errors.Is(err, ErrSuperseded) {
		t.Errorf("a sample first read after the next tick: err = %v, want ErrSuperseded", err)
	}
}

// ticking is a collector served beside the agent whose first Collect
// starts a tick, as a tick that starts during a gather would.
type ticking struct {
	a    *Agent
	once atomic.Bool
}

func (k *ticking) Describe(chan<- *prometheus.Desc) {}
func (k *ticking) Collect(chan<- prometheus.Metric) {
	if k.once.CompareAndSwap(false, true) {
		k.a.Tick(context.Background())
	}
}

// TestSeriesRefusesAGatherThatATickOverlapped: Collect may run during
// Update, so a gather that a tick started under would mix two ticks.
func TestSeriesRefusesAGatherThatATickOverlapped(t *testing.T) {
	for _, read := range []string{"series", "points"} {
		t.Run(read, func(t *testing.T) {
			c := newCounting("ok", nil)
			a := New([]collect.Collector{c}, time.Second, nil)
			a.SetExtra([]prometheus.Collector{&ticking{a: a}})
			get := func(s *Sample) (float64, error) {
				if read == "series" {
					fams, err := a.Series(s)
					if err != nil {
						return 0, err
					}
					return updatesOf(t, fams, "ok"), nil
				}
				pts, err := a.Points(s)
				if err != nil {
					return 0, err
				}
				return pointOf(t, pts, "test_ok_updates"), nil
			}
			s := a.Tick(context.Background())
			if _, err := get(s); !errors.Is(err, ErrSuperseded) {
				t.Errorf("a gather during which a tick started: err = %v, want ErrSuperseded", err)
			}
			s = a.Tick(context.Background())
			got, err := get(s)
			if err != nil {
				t.Fatal(err)
			}
			if got != 3 {
				t.Errorf("updates = %v, want 3", got)
			}
		})
	}
}

// direct is a collector that writes its own text format and, unless
// noPoints, its own points: one gauge per device, its series made once per
// device. panicNext makes its next AppendSeries panic.
type direct struct {
	name      string
	noPoints  bool
	desc      *prometheus.Desc
	devices   atomic.Pointer[[]string]
	series    map[string]*collect.Series
	panicNext atomic.Bool
}

func newDirect(name string, noPoints bool, devices ...string) *direct {
	d := &direct{name: name, noPoints: noPoints, series: map[string]*collect.Series{},
		desc: prometheus.NewDesc("test_"+name+"_bytes", "Bytes.", []string{"device"}, nil)}
	d.devices.Store(&devices)
	return d
}

func (d *direct) Name() string                            { return d.name }
func (d *direct) Update(context.Context, time.Time) error { return nil }
func (d *direct) Describe(ch chan<- *prometheus.Desc)     { ch <- d.desc }
func (d *direct) Fill(*metrics.ResourceMetrics)           {}
func (d *direct) value(i int) float64                     { return float64(len(d.name)*100 + i) }
func (d *direct) Collect(ch chan<- prometheus.Metric) {
	for i, dev := range *d.devices.Load() {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.GaugeValue, d.value(i), dev)
	}
}
func (d *direct) AppendText(b []byte) []byte {
	b = collect.AppendHeader(b, "test_"+d.name+"_bytes", "Bytes.", prometheus.GaugeValue)
	for i, dev := range *d.devices.Load() {
		b = collect.AppendSample(b, "test_"+d.name+"_bytes", `{device="`+dev+`"}`, d.value(i))
	}
	return b
}

// withPoints is a direct collector that gives its points.
type withPoints struct{ *direct }

func (d withPoints) AppendSeries(dst []collect.Point) []collect.Point {
	if d.panicNext.CompareAndSwap(true, false) {
		dst = append(dst, collect.Point{Series: collect.NewSeries("half", nil)})
		panic(fmt.Sprintf("test panic after %d points", len(dst)))
	}
	for i, dev := range *d.devices.Load() {
		s := d.series[dev]
		if s == nil {
			s = collect.NewSeries("test_"+d.name+"_bytes", []collect.Label{{Name: "device", Value: dev}})
			d.series[dev] = s
		}
		dst = append(dst, collect.Point{Series: s, Value: d.value(i)})
	}
	return dst
}

// histo is a plain collector with a histogram, served through the gather.
type histo struct{ desc *prometheus.Desc }

func (h histo) Name() string                            { return "histo" }
func (h histo) Update(context.Context, time.Time) error { return nil }
func (h histo) Describe(ch chan<- *prometheus.Desc)     { ch <- h.desc }
func (h histo) Fill(*metrics.ResourceMetrics)           {}
func (h histo) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstHistogram(h.desc, 7, 0.5, map[float64]uint64{0.001: 2, 0.01: 5, 1: 7}, "x")
}

// TestPointsAreTheSeries checks Points against Series for the three kinds
// of collectors (text collectors with their own points, a text collector
// without, the rest with a histogram): the same series and values both
// ways, the same *collect.Series from tick to tick, a series that goes
// gone from the next, and a panic in AppendSeries costing that
// collector's points of one read only, and logged.
func TestPointsAreTheSeries(t *testing.T) {
	dp := newDirect("dp", false, "sda", "sdb")
	dt := newDirect("dt", true, "eth0")
	h := histo{prometheus.NewDesc("test_latency_seconds", "Latency.", []string{"op"}, nil)}
	var logs bytes.Buffer
	a := New([]collect.Collector{withPoints{dp}, dt, h}, time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	a.SetExtra(nil)
	read := func() ([]collect.Point, map[string]*collect.Series) {
		t.Helper()
		s := a.Tick(context.Background())
		pts, err := a.Points(s)
		if err != nil {
			t.Fatal(err)
		}
		fams, err := a.Series(s)
		if err != nil {
			t.Fatal(err)
		}
		testenv.ComparePoints(t, pts, fams)
		by := map[string]*collect.Series{}
		for _, p := range pts {
			if p.Series.Name == "crmon_collection_duration_seconds" || p.Series.Name == "crmon_last_collection_timestamp_seconds" {
				continue // read again by the gather: another value
			}
			var k strings.Builder
			k.WriteString(p.Series.Name)
			for _, l := range p.Series.Labels {
				k.WriteString("," + l.Name + "=" + l.Value)
			}
			by[k.String()] = p.Series
		}
		return pts, by
	}
	_, first := read()
	for _, k := range []string{"test_dp_bytes,device=sda", "test_dt_bytes,device=eth0", "test_latency_seconds_bucket,le=0.001,op=x", "test_latency_seconds_bucket,le=+Inf,op=x", "test_latency_seconds_count,op=x"} {
		if first[k] == nil {
			t.Errorf("no point of %s", k)
		}
	}
	_, second := read()
	for k, s := range first {
		if second[k] != s {
			t.Errorf("%s: a new *collect.Series at the second tick", k)
		}
	}

	dp.devices.Store(&[]string{"sdb"})
	_, third := read()
	if third["test_dp_bytes,device=sda"] != nil {
		t.Error("a gone device's series is still served")
	}
	if third["test_dp_bytes,device=sdb"] != first["test_dp_bytes,device=sdb"] {
		t.Error("a device that stayed got a new *collect.Series")
	}

	dp.panicNext.Store(true)
	s := a.Tick(context.Background())
	pts, err := a.Points(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pts {
		if strings.HasPrefix(p.Series.Name, "test_dp_") || p.Series.Name == "half" {
			t.Errorf("%s: a point of the collector that panicked is kept", p.Series.Name)
		}
	}
	if !strings.Contains(logs.String(), "phase=series") || !strings.Contains(logs.String(), "test panic") {
		t.Errorf("the panic in AppendSeries was not logged: %q", logs.String())
	}
	read() // recovered
}
