// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package web serves the agent over HTTP. The TCP listener serves what
// may be read — /metrics for Prometheus, the latest sample as JSON, a
// health check — with TLS and basic auth from exporter-toolkit's web
// configuration file, as in every Prometheus exporter. What changes state
// (the session API) is served on the control socket only, where the
// kernel says who is asking.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/net/netutil"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/control"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// Options configure the server.
type Options struct {
	ListenAddress string // e.g. "127.0.0.1:9717"
	WebConfigFile string // exporter-toolkit web config (TLS, basic auth); "" for plain HTTP
	Version       string
	Logger        *slog.Logger
	// AllowedHosts are names, besides localhost, the machine's hostname
	// and IP addresses, that requests may carry in their Host header.
	AllowedHosts []string
	// ControlSocket is the unix socket that serves Handlers and /healthz;
	// "" for none.
	ControlSocket string
	// ControlGroup owns the control socket (mode 0660).
	ControlGroup int
	// ControlOptional serves without the control socket, and says so, when
	// it cannot be made: an unprivileged agent cannot write /run.
	ControlOptional bool
	// Handlers are the control socket's API handlers by path prefix, e.g.
	// "/api/v1/sessions". They find the caller with control.PeerFrom.
	Handlers map[string]http.Handler
	// Alerts, when set, gives the active alerts that /api/v1/snapshot
	// serves with the sample.
	Alerts func() []metrics.ActiveAlert
	// ReadOnly are read-only API handlers by path, e.g. "/api/v1/alerts",
	// served on the TCP listener and the control socket alike.
	ReadOnly map[string]http.Handler
	// Page, when set, serves "/" and what it loads on the TCP listener
	// (the live page) instead of the plain list of links.
	Page http.Handler
	// WriteTimeout bounds writing an answer on the TCP listener
	// (DefaultWriteTimeout); a stream sets its own per event.
	WriteTimeout time.Duration
	// MaxConnections bounds the TCP listener's open connections
	// (DefaultMaxConnections); more wait in the kernel's backlog.
	MaxConnections int
}

// Server is the agent's HTTP server: the TCP listener and the control
// socket.
type Server struct {
	srv    *http.Server
	opts   Options
	ln     net.Listener
	logger *slog.Logger

	ctl   *http.Server
	ctlLn *control.Listener

	metrics *metricsHandler
}

// DefaultWriteTimeout bounds writing one answer on the TCP listener: a
// client that asks and does not read holds a handler, its answer and,
// for /metrics, one of the scrape slots only this long.
const DefaultWriteTimeout = time.Minute

// DefaultMaxConnections bounds the TCP listener's connections. Each costs
// the agent a descriptor, a goroutine and its buffers, 14 KiB of heap and
// stack for an idle one (2 000 opened in a test, then measured), and a
// client that opens them by the thousand (any local user can, from every
// address of 127.0.0.0/8) would otherwise take the descriptors the
// collectors need, or the agent's memory. Prometheus, Grafana and a few
// open pages use a few dozen.
const DefaultMaxConnections = 512

// DefaultListenAddress is loopback only: a monitoring agent must not expose
// host details to the network unless its operator asks for it.
const DefaultListenAddress = "127.0.0.1:9717"

