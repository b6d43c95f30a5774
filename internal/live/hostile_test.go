// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package live

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv/browser"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// hostileNames each run script if the page writes them as markup: every
// one sets window.pwned.
var hostileNames = []string{
	`</script><script>window.pwned="script"</script>`,
	`<img src=x onerror="window.pwned='img'">`,
	`"><svg onload="window.pwned='svg'">`,
}

// hostileHost is sample's host with its containers named, imaged and
// placed in cgroups to inject markup.
type hostileHost struct{ ticks float64 }

func (*hostileHost) Name() string                              { return "hostile" }
func (h *hostileHost) Update(context.Context, time.Time) error { h.ticks++; return nil }
func (*hostileHost) Describe(chan<- *prometheus.Desc)          {}
func (*hostileHost) Collect(chan<- prometheus.Metric)          {}
func (h *hostileHost) Fill(m *metrics.ResourceMetrics) {
	ts := m.Timestamp
	*m = *sample(h.ticks, true)
	m.Timestamp = ts
	for i := range m.Containers.ContainerDetails {
		d := &m.Containers.ContainerDetails[i]
		d.ContainerName, d.Image = hostileNames[i%3], hostileNames[(i+1)%3]
	}
}

// TestPageRunsNoInjectedScript opens the live page in Chromium for a host
// whose containers, images, alerts, sessions and probe errors are named
// to inject markup, and a container's charts: nothing runs, and the
// names show as text.
func TestPageRunsNoInjectedScript(t *testing.T) {
	bctx := browser.New(t)
	a := agent.New([]collect.Collector{&hostileHost{}}, 300*time.Millisecond, nil)
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	h := NewHub(a, Options{
		Alerts: func() []metrics.ActiveAlert {
			return []metrics.ActiveAlert{{Name: hostileNames[2], Severity: "critical", Message: hostileNames[0], State: "firing",
				Labels: map[string]string{"name": hostileNames[1]}, ActiveAt: time.Now()}}
		},
		Sessions: func() []Session { return []Session{{Name: hostileNames[1], StartedAt: time.Now()}} },
		Probes:   func() []ProbeStatus { return []ProbeStatus{{Name: hostileNames[0], Error: hostileNames[2]}} },
	})
	mux := http.NewServeMux()
	mux.Handle("/", Page())
	for p, hd := range h.Routes() {
		mux.Handle(p, hd)
	}
	srv := httptest.NewServer(mux)
	defer func() { stop(); <-ran; srv.Close() }()

	cctx, cancel := context.WithTimeout(bctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(cctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(cctx, chromedp.Poll[chromedp.Void](`window.crmonStats && window.crmonStats.ticks >= 3`,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatal(err)
	}
	// A container's charts, whose name and image the page writes too.
	if err := chromedp.Do(cctx, chromedp.Click(`#rows tbody tr td.name`)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(cctx, chromedp.Poll[chromedp.Void](`!document.getElementById("detail").hidden`,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // a failing image load's onerror
	st, err := chromedp.Run(cctx, chromedp.Evaluate[struct {
		Pwned    string `json:"pwned"`
		Elements int    `json:"elements"`
		Text     string `json:"text"`
		Rows     int    `json:"rows"`
	}](`({pwned: String(window.pwned ?? ""), rows: document.querySelectorAll("#rows tbody tr").length,
		elements: document.querySelectorAll("body img, body iframe, body [onload], body [onerror], body script:not([src])").length,
		text: document.body.innerText + "\n" + [...document.querySelectorAll("[title]")].map(e => e.title).join("\n")})`))
	if err != nil {
		t.Fatal(err)
	}
	browser.Screenshot(t, bctx, "hostile-names.png")
	if st.Pwned != "" {
		t.Errorf("injected script ran: window.pwned = %q", st.Pwned)
	}
	if st.Elements != 0 {
		t.Errorf("the page has %d img, iframe, inline script or handler elements: names became markup", st.Elements)
	}
	if st.Rows != 2 {
		t.Errorf("%d container rows, want 2", st.Rows)
	}
	for _, n := range hostileNames {
		if !strings.Contains(st.Text, n) {
			t.Errorf("the page does not show %q as text", n)
		}
	}
}
