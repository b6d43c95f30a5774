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
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/crmon-dev/crmon/internal/collect"
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
func (h *idleHost) tick() []*dto.MetricFamily { return h.tickInto(nil) }

// tickInto is tick, and writes the values into pts, if given: the points
// collect.Interner made of the families, which visits their values in the
// same order as values does.
func (h *idleHost) tickInto(pts []collect.Point) []*dto.MetricFamily {
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
		if pts != nil {
			pts[i].Value = *v
		}
		i++
	})
	if pts != nil && i != len(pts) {
		panic(fmt.Sprintf("%d values for %d points", i, len(pts)))
	}
	return h.fams
}

// BenchmarkDiskWAL is the write-ahead log's growth over 10 minutes of
// the idle host at 10 s, extrapolated to a day, and its bytes per sample:
// minutes 5 to 15 of a new store, after the series' labels went to the log
// and before the first head block is cut and the log truncated. It is what
// the directory grows by in any 10 minutes before the log is first
// truncated, and what each head block's cut must take back.
//
//	go test -run '^$' -bench DiskWAL -benchtime 1x ./internal/store
func BenchmarkDiskWAL(b *testing.B) {
	for b.Loop() {
		st := openStore(b, Options{})
		h := newIdleHost(b)
		start := time.Now().Add(-time.Hour)
		var b0 int64
		for i := range 90 {
			if i == 30 {
				b0 = dirSize(filepath.Join(st.Dir(), "wal"))
			}
			if err := st.appendFamilies(h.tick(), start.Add(time.Duration(i)*10*time.Second).UnixMilli()); err != nil {
				b.Fatal(err)
			}
		}
		grew := float64(dirSize(filepath.Join(st.Dir(), "wal")) - b0)
		b.ReportMetric(grew*144/1e6, "MB/day")
		b.ReportMetric(grew/(60*float64(st.db.Head().NumSeries())), "bytes/sample")
		st.Close()
	}
}

