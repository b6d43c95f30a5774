// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"compress/gzip"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
)

// idleHost is what a real agent served for a host with 50 idle containers
// (testdata/idle50-a.prom.gz, and idle50-b 10 s later, scraped from `crmon
// run` at 1 s with the probes on): 2 231 series. It replays them at any
// tick: counters grow by their measured 10 s increase times a random
// factor from 0.5 to 1.5 per tick, gauges move at random between their two
// measured values, so that compression meets values as irregular as an
// idle host's rather than a straight line.
type idleHost struct {
	fams []*dto.MetricFamily
	// per metric: the first scrape's values and their 10 s deltas, in
	// the order values visits them
	base, delta []float64
	rng         *rand.Rand
	acc         []float64
}

func readFams(tb testing.TB, name string) map[string]*dto.MetricFamily {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	m, err := p.TextToMetricFamilies(z)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// values visits every value of fams: a counter or gauge's, a histogram's
// buckets, sum and count, a summary's quantiles, sum and count.
func values(fams []*dto.MetricFamily, f func(v *float64, counter bool)) {
	for _, mf := range fams {
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				f(m.Counter.Value, true)
			case dto.MetricType_GAUGE:
				f(m.Gauge.Value, false)
			case dto.MetricType_UNTYPED:
				f(m.Untyped.Value, false)
			case dto.MetricType_HISTOGRAM:
				h := m.Histogram
				for _, b := range h.Bucket {
					c := float64(b.GetCumulativeCount())
					f(&c, true)
					u := uint64(c)
					b.CumulativeCount = &u
				}
				f(h.SampleSum, true)
				c := float64(h.GetSampleCount())
				f(&c, true)
				u := uint64(c)
				h.SampleCount = &u
			case dto.MetricType_SUMMARY:
				for _, q := range m.Summary.Quantile {
					f(q.Value, false)
				}
				f(m.Summary.SampleSum, true)
				c := float64(m.Summary.GetSampleCount())
				f(&c, true)
				u := uint64(c)
				m.Summary.SampleCount = &u
			}
		}
	}
}

func newIdleHost(tb testing.TB) *idleHost {
	a, b := readFams(tb, "idle50-a.prom.gz"), readFams(tb, "idle50-b.prom.gz")
	h := &idleHost{rng: rand.New(rand.NewPCG(1, 2))}
	for name, f := range a {
		if _, ok := b[name]; ok {
			h.fams = append(h.fams, f)
		}
	}
	var bv []float64
	var names []string
	for _, f := range h.fams {
		names = append(names, f.GetName())
	}
	var bf []*dto.MetricFamily
	for _, n := range names {
		bf = append(bf, b[n])
	}
	values(h.fams, func(v *float64, _ bool) { h.base = append(h.base, *v) })
	values(bf, func(v *float64, _ bool) { bv = append(bv, *v) })
	if len(bv) != len(h.base) {
		// A series came or went between the scrapes: replay a's alone,
		// counters still by their family's typical step.
		bv = h.base
	}
	for i := range h.base {
		h.delta = append(h.delta, bv[i]-h.base[i])
	}
	h.acc = append([]float64(nil), h.base...)
	return h
}

// tick moves every value one tick of 10 s on.
func (h *idleHost) tick() []*dto.MetricFamily {
	i := 0
	values(h.fams, func(v *float64, counter bool) {
		if counter {
			if d := h.delta[i]; d > 0 {
				h.acc[i] += d * (0.5 + h.rng.Float64())
			}
			*v = h.acc[i]
		} else {
			*v = h.base[i] + h.delta[i]*h.rng.Float64()
		}
		i++
	})
	return h.fams
}

// BenchmarkDiskPerDay appends 24 h of the idle host's series (host + 50
// idle containers) at the default 10 s interval with synthetic
// timestamps, lets the TSDB cut its blocks, and reports what a day adds in
// blocks (the growth from day to day), the bytes per sample of the
// blocks, and the whole directory at the end (blocks, and the last hours
// in the write-ahead log and head chunks).
//
//	go test -run '^$' -bench DiskPerDay -benchtime 1x ./internal/store
func BenchmarkDiskPerDay(b *testing.B) {
	for b.Loop() {
		dir := b.TempDir()
		st := openStore(b, Options{Dir: dir, Retention: 7 * 24 * time.Hour})
		h := newIdleHost(b)
		start := time.Now().Add(-25 * time.Hour).Truncate(2 * time.Hour)
		const ticks = 24 * 360
		for i := range ticks {
			if err := st.appendFamilies(h.tick(), start.Add(time.Duration(i)*10*time.Second).UnixMilli()); err != nil {
				b.Fatal(err)
			}
		}
		if err := st.db.Compact(context.Background()); err != nil {
			b.Fatal(err)
		}
		var blockBytes, blockSamples int64
		for _, bl := range st.db.Blocks() {
			blockBytes += bl.Size()
			blockSamples += int64(bl.Meta().Stats.NumSamples)
		}
		st.updateSize()
		perDay := float64(blockBytes) / float64(blockSamples) * float64(st.db.Head().NumSeries()) * ticks
		b.ReportMetric(perDay/1e6, "MB/day")
		b.ReportMetric(float64(blockBytes)/float64(blockSamples), "bytes/sample")
		b.ReportMetric(float64(st.Bytes())/1e6, "MB-dir")
		b.ReportMetric(float64(st.db.Head().NumSeries()), "series")
		st.Close()
	}
}