// New builds the handler tree for a; /metrics serves a's metrics and
// extra's (the Go runtime's, the process', build info).
func New(a *agent.Agent, extra []prometheus.Collector, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	full, rest := Gatherer(a, extra), prometheus.NewRegistry()
	rest.MustRegister(append([]prometheus.Collector{a.Rest()}, extra...)...)
	mux := http.NewServeMux()
	metricsH := newMetricsHandler(full, rest, a.AppendText, opts.Logger, 10)
	mux.Handle("/metrics", metricsH)
	snapshot := func(w http.ResponseWriter, r *http.Request) {
		s := a.Latest()
		if s == nil {
			http.Error(w, "no sample collected yet", http.StatusServiceUnavailable)
			return
		}
		// The sample is shared and immutable: the alerts go on a copy.
		m := *s.Metrics
		if opts.Alerts != nil {
			m.Alerts = opts.Alerts()
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		if r.URL.Query().Has("pretty") {
			enc.SetIndent("", "  ")
		}
		_ = enc.Encode(&m)
	}
	mux.HandleFunc("/api/v1/snapshot", snapshot)
	healthz := func(w http.ResponseWriter, r *http.Request) {
		// Healthy while the loop keeps ticking: a sample no older than
		// three intervals.
		s := a.Latest()
		if s == nil {
			http.Error(w, "starting: no sample yet", http.StatusServiceUnavailable)
			return
		}
		if age := time.Since(s.Time); age > 3*a.Interval()+time.Second {
			http.Error(w, "stale: last sample "+age.Round(time.Millisecond).String()+" ago", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}
	mux.HandleFunc("/healthz", healthz)
	ctl := http.NewServeMux()
	ctl.HandleFunc("/healthz", healthz)
	ctl.HandleFunc("/api/v1/snapshot", snapshot)
	for p, h := range opts.Handlers {
		ctl.Handle(p, h)
		ctl.Handle(p+"/", h)
	}
	links := []web.LandingLinks{
		{Address: "/metrics", Text: "Metrics"},
		{Address: "/api/v1/snapshot?pretty", Text: "Snapshot (JSON)"},
	}
	for _, p := range slices.Sorted(maps.Keys(opts.ReadOnly)) {
		mux.Handle(p, opts.ReadOnly[p])
		ctl.Handle(p, opts.ReadOnly[p])
		links = append(links, web.LandingLinks{Address: p, Text: p})
	}
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "crmon",
		Description: "Resource monitor for CI hosts and their containers",
		Version:     opts.Version,
		Links:       append(links, web.LandingLinks{Address: "/healthz", Text: "Health"}),
	})
	switch {
	case opts.Page != nil:
		mux.Handle("/", opts.Page)
	case err == nil:
		mux.Handle("/", landing)
	}
	return &Server{
		metrics: metricsH,
		srv: &http.Server{
			Handler:           checkHost(sameSite(mux), allowedHosts(opts)),
			ReadHeaderTimeout: 10 * time.Second,
			// Bound what a slow or idle client holds once the agent
			// listens beyond loopback.
			ReadTimeout:  30 * time.Second,
			WriteTimeout: opts.WriteTimeout,
			IdleTimeout:  2 * time.Minute,
		},
		ctl: &http.Server{
			Handler:           ctl,
			ConnContext:       control.ConnContext,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			// A session's report with its series can be large.
			WriteTimeout: time.Minute,
			IdleTimeout:  2 * time.Minute,
		},
		opts:   opts,
		logger: opts.Logger,
	}
}

// Gatherer gathers every series /metrics serves: a's and extra's. The
// agent's consumers read the same through agent.Series and agent.Points
// (a.SetExtra(extra)), so that an exporter or the store reads, per tick,
// exactly what a scrape would.
func Gatherer(a *agent.Agent, extra []prometheus.Collector) prometheus.Gatherer {
	full := prometheus.NewRegistry()
	full.MustRegister(append([]prometheus.Collector{a}, extra...)...)
	return full
}

// allowedHosts are the Host header values the TCP listener answers:
// localhost, the machine's hostname, the listen address' host and the
// configured names. IP literals are always allowed (checkHost).
func allowedHosts(opts Options) []string {
	hosts := []string{"localhost"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, strings.ToLower(h))
	}
	if h, _, err := net.SplitHostPort(opts.ListenAddress); err == nil && h != "" {
		hosts = append(hosts, strings.ToLower(h))
	}
	for _, h := range opts.AllowedHosts {
		hosts = append(hosts, strings.ToLower(strings.TrimSuffix(h, ".")))
	}
	return hosts
}

