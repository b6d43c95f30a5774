// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package web serves the agent over HTTP: /metrics for Prometheus, the
// latest sample as JSON, a health check, and whatever API handlers the
// agent mounts (sessions). TLS and basic auth come from exporter-toolkit's
// web configuration file, as in every Prometheus exporter.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/crmon-dev/crmon/internal/agent"
)

// Options configure the server.
type Options struct {
	ListenAddress string // e.g. "127.0.0.1:9717"
	WebConfigFile string // exporter-toolkit web config (TLS, basic auth); "" for plain HTTP
	Version       string
	Logger        *slog.Logger
	// Handlers are extra API handlers by path prefix, e.g. "/api/v1/sessions".
	Handlers map[string]http.Handler
}

// Server is the agent's HTTP server.
type Server struct {
	srv    *http.Server
	opts   Options
	ln     net.Listener
	logger *slog.Logger
}

// DefaultListenAddress is loopback only: a monitoring agent must not expose
// host details to the network unless its operator asks for it.
const DefaultListenAddress = "127.0.0.1:9717"

// New builds the handler tree for a; /metrics serves a's metrics and
// extra's (the Go runtime's, the process', build info).
func New(a *agent.Agent, extra []prometheus.Collector, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	full, rest := prometheus.NewRegistry(), prometheus.NewRegistry()
	full.MustRegister(append([]prometheus.Collector{a}, extra...)...)
	rest.MustRegister(append([]prometheus.Collector{a.Rest()}, extra...)...)
	mux := http.NewServeMux()
	mux.Handle("/metrics", newMetricsHandler(full, rest, a.AppendText, opts.Logger, 10))
	mux.HandleFunc("/api/v1/snapshot", func(w http.ResponseWriter, r *http.Request) {
		s := a.Latest()
		if s == nil {
			http.Error(w, "no sample collected yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		if r.URL.Query().Has("pretty") {
			enc.SetIndent("", "  ")
		}
		_ = enc.Encode(s.Metrics)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
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
	})
	for p, h := range opts.Handlers {
		mux.Handle(p, h)
		mux.Handle(p+"/", h)
	}
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "crmon",
		Description: "Resource monitor for CI hosts and their containers",
		Version:     opts.Version,
		Links: []web.LandingLinks{
			{Address: "/metrics", Text: "Metrics"},
			{Address: "/api/v1/snapshot?pretty", Text: "Snapshot (JSON)"},
			{Address: "/healthz", Text: "Health"},
		},
	})
	if err == nil {
		mux.Handle("/", landing)
	}
	return &Server{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			// Bound what a slow or idle client holds once the agent
			// listens beyond loopback.
			ReadTimeout: 30 * time.Second,
			IdleTimeout: 2 * time.Minute,
		},
		opts:   opts,
		logger: opts.Logger,
	}
}

// Handler is the server's handler tree, for tests and benchmarks.
func (s *Server) Handler() http.Handler { return s.srv.Handler }

// Listen binds the address, so that start-up fails early and tests can use
// port 0.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.opts.ListenAddress)
	if err != nil {
		return err
	}
	s.ln = ln
	return nil
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
	cfg := s.opts.WebConfigFile
	err := web.Serve(s.ln, s.srv, &web.FlagConfig{WebConfigFile: &cfg}, s.logger)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the server, waiting for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
