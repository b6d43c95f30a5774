// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package agent

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// panicking panics in Update or in Fill.
type panicking struct {
	*counting
	inFill bool
}

func (p panicking) Update(ctx context.Context, now time.Time) error {
	p.counting.Update(ctx, now)
	if !p.inFill {
		var s []int
		_ = s[3]
	}
	return nil
}

func (p panicking) Fill(m *metrics.ResourceMetrics) {
	if p.inFill {
		panic("fill: " + p.name)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPanicInUpdateOrFillKeepsTheLoop checks that collectors that panic in
// Update or Fill neither stop the loop nor cost the others their tick:
// every tick publishes a sample, the others' updates and snapshot parts
// are there, the panicking ones show crmon_collector_success 0, and each
// panic is logged once.
func TestPanicInUpdateOrFillKeepsTheLoop(t *testing.T) {
	var logs syncBuffer
	ok := newCounting("ok", nil)
	inUpdate := panicking{counting: newCounting("update", nil)}
	inFill := panicking{counting: newCounting("fill", nil), inFill: true}
	a := New([]collect.Collector{inUpdate, ok, inFill}, 20*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for ok.updates.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := ok.updates.Load(); n < 5 {
		t.Fatalf("the loop made %d ticks in 10s at a 20ms interval", n)
	}
	s := a.Latest()
	if s == nil || s.Metrics.System.Processes == 0 {
		t.Fatalf("the healthy collector's part of the snapshot is missing: %+v", s)
	}
	want := `
# HELP crmon_collector_success Whether a collector's last update succeeded (1) or had no data or failed (0).
# TYPE crmon_collector_success gauge
crmon_collector_success{collector="fill"} 0
crmon_collector_success{collector="ok"} 1
crmon_collector_success{collector="update"} 0
`
	if err := testutil.CollectAndCompare(a, strings.NewReader(want), "crmon_collector_success"); err != nil {
		t.Error(err)
	}
	if n := strings.Count(logs.String(), "collector panicked"); n != 2 {
		t.Errorf("logged %d panics over %d ticks, want 2 (once per cause):\n%s", n, ok.updates.Load(), logs.String())
	}
}
