// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package live

import (
	"math"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/pkg/metrics"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// sample is a host with two containers, "busy" and "idle", after secs
// seconds of busy burning a core, reading 1 MiB/s, writing 2 MiB/s and
// waiting 10 % of the time for a CPU.
func sample(secs float64, withProbes bool) *metrics.ResourceMetrics {
	at := t0.Add(time.Duration(secs * float64(time.Second)))
	started := t0.Add(-time.Hour)
	m := &metrics.ResourceMetrics{Timestamp: at}
	m.CPU = metrics.CPUMetrics{UsagePercent: 55, Cores: 2, LoadAverage: [3]float64{1, 2, 3}}
	m.Memory = metrics.MemoryMetrics{UsedBytes: 1 << 30, TotalBytes: 4 << 30}
	m.Network = metrics.NetworkMetrics{BytesReceived: uint64(secs * 1000), BytesSent: uint64(secs * 500)}
	busy := metrics.CgroupMetrics{
		ID: "/docker/busy", CPUSeconds: secs, RunqueueWaitSeconds: secs / 10,
		BlockReadBytes: uint64(secs * (1 << 20)), BlockWriteBytes: uint64(secs * (2 << 20)),
		// Per second: 98 requests of about 1 µs, 2 of about 1 ms.
		BlockLatencyBuckets: []uint64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, uint64(secs * 98), 0, 0, 0, 0, 0, 0, 0, 0, 0, uint64(secs * 2)},
	}
	idle := metrics.CgroupMetrics{ID: "/docker/idle"}
	m.Containers.ContainerDetails = []metrics.ContainerDetailMetrics{
		{ContainerID: "busy", ContainerName: "busy-one", Image: "img", State: "running", CgroupPath: "/docker/busy",
			CPUUsagePercent: 99.5, MemoryUsageBytes: 5 << 20, NetworkBytesReceived: uint64(secs * 300), NetworkBytesSent: uint64(secs * 100), StartedAt: &started},
		{ContainerID: "idle", ContainerName: "idle-one", Image: "img", State: "running", CgroupPath: "/docker/idle", CreatedAt: started},
	}
	if withProbes {
		m.Cgroups = []metrics.CgroupMetrics{busy, idle, {ID: "/system.slice/x.service", CPUSeconds: secs / 2}}
		m.Containers.ContainerDetails[0].Cgroup = &m.Cgroups[0]
		m.Containers.ContainerDetails[1].Cgroup = &m.Cgroups[1]
	}
	return m
}

func near(t *testing.T, what string, got *float64, want, tol float64) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: nil, want %g", what, want)
		return
	}
	if math.Abs(*got-want) > tol {
		t.Errorf("%s = %g, want %g ± %g", what, *got, want, tol)
	}
}

func TestComputeRates(t *testing.T) {
	v := Compute(sample(10, true), sample(12, true), false)
	if !v.EBPF || len(v.Rows) != 2 {
		t.Fatalf("view %+v: want 2 rows with eBPF", v)
	}
	h := v.Host
	if h.NetRx != 1000 || h.NetTx != 500 || h.CPUPercent != 55 || h.MemUsed != 1<<30 {
		t.Errorf("host %+v", h)
	}
	b := v.Rows[0]
	if b.Key != "busy" || b.Name != "busy-one" || b.Image != "img" || *b.Mem != 5<<20 {
		t.Errorf("busy row %+v", b)
	}
	near(t, "CPU", b.CPU, 99.5, 0)
	near(t, "run-queue wait", b.RunqWait, 10, 1e-9)
	near(t, "block read", b.BlkRead, 1<<20, 1)
	near(t, "block write", b.BlkWrite, 2<<20, 1)
	near(t, "net rx", b.NetRx, 300, 1e-9)
	near(t, "net tx", b.NetTx, 100, 1e-9)
	// The p99 falls in the 2^19..2^20 ns bucket: within a factor of two.
	if b.IOLatP99 == nil || *b.IOLatP99 < 0.000524 || *b.IOLatP99 > 0.00105 {
		t.Errorf("I/O p99 %v, want about 1 ms", b.IOLatP99)
	}
	if age := b.Age(h.Time); age != time.Hour+12*time.Second {
		t.Errorf("age %v", age)
	}
	i := v.Rows[1]
	if i.IOLatP99 != nil || i.BlkWrite == nil || *i.BlkWrite != 0 {
		t.Errorf("idle row %+v: want no p99 (no I/O) and 0 B/s", i)
	}

	// A container whose cgroup the probes have not exported (nothing
	// counted since they loaded) did nothing: 0, not n/a.
	prev, cur := sample(10, true), sample(12, true)
	for _, m := range []*metrics.ResourceMetrics{prev, cur} {
		m.Containers.ContainerDetails[1].Cgroup = nil
		m.Cgroups = m.Cgroups[:1]
	}
	if i := Compute(prev, cur, false).Rows[1]; i.RunqWait == nil || *i.RunqWait != 0 || i.BlkRead == nil || i.IOLatP99 != nil {
		t.Errorf("unexported idle row %+v: want 0 wait and I/O, no p99", i)
	}
}

