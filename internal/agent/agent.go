// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package agent runs crmon's collection loop: once per interval it updates
// every collector, assembles one sample, and hands it to its readers (the
// HTTP server, and sinks that subscribe). Readers never trigger a
// collection; they get the latest sample.
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
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// Sample is one tick's result. It is immutable once published.
type Sample struct {
	Time     time.Time
	Duration time.Duration
	Metrics  *metrics.ResourceMetrics
}

// Agent owns a set of collectors and the loop that drives them.
type Agent struct {
	logger *slog.Logger

	mu         sync.Mutex // guards collectors, interval and subs
	collectors []collect.Collector
	interval   time.Duration
	subs       []chan *Sample
	reset      chan struct{} // interval changed: restart the ticker

	latest atomic.Pointer[Sample]
	// tickMu serialises ticks: Update must never run concurrently with
	// itself, and Collect/Fill read what the last Update left.
	tickMu sync.Mutex

	// Self-metrics, read by Collect.
	ticks         atomic.Uint64
	droppedSample atomic.Uint64
	status        atomic.Pointer[[]collectorStatus]
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
		descTicks: prometheus.NewDesc("crmon_collections_total",
			"Collection cycles the agent completed.", nil, nil),
		descDropped: prometheus.NewDesc("crmon_samples_dropped_total",
			"Samples a slow subscriber did not take in time.", nil, nil),
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

// Subscribe returns a channel that receives every sample. A subscriber
// that falls behind loses samples (counted), it never slows the loop.
func (a *Agent) Subscribe(buffer int) <-chan *Sample {
	ch := make(chan *Sample, buffer)
	a.mu.Lock()
	a.subs = append(a.subs, ch)
	a.mu.Unlock()
	return ch
}

// Run collects once immediately, then every interval, until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	a.Tick(ctx)
	for {
		t := time.NewTimer(a.untilNext(time.Now()))
		select {
		case <-ctx.Done():
			t.Stop()
			a.mu.Lock()
			for _, s := range a.subs {
				close(s)
			}
			a.subs = nil
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
	for i, c := range cs {
		if !a.fill(c, m) {
			status[i].ok = false
		}
	}
	s := &Sample{Time: start, Duration: time.Since(start), Metrics: m}
	a.status.Store(&status)
	a.latest.Store(s)
	a.ticks.Add(1)

	a.mu.Lock()
	for _, ch := range a.subs {
		select {
		case ch <- s:
		default:
			a.droppedSample.Add(1)
		}
	}
	a.mu.Unlock()
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
	a.mu.Unlock()
	for _, c := range cs {
		if _, ok := c.(collect.TextAppender); ok && skipText {
			continue
		}
		a.collectOne(c, ch)
	}
	ch <- prometheus.MustNewConstMetric(a.descTicks, prometheus.CounterValue, float64(a.ticks.Load()))
	ch <- prometheus.MustNewConstMetric(a.descDropped, prometheus.CounterValue, float64(a.droppedSample.Load()))
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
