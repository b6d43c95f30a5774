// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// collector is an HTTP endpoint that keeps what it is sent.
type collector struct {
	mu     sync.Mutex
	docs   []metrics.ResourceMetrics
	reqs   int
	ctypes []string
	hdrs   []string
	refuse int // answer the first refuse requests 422
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs++
	if c.refuse > 0 {
		c.refuse--
		http.Error(w, "schema mismatch", http.StatusUnprocessableEntity)
		return
	}
	c.ctypes = append(c.ctypes, r.Header.Get("Content-Type"))
	c.hdrs = append(c.hdrs, r.Header.Get("X-Tenant")+"|"+r.Header.Get("Authorization"))
	body, _ := io.ReadAll(r.Body)
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var m metrics.ResourceMetrics
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.docs = append(c.docs, m)
	}
	w.WriteHeader(http.StatusAccepted)
}

// TestCustom posts the snapshot per tick (json) and in batches (ndjson)
// with the configured headers and credentials: every tick's snapshot
// arrives, in order, equal to what the agent published; a 422 is not
// retried.
func TestCustom(t *testing.T) {
	for _, format := range config.CustomFormats {
		t.Run(format, func(t *testing.T) {
			col := &collector{refuse: 1}
			srv := httptest.NewServer(col)
			defer srv.Close()
			a := newTestAgent(t)
			c := exporterConfig("custom", config.ExporterCustom, srv.URL+"/ingest")
			// Batches leave full, but for the last: the flush interval is long.
			c.Format, c.BatchSize, c.FlushInterval = format, 4, config.Duration(2*time.Second)
			c.Headers = map[string]config.Secret{"X-Tenant": "ci"}
			c.Credentials = config.Credentials{Username: "u", Password: "p"}
			set := mustStart(t, a, []config.Exporter{c}, Options{Logger: testLogger(t)})
			defer set.Close()
			e := set.exporters[0]
			var published []*agent.Sample
			for range 9 {
				s := a.Tick(t.Context())
				published = append(published, s)
				time.Sleep(5 * time.Millisecond)
			}
			perRequest := 1
			if format == config.CustomNDJSON {
				perRequest = 4
			}
			waitFor(t, 10*time.Second, "every snapshot sent or refused", e.counts, func() bool {
				return e.sent.Load()+e.failed.Load() == 9
			})
			if e.failed.Load() != uint64(perRequest) || e.retried.Load() != 0 {
				t.Errorf("the 422 should fail its batch of %d without a retry: %s", perRequest, e.counts())
			}
			col.mu.Lock()
			defer col.mu.Unlock()
			want := published[perRequest:]
			if len(col.docs) != len(want) {
				t.Fatalf("%d snapshots received, want %d", len(col.docs), len(want))
			}
			for i, d := range col.docs {
				if !d.Timestamp.Equal(want[i].Time) || d.System.Processes != want[i].Metrics.System.Processes {
					t.Errorf("snapshot %d: %v processes=%d, want %v processes=%d", i, d.Timestamp, d.System.Processes, want[i].Time, want[i].Metrics.System.Processes)
				}
			}
			wantType := map[string]string{config.CustomJSON: "application/json", config.CustomNDJSON: "application/x-ndjson"}[format]
			for i := range col.ctypes {
				if col.ctypes[i] != wantType || col.hdrs[i] != "ci|Basic dTpw" {
					t.Errorf("request %d: Content-Type %q, X-Tenant|Authorization %q", i, col.ctypes[i], col.hdrs[i])
				}
			}
			if wantReqs := 1 + (len(want)+perRequest-1)/perRequest; col.reqs != wantReqs {
				t.Errorf("%d requests, want %d", col.reqs, wantReqs)
			}
		})
	}
}
