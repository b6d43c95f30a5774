// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package web

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
)

// panicky panics whenever it is asked for its series, in either format,
// holding its lock the way a collector that copies its state does.
type panicky struct {
	plain
	mu sync.Mutex
}

func (p *panicky) Name() string { return "panicky" }
func (p *panicky) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, 1, "before")
	ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, 1, "bad\xff")
}
func (p *panicky) AppendText(b []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	b = collect.AppendHeader(b, "test_panicky", "Panics.", prometheus.GaugeValue)
	b = collect.AppendSample(b, "test_panicky", `{k="before"}`, 1)
	var m map[string]int
	//lint:ignore SA5000 the runtime panic is what this collector is for
	m["x"]++ // nil map: panics
	return b
}

// lockedBuffer is a log destination the test can read while handlers write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCollectorPanicCostsOnlyItsSeries checks that a collector that panics
// on every scrape, in the text and the protobuf format, costs only its own
// series: every scrape answers at once with every other collector's series
// and the agent's own, in a valid exposition; the collector shows as
// crmon_collector_success 0; each panic is logged once, not per scrape.
func TestCollectorPanicCostsOnlyItsSeries(t *testing.T) {
	var logs lockedBuffer
	a := agent.New([]collect.Collector{
		plain{prometheus.NewDesc("test_plain", "Through client_golang.", []string{"k"}, nil)},
		&panicky{plain: plain{prometheus.NewDesc("test_panicky", "Panics.", []string{"k"}, nil)}},
		texter{plain{prometheus.NewDesc("test_texter_total", "Written directly.", []string{"id"}, nil)}},
	}, time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	a.Tick(context.Background())
	srv := httptest.NewServer(New(a, nil, Options{}).Handler())
	defer srv.Close()
	client := &http.Client{Timeout: time.Second}

	const (
		text  = "text/plain;version=0.0.4"
		proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
	)
	for i := 0; i < 5; i++ {
		for _, accept := range []string{text, proto} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
			req.Header.Set("Accept", accept)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("scrape %d (%s): %v", i, accept, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("scrape %d (%s): %s", i, accept, resp.Status)
			}
			fams := map[string]*dto.MetricFamily{}
			dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.Format(resp.Header.Get("Content-Type")))
			for {
				mf := new(dto.MetricFamily)
				if err := dec.Decode(mf); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("scrape %d (%s) does not parse: %v\n%s", i, accept, err, body)
				}
				if fams[mf.GetName()] != nil {
					t.Fatalf("scrape %d (%s): family %s twice", i, accept, mf.GetName())
				}
				fams[mf.GetName()] = mf
			}
			for _, name := range []string{"test_plain", "test_texter_total", "crmon_collections_total"} {
				if fams[name] == nil {
					t.Errorf("scrape %d (%s): %s missing", i, accept, name)
				}
			}
			if accept == text && fams["test_panicky"] != nil {
				t.Errorf("scrape %d (text): kept what the panicking collector wrote before it panicked", i)
			}
			if i == 0 {
				continue // the text format's agent series are written before the texters run
			}
			ok := -1.0
			for _, m := range fams["crmon_collector_success"].GetMetric() {
				if m.GetLabel()[0].GetValue() == "panicky" {
					ok = m.GetGauge().GetValue()
				}
			}
			if ok != 0 {
				t.Errorf("scrape %d (%s): crmon_collector_success{collector=\"panicky\"} = %v, want 0", i, accept, ok)
			}
		}
	}
	if n := strings.Count(logs.String(), "collector panicked"); n != 2 {
		t.Errorf("logged %d panics over 10 scrapes, want 2 (one per format's call):\n%s", n, logs.String())
	}
}
