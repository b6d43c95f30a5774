// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package live

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
		d.ContainerID = fmt.Sprintf("%064x", i+1)
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
	slices.Sort(st.RenderMs)
	t.Logf("%d containers: tick payload %.1f KiB, init %.1f KiB; render of a tick: median %.1f ms, max %.1f ms over %d ticks",
		n, float64(st.LastBytes)/1024, float64(st.InitBytes)/1024, st.RenderMs[len(st.RenderMs)/2], st.RenderMs[len(st.RenderMs)-1], len(st.RenderMs))
}
