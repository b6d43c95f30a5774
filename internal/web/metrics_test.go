// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// plain is a collector served through client_golang.
type plain struct{ desc *prometheus.Desc }

func (p plain) Name() string                            { return "plain" }
func (p plain) Update(context.Context, time.Time) error { return nil }
func (p plain) Fill(*metrics.ResourceMetrics)           {}
func (p plain) Describe(ch chan<- *prometheus.Desc)     { ch <- p.desc }
func (p plain) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, 2, "a")
}

// texter also writes its series itself, as the containers collector does.
type texter struct{ plain }

func (t texter) Name() string { return "texter" }
func (t texter) AppendText(b []byte) []byte {
	b = collect.AppendHeader(b, "test_texter_total", "Written directly.", prometheus.CounterValue)
	return collect.AppendSample(b, "test_texter_total", `{id="x"}`, 1.5)
}
func (t texter) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(t.desc, prometheus.CounterValue, 1.5, "x")
}

// TestMetricsFormats checks that every format a scraper can ask for
// carries the same series, whether a collector wrote them as text or
// client_golang encoded them, and that gzip is honoured.
func TestMetricsFormats(t *testing.T) {
	a := agent.New([]collect.Collector{
		plain{prometheus.NewDesc("test_plain", "Through client_golang.", []string{"k"}, nil)},
		texter{plain{prometheus.NewDesc("test_texter_total", "Written directly.", []string{"id"}, nil)}},
	}, time.Second, slog.New(slog.DiscardHandler))
	a.Tick(context.Background())
	srv := httptest.NewServer(New(a, nil, Options{}).Handler())
	defer srv.Close()

	scrape := func(accept string, gz bool) (string, []string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
		req.Header.Set("Accept", accept)
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		} else {
			req.Header.Set("Accept-Encoding", "identity")
		}
		resp, err := srv.Client().Transport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body io.Reader = resp.Body
		if gz {
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("asked for gzip, got Content-Encoding %q", resp.Header.Get("Content-Encoding"))
			}
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		ct := resp.Header.Get("Content-Type")
		dec := expfmt.NewDecoder(body, expfmt.Format(ct))
		var out []string
		for {
			mf := new(dto.MetricFamily)
			if err := dec.Decode(mf); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", ct, err)
			}
			for _, m := range mf.GetMetric() {
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
				var l []string
				for _, p := range m.GetLabel() {
					l = append(l, p.GetName()+"="+p.GetValue())
				}
				out = append(out, mf.GetName()+" "+mf.GetType().String()+" "+strings.Join(l, ",")+" "+model.SampleValue(v).String())
			}
		}
		sort.Strings(out)
		return ct, out
	}
	const prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
	const proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3"
	ct, text := scrape(prom, false)
	if !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Prometheus' Accept header got %q, want the text format", ct)
	}
	want := []string{"test_plain GAUGE k=a 2", "test_texter_total COUNTER id=x 1.5"}
	for _, w := range want {
		if !slices.Contains(text, w) {
			t.Errorf("text scrape lacks %q:\n%s", w, strings.Join(text, "\n"))
		}
	}
	for _, c := range []struct {
		accept string
		gz     bool
	}{{prom, true}, {proto, false}, {proto, true}, {"", false}} {
		_, got := scrape(c.accept, c.gz)
		if strings.Join(got, "\n") != strings.Join(text, "\n") {
			t.Errorf("Accept %q, gzip %v: series differ from the text scrape:\n%s\nwant\n%s", c.accept, c.gz, strings.Join(got, "\n"), strings.Join(text, "\n"))
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for ae, want := range map[string]bool{
		"gzip": true, "gzip, deflate": true, "deflate, gzip;q=0.5": true, "gzip; q=1.0": true,
		"gzip;q=0": false, "gzip;q=0.0": false, "identity": false, "": false, "x-gzip": false,
	} {
		if got := acceptsGzip(ae); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", ae, got, want)
		}
	}
}

// TestMetricsBodyNotKept: once served, a scrape's body, and its gzipped
// copy, are the garbage collector's; only the compressed pieces stay
// (gzipCache). A 4 MB body beside 1 000 containers, kept for the next
// scrape, was live heap that the collector's target grew by half again.
func TestMetricsBodyNotKept(t *testing.T) {
	line := []byte(`test_big_total{id="/docker/0123456789abcdef"} 1` + "\n")
	big := bytes.Repeat(line, 4<<20/len(line))
	h := newMetricsHandler(prometheus.NewRegistry(), prometheus.NewRegistry(),
		func(b []byte) []byte { return append(b, big...) }, slog.New(slog.DiscardHandler), 1)
	scrape := func(gz bool) int {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
		return w.Body.Len()
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	if n := scrape(false); n < len(big) {
		t.Fatalf("body of %d bytes, want at least %d", n, len(big))
	}
	scrape(true)
	if after := heap(); after > before+(1<<20) {
		t.Errorf("live heap %d → %d bytes across two scrapes of a %d-byte body: the handler keeps it", before, after, len(big))
	}
	runtime.KeepAlive(h)
}
