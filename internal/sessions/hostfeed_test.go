// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// TestFedHostPeaks checks what a session fed by the agent takes of each
// tick's host figures: the peaks of the ticks inside it, and no CPU usage
// of an interval that began before it (another run's burst). The session
// can read no /proc here, so every figure it reports came from a tick.
func TestFedHostPeaks(t *testing.T) {
	empty := t.TempDir()
	start := time.Unix(1000, 0)
	clock := start
	tr, err := NewTracker(TrackerOptions{
		Hierarchy: &cgroups.Hierarchy{Unified: empty}, ProcFS: empty, DiskPath: filepath.Join(empty, "none"),
		fed: true, now: func() time.Time { return clock },
	}, Target{Name: "fed"})
	if err != nil {
		t.Fatal(err)
	}
	sample := func(cpu, mem, disk float64) *metrics.ResourceMetrics {
		m := &metrics.ResourceMetrics{}
		m.CPU.Cores, m.CPU.UsagePercent = 2, cpu
		m.Memory.TotalBytes, m.Memory.UsagePercent = 1<<30, mem
		m.Disk.Partitions = []metrics.PartitionMetrics{
			{MountPoint: "/boot", TotalBytes: 1, UsagePercent: 99},
			{MountPoint: "/", TotalBytes: 1 << 30, UsagePercent: disk},
		}
		return m
	}
	s := time.Second
	tr.feed(hostFromSample(sample(100, 90, 90), start.Add(-s), start.Add(-2*s))) // before the start
	tr.feed(hostFromSample(sample(95, 20, 30), start.Add(s), start.Add(-s)))     // CPU over an interval begun before
	tr.feed(hostFromSample(sample(40, 25, 31), start.Add(2*s), start.Add(s)))
	tr.feed(hostFromSample(sample(60, 22, 30), start.Add(3*s), start.Add(2*s)))
	clock = start.Add(3 * s)
	r := tr.Stop()
	if len(r.Host.Unmeasured) != 0 {
		t.Fatalf("unmeasured %v, want every figure from the ticks", r.Host.Unmeasured)
	}
	if r.Host.CPUUsagePercent != 60 || r.Host.MemoryUsagePercent != 25 || r.Host.DiskUsagePercent != 31 {
		t.Errorf("host peaks %+v, want cpu 60 (not 95 or 100), memory 25, disk 31 (the / partition)", r.Host)
	}

	// A tick whose collectors gave nothing (turned off) measures nothing.
	tr, err = NewTracker(TrackerOptions{
		Hierarchy: &cgroups.Hierarchy{Unified: empty}, ProcFS: empty, DiskPath: filepath.Join(empty, "none"),
		fed: true, now: func() time.Time { return clock },
	}, Target{Name: "fed"})
	if err != nil {
		t.Fatal(err)
	}
	tr.feed(hostFromSample(&metrics.ResourceMetrics{}, clock.Add(2*s), clock.Add(s)))
	if r := tr.Stop(); len(r.Host.Unmeasured) != 3 {
		t.Errorf("unmeasured %v, want all three from an empty sample", r.Host.Unmeasured)
	}
}
