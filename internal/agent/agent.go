// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package agent runs crmon's collection loop: once per interval it updates
// every collector, assembles one sample, and hands it to its readers.
// Readers never trigger a collection.
//
// There are two ways to read: Latest, for a reader that wants the newest
// sample when it is asked (a scrape, the snapshot API), and Subscribe, the
// one way a consumer (the alert engine, an exporter, a store) gets every
// sample in order. A subscription's contract:
//
//   - the *Sample it receives is shared by every reader and immutable: a
//     consumer reads it and never changes it (or what its slices point to);
//   - each subscription has its own bounded buffer; when it is full the
//     oldest sample waiting is dropped, so the consumer always gets the
//     newest one, and the drop is counted in
//     crmon_samples_dropped_total{subscriber};
//   - publishing never waits for a consumer, so a slow or stuck one never
//     delays a tick.
package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/probe"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// Sample is one tick's result. It is immutable once published.
type Sample struct {
	Time     time.Time
	Duration time.Duration
	Metrics  *metrics.ResourceMetrics
	// Probes is the eBPF probes' read of this tick: every cgroup's
	// counters and histograms, removed cgroups included, before the
	// export's filters and caps; nil when the probes are off. A consumer
	// that needs a cgroup the export leaves out (a test session's) finds
	// it here instead of reading the maps again.
	Probes *probe.Snapshot

	// seq is the tick's number, and series what Series gathered for it.
	seq    uint64
	series *series
}

// probeSource is a collector whose last update read the probes: the
// "ebpf" collector.
type probeSource interface {
	ProbeSnapshot() *probe.Snapshot
}

// Agent owns a set of collectors and the loop that drives them.
type Agent struct {
	logger *slog.Logger

	mu         sync.Mutex // guards collectors, interval, subs, dropped, gatherer and rest
	collectors []collect.Collector
	gatherer   prometheus.Gatherer // what /metrics serves (SetExtra)
	rest       prometheus.Gatherer // what it serves but the text collectors'
	interval   time.Duration
	subs       []*Subscription
	// dropped counts, per subscriber name, the samples its subscriptions
	// lost; kept past a subscription's end so the counter never goes back.
	dropped map[string]*atomic.Uint64
	stopped bool          // Run has ended: new subscriptions start closed
	reset   chan struct{} // interval changed: restart the ticker

	latest atomic.Pointer[Sample]
	// started counts the ticks that began updating collectors; Series
	// uses it to tell that a tick ran during a gather.
	started atomic.Uint64
	// tickMu serialises ticks: Update must never run concurrently with
	// itself, and Collect/Fill read what the last Update left.
	tickMu sync.Mutex
	// points is what Points keeps from tick to tick.
	points pointsState

	// Self-metrics, read by Collect.
	ticks  atomic.Uint64
	status atomic.Pointer[[]collectorStatus]
	// panics records the collectors that panicked while serving and the
	// panics already logged.
	panics panicLog

	descTicks, descDropped, descDuration, descLast  *prometheus.Desc
	descCollDuration, descCollSuccess, descInterval *prometheus.Desc
}

type collectorStatus struct {
	name     string
	duration time.Duration
	ok       bool
}

// New makes an agent; Run starts it.
func New(collectors []collect.Collector, interval time.Duration, logger *slog.Logger) *Agent {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Agent{
		logger:     logger,
		collectors: collectors,
		interval:   interval,
		reset:      make(chan struct{}, 1),
		dropped:    map[string]*atomic.Uint64{},
		descTicks: prometheus.NewDesc("crmon_collections_total",
			"Collection cycles the agent completed.", nil, nil),
		descDropped: prometheus.NewDesc("crmon_samples_dropped_total",
			"Samples a subscriber lost because its buffer was full: it read too slowly.", []string{"subscriber"}, nil),
		descDuration: prometheus.NewDesc("crmon_collection_duration_seconds",
			"Duration of the last collection cycle, all collectors.", nil, nil),
		descLast: prometheus.NewDesc("crmon_last_collection_timestamp_seconds",
			"Time of the last completed collection cycle.", nil, nil),
		descInterval: prometheus.NewDesc("crmon_collection_interval_seconds",
			"Configured collection interval.", nil, nil),
		descCollDuration: prometheus.NewDesc("crmon_collector_duration_seconds",
			"Duration of a collector's last update.", []string{"collector"}, nil),
		descCollSuccess: prometheus.NewDesc("crmon_collector_success",
			"Whether a collector's last update succeeded (1) or had no data or failed (0).", []string{"collector"}, nil),
	}
}

