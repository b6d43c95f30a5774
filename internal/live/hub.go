// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package live

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// Defaults of Options.
const (
	DefaultWindow     = 15 * time.Minute
	DefaultMaxClients = 32
	// maxPoints bounds every chart's ring, whatever the interval.
	maxPoints = 900
	// sparkPoints is how many CPU values each row's sparkline shows.
	sparkPoints = 60
	// goneFor is how long a removed container's row stays, fading.
	goneFor = 30 * time.Second
	// maxTracked bounds the containers whose history is kept.
	maxTracked = 2000
	// writeTimeout bounds each write to a client: one that does not read
	// is dropped, and its browser reconnects.
	writeTimeout = 10 * time.Second
	// heartbeat keeps idle proxies from closing the stream.
	heartbeat = 15 * time.Second
)

// ProbeStatus is one eBPF probe's state, for the page's header.
type ProbeStatus struct {
	Name  string `json:"name"`
	Up    bool   `json:"up"`
	Error string `json:"error,omitempty"`
}

// Session is a running test session, for the page.
type Session struct {
	Name       string    `json:"name"`
	StartedAt  time.Time `json:"started_at"`
	Containers int       `json:"containers"`
	OwnerUID   uint32    `json:"owner_uid"`
}

// Options configure a Hub.
type Options struct {
	// Window is how far back the charts reach (DefaultWindow).
	Window time.Duration
	// MaxClients bounds the page's open streams (DefaultMaxClients); one
	// more is answered 503.
	MaxClients int
	// Alerts, Sessions and Probes, when set, are read once per sample
	// while a page is open.
	Alerts   func() []metrics.ActiveAlert
	Sessions func() []Session
	Probes   func() []ProbeStatus
	// HostHistory, when set, gives the host's points of the window from a
	// longer-lived record (the local store) for a page that opens while
	// the hub's own ring is empty.
	HostHistory func(from, to time.Time) ([]Host, error)
	Version     string
	Logger      *slog.Logger
}

// Hub serves the live page's stream. It subscribes to the agent's samples
// only while at least one page is open: with none, the agent does no work
// for it. What it keeps — the host's figures and each container's over the
// window, at most maxPoints each — is dropped a window after the last page
// closed.
type Hub struct {
	a        *agent.Agent
	opts     Options
	hostname string

	mu      sync.Mutex
	clients map[*client]struct{}
	sub     *agent.Subscription
	idle    *time.Timer // drops the history a window after the last client left
	prev    *metrics.ResourceMetrics
	host    *ring // cpu, mem used, disk read, disk write, net rx, net tx
	ctrs    map[string]*tracked
	view    View
	extras  extras
}

// extras are what a tick carries besides the view.
type extras struct {
	Alerts   []metrics.ActiveAlert `json:"alerts"`
	Sessions []Session             `json:"sessions"`
	Probes   []ProbeStatus         `json:"probe_status"`
}

type tracked struct {
	hist   *ring // cpu, runq, mem, blk_r, blk_w, lat_p99, net_rx, net_tx
	last   Row
	goneAt time.Time
}

var ctrCols = []string{"cpu", "runq", "mem", "blk_r", "blk_w", "lat_p99", "net_rx", "net_tx"}

type client struct {
	ch chan []byte
}

// ErrTooManyClients is returned when MaxClients pages are open.
var ErrTooManyClients = errors.New("too many live views open")

// NewHub makes a hub for a's samples.
func NewHub(a *agent.Agent, opts Options) *Hub {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.MaxClients <= 0 {
		opts.MaxClients = DefaultMaxClients
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Hub{a: a, opts: opts, clients: map[*client]struct{}{}}
	h.hostname, _ = os.Hostname()
	h.reset()
	return h
}

func (h *Hub) points() int {
	iv := h.a.Interval()
	if iv <= 0 {
		iv = time.Second
	}
	return min(max(int(h.opts.Window/iv), 2), maxPoints)
}

// reset forgets the history; h.mu held or h not shared yet.
func (h *Hub) reset() {
	h.host = newRing(6, h.points())
	h.ctrs = map[string]*tracked{}
	h.prev = nil
	h.view = View{}
}

// Clients is the number of open streams.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// Subscribed reports whether the hub reads the agent's samples now.
func (h *Hub) Subscribed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sub != nil
}

