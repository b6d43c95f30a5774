// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/config"
)

// TestEndlessAnswerIsBounded: a receiver that refuses a batch with an
// endless error message, or accepts it with an endless body, costs each
// exporter type at most maxResponseBytes of reading and a log line of
// maxMessageBytes, and delivery goes on.
func TestEndlessAnswerIsBounded(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusOK} {
		var mu sync.Mutex
		read := 0
		receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Answers like each kind of server, so that no exporter
			// stops at a wrong-server check before reading.
			w.Header().Set("X-Elastic-Product", "Elasticsearch")
			w.Header().Set("X-Influxdb-Version", "v2.7.0")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			line := []byte(strings.Repeat("endless error message ", 1000))
			for {
				if _, err := w.Write(line); err != nil {
					return
				}
				mu.Lock()
				read += len(line)
				mu.Unlock()
				select {
				case <-r.Context().Done():
					return
				default:
				}
			}
		}))
		for _, typ := range []string{config.ExporterCustom, config.ExporterPrometheus, config.ExporterInfluxDB, config.ExporterElasticsearch} {
			t.Run(http.StatusText(status)+"/"+typ, func(t *testing.T) {
				var lmu sync.Mutex
				var logs strings.Builder
				a := newTestAgent(t)
				c := exporterConfig("endless", typ, receiver.URL+"/ingest")
				c.Timeout = config.Duration(5 * time.Second)
				c.MaxRetries = 1
				set := mustStart(t, a, []config.Exporter{c}, Options{Logger: logTo(&lmu, &logs)})
				defer set.Close()
				e := set.exporters[0]
				tickN(t, a, 2)
				waitFor(t, 30*time.Second, "an attempt that ended", e.counts, func() bool { return e.sent.Load()+e.failed.Load()+e.retried.Load() > 0 })
				lmu.Lock()
				defer lmu.Unlock()
				for _, l := range strings.Split(logs.String(), "\n") {
					if len(l) > 2*maxMessageBytes+512 {
						t.Errorf("a log line of %d bytes: %.300s…", len(l), l)
					}
				}
			})
		}
		receiver.CloseClientConnections()
		receiver.Close()
		mu.Lock()
		t.Logf("%s: the receiver wrote %d MiB in all (some buffered by the kernel)", http.StatusText(status), read>>20)
		mu.Unlock()
	}
}