// SetCollectors replaces the collector set, e.g. after a config reload.
// The next tick uses the new set.
func (a *Agent) SetCollectors(cs []collect.Collector) {
	a.tickMu.Lock()
	defer a.tickMu.Unlock()
	a.mu.Lock()
	a.collectors = cs
	a.mu.Unlock()
}

// SetInterval changes the collection interval from the next tick on.
func (a *Agent) SetInterval(d time.Duration) {
	a.mu.Lock()
	changed := d != a.interval
	a.interval = d
	a.mu.Unlock()
	if changed {
		select {
		case a.reset <- struct{}{}:
		default:
		}
	}
}

// Interval is the current collection interval.
func (a *Agent) Interval() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.interval
}

// Latest returns the last published sample, or nil before the first.
func (a *Agent) Latest() *Sample { return a.latest.Load() }

// Subscription is one consumer's stream of samples (see the package
// documentation for the contract).
type Subscription struct {
	a       *Agent
	name    string
	c       chan *Sample
	dropped *atomic.Uint64
	closed  bool // guarded by a.mu
}

// C receives every sample published after Subscribe, oldest first, less
// those dropped while the buffer was full. It is closed by Close or when
// Run ends.
func (s *Subscription) C() <-chan *Sample { return s.c }

// Name is the subscriber's name, the label of its drop counter.
func (s *Subscription) Name() string { return s.name }

// Dropped is how many samples subscriptions under this name have lost.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription and closes C. It is safe to call twice.
func (s *Subscription) Close() {
	a := s.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.c)
	for i, o := range a.subs {
		if o == s {
			a.subs = append(a.subs[:i], a.subs[i+1:]...)
			break
		}
	}
}

// Subscribe starts a subscription that buffers up to buffer samples
// (at least 1). name says who reads, e.g. "alert"; it labels the drop
// counter, and subscriptions with the same name share it.
func (a *Agent) Subscribe(name string, buffer int) *Subscription {
	buffer = max(buffer, 1)
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.dropped[name]
	if d == nil {
		d = new(atomic.Uint64)
		a.dropped[name] = d
	}
	s := &Subscription{a: a, name: name, c: make(chan *Sample, buffer), dropped: d}
	if a.stopped {
		s.closed = true
		close(s.c)
		return s
	}
	a.subs = append(a.subs, s)
	return s
}

// publish hands s to every subscription without waiting: a full buffer
// loses its oldest sample to make room. The sends never block, so holding
// mu here (which Close also takes) cannot delay a tick.
func (a *Agent) publish(s *Sample) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, sub := range a.subs {
		for {
			select {
			case sub.c <- s:
			default:
				// Full: drop the oldest waiting sample and try again. The
				// consumer may take it first; then the send succeeds.
				select {
				case <-sub.c:
					sub.dropped.Add(1)
				default:
				}
				continue
			}
			break
		}
	}
}

// Run collects once immediately, then every interval, until ctx ends. A
// sample taken less than an interval ago (crmon run ticks once before it
// serves) counts as the first: a second one right after it would be
// published before its readers took the first, which they would then find
// superseded, and would make rates over a few milliseconds.
func (a *Agent) Run(ctx context.Context) error {
	if s := a.Latest(); s == nil || time.Since(s.Time) >= a.Interval() {
		a.Tick(ctx)
	}
	for {
		t := time.NewTimer(a.untilNext(time.Now()))
		select {
		case <-ctx.Done():
			t.Stop()
			a.mu.Lock()
			for _, s := range a.subs {
				s.closed = true
				close(s.c)
			}
			a.subs = nil
			a.stopped = true
			a.mu.Unlock()
			return nil
		case <-a.reset:
			t.Stop()
		case <-t.C:
			a.Tick(ctx)
		}
	}
}

// untilNext aligns ticks to multiples of the interval, so that two agents
// (or an agent and its scraper) see stable phases and drift does not pile up.
func (a *Agent) untilNext(now time.Time) time.Duration {
	iv := a.Interval()
	if iv <= 0 {
		iv = time.Second
	}
	return iv - time.Duration(now.UnixNano()%int64(iv))
}