// join adds a client and returns the first event it gets: the history
// and the current view.
func (h *Hub) join() (*client, []byte, error) {
	h.mu.Lock()
	if len(h.clients) >= h.opts.MaxClients {
		h.mu.Unlock()
		return nil, nil, ErrTooManyClients
	}
	c := &client{ch: make(chan []byte, 4)}
	h.clients[c] = struct{}{}
	if h.idle != nil {
		h.idle.Stop()
		h.idle = nil
	}
	if h.sub == nil {
		h.sub = h.a.Subscribe("live", 4)
		go h.run(h.sub)
	}
	if h.host.len() == 0 && h.opts.HostHistory != nil {
		// Filled outside the lock below.
		h.mu.Unlock()
		// Points at the ticks' own times, up to the last one.
		to := time.Now()
		if s := h.a.Latest(); s != nil {
			to = s.Time
		}
		pts, err := h.opts.HostHistory(to.Add(-h.opts.Window), to)
		if err != nil {
			h.opts.Logger.Warn("live view: no host history from the store", "err", err)
		}
		h.mu.Lock()
		if h.host.len() == 0 {
			for i := range pts {
				h.addHost(&pts[i])
			}
		}
	}
	if h.view.Host.Time.IsZero() {
		if s := h.a.Latest(); s != nil {
			h.view = Compute(nil, s.Metrics, false)
		}
	}
	init := h.initLocked()
	h.mu.Unlock()
	b, err := json.Marshal(init)
	if err != nil {
		h.leave(c)
		return nil, nil, err
	}
	return c, b, nil
}

// leave removes a client; the last one ends the subscription.
func (h *Hub) leave(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[c]; !ok {
		return
	}
	delete(h.clients, c)
	close(c.ch)
	h.idleLocked()
}

func (h *Hub) idleLocked() {
	if len(h.clients) > 0 || h.sub == nil {
		return
	}
	h.sub.Close()
	h.sub = nil
	h.idle = time.AfterFunc(h.opts.Window, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.sub == nil {
			h.reset()
		}
	})
}

// run reads sub's samples until it is closed: by the last client's leave,
// or when the agent stops.
func (h *Hub) run(sub *agent.Subscription) {
	for s := range sub.C() {
		h.mu.Lock()
		if h.sub != sub {
			h.mu.Unlock()
			return
		}
		prev := h.prev
		if prev != nil && s.Metrics.Timestamp.Sub(prev.Timestamp) > 3*h.a.Interval()+time.Second {
			prev = nil // a gap: no rates across it
		}
		h.mu.Unlock()

		// Computing and reading the other sources happen unlocked: they
		// take their own locks.
		v := Compute(prev, s.Metrics, false)
		var ex extras
		if h.opts.Alerts != nil {
			ex.Alerts = h.opts.Alerts()
		}
		if h.opts.Sessions != nil {
			ex.Sessions = h.opts.Sessions()
		}
		if h.opts.Probes != nil {
			ex.Probes = h.opts.Probes()
		}

		h.mu.Lock()
		if h.sub != sub {
			h.mu.Unlock()
			return
		}
		h.prev = s.Metrics
		h.record(&v)
		h.view, h.extras = v, ex
		tick := struct {
			View
			extras
		}{v, ex}
		h.mu.Unlock()

		b, err := json.Marshal(tick)
		if err != nil {
			h.opts.Logger.Error("live view: encoding a tick", "err", err)
			continue
		}
		h.broadcast(b)
	}
	// The agent stopped: so do the streams.
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sub == sub {
		for c := range h.clients {
			delete(h.clients, c)
			close(c.ch)
		}
		h.sub = nil
	}
}

func (h *Hub) broadcast(b []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		select {
		case c.ch <- b:
		default:
			// Four ticks behind: drop it; its browser reconnects and
			// starts again from the history.
			delete(h.clients, c)
			close(c.ch)
		}
	}
	h.idleLocked()
}

func (h *Hub) addHost(p *Host) {
	if !p.Time.After(h.host.lastTime()) {
		return
	}
	h.host.add(p.Time, float32(p.CPUPercent), float32(p.MemUsed), float32(p.DiskRead), float32(p.DiskWrite), float32(p.NetRx), float32(p.NetTx))
}

// record adds v to the history and appends the rows of containers that
// went away within goneFor, marked Gone; h.mu held.
func (h *Hub) record(v *View) {
	now := v.Host.Time
	h.addHost(&v.Host)
	seen := make(map[string]bool, len(v.Rows))
	rows := v.Rows[:0]
	for _, r := range v.Rows {
		seen[r.Key] = true
		t := h.ctrs[r.Key]
		if t == nil && r.Gone {
			continue // removed before it was watched
		}
		if t == nil {
			if len(h.ctrs) >= maxTracked {
				rows = append(rows, r)
				continue
			}
			t = &tracked{hist: newRing(len(ctrCols), h.host.cap)}
			h.ctrs[r.Key] = t
		}
		if r.Gone {
			// Removed, and still reported for removed_retention.
			if t.goneAt.IsZero() {
				t.goneAt = now
			}
			if now.Sub(t.goneAt) <= goneFor {
				rows = append(rows, r)
			}
			continue
		}
		t.last, t.goneAt = r, time.Time{}
		rows = append(rows, r)
		var mem *float64
		if r.Mem != nil {
			mem = ptr(float64(*r.Mem))
		}
		t.hist.add(now, f32(r.CPU), f32(r.RunqWait), f32(mem), f32(r.BlkRead), f32(r.BlkWrite), f32(r.IOLatP99), f32(r.NetRx), f32(r.NetTx))
	}
	for k, t := range h.ctrs {
		if seen[k] {
			continue
		}
		if t.goneAt.IsZero() {
			t.goneAt = now
		}
		if now.Sub(t.goneAt) > goneFor {
			delete(h.ctrs, k)
			continue
		}
		r := t.last
		r.Gone, r.State = true, "removed"
		r.CPU, r.RunqWait, r.Mem, r.BlkRead, r.BlkWrite, r.IOLatP99, r.NetRx, r.NetTx = nil, nil, nil, nil, nil, nil, nil, nil
		rows = append(rows, r)
	}
	v.Rows = rows
}

