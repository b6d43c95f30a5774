// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package collect

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func gather(t *testing.T, ms ...prometheus.Metric) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metricsCollector(ms))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

type metricsCollector []prometheus.Metric

func (c metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c {
		ch <- m.Desc()
	}
}

func (c metricsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c {
		ch <- m
	}
}

// key writes a point as name{labels} value, the value as FormatBound
// writes it.
func key(p Point) string {
	s := p.Series.Name + "{"
	for i, l := range p.Series.Labels {
		if i > 0 {
			s += ","
		}
		s += l.Name + "=" + l.Value
	}
	return s + "} " + FormatBound(p.Value)
}

// TestInternerExpandsAsAScrapeStores checks the series a gathered
// counter, gauge, untyped, histogram and summary become: a histogram's
// _bucket{le} (with +Inf), _sum and _count, a summary's {quantile}, _sum
// and _count, le and quantile in Prometheus' stored form, labels sorted.
func TestInternerExpandsAsAScrapeStores(t *testing.T) {
	c := prometheus.NewDesc("c_total", "C.", []string{"z", "a"}, nil)
	g := prometheus.NewDesc("g", "G.", nil, nil)
	u := prometheus.NewDesc("u", "U.", nil, nil)
	h := prometheus.NewDesc("h_seconds", "H.", []string{"op"}, nil)
	s := prometheus.NewDesc("s_seconds", "S.", nil, nil)
	fams := gather(t,
		prometheus.MustNewConstMetric(c, prometheus.CounterValue, 3, "zv", "av"),
		prometheus.MustNewConstMetric(g, prometheus.GaugeValue, 0.5),
		prometheus.MustNewConstMetric(u, prometheus.UntypedValue, 7),
		prometheus.MustNewConstHistogram(h, 9, 1.5, map[float64]uint64{0.001: 2, 1: 5}, "read"),
		prometheus.MustNewConstSummary(s, 4, 2, map[float64]float64{0.5: 0.25, 0.99: 1}),
	)
	var in Interner
	got := map[string]bool{}
	for _, p := range in.AppendFamilies(nil, fams) {
		got[key(p)] = true
	}
	want := []string{
		"c_total{a=av,z=zv} 3.0",
		"g{} 0.5",
		"u{} 7.0",
		"h_seconds_bucket{le=0.001,op=read} 2.0",
		"h_seconds_bucket{le=1.0,op=read} 5.0",
		"h_seconds_bucket{le=+Inf,op=read} 9.0",
		"h_seconds_sum{op=read} 1.5",
		"h_seconds_count{op=read} 9.0",
		"s_seconds{quantile=0.5} 0.25",
		"s_seconds{quantile=0.99} 1.0",
		"s_seconds_sum{} 2.0",
		"s_seconds_count{} 4.0",
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("no point %s", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d points, want %d: %v", len(got), len(want), got)
	}
}

// TestInternerKeepsSeries checks that a series keeps its *Series from one
// call to the next, wherever it moved in the order, and that one that
// missed a call is a new series when it comes back.
func TestInternerKeepsSeries(t *testing.T) {
	d := prometheus.NewDesc("x", "X.", []string{"n"}, nil)
	tick := func(in *Interner, names ...string) map[string]*Series {
		var ms []prometheus.Metric
		for _, n := range names {
			ms = append(ms, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, 1, n))
		}
		out := map[string]*Series{}
		for _, p := range in.AppendFamilies(nil, gather(t, ms...)) {
			out[p.Series.Labels[0].Value] = p.Series
		}
		return out
	}
	var in Interner
	a := tick(&in, "a", "b", "c", "d")
	b := tick(&in, "a", "c", "d", "e") // b went, e came
	for _, n := range []string{"a", "c", "d"} {
		if a[n] != b[n] {
			t.Errorf("%s: a new *Series at the second call", n)
		}
	}
	c := tick(&in, "b", "e")
	if c["b"] == a["b"] {
		t.Error("b, gone for a call, kept its old *Series")
	}
	if c["e"] != b["e"] {
		t.Error("e: a new *Series at the third call")
	}
	if len(in.cur) != 0 || len(in.prev) != 2 {
		t.Errorf("the interner holds %d series, want the last call's 2", len(in.prev)+len(in.cur))
	}
}

func TestFormatBound(t *testing.T) {
	for f, want := range map[float64]string{1: "1.0", 0.25: "0.25", 1e-05: "1e-05", math.Inf(1): "+Inf", math.Inf(-1): "-Inf", 100: "100.0"} {
		if got := FormatBound(f); got != want {
			t.Errorf("FormatBound(%v) = %q, want %q", f, got, want)
		}
	}
}
