// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// stepper is a collector whose series change at every update: a gauge,
// a counter per label value, and a histogram, so that every tick's values
// differ and a lost or misplaced sample shows.
type stepper struct {
	mu    sync.Mutex
	n     float64
	gauge *prometheus.GaugeVec
	ctr   *prometheus.CounterVec
	hist  prometheus.Histogram
}

func newStepper() *stepper {
	return &stepper{
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "test_step", Help: "The update's number."}, []string{"kind"}),
		ctr:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_bytes_total", Help: "Grows by a different amount per series."}, []string{"device"}),
		hist:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "test_latency_seconds", Help: "Observations.", Buckets: []float64{0.01, 0.1, 1}}),
	}
}

func (s *stepper) Name() string { return "stepper" }
func (s *stepper) Update(context.Context, time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	s.gauge.WithLabelValues("plain").Set(s.n)
	s.gauge.WithLabelValues("odd \"quoted\" ünïcode").Set(-s.n / 3)
	s.ctr.WithLabelValues("sda").Add(4096 * s.n)
	s.ctr.WithLabelValues("nvme0n1").Add(math.Pi)
	s.hist.Observe(math.Mod(s.n/7, 2))
	return nil
}
func (s *stepper) Describe(ch chan<- *prometheus.Desc) {}
func (s *stepper) Collect(ch chan<- prometheus.Metric) {
	s.gauge.Collect(ch)
	s.ctr.Collect(ch)
	s.hist.Collect(ch)
}
func (s *stepper) Fill(m *metrics.ResourceMetrics) { m.System.Processes = uint32(s.n) }

// newTestAgent is an agent over a stepper whose Series serves what
// /metrics would.
func newTestAgent(t *testing.T) *agent.Agent {
	t.Helper()
	a := agent.New([]collect.Collector{newStepper()}, time.Second, nil)
	a.SetExtra(nil)
	return a
}

// mustStart starts the exporters cs on a, or fails the test; closing the
// set is the caller's, since some tests close it to test the stop. The
// queues are on disk, as crmon run keeps them, in the test's directory
// unless o names one.
func mustStart(t *testing.T, a *agent.Agent, cs []config.Exporter, o Options) *Set {
	t.Helper()
	if o.QueueDir == "" {
		o.QueueDir = t.TempDir()
	}
	set, err := Start(a, cs, o)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// served records, per series and millisecond timestamp, what the agent
// served: read through agent.Series like the exporters, by a subscriber
// of its own.
type served struct {
	mu     sync.Mutex
	values map[string]map[int64]float64 // series (sorted labels, exporter's included) → ms → value
	n      int                          // ticks read
	done   chan struct{}
}

func (r *served) ticks() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *served) String() string {
	return fmt.Sprintf("%d ticks, %d samples recorded", r.ticks(), r.total())
}

func recordServed(t *testing.T, a *agent.Agent, labels []label) *served {
	t.Helper()
	sub := a.Subscribe("test-recorder", 1000)
	r := &served{values: map[string]map[int64]float64{}, done: make(chan struct{})}
	in := newInterner(nil)
	go func() {
		defer close(r.done)
		for s := range sub.C() {
			src, err := a.Points(s)
			if err != nil {
				t.Errorf("recorder: %v", err)
				continue
			}
			r.mu.Lock()
			for _, p := range in.points(src) {
				k := seriesID(p.s.key, labels)
				if r.values[k] == nil {
					r.values[k] = map[int64]float64{}
				}
				r.values[k][s.Time.UnixMilli()] = p.v
			}
			r.n++
			r.mu.Unlock()
		}
	}()
	t.Cleanup(sub.Close)
	return r
}

// seriesID is a series' labels, __name__ and the exporter's included, as
// one sorted string: the identity a receiver gives it.
func seriesID(key string, extra []label) string {
	name, ls := splitKey(key, nil)
	m := map[string]string{"__name__": name}
	for _, l := range extra {
		m[l.name] = l.value
	}
	for _, l := range ls {
		m[l.name] = l.value
	}
	return labelString(m)
}

func labelString(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// exporterConfig is an exporter of type typ to endpoint with quick
// batches, for tests.
func exporterConfig(name, typ, endpoint string) config.Exporter {
	return config.Exporter{
		Name: name, ExporterType: typ, Endpoint: endpoint,
		BatchSize: 500, FlushInterval: config.Duration(200 * time.Millisecond),
		Timeout: config.Duration(5 * time.Second), QueueSize: 100000,
		RemoteWriteVersion: config.RemoteWriteAuto,
	}
}

// tickN runs n ticks a few milliseconds apart, so their millisecond
// timestamps differ. Each tick's points are built at once, for every
// reader: ticks this close would otherwise supersede the series of a
// sample before a reader got to it.
func tickN(t *testing.T, a *agent.Agent, n int) {
	t.Helper()
	for range n {
		if _, err := a.Points(a.Tick(context.Background())); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitFor polls cond every 100 ms until it holds or d passes; what says
// what it waits for, and state what is, when it fails.
func waitFor(t *testing.T, d time.Duration, what string, state func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s: %s", d, what, state())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testLogger writes the exporters' logs to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// openTestQueue gives e, made by newExporter without being started, its
// queue on disk in a directory of the test's.
func openTestQueue(tb testing.TB, e *Exporter) {
	tb.Helper()
	e.queueDir = tb.TempDir()
	e.q = e.openQueue()
	if _, ok := e.q.(*diskQueue); !ok {
		tb.Fatalf("the queue is not on disk in %s", e.queueDir)
	}
	tb.Cleanup(func() { e.q.close() })
}

// counts is an exporter's counters, for failure messages.
func (e *Exporter) counts() string {
	return fmt.Sprintf("sent %d, failed %d, retried %d, dropped %d, queued %d", e.sent.Load(), e.failed.Load(), e.retried.Load(), e.q.droppedTotal()+e.superseded.Load(), e.q.len())
}

// total is how many samples were recorded.
func (r *served) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.values {
		n += len(v)
	}
	return n
}

// logTo is a logger writing to b, under mu.
func logTo(mu *sync.Mutex, b *strings.Builder) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, b}, nil))
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// famInterner interns families as the agent and an exporter's intake do
// together: the agent's points of them (a collect.Interner, as
// agent.Points gives them), then the exporter's series of those.
type famInterner struct {
	*interner
	ci  collect.Interner
	src []collect.Point
}

func newFamInterner(labels []label) *famInterner {
	return &famInterner{interner: newInterner(labels)}
}

// agentPoints are the agent's points of fams.
func (f *famInterner) agentPoints(fams []*dto.MetricFamily) []collect.Point {
	f.src = f.ci.AppendFamilies(f.src[:0], fams)
	return f.src
}

// families are the exporter's points of fams.
func (f *famInterner) families(fams []*dto.MetricFamily) []point {
	return f.points(f.agentPoints(fams))
}

// familiesInto is families, appended to dst[:0].
func (f *famInterner) familiesInto(dst []point, fams []*dto.MetricFamily) []point {
	return f.pointsInto(dst, f.agentPoints(fams))
}
