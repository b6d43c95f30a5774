// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// containerFamilies are the per-container families crmon serves with
// the eBPF probes on (README, Metrics), with the extra labels each has
// and the values they take.
var containerFamilies = []struct {
	name  string
	typ   dto.MetricType
	extra map[string][]string
}{
	{"container_cpu_cfs_periods_total", dto.MetricType_COUNTER, nil},
	{"container_cpu_cfs_throttled_periods_total", dto.MetricType_COUNTER, nil},
	{"container_cpu_cfs_throttled_seconds_total", dto.MetricType_COUNTER, nil},
	{"container_cpu_system_seconds_total", dto.MetricType_COUNTER, nil},
	{"container_cpu_usage_seconds_total", dto.MetricType_COUNTER, map[string][]string{"cpu": {"total"}}},
	{"container_cpu_user_seconds_total", dto.MetricType_COUNTER, nil},
	{"container_fs_reads_bytes_total", dto.MetricType_COUNTER, map[string][]string{"device": {"/dev/sda"}}},
	{"container_fs_reads_total", dto.MetricType_COUNTER, map[string][]string{"device": {"/dev/sda"}}},
	{"container_fs_usage_bytes", dto.MetricType_GAUGE, map[string][]string{"device": {"/dev/sda"}}},
	{"container_fs_writes_bytes_total", dto.MetricType_COUNTER, map[string][]string{"device": {"/dev/sda"}}},
	{"container_fs_writes_total", dto.MetricType_COUNTER, map[string][]string{"device": {"/dev/sda"}}},
	{"container_last_seen", dto.MetricType_GAUGE, nil},
	{"container_memory_cache", dto.MetricType_GAUGE, nil},
	{"container_memory_failcnt", dto.MetricType_COUNTER, nil},
	{"container_memory_max_usage_bytes", dto.MetricType_GAUGE, nil},
	{"container_memory_rss", dto.MetricType_GAUGE, nil},
	{"container_memory_usage_bytes", dto.MetricType_GAUGE, nil},
	{"container_memory_working_set_bytes", dto.MetricType_GAUGE, nil},
	{"container_network_receive_bytes_total", dto.MetricType_COUNTER, map[string][]string{"interface": {"eth0"}}},
	{"container_network_receive_errors_total", dto.MetricType_COUNTER, map[string][]string{"interface": {"eth0"}}},
	{"container_network_receive_packets_dropped_total", dto.MetricType_COUNTER, map[string][]string{"interface": {"eth0"}}},
	{"container_network_receive_packets_total", dto.MetricType_COUNTER, map[string][]string{"interface": {"eth0"}}},
	{"container_network_transmit_bytes_total", dto.MetricType_COUNTER, map[string][]string{"interface": {"eth0"}}},
	{"container_network_transmit_errors_total", dto.MetricType_COUNTER, map[string][]string{"interface": {"eth0"}}},
	{"container_network_transmit_packets_dropped_total", dto.MetricType_COUNTER, map[string][]string{"interface": {"eth0"}}},
	{"container_network_transmit_packets_total", dto.MetricType_COUNTER, map[string][]string{"interface": {"eth0"}}},
	{"container_oom_events_total", dto.MetricType_COUNTER, nil},
	{"container_processes", dto.MetricType_GAUGE, nil},
	{"container_spec_cpu_period", dto.MetricType_GAUGE, nil},
	{"container_spec_cpu_shares", dto.MetricType_GAUGE, nil},
	{"container_spec_memory_limit_bytes", dto.MetricType_GAUGE, nil},
	{"container_start_time_seconds", dto.MetricType_GAUGE, nil},
	{"container_threads", dto.MetricType_GAUGE, nil},
	{"crmon_container_block_io_bytes_total", dto.MetricType_COUNTER, map[string][]string{"device": {"sda"}, "op": {"read", "write"}}},
	{"crmon_container_block_io_latency_seconds", dto.MetricType_HISTOGRAM, map[string][]string{"op": {"read", "write"}}},
	{"crmon_container_block_io_operations_total", dto.MetricType_COUNTER, map[string][]string{"device": {"sda"}, "op": {"read", "write"}}},
	{"crmon_container_context_switches_total", dto.MetricType_COUNTER, map[string][]string{"type": {"voluntary", "involuntary"}}},
	{"crmon_container_counters_from_ebpf", dto.MetricType_GAUGE, map[string][]string{"family": {"sched", "block", "net"}}},
	{"crmon_container_cpu_seconds_total", dto.MetricType_COUNTER, nil},
	{"crmon_container_network_bytes_total", dto.MetricType_COUNTER, map[string][]string{"direction": {"rx", "tx"}}},
	{"crmon_container_network_packets_total", dto.MetricType_COUNTER, map[string][]string{"direction": {"rx", "tx"}}},
	{"crmon_container_runqueue_latency_seconds", dto.MetricType_HISTOGRAM, nil},
	{"crmon_container_runqueue_wait_seconds_total", dto.MetricType_COUNTER, nil},
}

