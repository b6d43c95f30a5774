// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// BenchmarkCycle is one full host collection cycle on the real /proc and
// /sys: Update of every default collector, Fill of the snapshot, and a
// Gather of /metrics.
func BenchmarkCycle(b *testing.B) {
	benchCycle(b, true)
}

// BenchmarkTick is the agent's per-tick cost without a scrape: Update and
// Fill; "scan5s" reads every /proc/<pid>/stat every fifth tick only
// (Options.ProcessesScanInterval).
func BenchmarkTick(b *testing.B) {
	b.Run("scan1s", func(b *testing.B) { benchCycle(b, false) })
	b.Run("scan5s", func(b *testing.B) { benchCycle(b, false, Options{ProcessesScanInterval: 5 * time.Second}) })
}

func benchCycle(b *testing.B, gather bool, opts ...Options) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skipf("needs a Linux /proc: %v", err)
	}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s := newHostSet(b, collect.DefaultPaths(), o)
	reg := s.registry(b)
	now := time.Now()
	s.update(now) // first tick builds the caches
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	n := 0
	for ; b.Loop(); n++ {
		now = now.Add(time.Second)
		s.update(now)
		var m metrics.ResourceMetrics
		for _, c := range s.cs {
			c.Fill(&m)
		}
		if gather {
			if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
		}
	}
	// CPU time (user+system, GC included) per op is steadier than wall time
	// on a shared machine.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCollectors breaks the tick down by collector.
func BenchmarkCollectors(b *testing.B) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skipf("needs a Linux /proc: %v", err)
	}
	s := newHostSet(b, collect.DefaultPaths(), Options{})
	for i, c := range s.cs {
		b.Run(s.names[i], func(b *testing.B) {
			now := time.Now()
			_ = c.Update(b.Context(), now)
			b.ReportAllocs()
			cpu0 := cpuTime()
			n := 0
			for ; b.Loop(); n++ {
				now = now.Add(time.Second)
				_ = c.Update(b.Context(), now)
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/op")
		})
	}
}
