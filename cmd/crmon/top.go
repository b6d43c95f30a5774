// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/live"
	"github.com/crmon-dev/crmon/internal/userfile"
	"github.com/crmon-dev/crmon/pkg/metrics"
	"github.com/crmon-dev/crmon/pkg/session"
)

func topCommand() *cli.Command {
	flags := []cli.Flag{
		configFlag(),
		&cli.StringFlag{Name: "url", Usage: "a running agent's TCP listener, e.g. http://127.0.0.1:9717 (https://USER:PASSWORD@HOST:PORT with a web config's basic auth)", EnvVars: []string{"CRMON_TOP_URL"}},
		&cli.StringFlag{Name: "tls.ca-file", Usage: "PEM certificates to trust for an https --url (an agent whose certificate is its own)", EnvVars: []string{"CRMON_TOP_TLS_CA_FILE"}},
		&cli.StringFlag{Name: "control.socket", Value: session.DefaultSocket, Usage: "a running agent's control socket, used when --url is not given and it answers", EnvVars: []string{"CRMON_CONTROL_SOCKET"}},
		&cli.BoolFlag{Name: "all", Usage: "a row per cgroup the eBPF probes count, not per container"},
		&cli.StringFlag{Name: "sort", Value: "cpu", Usage: "column to sort by, largest first: " + strings.Join(live.SortKeys, ", "), Action: oneOf(live.SortKeys...)},
		&cli.BoolFlag{Name: "once", Usage: "print one screen as plain text and exit (for scripts)"},
		&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "how often to read a sample (an agent's own interval bounds how often one is new)", Action: durationIn(100*time.Millisecond, time.Hour)},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "with --once, how long to wait for the two samples that rates need", Action: durationIn(time.Second, time.Hour)},
	}
	flags = append(flags, sourceFlags()...)
	return &cli.Command{
		Name:  "top",
		Usage: "watch the host and its containers live in the terminal",
		Description: `top shows the host's figures and a row per container (per cgroup with --all):
CPU % of one core, run-queue wait, memory, block read and write rates, block I/O
latency p99, network rates and age, sorted by CPU unless --sort says otherwise.
It reads a running agent (--url, or the control socket when it answers), or else
loads the eBPF probes itself (--ebpf, as root).

Keys: < and > move the sort column, c n m w b l sort by CPU, name, memory, run-queue
wait, block write, latency; r reverses; / filters by name or image (Enter keeps,
Esc clears); a toggles containers and cgroups; space pauses; q quits.
--once prints one screen as plain text, without escape codes, for scripts.`,
		Flags:  flags,
		Action: top,
	}
}

// sampleSource gives one sample after another.
type sampleSource interface {
	// Next returns a sample newer than the last it returned.
	Next(ctx context.Context) (*metrics.ResourceMetrics, error)
	// String says where the samples come from.
	String() string
	Close()
}

// agentSource polls a running agent's /api/v1/snapshot.
type agentSource struct {
	client   *http.Client
	base     string
	shown    string
	interval time.Duration
	last     time.Time
}

// maxSnapshot bounds what is read of one snapshot (a host with thousands
// of containers sends a few MiB).
const maxSnapshot = 64 << 20

func (s *agentSource) String() string { return s.shown }
func (s *agentSource) Close()         { s.client.CloseIdleConnections() }

func (s *agentSource) Next(ctx context.Context) (*metrics.ResourceMetrics, error) {
	for {
		m, err := s.get(ctx)
		if err != nil {
			return nil, err
		}
		if m.Timestamp.After(s.last) {
			s.last = m.Timestamp
			return m, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(s.interval):
		}
	}
}

func (s *agentSource) get(ctx context.Context) (*metrics.ResourceMetrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/api/v1/snapshot", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the agent at %s: %w", s.shown, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxSnapshot)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(body, 512))
		return nil, fmt.Errorf("reading the agent at %s: %s: %s", s.shown, resp.Status, strings.TrimSpace(string(b)))
	}
	var m metrics.ResourceMetrics
	if err := json.NewDecoder(body).Decode(&m); err != nil {
		return nil, fmt.Errorf("reading the agent at %s: %w", s.shown, err)
	}
	return &m, nil
}

// localSource runs the collectors and probes in this process.
type localSource struct {
	src    *sources
	sub    *agent.Subscription
	cancel context.CancelFunc
	ran    chan error
	probes string
}

func (s *localSource) String() string { return "this process (probes " + s.probes + ")" }

func (s *localSource) Next(ctx context.Context) (*metrics.ResourceMetrics, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case smp, ok := <-s.sub.C():
		if !ok {
			return nil, errors.New("collection stopped")
		}
		return smp.Metrics, nil
	}
}

func (s *localSource) Close() {
	s.cancel()
	<-s.ran
	s.src.Close()
}