// fleet makes one tick of host + n containers: the host's families from
// the golden scrape of the fixture tree, the containers' from
// containerFamilies, each value moving with the tick as counters and
// gauges do.
type fleet struct {
	host []*dto.MetricFamily
	n    int
}

func newFleet(tb testing.TB, containers int) *fleet {
	f, err := os.Open("../../testdata/e2e-output.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		tb.Fatal(err)
	}
	fl := &fleet{n: containers}
	for _, mf := range fams {
		fl.host = append(fl.host, mf)
	}
	return fl
}

var buckets = []float64{1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1}

func (fl *fleet) tick(i int) []*dto.MetricFamily {
	fams := make([]*dto.MetricFamily, 0, len(fl.host)+len(containerFamilies))
	for _, h := range fl.host {
		c := proto.Clone(h).(*dto.MetricFamily)
		for _, m := range c.Metric {
			if m.Counter != nil {
				m.Counter.Value = proto.Float64(m.Counter.GetValue() + float64(i)*1.5)
			}
		}
		fams = append(fams, c)
	}
	for _, cf := range containerFamilies {
		mf := &dto.MetricFamily{Name: proto.String(cf.name), Help: proto.String("h"), Type: cf.typ.Enum()}
		for c := range fl.n {
			base := []*dto.LabelPair{
				{Name: proto.String("id"), Value: proto.String(fmt.Sprintf("/docker/%064x", c*7919+1))},
				{Name: proto.String("image"), Value: proto.String("ci/builder:2026.12")},
				{Name: proto.String("name"), Value: proto.String(fmt.Sprintf("build-%d", c))},
			}
			sets := [][]*dto.LabelPair{base}
			// In a fixed order: the agent serves the same series in the
			// same order every tick.
			for _, k := range slices.Sorted(maps.Keys(cf.extra)) {
				var next [][]*dto.LabelPair
				for _, s := range sets {
					for _, v := range cf.extra[k] {
						next = append(next, append(append([]*dto.LabelPair{}, s...), &dto.LabelPair{Name: proto.String(k), Value: proto.String(v)}))
					}
				}
				sets = next
			}
			for j, ls := range sets {
				// Sorted by name, as client_golang gives them.
				slices.SortFunc(ls, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
				v := float64(c*131+j*17) + float64(i)*float64(c+1)*0.37
				m := &dto.Metric{Label: ls}
				switch cf.typ {
				case dto.MetricType_COUNTER:
					m.Counter = &dto.Counter{Value: proto.Float64(v)}
				case dto.MetricType_GAUGE:
					m.Gauge = &dto.Gauge{Value: proto.Float64(v)}
				case dto.MetricType_HISTOGRAM:
					h := &dto.Histogram{SampleCount: proto.Uint64(uint64(v) * 11), SampleSum: proto.Float64(v / 1000)}
					for k, ub := range buckets {
						h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(ub), CumulativeCount: proto.Uint64(uint64(v) * uint64(k+1))})
					}
					m.Histogram = h
				}
				mf.Metric = append(mf.Metric, m)
			}
		}
		fams = append(fams, mf)
	}
	return fams
}