// Tick runs one collection cycle and publishes its sample.
func (a *Agent) Tick(ctx context.Context) *Sample {
	a.tickMu.Lock()
	defer a.tickMu.Unlock()
	a.mu.Lock()
	cs := a.collectors
	a.mu.Unlock()

	seq := a.started.Add(1)
	start := time.Now()
	status := make([]collectorStatus, len(cs))
	for i, c := range cs {
		t0 := time.Now()
		err := a.update(ctx, c, start)
		status[i] = collectorStatus{name: c.Name(), duration: time.Since(t0), ok: err == nil}
		switch {
		case err == nil, errors.Is(err, errPanicked):
		case errors.Is(err, collect.ErrNoData):
			a.logger.Debug("collector returned no data", "collector", c.Name(), "err", err)
		default:
			a.logger.Error("collector failed", "collector", c.Name(), "err", err)
		}
	}
	m := &metrics.ResourceMetrics{Timestamp: start}
	var snap *probe.Snapshot
	for i, c := range cs {
		if !a.fill(c, m) {
			status[i].ok = false
		}
		if ps, ok := c.(probeSource); ok {
			snap = ps.ProbeSnapshot()
		}
	}
	s := &Sample{Time: start, Duration: time.Since(start), Metrics: m, Probes: snap, seq: seq, series: new(series)}
	a.status.Store(&status)
	a.latest.Store(s)
	a.ticks.Add(1)
	a.publish(s)
	return s
}

// Describe sends nothing: the set of collectors changes on reload, so the
// agent is an unchecked collector; the registry still checks every gather
// (what AppendText writes is checked by the collectors' tests instead).
func (a *Agent) Describe(chan<- *prometheus.Desc) {}

// Collect emits every collector's metrics from its last update, and the
// agent's own.
func (a *Agent) Collect(ch chan<- prometheus.Metric) { a.collect(ch, false) }

// AppendText appends, in the Prometheus text format, the series of the
// collectors that write their own (collect.TextAppender). With Rest, it
// serves what Collect serves.
func (a *Agent) AppendText(b []byte) []byte {
	a.mu.Lock()
	cs := a.collectors
	a.mu.Unlock()
	for _, c := range cs {
		if t, ok := c.(collect.TextAppender); ok {
			b = a.appendText(c.Name(), t, b)
		}
	}
	return b
}

// Rest is a collector of what AppendText leaves out: the other
// collectors' metrics and the agent's own.
func (a *Agent) Rest() prometheus.Collector { return rest{a} }

type rest struct{ a *Agent }

func (r rest) Describe(chan<- *prometheus.Desc)    {}
func (r rest) Collect(ch chan<- prometheus.Metric) { r.a.collect(ch, true) }

func (a *Agent) collect(ch chan<- prometheus.Metric, skipText bool) {
	a.mu.Lock()
	cs := a.collectors
	iv := a.interval
	dropped := make(map[string]uint64, len(a.dropped))
	for n, d := range a.dropped {
		dropped[n] = d.Load()
	}
	a.mu.Unlock()
	for _, c := range cs {
		if _, ok := c.(collect.TextAppender); ok && skipText {
			continue
		}
		a.collectOne(c, ch)
	}
	ch <- prometheus.MustNewConstMetric(a.descTicks, prometheus.CounterValue, float64(a.ticks.Load()))
	for n, d := range dropped {
		ch <- prometheus.MustNewConstMetric(a.descDropped, prometheus.CounterValue, float64(d), n)
	}
	ch <- prometheus.MustNewConstMetric(a.descInterval, prometheus.GaugeValue, iv.Seconds())
	if s := a.latest.Load(); s != nil {
		ch <- prometheus.MustNewConstMetric(a.descDuration, prometheus.GaugeValue, s.Duration.Seconds())
		ch <- prometheus.MustNewConstMetric(a.descLast, prometheus.GaugeValue, float64(s.Time.UnixNano())/1e9)
	}
	if st := a.status.Load(); st != nil {
		for _, s := range *st {
			ch <- prometheus.MustNewConstMetric(a.descCollDuration, prometheus.GaugeValue, s.duration.Seconds(), s.name)
			ok := 0.0
			if s.ok && !a.panics.serving(s.name) {
				ok = 1
			}
			ch <- prometheus.MustNewConstMetric(a.descCollSuccess, prometheus.GaugeValue, ok, s.name)
		}
	}
}