// BenchmarkDiskWAL is the directory's growth over 10 minutes of the idle
// host at 10 s, extrapolated to a day, in the first hours: before the
// first block is cut (after 3 h) everything is in the write-ahead log,
// which grows faster than blocks do; from then on, each block cut
// truncates it, so it stays at about 3 h of samples while blocks grow
// (BenchmarkDiskPerDay).
//
//	go test -run '^$' -bench DiskWAL -benchtime 1x ./internal/store
func BenchmarkDiskWAL(b *testing.B) {
	for b.Loop() {
		st := openStore(b, Options{})
		h := newIdleHost(b)
		start := time.Now().Add(-time.Hour)
		var b0 int64
		for i := range 120 {
			if i == 60 {
				// The series' labels go to the log once, at the start:
				// measure the second 10 minutes.
				st.updateSize()
				b0 = st.Bytes()
			}
			if err := st.appendFamilies(h.tick(), start.Add(time.Duration(i)*10*time.Second).UnixMilli()); err != nil {
				b.Fatal(err)
			}
		}
		st.updateSize()
		b.ReportMetric(float64(st.Bytes()-b0)*144/1e6, "MB/day")
		b.ReportMetric(float64(st.Bytes()-b0)/(60*float64(st.db.Head().NumSeries())), "bytes/sample")
		st.Close()
	}
}

// BenchmarkAppendTick is the store's work per tick for the idle host: what
// the agent's store goroutine spends each interval.
func BenchmarkAppendTick(b *testing.B) {
	st := openStore(b, Options{})
	h := newIdleHost(b)
	t := time.Now().Add(-time.Hour)
	// CPU time, not wall time, on a busy machine: what it takes of a core.
	cpu0 := cpuTime(b)
	for b.Loop() {
		t = t.Add(10 * time.Second)
		if err := st.appendFamilies(h.tick(), t.UnixMilli()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/1e3/float64(b.N), "cpu-ms/tick")
}

// cpuTime is the process' user and system CPU time.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkQueryRange1h is a range query of one container's CPU rate over
// one hour at 15 s steps, over an hour of the idle host at 10 s.
//
//	go test -run '^$' -bench QueryRange1h ./internal/store
func BenchmarkQueryRange1h(b *testing.B) {
	st := openStore(b, Options{})
	h := newIdleHost(b)
	end := time.Now().Truncate(time.Second)
	start := end.Add(-time.Hour)
	for i := range 360 {
		if err := st.appendFamilies(h.tick(), start.Add(time.Duration(i+1)*10*time.Second).UnixMilli()); err != nil {
			b.Fatal(err)
		}
	}
	e := NewEngine(st.Queryable(), Limits{}, nil)
	const q = `rate(container_cpu_usage_seconds_total{name="crmon-storebench-7"}[1m])`
	for b.Loop() {
		err := e.Range(context.Background(), q, start, end, 15*time.Second, func(r *Result) error {
			if m := r.Value.(promql.Matrix); len(m) != 1 || len(m[0].Floats) < 200 {
				return fmt.Errorf("%d series", len(m))
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDiskWindows is what an operator sees who measures the data
// directory's growth over 10 minutes and extrapolates it to a day: the
// idle host at 10 s for 8 hours (synthetic timestamps), the head
// compacted whenever it is compactable (as the TSDB's own loop does),
// the directory measured every 10 minutes. It reports the median and the
// largest of the 10-minute growths (as MB/day) but the first (which
// writes every series' labels to the log), and
// the directory at the end, for a block range: with 2-hour blocks the
// write-ahead log grows for hours between truncations, so most windows
// see its rate; with short blocks each window sees a compaction.
//
//	go test -run '^$' -bench DiskWindows -benchtime 1x ./internal/store
func BenchmarkDiskWindows(b *testing.B) {
	for _, block := range []time.Duration{2 * time.Hour, 30 * time.Minute, 10 * time.Minute} {
		b.Run(block.String(), func(b *testing.B) {
			for b.Loop() {
				st := openStore(b, Options{Retention: 7 * 24 * time.Hour, BlockDuration: block})
				h := newIdleHost(b)
				start := time.Now().Add(-9 * time.Hour).Truncate(2 * time.Hour)
				const perWindow = 60 // 10 minutes at 10 s
				var sizes []int64
				for i := range 8 * 6 * perWindow {
					if err := st.appendFamilies(h.tick(), start.Add(time.Duration(i)*10*time.Second).UnixMilli()); err != nil {
						b.Fatal(err)
					}
					if st.db.Head().MaxTime()-st.db.Head().MinTime() > block.Milliseconds()*3/2 {
						if err := st.db.Compact(context.Background()); err != nil {
							b.Fatal(err)
						}
					}
					if i%perWindow == 0 {
						st.updateSize()
						sizes = append(sizes, st.Bytes())
					}
				}
				var growth []float64
				for i := 2; i < len(sizes); i++ { // after the first window, which has the series
					growth = append(growth, float64(sizes[i]-sizes[i-1])*144/1e6)
				}
				slices.Sort(growth)
				st.updateSize()
				b.ReportMetric(growth[len(growth)/2], "MB/day-median")
				b.ReportMetric(growth[len(growth)-1], "MB/day-max")
				b.ReportMetric(float64(st.Bytes())/1e6, "MB-dir-8h")
				b.ReportMetric(float64(len(st.db.Blocks())), "blocks")
				st.Close()
			}
		})
	}
}
