// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/probe"
)

// TestSubscriptionKeepsNewestAndCountsDropsPerSubscriber checks the
// buffer's contract: a full buffer loses its oldest samples, the consumer
// then reads the newest ones in order, and each subscriber's losses are
// counted under its own name.
func TestSubscriptionKeepsNewestAndCountsDropsPerSubscriber(t *testing.T) {
	a := New([]collect.Collector{newCounting("ok", nil)}, time.Second, nil)
	slow := a.Subscribe("slow", 2)
	fast := a.Subscribe("fast", 2)
	var published []*Sample
	for range 5 {
		published = append(published, a.Tick(context.Background()))
		<-fast.C()
	}
	if got, want := []*Sample{<-slow.C(), <-slow.C()}, published[3:]; got[0] != want[0] || got[1] != want[1] {
		t.Error("a full buffer should keep the newest samples, oldest first")
	}
	if slow.Dropped() != 3 || fast.Dropped() != 0 {
		t.Errorf("dropped: slow %d (want 3), fast %d (want 0)", slow.Dropped(), fast.Dropped())
	}

	// A subscriber that ends and subscribes again (a reload) keeps its
	// counter: it is a counter, it never goes back.
	slow.Close()
	slow.Close()
	if _, ok := <-slow.C(); ok {
		t.Error("C should be closed after Close")
	}
	again := a.Subscribe("slow", 1)
	a.Tick(context.Background())
	a.Tick(context.Background())
	want := `
# HELP crmon_samples_dropped_total Samples a subscriber lost because its buffer was full: it read too slowly.
# TYPE crmon_samples_dropped_total counter
crmon_samples_dropped_total{subscriber="fast"} 0
crmon_samples_dropped_total{subscriber="slow"} 4
`
	if err := testutil.CollectAndCompare(a, strings.NewReader(want), "crmon_samples_dropped_total"); err != nil {
		t.Error(err)
	}
	if again.Dropped() != 4 {
		t.Errorf("Dropped() = %d after the new subscription lost one, want 4", again.Dropped())
	}
}

// TestStuckSubscriberNeverDelaysATick runs the loop with a subscriber that
// never reads, beside one that reads every sample, and measures the gaps
// between ticks. A publish that waited for the stuck one would stop the
// loop at its second sample; instead every tick comes, the reader gets
// every sample, and the stuck one's losses are all counted.
func TestStuckSubscriberNeverDelaysATick(t *testing.T) {
	const interval = 20 * time.Millisecond
	const ticks = 25
	a := New([]collect.Collector{newCounting("ok", nil)}, interval, nil)
	stuck := a.Subscribe("stuck", 1)
	reader := a.Subscribe("reader", ticks+1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()

	var times []time.Time
	deadline := time.After(30 * time.Second)
	for len(times) < ticks {
		select {
		case s := <-reader.C():
			times = append(times, s.Time)
		case <-deadline:
			t.Fatalf("%d samples in 30 s at a %v interval: the loop stalled", len(times), interval)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Ticks are aligned to multiples of the interval, so a gap is a whole
	// number of intervals: one, unless the machine was too busy to run
	// the loop in time. A stuck subscriber would make it unbounded; the
	// bound here is only the scheduling latency a loaded CI host shows.
	var worst time.Duration
	for i := 1; i < len(times); i++ {
		worst = max(worst, times[i].Sub(times[i-1]))
	}
	t.Logf("%d ticks, largest gap %v at a %v interval", len(times), worst, interval)
	if worst > 2*time.Second {
		t.Errorf("largest gap between ticks %v at a %v interval", worst, interval)
	}
	if reader.Dropped() != 0 {
		t.Errorf("the reader lost %d samples with room for all of them", reader.Dropped())
	}
	if got, published := stuck.Dropped(), a.ticks.Load(); got != published-1 {
		t.Errorf("stuck subscriber: %d dropped of %d published with a buffer of 1, want %d", got, published, published-1)
	}
	if _, ok := <-stuck.C(); !ok {
		t.Error("the stuck subscriber's last sample should still be there after Run ends")
	}
	if _, ok := <-stuck.C(); ok {
		t.Error("C should be closed when Run ends")
	}
	if late := a.Subscribe("late", 1); late != nil {
		if _, ok := <-late.C(); ok {
			t.Error("a subscription after Run ended should start closed")
		}
	}
}

// probing is a collector whose update read the probes.
type probing struct {
	*counting
	snap *probe.Snapshot
}

func (p *probing) ProbeSnapshot() *probe.Snapshot { return p.snap }

// TestSampleCarriesTheProbesRead checks that a tick's sample carries the
// probes' read of that tick, so that a subscriber needs no read of its
// own, and nil when no collector read them.
func TestSampleCarriesTheProbesRead(t *testing.T) {
	snap := &probe.Snapshot{Time: time.Unix(1, 0)}
	a := New([]collect.Collector{newCounting("host", nil), &probing{newCounting("ebpf", nil), snap}}, time.Second, nil)
	sub := a.Subscribe("test", 1)
	a.Tick(context.Background())
	if s := <-sub.C(); s.Probes != snap {
		t.Errorf("sample's Probes = %p, want the ebpf collector's read %p", s.Probes, snap)
	}
	a.SetCollectors([]collect.Collector{newCounting("host", nil)})
	a.Tick(context.Background())
	if s := <-sub.C(); s.Probes != nil {
		t.Errorf("sample's Probes = %p without probes, want nil", s.Probes)
	}
}
