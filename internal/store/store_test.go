// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// steps is a collector whose values the test sets before each tick: a
// counter per container, a gauge, and a histogram, the shapes crmon
// serves.
type steps struct {
	mu    sync.Mutex
	next  map[string]float64 // container -> counter value for the next Update
	vals  map[string]float64
	hist  prometheus.Histogram
	cDesc *prometheus.Desc
}

func newSteps() *steps {
	s := &steps{
		next:  map[string]float64{},
		hist:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "crmon_test_latency_seconds", Help: "h", Buckets: []float64{0.1, 1}}),
		cDesc: prometheus.NewDesc("container_cpu_usage_seconds_total", "c", []string{"name"}, nil),
	}
	return s
}

func (s *steps) Name() string { return "steps" }
func (s *steps) Update(context.Context, time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vals = map[string]float64{}
	for k, v := range s.next {
		s.vals[k] = v
	}
	return nil
}
func (s *steps) Describe(chan<- *prometheus.Desc) {}
func (s *steps) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.vals {
		ch <- prometheus.MustNewConstMetric(s.cDesc, prometheus.CounterValue, v, k)
	}
	s.hist.Collect(ch)
}
func (s *steps) Fill(*metrics.ResourceMetrics) {}

func (s *steps) set(k string, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if math.IsNaN(v) {
		delete(s.next, k)
		return
	}
	s.next[k] = v
}

