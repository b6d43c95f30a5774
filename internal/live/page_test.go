// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package live

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv/browser"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// crowd is a host with n containers: sample's busy one and n-1 idle ones,
// each with its own cgroup counts.
type crowd struct {
	mu    sync.Mutex
	n     int
	ticks float64
}

func (c *crowd) Name() string { return "crowd" }
func (c *crowd) Update(context.Context, time.Time) error {
	c.mu.Lock()
	c.ticks++
	c.mu.Unlock()
	return nil
}
func (c *crowd) Describe(chan<- *prometheus.Desc) {}
func (c *crowd) Collect(chan<- prometheus.Metric) {}
func (c *crowd) Fill(m *metrics.ResourceMetrics) {
	c.mu.Lock()
	secs := c.ticks
	c.mu.Unlock()
	ts := m.Timestamp
	*m = *sample(secs, true)
	m.Timestamp = ts
	busy := m.Containers.ContainerDetails[0]
	cgs := []metrics.CgroupMetrics{*busy.Cgroup}
	ds := []metrics.ContainerDetailMetrics{busy}
	for i := range c.n - 1 {
		d := busy
		// IDs as random as the engine's, so that the payload's size and
		// its compression are a real one's.
		d.ContainerID = fmt.Sprintf("%x", sha256.Sum256([]byte{byte(i), byte(i >> 8)}))
		d.ContainerName = fmt.Sprintf("ci-job-%03d-postgres", i)
		d.Image = "registry.example.org/ci/postgres:16.4-alpine"
		d.CPUUsagePercent = float64(i%7) / 10
		d.CgroupPath = "/docker/" + d.ContainerID
		cg := *busy.Cgroup
		cg.ID, cg.CPUSeconds, cg.BlockWriteBytes = d.CgroupPath, secs/1000, uint64(secs*4096*float64(i))
		cgs = append(cgs, cg)
		ds = append(ds, d)
	}
	m.Cgroups = cgs
	for i := range ds {
		ds[i].Cgroup = &m.Cgroups[i]
	}
	m.Containers.ContainerDetails = ds
}

// TestPage200Containers loads the page in Chromium for a host with 200
// containers, checks that every row is listed with the busy one first and
// that the page keeps up, and logs the cost of a tick: render time in the
// browser and payload size (the README's figures).
func TestPage200Containers(t *testing.T) {
	bctx := browser.New(t)
	const n = 200
	a := agent.New([]collect.Collector{&crowd{n: n}}, 500*time.Millisecond, nil)
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()

	h := NewHub(a, Options{})
	mux := http.NewServeMux()
	mux.Handle("/", Page())
	for p, hd := range h.Routes() {
		mux.Handle(p, hd)
	}
	srv := httptest.NewServer(mux)
	// The agent's end closes the streams, so that the server can close.
	defer func() { stop(); <-ran; srv.Close() }()

	cctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(cctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	// 40 ticks at 0.5 s, so that the median is of many.
	if _, err := chromedp.Run(cctx, chromedp.Poll[chromedp.Void](`window.crmonStats.ticks >= 40`,
		chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(90*time.Second))); err != nil {
		t.Fatal(err)
	}
	st, err := chromedp.Run(cctx, chromedp.Evaluate[struct {
		Rows      int       `json:"rows"`
		First     string    `json:"first"`
		RenderMs  []float64 `json:"renderMs"`
		LastBytes int       `json:"lastBytes"`
		InitBytes int       `json:"initBytes"`
	}](`({rows: document.querySelectorAll("#rows tbody tr").length,
		first: document.querySelector("#rows tbody tr td.name").textContent, ...window.crmonStats})`))
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != n || st.First != "busy-one" {
		t.Errorf("%d rows, first %q: want %d, the busy one first", st.Rows, st.First, n)
	}
	browser.Screenshot(t, bctx, "200-containers.png")
	wire := wireBytesPerTick(t, srv.URL, 10)
	slices.Sort(st.RenderMs)
	t.Logf("%d containers: tick payload %.1f KiB (%.1f KiB gzipped on the wire), init %.1f KiB; render of a tick: median %.1f ms, max %.1f ms over %d ticks",
		n, float64(st.LastBytes)/1024, wire/1024, float64(st.InitBytes)/1024, st.RenderMs[len(st.RenderMs)/2], st.RenderMs[len(st.RenderMs)-1], len(st.RenderMs))
}

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// wireBytesPerTick reads the stream as a browser asks for it (gzip) and
// returns the compressed bytes per tick over ticks ticks.
func wireBytesPerTick(t *testing.T, url string, ticks int) float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/api/v1/live/events", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("the stream is not gzipped: %v", resp.Header)
	}
	cr := &countingReader{r: resp.Body}
	zr, err := gzip.NewReader(cr)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(zr)
	// From the first tick's line to the one after the last: each
	// event comes in a flush of its own.
	var start int
	for seen := 0; seen <= ticks; {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "event: tick") {
			if seen == 0 {
				start = cr.n
			}
			seen++
		}
	}
	return float64(cr.n-start) / float64(ticks)
}