// initEvent is what a page gets first.
type initEvent struct {
	Version  string  `json:"version"`
	Hostname string  `json:"hostname"`
	Interval float64 `json:"interval"` // seconds
	Window   float64 `json:"window"`   // seconds
	History  struct {
		T     []int64 `json:"t"`
		CPU   series  `json:"cpu"`
		Mem   series  `json:"mem"`
		DiskR series  `json:"disk_r"`
		DiskW series  `json:"disk_w"`
		NetRx series  `json:"net_rx"`
		NetTx series  `json:"net_tx"`
	} `json:"history"`
	// Spark is each row's last CPU values, by key.
	Spark map[string]series `json:"spark"`
	View
	extras
}

func (h *Hub) initLocked() *initEvent {
	e := &initEvent{
		Version:  h.opts.Version,
		Hostname: h.hostname,
		Interval: h.a.Interval().Seconds(),
		Window:   h.opts.Window.Seconds(),
		View:     h.view,
		extras:   h.extras,
		Spark:    make(map[string]series, len(h.ctrs)),
	}
	e.Rows = append(make([]Row, 0, len(h.view.Rows)), h.view.Rows...)
	from := time.Now().Add(-h.opts.Window)
	t, cols := h.host.since(from, 0)
	e.History.T = t
	e.History.CPU, e.History.Mem, e.History.DiskR, e.History.DiskW, e.History.NetRx, e.History.NetTx = cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]
	for k, tr := range h.ctrs {
		_, c := tr.hist.since(from, sparkPoints)
		e.Spark[k] = c[0]
	}
	return e
}

// ContainerHistory is one row's charts over the window.
type ContainerHistory struct {
	Key    string            `json:"key"`
	Name   string            `json:"name"`
	Image  string            `json:"image,omitempty"`
	T      []int64           `json:"t"`
	Series map[string]series `json:"series"`
}

// History returns the charts of the row with key, if the hub has them.
func (h *Hub) History(key string) (*ContainerHistory, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.ctrs[key]
	if t == nil {
		return nil, false
	}
	ts, cols := t.hist.since(time.Now().Add(-h.opts.Window), 0)
	out := &ContainerHistory{Key: key, Name: t.last.Name, Image: t.last.Image, T: ts, Series: make(map[string]series, len(cols))}
	for i, c := range cols {
		out.Series[ctrCols[i]] = c
	}
	return out, true
}

// ServeEvents streams the live view as server-sent events: "init" with
// the history, then "tick" once per sample.
func (h *Hub) ServeEvents(w http.ResponseWriter, r *http.Request) {
	c, init, err := h.join()
	if errors.Is(err, ErrTooManyClients) {
		w.Header().Set("Retry-After", "10")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer h.leave(c)
	rc := http.NewResponseController(w)
	// The stream outlives the server's read timeout, which would
	// otherwise end the request's context.
	_ = rc.SetReadDeadline(time.Time{})
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	hd.Add("Vary", "Accept-Encoding")
	// A tick of 200 containers is some 75 KiB of JSON, a tenth of it
	// gzipped: worth it for a page watched over a network. One gzip
	// stream per page, flushed at each event.
	var out io.Writer = w
	var gz *gzip.Writer
	if acceptsGzip(r) {
		hd.Set("Content-Encoding", "gzip")
		gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		defer gz.Close()
		out = gz
	}
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := out.Write(b); err != nil {
			return false
		}
		if gz != nil && gz.Flush() != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(event("init", init)) {
		return
	}
	ping := time.NewTicker(heartbeat)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case b, ok := <-c.ch:
			if !ok || !send(event("tick", b)) {
				return
			}
		case <-ping.C:
			if !send([]byte(": ping\n\n")) {
				return
			}
		}
	}
}

func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, e := range strings.Split(v, ",") {
			e, q, _ := strings.Cut(strings.TrimSpace(e), ";")
			if strings.EqualFold(strings.TrimSpace(e), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
				return true
			}
		}
	}
	return false
}

func event(name string, data []byte) []byte {
	b := make([]byte, 0, len(data)+32)
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	b = append(b, data...) // JSON has no raw newlines
	return append(b, "\n\n"...)
}

// ServeHistory serves one row's charts: ?key=K.
func (h *Hub) ServeHistory(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if key == "" || len(key) > 4096 {
		http.Error(w, "want ?key=<container id or cgroup path>", http.StatusBadRequest)
		return
	}
	hist, ok := h.History(key)
	if !ok {
		http.Error(w, "no history for "+strconv.Quote(key), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(hist)
}