// BenchmarkAppendTick is the store's work per tick for the idle host: what
// the agent's store goroutine spends each interval, appending the tick's
// points (agent.Points), whose series keep their identity from tick to
// tick.
//
//	go test -run '^$' -bench AppendTick -benchmem ./internal/store
func BenchmarkAppendTick(b *testing.B) {
	st := openStore(b, Options{})
	h := newIdleHost(b)
	var in collect.Interner
	pts := in.AppendFamilies(nil, h.fams)
	t := time.Now().Add(-time.Hour)
	// CPU time, not wall time, on a busy machine: what it takes of a core.
	cpu0 := cpuTime(b)
	for b.Loop() {
		t = t.Add(10 * time.Second)
		h.tickInto(pts)
		if err := st.appendPoints(pts, t.UnixMilli()); err != nil {
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
// idle host at 10 s for 24 hours (synthetic timestamps), the head
// compacted whenever it is compactable (as the TSDB's own loop does on
// append), the directory measured every 10 minutes as du does (the
// blocks allocated to its files). It reports the smallest, median, 90th
// percentile and largest of those growths (as MB/day) after the first
// half hour, the first window's (the series' labels, and the log before
// the first block is cut), the directory after 24 h and its bytes per
// sample, and the CPU the compactions took, for the store's layout
// (compact.go) and the TSDB's defaults side by side.
//
//	go test -run '^$' -bench DiskWindows -benchtime 1x ./internal/store
func BenchmarkDiskWindows(b *testing.B) {
	for _, layout := range []struct {
		name string
		opts Options
	}{
		{"crmon", Options{}},
		{"tsdb-defaults", Options{tsdbLayout: true}},
	} {
		b.Run(layout.name, func(b *testing.B) {
			for b.Loop() {
				start := time.Now().Add(-25 * time.Hour).Truncate(24 * time.Hour)
				const perWindow, ticks = 60, 24 * 360 // 10 minutes, a day at 10 s
				r := replay(b, layout.opts, start, 10*time.Second, ticks, perWindow, nil)
				sizes := r.sizes
				perDay := func(d int64) float64 { return float64(d) * 144 / 1e6 }
				var growth []float64
				for i := 4; i < len(sizes); i++ { // after the first half hour
					growth = append(growth, perDay(sizes[i]-sizes[i-1]))
				}
				over := 0
				for _, g := range growth {
					if g > 50 {
						over++
					}
				}
				slices.Sort(growth)
				day := sizes[len(sizes)-1]
				b.ReportMetric(growth[0], "MB/day-min")
				b.ReportMetric(growth[len(growth)/2], "MB/day-median")
				b.ReportMetric(growth[len(growth)*9/10], "MB/day-p90")
				b.ReportMetric(growth[len(growth)-1], "MB/day-max")
				b.ReportMetric(perDay(sizes[1]-sizes[0]), "MB/day-first")
				b.ReportMetric(float64(day)/1e6, "MB-dir-24h")
				b.ReportMetric(float64(day)/float64(ticks*r.series), "bytes/sample")
				b.ReportMetric(float64(r.blocks), "blocks")
				b.ReportMetric(float64(over), "windows>50MB/day")
				b.ReportMetric(r.compactCPU.Seconds(), "compact-cpu-s/day")
				b.ReportMetric(float64(r.heap)/(1<<20), "heap-MiB-max")
			}
		})
	}
}

// BenchmarkCompactionAt1s is the store's compactions at a 1 s interval:
// the idle host's series every second for 4 hours (synthetic timestamps),
// the head compacted whenever it is compactable. It reports the CPU the
// compactions took, as a share of a core, and the largest live heap, for
// the store's layout and the TSDB's defaults.
//
//	go test -run '^$' -bench CompactionAt1s -benchtime 1x ./internal/store
func BenchmarkCompactionAt1s(b *testing.B) {
	for _, layout := range []struct {
		name string
		opts Options
	}{
		{"crmon", Options{}},
		{"tsdb-defaults", Options{tsdbLayout: true}},
	} {
		b.Run(layout.name, func(b *testing.B) {
			for b.Loop() {
				const hours = 4
				start := time.Now().Add(-(hours + 1) * time.Hour).Truncate(24 * time.Hour)
				r := replay(b, layout.opts, start, time.Second, hours*3600, 600, nil)
				b.ReportMetric(100*r.compactCPU.Seconds()/(hours*3600), "compact-%core")
				b.ReportMetric(float64(r.heap)/(1<<20), "heap-MiB-max")
				b.ReportMetric(float64(r.sizes[len(r.sizes)-1])/1e6, "MB-dir")
			}
		})
	}
}

// replayed is what replay measured.
type replayed struct {
	sizes          []int64 // the directory, as du counts it, every perWindow ticks and at the end
	compactCPU     time.Duration
	heap           uint64 // the largest live heap, read with the sizes
	series, blocks int
}

// replay appends ticks of the idle host (host + 50 idle containers), step
// apart from start, to a new store with the options o (7 days' retention),
// compacting the head whenever it is compactable, as the TSDB does on
// append. before, if not nil, runs before each tick's append.
func replay(tb testing.TB, o Options, start time.Time, step time.Duration, ticks, perWindow int, before func(st *Store, i int)) replayed {
	tb.Helper()
	o.Dir, o.Retention = tb.TempDir(), 7*24*time.Hour
	st := openStore(tb, o)
	defer st.Close()
	headRange := headBlock.Milliseconds()
	if o.tsdbLayout {
		headRange = tsdb.DefaultBlockDuration
	} else if o.BlockDuration > 0 {
		headRange = o.BlockDuration.Milliseconds()
	}
	h := newIdleHost(tb)
	var r replayed
	for i := range ticks + 1 {
		if i%perWindow == 0 || i == ticks {
			r.sizes = append(r.sizes, duBytes(o.Dir))
			r.heap = max(r.heap, liveHeap())
		}
		if i == ticks {
			break
		}
		if before != nil {
			before(st, i)
		}
		if err := st.appendFamilies(h.tick(), start.Add(time.Duration(i)*step).UnixMilli()); err != nil {
			tb.Fatal(err)
		}
		if st.db.Head().MaxTime()-st.db.Head().MinTime() > headRange*3/2 {
			c0 := cpuTime(tb)
			if err := st.db.Compact(context.Background()); err != nil {
				tb.Fatal(err)
			}
			r.compactCPU += cpuTime(tb) - c0
		}
	}
	r.series, r.blocks = int(st.db.Head().NumSeries()), len(st.db.Blocks())
	return r
}

// liveHeap is the heap in use after a collection: what the process keeps.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// duBytes is what du counts for dir: the blocks allocated to its files.
func duBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if in, err := d.Info(); err == nil {
			if st, ok := in.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}
