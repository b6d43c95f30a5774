// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"math"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
)

// streamMeter stands for probes counting a steady stream: rate bytes a
// second received, written to disk and half as many sent, since t0. Like
// the probes, it answers as of its last Refresh.
type streamMeter struct {
	t0, readAt time.Time
	rate       float64
	reads      int
}

func (m *streamMeter) Refresh(now time.Time, maxAge time.Duration) error {
	if m.reads > 0 && now.Sub(m.readAt) < maxAge {
		return nil
	}
	m.readAt = now
	m.reads++
	return nil
}

func (m *streamMeter) Subtree(string) (Counters, bool) {
	n := uint64(m.rate * m.readAt.Sub(m.t0).Seconds())
	return Counters{HasNet: true, HasBlock: true, NetRxBytes: n, NetTxBytes: n / 2, BlockWriteBytes: n}, true
}

// TestProbeRatesFlat checks that the plots of a steady 1 MB/s stream are
// flat at 1 MB/s, though the probes are read once a second and the points
// taken every 200 ms, also once a long run keeps only every n-th point.
func TestProbeRatesFlat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples int
	}{
		{"short", 23},
		{"long, points thinned", 3*maxPoints + 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
			start := clock
			meter := &streamMeter{t0: clock, rate: 1e6}
			tr, err := NewTracker(TrackerOptions{
				// No cgroup files: the probes are the only source.
				Hierarchy:      &cgroups.Hierarchy{Unified: t.TempDir()},
				Meter:          meter,
				SampleInterval: time.Hour, // samples are taken below, on the test's clock
				now:            func() time.Time { return clock },
			}, Target{Name: "stream", Cgroup: cgroups.Paths{V2: "/job"}, Fresh: true})
			if err != nil {
				t.Fatal(err)
			}
			for range tc.samples {
				clock = clock.Add(DefaultSampleInterval)
				tr.mu.Lock()
				tr.sample(clock, false)
				tr.mu.Unlock()
			}
			clock = clock.Add(DefaultSampleInterval / 2)
			r := tr.Stop()
			pts := r.Series.Run
			if len(pts) < 2 || len(pts) > maxPoints+1 {
				t.Fatalf("%d points", len(pts))
			}
			d := clock.Sub(start)
			if want := int(d/MeterInterval) + 2; meter.reads > want {
				t.Errorf("%d probe reads for %v, want one a second and the final one: %d", meter.reads, d, want)
			}
			for i := 1; i < len(pts); i++ {
				p, q := pts[i], pts[i-1]
				dt := p.T - q.T
				for _, v := range []struct {
					name string
					d    uint64
					want float64
				}{
					{"net rx", p.NetRxBytes - q.NetRxBytes, 1e6},
					{"net tx", p.NetTxBytes - q.NetTxBytes, 0.5e6},
					{"block write", p.BlockWriteBytes - q.BlockWriteBytes, 1e6},
				} {
					if got := float64(v.d) / dt; math.Abs(got-v.want) > v.want/100 {
						t.Errorf("%s rate %.0f B/s between %.1f s and %.1f s, want %.0f", v.name, got, q.T, p.T, v.want)
					}
				}
			}
			if got, want := float64(r.Totals.NetRxBytes), 1e6*d.Seconds(); math.Abs(got-want) > 1 {
				t.Errorf("net_rx_bytes = %.0f, want %.0f", got, want)
			}
		})
	}
}
