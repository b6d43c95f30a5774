// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package live

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// scripted fills each tick's sample from the ticks so far, so that the
// agent's loop, publication and subscriptions are the real ones.
type scripted struct {
	mu    sync.Mutex
	n     float64
	fills atomic.Int64
}

func (s *scripted) Name() string { return "scripted" }
func (s *scripted) Update(context.Context, time.Time) error {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return nil
}
func (s *scripted) Describe(chan<- *prometheus.Desc) {}
func (s *scripted) Collect(chan<- prometheus.Metric) {}
func (s *scripted) Fill(m *metrics.ResourceMetrics) {
	s.mu.Lock()
	n := s.n
	s.mu.Unlock()
	s.fills.Add(1)
	ts := m.Timestamp
	*m = *sample(n, true)
	m.Timestamp = ts
}

type sse struct {
	resp *http.Response
	r    *bufio.Reader
}

func openEvents(t *testing.T, url string) *sse {
	t.Helper()
	resp, err := http.Get(url + "/api/v1/live/events")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("events: %s: %s", resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	return &sse{resp: resp, r: bufio.NewReader(resp.Body)}
}

// next returns the next event's name and data, skipping comments.
func (s *sse) next(t *testing.T) (string, []byte) {
	t.Helper()
	var name string
	var data []byte
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && name != "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = []byte(line[len("data: "):])
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHubSubscribesOnlyWhileWatched checks that the stream starts with
// the history and then carries a tick per sample, with rates, and that the
// agent publishes to nobody once the last page is closed.
func TestHubSubscribesOnlyWhileWatched(t *testing.T) {
	col := &scripted{}
	a := agent.New([]collect.Collector{col}, time.Second, nil)
	a.Tick(context.Background())
	h := NewHub(a, Options{MaxClients: 2})
	mux := http.NewServeMux()
	for p, hd := range h.Routes() {
		mux.Handle(p, hd)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()

	if h.Subscribed() {
		t.Fatal("subscribed with no page open")
	}
	c1 := openEvents(t, srv.URL)
	name, data := c1.next(t)
	if name != "init" {
		t.Fatalf("first event %q, want init", name)
	}
	var init initEvent
	if err := json.Unmarshal(data, &init); err != nil {
		t.Fatal(err)
	}
	if len(init.Rows) != 2 || init.Window != DefaultWindow.Seconds() || init.Interval != 1 {
		t.Errorf("init %+v", init)
	}
	if !h.Subscribed() {
		t.Fatal("not subscribed with a page open")
	}

	// Two ticks: the second has rates.
	var tick View
	for range 2 {
		a.Tick(context.Background())
		name, data = c1.next(t)
		if name != "tick" {
			t.Fatalf("event %q, want tick", name)
		}
		tick = View{}
		if err := json.Unmarshal(data, &tick); err != nil {
			t.Fatal(err)
		}
	}
	if len(tick.Rows) != 2 || tick.Rows[0].RunqWait == nil || tick.Rows[0].BlkWrite == nil {
		t.Errorf("second tick's rows %+v: want rates", tick.Rows)
	}

	// The history of a row, for its charts.
	resp, err := http.Get(srv.URL + "/api/v1/live/container?key=busy")
	if err != nil {
		t.Fatal(err)
	}
	var hist ContainerHistory
	err = json.NewDecoder(resp.Body).Decode(&hist)
	resp.Body.Close()
	if err != nil || len(hist.T) != 2 || len(hist.Series["cpu"]) != 2 || hist.Name != "busy-one" {
		t.Errorf("history %+v (%v): want the two ticks' points", hist, err)
	}
	if resp, err := http.Get(srv.URL + "/api/v1/live/container?key=nope"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("history of an unknown key: %v %v", resp.Status, err)
	}

	// Bounded: a third page is refused while two are open.
	c2 := openEvents(t, srv.URL)
	if resp, err := http.Get(srv.URL + "/api/v1/live/events"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("third stream: %v %v, want 503", resp.Status, err)
	} else if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}

	c1.resp.Body.Close()
	c2.resp.Body.Close()
	// The server learns of a closed stream when it next writes to it.
	waitUntil(t, "unsubscribed after the last page closed", func() bool {
		a.Tick(context.Background())
		return !h.Subscribed() && h.Clients() == 0
	})
	// Nothing reads the samples now: ticks cost the hub nothing.
	before := col.fills.Load()
	a.Tick(context.Background())
	if h.Subscribed() || col.fills.Load() != before+1 {
		t.Error("the hub should not be subscribed")
	}
}

// TestHubRemovedRowsFade checks that a container that leaves the sample
// stays as a gone row for goneFor, then goes with its history.
func TestHubRemovedRowsFade(t *testing.T) {
	a := agent.New(nil, time.Second, nil)
	h := NewHub(a, Options{})
	v := Compute(sample(1, true), sample(2, true), false)
	h.record(&v)
	cur := sample(3, true)
	cur.Containers.ContainerDetails = cur.Containers.ContainerDetails[:1]
	v = Compute(sample(2, true), cur, false)
	h.record(&v)
	if len(v.Rows) != 2 || !v.Rows[1].Gone || v.Rows[1].Name != "idle-one" || v.Rows[1].CPU != nil {
		t.Fatalf("rows after idle left %+v: want it kept, gone, without figures", v.Rows)
	}
	later := sample(3, true)
	later.Timestamp = later.Timestamp.Add(goneFor + time.Second)
	later.Containers.ContainerDetails = later.Containers.ContainerDetails[:1]
	v = Compute(nil, later, false)
	h.record(&v)
	if len(v.Rows) != 1 {
		t.Errorf("rows %+v: the gone row should go after %v", v.Rows, goneFor)
	}
	if _, ok := h.History("idle"); ok {
		t.Error("the gone container's history should go with its row")
	}
}

// TestPage checks what the page is served with: its own files only, a
// policy that lets it load nothing from elsewhere, and 404 for the rest.
func TestPage(t *testing.T) {
	srv := httptest.NewServer(Page())
	defer srv.Close()
	for _, c := range []struct{ path, ctype, has string }{
		{"/", "text/html", `<script src="ui/app.js">`},
		{"/ui/app.js", "text/javascript", "new EventSource("},
		{"/ui/app.css", "text/css", "--cpu"},
	} {
		resp, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), c.ctype) || !strings.Contains(string(b), c.has) {
			t.Errorf("GET %s: %s %s, %d bytes", c.path, resp.Status, resp.Header.Get("Content-Type"), len(b))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", c.path, csp)
		}
	}
	for _, p := range []string{"/index.html", "/ui/", "/assets/app.js", "/favicon.ico", "/ui/../go.mod"} {
		if resp, err := http.Get(srv.URL + p); err != nil || resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %v %v, want 404", p, resp.Status, err)
		}
	}
}

// TestHubDropsSlowPage checks that a page that does not read is dropped
// once four ticks wait for it, without holding up the others, and that
// the subscription ends with it.
func TestHubDropsSlowPage(t *testing.T) {
	a := agent.New([]collect.Collector{&scripted{}}, time.Second, nil)
	a.Tick(context.Background())
	h := NewHub(a, Options{})
	slow, _, err := h.join()
	if err != nil {
		t.Fatal(err)
	}
	fast, _, err := h.join()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		a.Tick(context.Background())
		// The fast page reads every tick.
		select {
		case <-fast.ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("tick %d did not reach the fast page", i)
		}
	}
	n := 0
	for range slow.ch { // closed once dropped
		n++
	}
	if n != cap(slow.ch) || h.Clients() != 1 {
		t.Errorf("slow page got %d ticks before it was dropped, want %d; %d pages left, want 1", n, cap(slow.ch), h.Clients())
	}
	h.leave(fast)
	h.leave(slow) // gone already: a no-op
	if h.Subscribed() {
		t.Error("still subscribed with no page")
	}
}