// openSource finds the samples: --url, else the control socket if an
// agent answers there, else collectors of this process.
func openSource(c *cli.Context, logger *slog.Logger) (sampleSource, error) {
	iv := c.Duration("interval")
	if u := c.String("url"); u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, usageErrorf("--url %q: want http://HOST:PORT or https://HOST:PORT", u)
		}
		shown := pu.Redacted()
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if f := c.String("tls.ca-file"); f != "" {
			pem, err := userfile.Read(f, 1<<20)
			if err != nil {
				return nil, fmt.Errorf("--tls.ca-file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--tls.ca-file %s: no PEM certificate in it", f)
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		// Go's client sends the URL's user and password as basic auth.
		return &agentSource{client: &http.Client{Timeout: 15 * time.Second, Transport: tr}, base: strings.TrimRight(u, "/"), shown: shown, interval: iv}, nil
	}
	if p := c.String("control.socket"); p != "" {
		base := "unix://" + p
		if session.HealthyClient(c.Context, nil, base, 2*time.Second) {
			client, b := session.AgentClient(base)
			return &agentSource{client: client, base: b, shown: p, interval: iv}, nil
		}
		if c.IsSet("control.socket") {
			return nil, fmt.Errorf("no agent answers on %s", p)
		}
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	src, err := newSources(c, cfg, logger)
	if err != nil {
		return nil, err
	}
	a := agent.New(src.Collectors(), iv, logger)
	sub := a.Subscribe("top", 2)
	ctx, cancel := context.WithCancel(context.Background())
	ls := &localSource{src: src, sub: sub, cancel: cancel, ran: make(chan error, 1), probes: src.ProbeSummary()}
	go func() { ls.ran <- a.Run(ctx) }()
	return ls, nil
}

func top(c *cli.Context) error {
	logger, err := newLogger(c)
	if err != nil {
		return err
	}
	src, err := openSource(c, logger)
	if err != nil {
		return err
	}
	defer src.Close()
	host, _ := os.Hostname()
	if c.Bool("once") {
		return topOnce(c, src, host)
	}
	return topScreen(c, src, host)
}

// topOnce waits for two samples (rates need both) and prints one screen.
func topOnce(c *cli.Context, src sampleSource, host string) error {
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	prev, err := src.Next(ctx)
	if err != nil {
		return err
	}
	cur, err := src.Next(ctx)
	if err != nil {
		return fmt.Errorf("a second sample for the rates: %w", err)
	}
	// A container found between the two (the first tick of probes
	// loaded here may precede the engine's list) has no rates yet: one
	// more sample gives them.
	if !live.Complete(prev, cur) {
		if next, err := src.Next(ctx); err == nil {
			prev, cur = cur, next
		}
	}
	v := live.Compute(prev, cur, c.Bool("all"))
	live.Sort(v.Rows, c.String("sort"), cur.Timestamp)
	width := 0
	if f, ok := c.App.Writer.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
			width = int(ws.Col)
		}
	}
	w := c.App.Writer
	hl := live.HostLines(&v.Host, host)
	fmt.Fprintln(w, hl[0])
	fmt.Fprintln(w, hl[1])
	fmt.Fprintln(w)
	header, lines := live.Table(v.Rows, cur.Timestamp, width)
	fmt.Fprintln(w, header)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	return nil
}

// topState is what the screen shows and the keys change.
type topState struct {
	prev, cur *metrics.ResourceMetrics
	sort      string
	reverse   bool
	all       bool
	filter    string
	editing   bool
	paused    bool
	err       error
}

// directKeys sort by a column at once.
var directKeys = map[rune]string{'c': "cpu", 'n': "name", 'm': "mem", 'w': "runq", 'b': "blk_w", 'l': "lat_p99"}

