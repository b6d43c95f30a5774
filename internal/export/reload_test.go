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

// TestReloadKeepsUnchangedExporters: a reload keeps an exporter whose
// settings did not change, with its queue, restarts one whose settings
// did, and stops one that is gone; a reload that cannot build an exporter
// changes nothing.
func TestReloadKeepsUnchangedExporters(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	a := newTestAgent(t)
	keep := exporterConfig("keep", config.ExporterCustom, srv.URL)
	change := exporterConfig("change", config.ExporterCustom, srv.URL)
	gone := exporterConfig("gone", config.ExporterCustom, srv.URL)
	set := mustStart(t, a, []config.Exporter{keep, change, gone}, Options{Logger: testLogger(t)})
	defer set.Close()
	before := set.exporters
	changed := change
	changed.Timeout = config.Duration(3 * time.Second)
	bad := exporterConfig("bad", "Graphite", srv.URL)
	if err := set.Reload([]config.Exporter{keep, changed, bad}); err == nil {
		t.Fatal("a reload with an unknown exporter type should fail")
	}
	if len(set.exporters) != 3 || set.exporters[0] != before[0] || set.exporters[2] != before[2] {
		t.Fatal("a failed reload changed the exporters")
	}
	if err := set.Reload([]config.Exporter{keep, changed}); err != nil {
		t.Fatal(err)
	}
	if len(set.exporters) != 2 || set.exporters[0] != before[0] || set.exporters[1] == before[1] {
		t.Errorf("after the reload: kept %v, changed restarted %v", set.exporters[0] == before[0], set.exporters[1] != before[1])
	}
	a.Tick(t.Context())
	for _, e := range set.exporters {
		waitFor(t, 5*time.Second, e.cfg.Name+" to send the tick", e.counts, func() bool { return e.sent.Load() >= 1 })
	}
	if before[2].sent.Load() != 0 {
		t.Error("the removed exporter still sends")
	}
}