// checkHost refuses requests whose Host header names the agent by a name
// it does not have: a web page whose DNS name was rebound to 127.0.0.1
// reaches the agent with its own name as the Host. An IP literal cannot
// be rebound, so it is allowed; any name must be one of hosts.
func checkHost(next http.Handler, hosts []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Host
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		h = strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
		if net.ParseIP(h) == nil && !slices.Contains(hosts, h) {
			http.Error(w, fmt.Sprintf("Host %q is not a name of this agent; add it with --web.allowed-hosts", r.Host), http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// sameSite refuses what a page of another site asks of the agent through
// its visitor's browser — a fetch, an image, a form's POST to
// http://127.0.0.1:9717 — which would otherwise make a browser on the host
// run queries, hold live streams and time the answers for any web page it
// visits. Browsers say where a request comes from in Sec-Fetch-Site
// (older ones only in Origin); following a link to the agent (a
// navigation) is allowed from anywhere, as are clients that are not
// browsers (Prometheus, curl, Grafana's server). Every answer also says
// nosniff: what is JSON or text is never read as a page or a script.
func sameSite(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if crossSite(r) {
			http.Error(w, "refused: a request from another site's page; open the agent's page itself", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return false
	case "":
		// No Sec-Fetch-*: a client other than a browser, or a browser
		// from before them, which sends Origin on cross-origin POSTs and
		// CORS fetches.
		o := r.Header.Get("Origin")
		if o == "" {
			return false
		}
		u, err := url.Parse(o)
		return err != nil || !strings.EqualFold(u.Host, r.Host)
	}
	// "same-site" (another port or subdomain) and "cross-site".
	return r.Header.Get("Sec-Fetch-Mode") != "navigate" || (r.Method != http.MethodGet && r.Method != http.MethodHead)
}

// Handler is the server's handler tree, for tests and benchmarks.
func (s *Server) Handler() http.Handler { return s.srv.Handler }

// Listen binds the address and the control socket, so that start-up fails
// early and tests can use port 0.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.opts.ListenAddress)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.opts.ListenAddress, err)
	}
	ln = netutil.LimitListener(ln, s.opts.MaxConnections)
	if s.opts.ControlSocket != "" {
		cl, err := control.Listen(s.opts.ControlSocket, s.opts.ControlGroup)
		switch {
		case err == nil:
			s.ctlLn = cl
		case s.opts.ControlOptional:
			s.logger.Warn("no session API: the control socket cannot be made", "err", err)
		default:
			ln.Close()
			return err
		}
	}
	s.ln = ln
	return nil
}

// ControlSocket is the control socket's path, "" when there is none.
func (s *Server) ControlSocket() string {
	if s.ctlLn == nil {
		return ""
	}
	return s.ctlLn.Path()
}

// Addr is the bound address, after Listen.
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.opts.ListenAddress
	}
	return s.ln.Addr().String()
}

// Serve serves until Shutdown. It returns nil after a clean shutdown.
func (s *Server) Serve() error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	if s.ctlLn != nil {
		go func() { errc <- s.ctl.Serve(s.ctlLn) }()
	}
	cfg := s.opts.WebConfigFile
	err := web.Serve(s.ln, s.srv, &web.FlagConfig{WebConfigFile: &cfg}, s.logger)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if s.ctlLn != nil {
		// Both stop together: Shutdown closes both.
		s.ctl.Close()
		if cerr := <-errc; cerr != nil && !errors.Is(cerr, http.ErrServerClosed) && err == nil {
			err = cerr
		}
	}
	return err
}

// Shutdown stops the server, waiting for in-flight requests until ctx
// ends, and removes the control socket.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if s.ctlLn != nil {
		err = errors.Join(err, s.ctl.Shutdown(ctx))
		s.ctlLn.Close()
	}
	return err
}

// Close cuts every connection at once, requests in flight included: for
// after a Shutdown whose ctx ended first. A handler blocked writing to a
// client that does not read returns with an error.
func (s *Server) Close() error {
	err := s.srv.Close()
	if s.ctlLn != nil {
		err = errors.Join(err, s.ctl.Close())
	}
	return err
}