func topScreen(c *cli.Context, src sampleSource, host string) error {
	scr, err := tcell.NewScreen()
	if err != nil {
		return fmt.Errorf("the terminal: %w (use --once when not on a terminal)", err)
	}
	if err := scr.Init(); err != nil {
		return fmt.Errorf("the terminal: %w (use --once when not on a terminal)", err)
	}
	defer scr.Fini()

	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	type result struct {
		m   *metrics.ResourceMetrics
		err error
	}
	samples := make(chan result, 1)
	go func() {
		for ctx.Err() == nil {
			m, err := src.Next(ctx)
			select {
			case samples <- result{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				select {
				case <-time.After(c.Duration("interval")):
				case <-ctx.Done():
				}
			}
		}
	}()
	events := make(chan tcell.Event, 8)
	quit := make(chan struct{})
	go scr.ChannelEvents(events, quit)
	defer close(quit)

	st := &topState{sort: c.String("sort"), all: c.Bool("all")}
	draw := func() { drawTop(scr, st, src, host) }
	draw()
	for {
		select {
		case r := <-samples:
			st.err = r.err
			if r.m != nil && !st.paused {
				st.prev, st.cur = st.cur, r.m
			}
			draw()
		case ev := <-events:
			switch ev := ev.(type) {
			case *tcell.EventResize:
				scr.Sync()
				draw()
			case *tcell.EventKey:
				if topKey(st, ev) {
					return nil
				}
				draw()
			}
		}
	}
}

// topKey applies a key press; it reports whether to quit.
func topKey(st *topState, ev *tcell.EventKey) bool {
	if st.editing {
		switch ev.Key() {
		case tcell.KeyEnter:
			st.editing = false
		case tcell.KeyEscape:
			st.editing, st.filter = false, ""
		case tcell.KeyBackspace, tcell.KeyBackspace2:
			if r := []rune(st.filter); len(r) > 0 {
				st.filter = string(r[:len(r)-1])
			}
		case tcell.KeyCtrlC:
			return true
		case tcell.KeyRune:
			if len(st.filter) < 256 {
				st.filter += string(ev.Rune())
			}
		}
		return false
	}
	switch ev.Key() {
	case tcell.KeyCtrlC, tcell.KeyEscape:
		return true
	case tcell.KeyRune:
	default:
		return false
	}
	i := slices.Index(live.SortKeys, st.sort)
	switch r := ev.Rune(); r {
	case 'q', 'Q':
		return true
	case ' ':
		st.paused = !st.paused
	case '/':
		st.editing = true
	case '<':
		st.sort, st.reverse = live.SortKeys[(i+len(live.SortKeys)-1)%len(live.SortKeys)], false
	case '>':
		st.sort, st.reverse = live.SortKeys[(i+1)%len(live.SortKeys)], false
	case 'r':
		st.reverse = !st.reverse
	case 'a':
		st.all = !st.all
	default:
		if k, ok := directKeys[r]; ok {
			st.sort, st.reverse = k, false
		}
	}
	return false
}

func drawTop(scr tcell.Screen, st *topState, src sampleSource, host string) {
	scr.Clear()
	w, h := scr.Size()
	put := func(y int, s string, style tcell.Style) {
		if y < h {
			scr.PutStrStyled(0, y, s, style)
			for x := len([]rune(s)); x < w; x++ {
				scr.SetContent(x, y, ' ', nil, style)
			}
		}
	}
	plain := tcell.StyleDefault
	bar := plain.Reverse(true)
	dim := plain.Dim(true)
	bold := plain.Bold(true)

	if st.cur == nil {
		put(0, "crmon top: waiting for a sample from "+src.String(), bar)
		if st.err != nil {
			put(2, st.err.Error(), plain)
		}
		scr.Show()
		return
	}
	v := live.Compute(st.prev, st.cur, st.all)
	now := st.cur.Timestamp
	hl := live.HostLines(&v.Host, host)
	put(0, "crmon top  "+hl[0], bar)
	put(1, hl[1], plain)

	rows := v.Rows
	if f := strings.ToLower(st.filter); f != "" {
		rows = slices.DeleteFunc(rows, func(r live.Row) bool {
			return !strings.Contains(strings.ToLower(r.Name), f) && !strings.Contains(strings.ToLower(r.Image), f) && !strings.Contains(r.Key, f)
		})
	}
	live.Sort(rows, st.sort, now)
	if st.reverse {
		slices.Reverse(rows)
	}
	what := "containers"
	if st.all {
		what = "cgroups"
	}
	status := fmt.Sprintf("%d %s  sort: %s", len(rows), what, st.sort)
	if st.reverse {
		status += " (reversed)"
	}
	switch {
	case st.editing:
		status += "  filter: /" + st.filter + "_"
	case st.filter != "":
		status += "  filter: " + st.filter
	}
	if st.paused {
		status += "  PAUSED"
	}
	status += "  from " + src.String()
	if st.err != nil {
		status += "  error: " + st.err.Error()
	}
	put(2, status, plain)
	put(3, "keys: < > sort  r reverse  / filter  a cgroups  space pause  q quit", dim)

	header, lines := live.Table(rows, now, w)
	put(4, header, bar)
	busiest := -1
	for i := range rows {
		if rows[i].CPU != nil && *rows[i].CPU >= 50 && (busiest < 0 || *rows[i].CPU > *rows[busiest].CPU) {
			busiest = i
		}
	}
	for i, l := range lines {
		style := plain
		switch {
		case rows[i].Gone, rows[i].State != "" && rows[i].State != "running":
			style = dim
		case i == busiest:
			style = bold
		}
		put(5+i, l, style)
	}
	if len(rows) == 0 {
		put(5, "no "+what, dim)
	}
	scr.Show()
}