func openStore(t testing.TB, o Options) *Store {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Retention == 0 {
		o.Retention = 24 * time.Hour
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func instant(t *testing.T, e *Engine, expr string, at time.Time) promql.Vector {
	t.Helper()
	var v promql.Vector
	err := e.Instant(context.Background(), expr, at, func(r *Result) error {
		var ok bool
		if v, ok = r.Value.(promql.Vector); !ok {
			return fmt.Errorf("%T, want a vector", r.Value)
		}
		v = slices.Clone(v)
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// TestStoreKeepsWhatMetricsServes drives a real agent's ticks and checks
// that the store holds, at each tick's time, the values /metrics served
// then, the agent's own series included, and that a series that goes
// away ends there (a staleness marker) instead of lingering.
func TestStoreKeepsWhatMetricsServes(t *testing.T) {
	c := newSteps()
	a := agent.New([]collect.Collector{c}, time.Second, nil)
	st := openStore(t, Options{})
	a.SetExtra([]prometheus.Collector{st})
	e := NewEngine(st.Queryable(), Limits{}, nil)

	var times []time.Time
	for i := range 5 {
		c.set("a", float64(10*i))
		c.set("b", float64(100+i))
		if i >= 3 {
			c.set("b", math.NaN()) // b is removed before the fourth tick
		}
		c.hist.Observe(0.5)
		s := a.Tick(context.Background())
		st.Append(a, s)
		times = append(times, s.Time)
		time.Sleep(2 * time.Millisecond) // distinct millisecond timestamps
	}
	for i, at := range times {
		v := instant(t, e, `container_cpu_usage_seconds_total{name="a"}`, at)
		if len(v) != 1 || v[0].F != float64(10*i) || v[0].T != at.UnixMilli() {
			t.Errorf("tick %d: a = %v, want %d at %d", i, v, 10*i, at.UnixMilli())
		}
		v = instant(t, e, `crmon_test_latency_seconds_bucket{le="1.0"}`, at)
		if len(v) != 1 || v[0].F != float64(i+1) {
			t.Errorf("tick %d: histogram bucket = %v, want %d", i, v, i+1)
		}
		v = instant(t, e, `crmon_collections_total`, at)
		if len(v) != 1 || v[0].F != float64(i+1) {
			t.Errorf("tick %d: crmon_collections_total = %v, want %d", i, v, i+1)
		}
		v = instant(t, e, `container_cpu_usage_seconds_total{name="b"}`, at)
		if want := i < 3; (len(v) == 1) != want {
			t.Errorf("tick %d: b = %v, want present %v (stale from tick 3 on)", i, v, want)
		}
	}
	if got := testutil.ToFloat64(collectorOf(st, "crmon_store_append_failures_total")); got != 0 {
		t.Errorf("append failures = %v", got)
	}
	if got := testutil.ToFloat64(collectorOf(st, "crmon_store_head_series")); got < 5 {
		t.Errorf("head series = %v, want the served series", got)
	}
}

// collectorOf is the store's self-metric name alone, for testutil.
func collectorOf(s *Store, name string) prometheus.Collector {
	return filtered{s, name}
}

type filtered struct {
	c    prometheus.Collector
	name string
}

func (f filtered) Describe(chan<- *prometheus.Desc) {}
func (f filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 64)
	go func() { f.c.Collect(all); close(all) }()
	for m := range all {
		if strings.Contains(m.Desc().String(), `"`+f.name+`"`) {
			ch <- m
		}
	}
}

// synthetic appends n ticks of series series, every step from start, as
// the exposition would give them.
func synthetic(t testing.TB, s *Store, start time.Time, step time.Duration, n, series int) {
	t.Helper()
	var b bytes.Buffer
	for i := range n {
		b.Reset()
		for j := range series {
			fmt.Fprintf(&b, "container_cpu_usage_seconds_total{name=\"c%d\"} %d\n", j, i*j)
		}
		if err := s.appendText(b.Bytes(), start.Add(time.Duration(i)*step).UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRetention checks that blocks older than the retention are deleted,
// with blocks of 10 minutes.
func TestRetention(t *testing.T) {
	st := openStore(t, Options{Retention: 30 * time.Minute, BlockDuration: 10 * time.Minute})
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Hour)
	synthetic(t, st, start, 10*time.Second, 6*60*3, 20) // 3 hours
	if err := st.db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	end := start.Add(3 * time.Hour).UnixMilli()
	bs := st.db.Blocks()
	if len(bs) == 0 {
		t.Fatal("no block was cut")
	}
	for _, b := range bs {
		// A block is deleted once it lies wholly beyond the retention,
		// counted from the newest block's end.
		if m := b.Meta(); m.MaxTime < bs[len(bs)-1].Meta().MaxTime-(30*time.Minute).Milliseconds() {
			t.Errorf("block %d–%d kept, older than the retention (newest sample %d)", m.MinTime, m.MaxTime, end)
		}
	}
	e := NewEngine(st.Queryable(), Limits{}, nil)
	if v := instant(t, e, `container_cpu_usage_seconds_total{name="c1"}`, start.Add(5*time.Minute)); len(v) != 0 {
		t.Errorf("sample 2 h before the retention still there: %v", v)
	}
	if v := instant(t, e, `container_cpu_usage_seconds_total{name="c1"}`, start.Add(3*time.Hour-time.Minute)); len(v) != 1 {
		t.Errorf("recent sample gone: %v", v)
	}
}

// TestSetRetention shortens a running store's retention, as a reload
// does: the blocks beyond it go at the TSDB's next check.
func TestSetRetention(t *testing.T) {
	st := openStore(t, Options{Retention: 7 * 24 * time.Hour, BlockDuration: 10 * time.Minute, blockReload: 100 * time.Millisecond})
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Hour)
	synthetic(t, st, start, 10*time.Second, 6*60*3, 20) // 3 hours
	if err := st.db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Of the TSDB's own metrics, the store keeps only what it reads:
	// its compactions, counted, and the head's chunks.
	if n := tsdbMetrics(st.tsdbReg, "prometheus_tsdb_compactions_total")[0]; n < 10 {
		t.Errorf("%v compactions counted after cutting 3 hours into 10-minute blocks", n)
	}
	if n := st.headChunks(); n == 0 {
		t.Error("no head chunks counted")
	}
	if mfs, err := st.tsdbReg.Gather(); err != nil || len(mfs) != 3 {
		t.Errorf("the TSDB's registry holds %d families (%v), want the 3 the store reads", len(mfs), err)
	}
	before := st.db.Blocks()
	if len(before) < 10 {
		t.Fatalf("%d blocks; want the 3 hours kept under a 7-day retention", len(before))
	}
	if err := st.SetRetention(30*time.Minute, 0); err != nil {
		t.Fatal(err)
	}
	if err := st.SetRetention(0, 0); err == nil {
		t.Error("a retention of 0 was taken")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(st.db.Blocks()) == len(before) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	after := st.db.Blocks()
	newest := after[len(after)-1].Meta().MaxTime
	for _, b := range after {
		if m := b.Meta(); m.MaxTime < newest-(30*time.Minute).Milliseconds() {
			t.Errorf("block %d–%d kept, older than the new retention", m.MinTime, m.MaxTime)
		}
	}
	if len(after) >= len(before) {
		t.Errorf("%d blocks before, %d after shortening the retention", len(before), len(after))
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(st)
	want := "# HELP crmon_store_retention_seconds How long the store keeps samples (retention_period).\n# TYPE crmon_store_retention_seconds gauge\ncrmon_store_retention_seconds 1800\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "crmon_store_retention_seconds"); err != nil {
		t.Error(err)
	}
}

// TestGoneSeriesLeaveTheHead removes most containers' series, as a host
// whose containers come and go does: their staleness markers end them,
// they leave the head's memory at its next cut (within 20 minutes), stay
// queryable, and go to the blocks every other series goes to: none of
// their own.
func TestGoneSeriesLeaveTheHead(t *testing.T) {
	st := openStore(t, Options{Retention: 7 * 24 * time.Hour})
	step := 10 * time.Second
	start := time.Now().Add(-time.Hour).Truncate(time.Hour)
	compact := func() {
		if err := st.db.Compact(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	synthetic(t, st, start, step, 6*12, 100) // 12 minutes
	compact()
	if n := st.db.Head().NumSeries(); n != 100 {
		t.Fatalf("%d series in the head, want 100", n)
	}
	// From the next tick on, 10 of the 100 containers are left.
	gone := start.Add(12 * time.Minute)
	for i := range 6 * 20 {
		synthetic(t, st, gone.Add(time.Duration(i)*step), step, 1, 10)
		compact()
	}
	if n := st.db.Head().NumSeries(); n != 10 {
		t.Errorf("%d series in the head 20 minutes after 90 of 100 went, want 10", n)
	}
	if bs := st.db.Blocks(); len(bs) != 1 {
		t.Errorf("%d blocks, want the one of the two hours", len(bs))
	}
	e := NewEngine(st.Queryable(), Limits{}, nil)
	if v := instant(t, e, `container_cpu_usage_seconds_total{name="c50"}`, start.Add(5*time.Minute)); len(v) != 1 || v[0].F != 30*50 {
		t.Errorf("a gone container's sample, after its series left the head: %v, want 1500", v)
	}
	if v := instant(t, e, `container_cpu_usage_seconds_total{name="c50"}`, gone.Add(3*time.Second)); len(v) != 0 {
		t.Errorf("a gone container after its staleness marker: %v, want nothing", v)
	}
}

// TestSeriesComeAndGo appends ticks whose series come and go in the
// middle of the order, with identities kept from tick to tick (as the
// agent hands them while a series lasts) and new identities of the same
// series (as when a container's labels are rebuilt with the same
// values), and checks that every tick's values land in their own series
// and that the gone ones, and only they, end with a staleness marker.
func TestSeriesComeAndGo(t *testing.T) {
	st := openStore(t, Options{})
	kept := map[string]*collect.Series{}
	shared := func(name string) *collect.Series {
		if kept[name] == nil {
			kept[name] = collect.NewSeries("c_total", []collect.Label{{Name: "name", Value: name}})
		}
		return kept[name]
	}
	fresh := func(name string) *collect.Series {
		return collect.NewSeries("c_total", []collect.Label{{Name: "name", Value: name}})
	}
	tick := func(ts int64, series func(string) *collect.Series, names ...string) {
		t.Helper()
		var pts []collect.Point
		for _, n := range names {
			pts = append(pts, collect.Point{Series: series(n), Value: float64(ts) + float64(n[0])})
		}
		if err := st.appendPoints(pts, ts); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	ms := func(i int) int64 { return start.Add(time.Duration(i) * time.Second).UnixMilli() }
	ticks := [][]string{
		{"a", "b", "c", "d"},
		{"a", "c", "d", "e"}, // b gone, e came at the end
		{"a", "b", "c"},      // b back in the middle, d and e gone
		{"a", "b", "c"},
		{"x", "a", "c"}, // x before all, b gone
	}
	for i, names := range ticks {
		labels := shared
		if i%2 == 1 {
			labels = fresh
		}
		tick(ms(i), labels, names...)
	}
	e := NewEngine(st.Queryable(), Limits{}, nil)
	for i, names := range ticks {
		for _, n := range "abcdex" {
			v := instant(t, e, fmt.Sprintf(`c_total{name=%q}`, string(n)), time.UnixMilli(ms(i)))
			want := float64(ms(i)) + float64(n)
			if slices.Contains(names, string(n)) {
				if len(v) != 1 || v[0].F != want {
					t.Errorf("tick %d, %c: %v, want %v", i, n, v, want)
				}
			} else if len(v) != 0 {
				t.Errorf("tick %d, %c: %v, want nothing (gone or not yet there)", i, n, v)
			}
		}
	}
	if len(st.ids) != 3 || len(st.live) != 3 || len(st.byRef) != 3 {
		t.Errorf("%d series by identity, %d by reference, %d live; want the last tick's 3", len(st.ids), len(st.byRef), len(st.live))
	}
}

// TestMaxBytes checks that max_bytes deletes the oldest blocks first.
func TestMaxBytes(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, Options{Dir: dir, Retention: 365 * 24 * time.Hour, BlockDuration: 10 * time.Minute})
	start := time.Now().Add(-4 * time.Hour).Truncate(time.Hour)
	synthetic(t, st, start, 10*time.Second, 6*60*3, 200)
	if err := st.db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	all := st.db.Blocks()
	if len(all) < 4 {
		t.Fatalf("%d blocks; want several to delete from", len(all))
	}
	var total int64
	for _, b := range all {
		total += b.Size()
	}
	oldest := all[0].Meta().MinTime
	st.updateSize()
	head := st.Bytes() - total // the WAL and head chunks count too
	st.Close()

	// Reopened with a bound that leaves half of what the blocks take, the
	// oldest blocks go.
	bound := head + total/2
	st2 := openStore(t, Options{Dir: dir, Retention: 365 * 24 * time.Hour, BlockDuration: 10 * time.Minute, MaxBytes: bound})
	bs := st2.db.Blocks()
	if len(bs) == 0 || len(bs) >= len(all) {
		t.Fatalf("%d of %d blocks kept under max_bytes %d (blocks %d, head %d)", len(bs), len(all), bound, total, head)
	}
	var kept int64
	for _, b := range bs {
		kept += b.Size()
	}
	if kept > total/2 {
		t.Errorf("blocks take %d bytes, over max_bytes %d", kept, total/2)
	}
	if bs[0].Meta().MinTime == oldest {
		t.Error("the oldest block was kept")
	}
	if bs[len(bs)-1].Meta().MaxTime != all[len(all)-1].Meta().MaxTime {
		t.Error("the newest block was deleted")
	}
}

// TestUnwritableDirectory checks that a store that cannot open its
// directory counts each tick as a failure and keeps serving its metrics.
func TestUnwritableDirectory(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A directory below a regular file cannot exist, root or not.
	st := openStore(t, Options{Dir: filepath.Join(f, "tsdb")})
	c := newSteps()
	a := agent.New([]collect.Collector{c}, time.Second, nil)
	a.SetExtra([]prometheus.Collector{st})
	for range 3 {
		st.Append(a, a.Tick(context.Background()))
	}
	if got := testutil.ToFloat64(collectorOf(st, "crmon_store_append_failures_total")); got != 3 {
		t.Errorf("append failures = %v, want 3", got)
	}
	if got := testutil.ToFloat64(collectorOf(st, "crmon_store_up")); got != 0 {
		t.Errorf("crmon_store_up = %v, want 0", got)
	}
	if _, err := st.Queryable().Querier(0, 1); err == nil {
		t.Error("a querier of a store that is not open")
	}
}

// appendText appends a text exposition's samples at t (ms), as if the
// agent had served them: synthetic history for tests and benchmarks.
func (s *Store) appendText(text []byte, t int64) error {
	p := expfmt.NewTextParser(model.UTF8Validation)
	m, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return err
	}
	fams := make([]*dto.MetricFamily, 0, len(m))
	for _, f := range m {
		fams = append(fams, f)
	}
	return s.appendFamilies(fams, t)
}