// sink answers like each receiver type and does as little as it can, so
// that the process' CPU time is the exporter's: it reads and discards the
// body and answers success.
func sink(typ string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch typ {
		case config.ExporterPrometheus:
			w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", "1")
		case config.ExporterElasticsearch:
			w.Header().Set("X-Elastic-Product", "Elasticsearch")
			w.Write([]byte(`{"took":1,"errors":false,"items":[]}`))
			return
		case config.ExporterInfluxDB:
			w.Header().Set("X-Influxdb-Version", "1.6.7")
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// cpuTime is the process' user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkExporters runs one exporter of each type over host + 50
// containers, one op being one tick: the agent's points of its series
// (shared with the store, made before the timer starts) turned into the
// exporter's,
// queued (on disk, as crmon run keeps it, with a fdatasync a tick), and
// sent with the default batch_size over loopback to a local receiver. It reports the bytes on the wire per tick and per hour at a
// 10 s interval, and the CPU per tick as a share of one core at 10 s.
// The README quotes its figures:
//
//	go test -run '^$' -bench BenchmarkExporters -benchtime 400x ./internal/export
func BenchmarkExporters(b *testing.B) {
	fl := newFleet(b, 50)
	// The agent's points of each tick, as agent.Points gives them (the
	// store reads the same): built once a tick whatever reads them, so
	// not the exporter's CPU. One collect.Interner makes them all, so
	// each series is the same *collect.Series at every tick, as the
	// agent's.
	var ci collect.Interner
	ticks := make([][]collect.Point, 8)
	for i := range ticks {
		ticks[i] = ci.AppendFamilies(nil, fl.tick(i))
	}
	for _, typ := range []string{config.ExporterPrometheus + "/1.0", config.ExporterPrometheus + "/2.0", config.ExporterInfluxDB, config.ExporterElasticsearch, config.ExporterCustom} {
		b.Run(typ, func(b *testing.B) {
			kind, version, _ := strings.Cut(typ, "/")
			srv := httptest.NewServer(sink(kind))
			defer srv.Close()
			c := exporterConfig("bench", kind, srv.URL)
			c.BatchSize, c.QueueSize = config.DefaultBatchSize, config.DefaultQueueSize
			c.RemoteWriteVersion, c.Database, c.Precision, c.Index, c.Format = version, "crmon", "ms", "crmon", config.CustomNDJSON
			e, err := newExporter(c, Options{Hostname: "ci-host-1", Logger: testLogger(&testing.T{})})
			if err != nil {
				b.Fatal(err)
			}
			defer e.s.close()
			// The queue on disk, as crmon run keeps it.
			openTestQueue(b, e)
			in := newInterner(e.labels)
			in.shared = e.shared // as the intake's
			size, whole := e.batchShape()
			var series atomic.Int64
			docs := 0
			start := time.Now()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := range b.N {
				t := &tick{t: start.Add(time.Duration(i) * 10 * time.Second)}
				src := ticks[i%len(ticks)]
				if e.s.wantsDocs() {
					t.doc = customDoc(i, fl.n)
				} else {
					t.pts = e.points(in, src)
					series.Store(int64(len(t.pts)))
				}
				// The ticks follow each other at once here; at 10 s each one
				// is fdatasync'ed, and so it is here.
				e.q.(*diskQueue).synced = time.Time{}
				e.q.push(t, time.Now())
				for e.q.len() > 0 {
					bt := e.q.peek(size, whole)
					r, err := e.s.send(context.Background(), bt)
					if err != nil {
						b.Fatal(err)
					}
					if el, ok := e.s.(*elastic); ok {
						docs += len(el.docs)
					}
					e.bytes.Add(uint64(r.bytes))
					e.q.commit(bt.hi)
				}
			}
			cpu := cpuTime() - cpu0
			b.StopTimer()
			perTick := float64(e.bytes.Load()) / float64(b.N)
			b.ReportMetric(perTick, "wire-B/tick")
			b.ReportMetric(perTick*360/1e6, "wire-MB/hour@10s")
			// CPU time, not wall time: the machine may be busy.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/1e10*100, "%core@10s")
			if n := series.Load(); n > 0 {
				b.ReportMetric(float64(n), "series/tick")
			}
			if docs > 0 {
				b.ReportMetric(float64(docs)/float64(b.N), "docs/tick")
			}
		})
	}
}

// customDoc is the snapshot of a tick with n containers, in the shape
// /api/v1/snapshot serves (the benchmark has no agent sample: its values
// are made up, its fields are the real ones).
func customDoc(tick, n int) []byte {
	m := metrics.ResourceMetrics{Timestamp: time.Unix(1765000000+int64(tick)*10, 0)}
	m.Containers.TotalContainers, m.Containers.RunningContainers = uint32(n), uint32(n)
	for c := range n {
		started := time.Unix(1765000000-int64(c)*60, 0)
		m.Containers.ContainerDetails = append(m.Containers.ContainerDetails, metrics.ContainerDetailMetrics{
			ContainerID: fmt.Sprintf("%064x", c*7919+1), ContainerName: fmt.Sprintf("build-%d", c),
			Image: "ci/builder:2026.12", State: "running", CgroupPath: fmt.Sprintf("/docker/%064x", c*7919+1),
			CPUUsagePercent: float64(c*37%100) + float64(tick)/10, MemoryUsageBytes: uint64(c+1) << 24,
			DiskUsageBytes: uint64(c+1) << 20, NetworkBytesSent: uint64(tick*c*1000 + 1), NetworkBytesReceived: uint64(tick*c*3000 + 7),
			NetworkBytesPerSec: uint64(c * 100), CreatedAt: started, StartedAt: &started,
		})
	}
	b, _ := json.Marshal(&m)
	return b
}
