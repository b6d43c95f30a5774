// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestStopSendsQueued: at a stop, a remote-write exporter to Debian's
// Prometheus and an InfluxDB exporter to Debian's InfluxDB send what they
// have queued, though neither batch_size nor flush_interval is reached,
// and both receivers hold every sample served.
func TestStopSendsQueued(t *testing.T) {
	prom := testenv.StartPrometheus(t)
	influxAddr := testenv.InfluxDB(t, "crmon")
	a := newTestAgent(t)
	rw := exporterConfig("rw", config.ExporterPrometheus, prom.WriteURL())
	rw.RemoteWriteVersion = config.RemoteWrite1
	in := exporterConfig("influx", config.ExporterInfluxDB, "http://"+influxAddr)
	in.Database, in.Precision = "crmon", "ms"
	cs := []config.Exporter{rw, in}
	for i := range cs {
		// Nothing leaves before the stop.
		cs[i].FlushInterval = config.Duration(time.Hour)
		cs[i].BatchSize, cs[i].QueueSize = 100000, 100000
		cs[i].DeliveryGracePeriod = config.Duration(30 * time.Second)
	}
	set, err := Start(a, cs, Options{Hostname: "stop-host", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	es := set.exporters
	rec := recordServed(t, a, es[0].labels)
	tickN(t, a, 10)
	waitFor(t, 10*time.Second, "the recorder to read every tick", rec.String, func() bool { return rec.ticks() == 10 })
	want := uint64(rec.total())
	for _, e := range es {
		waitFor(t, 10*time.Second, e.cfg.Name+" to queue every sample", e.counts, func() bool { return uint64(e.q.len()) == want })
		if e.sent.Load() != 0 {
			t.Fatalf("%s sent before the stop: %s", e.cfg.Name, e.counts())
		}
	}
	set.Close()
	for _, e := range es {
		if e.sent.Load() != want || e.q.len() != 0 || e.q.droppedTotal() != 0 {
			t.Errorf("%s after the stop: %s, want %d sent", e.cfg.Name, e.counts(), want)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := compareSamples(t, rec.values, promSamples(t, prom.Addr, "stop-host")); uint64(n) != want {
		t.Errorf("Prometheus holds %d samples, want %d", n, want)
	}
	if n := compareSamples(t, rec.values, influxSamples(t, influxAddr, "crmon", "stop-host")); uint64(n) != want {
		t.Errorf("InfluxDB holds %d samples, want %d", n, want)
	}
}

// TestStopGraceRunsOut: a receiver that is down keeps the stop no longer
// than delivery_grace_period (plus the request in flight, cancelled).
// With the queue in memory, what is left is counted as dropped and logged
// with the exporter's name; on disk, it is kept, logged, and the next
// start of the exporter has it queued again. With delivery_grace_period =
// 0 the stop does not wait at all.
func TestStopGraceRunsOut(t *testing.T) {
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String() + "/api/v1/write"
	l.Close()
	for _, onDisk := range []bool{false, true} {
		for _, grace := range []time.Duration{2 * time.Second, 0} {
			a := newTestAgent(t)
			c := exporterConfig("down", config.ExporterPrometheus, down)
			c.DeliveryGracePeriod = config.Duration(grace)
			var logs strings.Builder
			var mu sync.Mutex
			o := Options{Hostname: "h", Logger: logTo(&mu, &logs)}
			if onDisk {
				o.QueueDir = t.TempDir()
			}
			set, err := Start(a, []config.Exporter{c}, o)
			if err != nil {
				t.Fatal(err)
			}
			e := set.exporters[0]
			tickN(t, a, 3)
			waitFor(t, 10*time.Second, "a failed attempt", e.counts, func() bool { return e.retried.Load() > 0 })
			queued := e.q.len()
			// What the queue takes on disk, as /metrics serves it; the
			// intake may still be writing the last tick, and nothing is
			// delivered, so it can only grow meanwhile.
			before := float64(e.q.diskBytes())
			got := gaugeValue(t, set, "crmon_exporter_queue_bytes")
			if after := float64(e.q.diskBytes()); got < before || got > after || onDisk != (got > 0) {
				t.Errorf("on disk %v: crmon_exporter_queue_bytes = %v, the queue says %v to %v", onDisk, got, before, after)
			}
			start := time.Now()
			set.Close()
			took := time.Since(start)
			// The bound is the grace period and the cancelled request's
			// return, not a timing guess: a stop that ignored the grace
			// period would wait for the next retry, up to 30 s away.
			if took < grace || took > grace+5*time.Second {
				t.Errorf("grace %v: the stop took %v", grace, took)
			}
			mu.Lock()
			l := logs.String()
			mu.Unlock()
			if !strings.Contains(l, "exporter stopped with samples it could not send") || !strings.Contains(l, "exporter=down") {
				t.Errorf("grace %v: log:\n%s", grace, l)
			}
			if !onDisk {
				if e.q.len() != 0 || int(e.q.droppedTotal()) < queued || e.sent.Load() != 0 {
					t.Errorf("grace %v, in memory: %s; %d were queued", grace, e.counts(), queued)
				}
				continue
			}
			if e.q.len() < queued || e.q.droppedTotal() != 0 || e.sent.Load() != 0 || !strings.Contains(l, "its queue on disk keeps them") {
				t.Errorf("grace %v, on disk: %s; %d were queued; log:\n%s", grace, e.counts(), queued, l)
			}
			left := e.q.len()
			again, err := Start(newTestAgent(t), []config.Exporter{c}, o)
			if err != nil {
				t.Fatal(err)
			}
			if n := again.exporters[0].q.len(); n != left {
				t.Errorf("grace %v: the next start has %d samples queued, the stop left %d", grace, n, left)
			}
			again.Close()
		}
	}
}

// gaugeValue is the value of the one series of the family name that set
// collects.
func gaugeValue(t *testing.T, set *Set, name string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(set)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no single series %s", name)
	return 0
}

// TestReloadKeepsQueueThroughOutage: while Debian's Prometheus is down, a
// reload that leaves the exporter unchanged keeps it and what it has
// queued; once Prometheus is back, it holds every sample served, the
// outage's included.
func TestReloadKeepsQueueThroughOutage(t *testing.T) {
	prom := testenv.StartPrometheus(t)
	a := newTestAgent(t)
	c := exporterConfig("rw", config.ExporterPrometheus, prom.WriteURL())
	c.RemoteWriteVersion = config.RemoteWrite1
	set := mustStart(t, a, []config.Exporter{c}, Options{Hostname: "reload-host", Logger: testLogger(t)})
	defer set.Close()
	e := set.exporters[0]
	rec := recordServed(t, a, e.labels)
	tickN(t, a, 3)
	waitFor(t, 10*time.Second, "the first ticks to be sent", e.counts, func() bool { return e.sent.Load() > 0 && e.q.len() == 0 })
	prom.Stop()
	tickN(t, a, 5)
	waitFor(t, 10*time.Second, "a failed attempt", e.counts, func() bool { return e.retried.Load() > 0 })
	queued := e.q.len()
	other := exporterConfig("other", config.ExporterCustom, "http://127.0.0.1:1/")
	if err := set.Reload([]config.Exporter{c, other}); err != nil {
		t.Fatal(err)
	}
	if set.exporters[0] != e || e.q.len() < queued {
		t.Fatalf("the reload replaced the exporter or emptied its queue: %s, %d queued before", e.counts(), queued)
	}
	prom.Start()
	waitFor(t, 10*time.Second, "the recorder to read every tick", rec.String, func() bool { return rec.ticks() == 8 })
	want := uint64(rec.total())
	// Retries back off up to 30 s, with jitter.
	waitFor(t, 45*time.Second, "every sample to be sent", e.counts, func() bool { return e.sent.Load() == want })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := compareSamples(t, rec.values, promSamples(t, prom.Addr, "reload-host")); uint64(n) != want {
		t.Errorf("Prometheus holds %d samples, want %d", n, want)
	}
}