func TestComputeWithoutProbesSaysNotMeasured(t *testing.T) {
	v := Compute(sample(10, false), sample(12, false), false)
	r := v.Rows[0]
	if v.EBPF || r.CPU == nil || r.Mem == nil || r.NetRx == nil {
		t.Fatalf("row %+v: CPU, memory and network come from cgroupfs and the engine", r)
	}
	if r.RunqWait != nil || r.BlkRead != nil || r.BlkWrite != nil || r.IOLatP99 != nil {
		t.Errorf("row %+v: what only the probes measure must be nil (n/a), not 0", r)
	}
	// The first sample has no rates.
	first := Compute(nil, sample(10, true), false)
	if r := first.Rows[0]; r.CPU == nil || r.NetRx != nil || r.RunqWait != nil {
		t.Errorf("first sample's row %+v: want the sample's CPU only", r)
	}
}

func TestComputeAllAndGone(t *testing.T) {
	v := Compute(sample(10, true), sample(12, true), true)
	if len(v.Rows) != 3 {
		t.Fatalf("%d rows with all, want 3 cgroups", len(v.Rows))
	}
	if v.Rows[0].Name != "busy-one" || v.Rows[0].Key != "/docker/busy" {
		t.Errorf("a container's cgroup is named by the container: %+v", v.Rows[0])
	}
	svc := v.Rows[2]
	if svc.Name != "/system.slice/x.service" || svc.Mem != nil {
		t.Errorf("cgroup row %+v", svc)
	}
	near(t, "cgroup CPU from the probes", svc.CPU, 50, 1e-9)

	cur := sample(12, true)
	cur.Containers.ContainerDetails[1].State = "removed"
	if r := Compute(sample(10, true), cur, false).Rows[1]; !r.Gone || r.CPU != nil {
		t.Errorf("removed container's row %+v: want it gone, without figures", r)
	}
	// A restarted container's counters start again: no negative rate.
	prev := sample(10, true)
	prev.Containers.ContainerDetails[0].NetworkBytesReceived = 1 << 40
	prev.Cgroups[0].BlockWriteBytes = 1 << 40
	prev.Cgroups[0].RunqueueWaitSeconds = 1e6
	if r := Compute(prev, cur, false).Rows[0]; *r.NetRx < 0 || *r.BlkWrite < 0 || *r.RunqWait < 0 {
		t.Errorf("row after a counter reset %+v", r)
	}
}

func TestSort(t *testing.T) {
	now := t0
	rows := []Row{
		{Key: "a", Name: "b", CPU: ptr(5.0), Started: now.Add(-time.Minute)},
		{Key: "b", Name: "a", CPU: nil, Started: now.Add(-time.Hour)},
		{Key: "c", Name: "c", CPU: ptr(90.0), Started: now.Add(-time.Second)},
		{Key: "d", Name: "d", CPU: ptr(5.0)},
	}
	order := func() string {
		s := ""
		for _, r := range rows {
			s += r.Key
		}
		return s
	}
	for _, c := range []struct{ key, want string }{
		{"cpu", "cadb"}, // largest first, ties by name, absent last
		{"name", "bacd"},
		{"age", "bacd"}, // oldest first
	} {
		Sort(rows, c.key, now)
		if got := order(); got != c.want {
			t.Errorf("Sort(%s) = %s, want %s", c.key, got, c.want)
		}
	}
}

func TestRing(t *testing.T) {
	r := newRing(1, 3)
	for i := range 5 {
		r.add(t0.Add(time.Duration(i)*time.Second), float32(i))
	}
	ts, cols := r.since(t0, 0)
	if len(ts) != 3 || cols[0][0] != 2 || cols[0][2] != 4 || ts[2] != t0.Add(4*time.Second).UnixMilli() {
		t.Errorf("ring after 5 adds to 3: %v %v", ts, cols)
	}
	if ts, _ := r.since(t0.Add(3*time.Second), 0); len(ts) != 2 {
		t.Errorf("since 3 s: %v", ts)
	}
	if _, cols := r.since(t0, 1); len(cols[0]) != 1 || cols[0][0] != 4 {
		t.Errorf("last 1: %v", cols)
	}
	if !r.lastTime().Equal(t0.Add(4 * time.Second)) {
		t.Errorf("lastTime %v", r.lastTime())
	}
	b, _ := series{1.5, float32(math.NaN()), 123456}.MarshalJSON()
	if string(b) != "[1.5,null,1.235e+05]" {
		t.Errorf("series JSON %s", b)
	}
}
