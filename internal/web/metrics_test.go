// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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

// TestMetricsBufferAtSize: the body's buffer is kept from one scrape to
// the next, so that a scrape allocates little (beside idle containers a
// body made anew each time doubled the garbage collector's cycles), but
// at about the body's size: one that grew to twice a 4.8 MB body beside
// 1 000 containers was live heap the collector's target grew by half
// again.
func TestMetricsBufferAtSize(t *testing.T) {
	line := []byte(`test_big_total{id="/docker/0123456789abcdef"} 1` + "\n")
	big := bytes.Repeat(line, 4<<20/len(line))
	// The first scrapes' bodies are smaller: containers came since.
	size := len(big) * 7 / 8
	h := newMetricsHandler(prometheus.NewRegistry(), prometheus.NewRegistry(),
		func(b []byte) []byte { return append(b, big[:size]...) }, slog.New(slog.DiscardHandler), 1)
	scrape := func(gz bool) {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		w := &countingWriter{header: http.Header{}, code: http.StatusOK}
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK || (!gz && w.n < size) {
			t.Fatalf("status %d, %d bytes", w.code, w.n)
		}
	}
	mem := func() runtime.MemStats {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m
	}
	before := mem()
	for range 2 {
		scrape(false)
		scrape(true)
	}
	size = len(big)
	scrape(false)
	scrape(true)
	m0 := mem()
	scrape(false)
	scrape(true)
	m1 := mem()
	if a := m1.TotalAlloc - m0.TotalAlloc; a > uint64(len(big))/4 {
		t.Errorf("a scrape of a %d-byte body allocated %d bytes: its buffer is not kept", len(big), a)
	}
	if held := m1.HeapAlloc - before.HeapAlloc; held > uint64(len(big))*5/4+1<<20 {
		t.Errorf("%d bytes held after scrapes of a %d-byte body, want at most a quarter more", held, len(big))
	}
	runtime.KeepAlive(h)
}

// countingWriter is a ResponseWriter that only counts the body's bytes.
type countingWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *countingWriter) Header() http.Header         { return w.header }
func (w *countingWriter) WriteHeader(code int)        { w.code = code }
func (w *countingWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// TestMetricsConcurrentScrapes: scrapes at once, in the text format and
// in protobuf, plain and gzipped, each get a whole body of their own,
// whichever takes a kept buffer: each gather and each collectors' text
// carries a number no other scrape has, and a body written into by two
// scrapes shows another's number, or two.
func TestMetricsConcurrentScrapes(t *testing.T) {
	var seq atomic.Int64
	seq.Store(100000)
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "test_rest", Help: "Gathered."},
		func() float64 { return float64(seq.Add(1)) }))
	line := []byte(`test_big_total{id="/docker/0123456789abcdef"} 1` + "\n")
	big := bytes.Repeat(line, 20000)
	h := newMetricsHandler(reg, reg, func(b []byte) []byte {
		b = append(b, big...)
		return fmt.Appendf(b, "test_seq %d\n", seq.Add(1))
	}, slog.New(slog.DiscardHandler), 8)
	const proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
	// scrape returns the numbers the body carries and its length.
	scrape := func(accept string, gz bool) ([]float64, int, error) {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Accept", accept)
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			return nil, 0, fmt.Errorf("status %d", w.Code)
		}
		body := w.Body.Bytes()
		if gz {
			zr, err := gzip.NewReader(w.Body)
			if err != nil {
				return nil, 0, err
			}
			if body, err = io.ReadAll(zr); err != nil {
				return nil, 0, err
			}
		}
		if accept == "" && (bytes.Count(body, big) != 1 || bytes.Count(body, []byte("test_seq ")) != 1) {
			return nil, len(body), fmt.Errorf("the collectors' text is not there once")
		}
		var nums []float64
		dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.ResponseFormat(w.Header()))
		for {
			mf := new(dto.MetricFamily)
			if err := dec.Decode(mf); err == io.EOF {
				break
			} else if err != nil {
				return nil, len(body), err
			}
			if n := mf.GetName(); n == "test_rest" || n == "test_seq" {
				for _, m := range mf.GetMetric() {
					nums = append(nums, m.GetGauge().GetValue()+m.GetUntyped().GetValue())
				}
			}
		}
		return nums, len(body), nil
	}
	size := map[string]int{}
	for _, accept := range []string{"", proto} {
		_, n, err := scrape(accept, false)
		if err != nil {
			t.Fatal(err)
		}
		size[accept] = n
	}
	var mu sync.Mutex
	seen := map[float64]bool{}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 6 {
				// The text carries the gathered number and the
				// collectors' text's; protobuf only the gathered one.
				accept, gz, want := "", (g+i)%2 == 0, 2
				if (g+i)%3 == 0 {
					accept, want = proto, 1
				}
				nums, n, err := scrape(accept, gz)
				mu.Lock()
				if err != nil || n != size[accept] || len(nums) != want {
					t.Errorf("Accept %q, gzip %v: %d bytes (want %d), numbers %v: %v", accept, gz, n, size[accept], nums, err)
				}
				for _, v := range nums {
					if seen[v] {
						t.Errorf("Accept %q, gzip %v: %v, another scrape's number", accept, gz, v)
					}
					seen[v] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
