// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/config"
)

// TestSlowExporterDelaysNoOther runs two exporters on one agent: one
// whose receiver never answers (each request ends at its timeout, then
// is retried), one whose receiver is quick. The quick one delivers every
// sample while the other is still stuck on its first batch, and the stuck
// one loses nothing: its samples wait in its queue.
func TestSlowExporterDelaysNoOther(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)
	quick := &collector{}
	qs := httptest.NewServer(quick)
	defer qs.Close()

	a := newTestAgent(t)
	slow := exporterConfig("slow", config.ExporterCustom, hang.URL)
	slow.Timeout = config.Duration(time.Hour)
	fast := exporterConfig("fast", config.ExporterCustom, qs.URL)
	set := mustStart(t, a, []config.Exporter{slow, fast}, Options{Logger: testLogger(t)})
	defer set.Close()
	s, f := set.exporters[0], set.exporters[1]
	for range 20 {
		a.Tick(t.Context())
		time.Sleep(5 * time.Millisecond)
	}
	waitFor(t, 10*time.Second, "the quick exporter to deliver every tick", f.counts, func() bool { return f.sent.Load() == 20 })
	if s.sent.Load() != 0 || s.q.len() != 20 || s.q.droppedTotal() != 0 {
		t.Errorf("the stuck exporter: %s; want all 20 snapshots queued, the first in flight", s.counts())
	}
}
