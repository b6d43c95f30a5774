// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

func TestPromBuckets(t *testing.T) {
	var h Histogram
	h.Buckets[0] = 1  // 0 ns
	h.Buckets[10] = 2 // [512, 1024) ns
	h.Buckets[11] = 3 // [1024, 2048) ns
	h.Buckets[NumBuckets-1] = 4
	h.Sum = 3 * time.Second
	n, sum, b := promBuckets(&h)
	if n != 10 || sum != 3 {
		t.Errorf("count, sum = %d, %v; want 10, 3", n, sum)
	}
	// 0 and [512, 1024) ns are within le=1.024e-06; every later bound up
	// to 2^32 ns holds all six finite observations; the four above 4.29 s
	// are only in +Inf (the count).
	want := map[float64]uint64{1.024e-06: 3}
	for e := 11; e <= 32; e++ {
		want[float64(int64(1)<<e)/1e9] = 6
	}
	if diff := cmp.Diff(want, b); diff != "" {
		t.Errorf("buckets mismatch (-want +got):\n%s", diff)
	}
	if len(b) != NumBuckets-1-firstBucket {
		t.Errorf("%d buckets, want %d", len(b), NumBuckets-1-firstBucket)
	}
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		name    string
		buckets map[int]uint64
		q       float64
		want    time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one bucket, middle", map[int]uint64{11: 100}, 0.5, 1536},
		{"one bucket, top", map[int]uint64{11: 100}, 1, 2048},
		{"p99 in the upper bucket", map[int]uint64{10: 90, 20: 10}, 0.99, time.Duration(1<<19 + (1<<19)*9/10)},
		{"overflow bucket", map[int]uint64{NumBuckets - 1: 1}, 0.5, 1 << (NumBuckets - 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for b, c := range tt.buckets {
				h.Buckets[b] = c
			}
			if got := h.Quantile(tt.q); got != tt.want {
				t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestSubtreeAndSub(t *testing.T) {
	s := &Snapshot{Cgroups: []CgroupStats{
		{Path: "/run", CPU: 1},
		{Path: "/run/a", CPU: 2, Block: []BlockStats{{Device: "vda", Op: OpWrite, Bytes: 10}}},
		{Path: "/run/b", CPU: 4, Removed: true, Block: []BlockStats{{Device: "vda", Op: OpWrite, Bytes: 5}}},
		{Path: "/runner", CPU: 8},
	}}
	got := s.Subtree("/run")
	if got.CPU != 7 || got.BlockBytes(OpWrite) != 15 {
		t.Errorf("Subtree(/run) = cpu %v, write %d; want 7, 15", got.CPU, got.BlockBytes(OpWrite))
	}
	if all := s.Subtree("/"); all.CPU != 15 {
		t.Errorf("Subtree(/) cpu = %v, want 15", all.CPU)
	}
	earlier := CgroupStats{CPU: 3, Block: []BlockStats{{Device: "vda", Op: OpWrite, Bytes: 10}}}
	d := got.Sub(&earlier)
	if d.CPU != 4 || d.BlockBytes(OpWrite) != 5 {
		t.Errorf("Sub = cpu %v, write %d; want 4, 5", d.CPU, d.BlockBytes(OpWrite))
	}
}

type staticLookup map[string]collect.ContainerRef

func (s staticLookup) LookupCgroup(p string) (collect.ContainerRef, bool) {
	r, ok := s[p]
	return r, ok
}

// TestCollector runs a burner in a fresh cgroup under the real probes and
// checks the exposition and the snapshot.
func TestCollector(t *testing.T) {
	p := loadProbes(t, DefaultOptions())
	m := mounts(t)
	cg := newCgroup(t, m, "collector")
	idle := newCgroup(t, m, "collector-idle")
	w := start(t, cg, -1, "burn", "200ms")
	w.go_(t)
	ru := w.wait(t)
	settle()

	lookup := staticLookup{cg.path: {ID: "abc", Name: "web", Image: "busybox:latest"}}
	c := NewCollector(p, CollectorOptions{Lookup: lookup, Include: []string{"/crmon-probe-*"}})
	if err := c.Update(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	_, b := testenv.GatherText(t, c)
	text := string(b)
	checkText(t, c.(*collector))
	for _, want := range []string{
		`crmon_container_cpu_seconds_total{id="` + cg.path + `",image="busybox:latest",name="web"}`,
		`crmon_container_runqueue_latency_seconds_bucket{id="` + cg.path + `",image="busybox:latest",name="web",le="1.024e-06"}`,
		`crmon_container_context_switches_total{id="` + cg.path + `",image="busybox:latest",name="web",type="involuntary"}`,
		`crmon_probe_up{probe="sched"} 1`,
		`crmon_probe_up{probe="net"} 1`,
		`crmon_bpf_program_run_count_total{program="sched_switch"}`,
		`crmon_bpf_map_memory_bytes{map="sched_cgroups"}`,
		`crmon_bpf_dropped_events_total{probe="sched",reason="cgroup_map_full"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	if strings.Contains(text, idle.path) {
		t.Errorf("idle cgroup %s exported", idle.path)
	}
	if strings.Contains(text, `id="/"`) {
		t.Error("root cgroup exported despite Include")
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else if testenv.InCI() {
		t.Error("promtool not installed")
	}

	rm := &metrics.ResourceMetrics{Containers: metrics.ContainerMetrics{ContainerDetails: []metrics.ContainerDetailMetrics{
		{ContainerID: "abc", CgroupPath: cg.path},
		{ContainerID: "other", CgroupPath: "/docker/none"},
	}}}
	c.Fill(rm)
	if len(rm.Cgroups) != 1 || rm.Cgroups[0].ID != cg.path {
		t.Fatalf("Fill cgroups = %+v, want only %s", rm.Cgroups, cg.path)
	}
	got := rm.Containers.ContainerDetails[0].Cgroup
	if got == nil {
		t.Fatal("container's Cgroup not filled")
	}
	within(t, "snapshot cpu ns", got.CPUSeconds*1e9, float64(rusageCPU(ru)), -0.01, 0.01)
	if rm.Containers.ContainerDetails[1].Cgroup != nil {
		t.Error("container without probe data got a Cgroup")
	}

	// The series cap: with room for one cgroup, the rest are counted.
	capped := NewCollector(p, CollectorOptions{MaxSeries: 1})
	if err := capped.Update(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	rm2 := &metrics.ResourceMetrics{}
	capped.Fill(rm2)
	if len(rm2.Cgroups) != 1 {
		t.Errorf("capped collector exported %d cgroups, want 1", len(rm2.Cgroups))
	}
}

func TestCollectorWithoutProbes(t *testing.T) {
	c := NewCollector(nil, CollectorOptions{})
	if err := c.Update(context.Background(), time.Now()); err != collect.ErrNoData {
		t.Errorf("Update = %v, want ErrNoData", err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ups int
	for _, mf := range mfs {
		if mf.GetName() == "crmon_probe_up" {
			for _, m := range mf.Metric {
				if m.GetGauge().GetValue() != 0 {
					t.Errorf("probe up without probes: %v", m)
				}
				ups++
			}
		}
	}
	if ups != 3 {
		t.Errorf("%d crmon_probe_up series, want 3", ups)
	}
}

// benchCgroups gives 50 fresh cgroups some activity each, as the agent
// sees a host running 50 containers.
func benchCgroups(b *testing.B) *Probes {
	p := loadProbes(b, DefaultOptions())
	m := mounts(b)
	var ws []*workloadProc
	for i := 0; i < 50; i++ {
		cg := newCgroup(b, m, fmt.Sprintf("bench%d", i))
		ws = append(ws, start(b, cg, -1, "idle", "1ms"))
	}
	for _, w := range ws {
		w.go_(b)
	}
	for _, w := range ws {
		w.wait(b)
	}
	settle()
	return p
}

// BenchmarkRead is one tick's read of every map with 50 active cgroups.
func BenchmarkRead(b *testing.B) {
	p := benchCgroups(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.Read(time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScrape is the collector's part of one /metrics scrape with 50
// active cgroups, from the last Update: through client_golang (Collect,
// gathered and encoded as text), as the protobuf format serves it, and
// as AppendText writes the text format.
func BenchmarkScrape(b *testing.B) {
	p := benchCgroups(b)
	c := NewCollector(p, CollectorOptions{})
	if err := c.Update(context.Background(), time.Now()); err != nil {
		b.Fatal(err)
	}
	b.Run("collect", func(b *testing.B) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(c)
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			// Built once per update, as in the agent, where scrapes are
			// rarer than ticks.
			c.(*collector).built = nil
			mfs, err := reg.Gather()
			if err != nil {
				b.Fatal(err)
			}
			buf.Reset()
			for _, mf := range mfs {
				if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(bytes.Count(buf.Bytes(), []byte("\n"))), "lines")
	})
	b.Run("text", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = c.(collect.TextAppender).AppendText(buf[:0])
		}
		b.ReportMetric(float64(bytes.Count(buf, []byte("\n"))), "lines")
	})
	rm := &metrics.ResourceMetrics{}
	c.Fill(rm)
	b.ReportMetric(float64(len(rm.Cgroups)), "cgroups")
}
