// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package web

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/live"
)

// serve runs a Server for a ticked agent with opts on 127.0.0.1:0 and
// returns its base URL.
func serve(t *testing.T, opts Options) (string, *Server) {
	t.Helper()
	a := agent.New([]collect.Collector{
		plain{prometheus.NewDesc("test_plain", "Through client_golang.", []string{"k"}, nil)},
	}, time.Second, slog.New(slog.DiscardHandler))
	a.Tick(context.Background())
	opts.ListenAddress = "127.0.0.1:0"
	// The live page and its stream, as the agent serves them.
	opts.Page = live.Page()
	ro := live.NewHub(a, live.Options{}).Routes()
	maps.Copy(ro, opts.ReadOnly)
	opts.ReadOnly = ro
	s := New(a, nil, opts)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return "http://" + s.Addr(), s
}

func get(t *testing.T, method, url, host string, auth bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if host != "" {
		req.Host = host
	}
	if auth {
		req.SetBasicAuth("ci", "s3cret")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// TestHostChecked checks that a request reaching the agent under a name
// that is not its own — a web page whose DNS name was rebound to
// 127.0.0.1 — is refused, while its own names and addresses are served.
func TestHostChecked(t *testing.T) {
	base, s := serve(t, Options{AllowedHosts: []string{"crmon.example.org"}})
	_, port, _ := strings.Cut(s.Addr(), ":")
	host, _ := os.Hostname()
	for _, tc := range []struct {
		host string
		code int
	}{
		{"attacker.example:" + port, http.StatusMisdirectedRequest},
		{"attacker.example", http.StatusMisdirectedRequest},
		{"localhost.attacker.example", http.StatusMisdirectedRequest},
		{"127.0.0.1.nip.io:" + port, http.StatusMisdirectedRequest},
		{"localhost:" + port, http.StatusOK},
		{"LOCALHOST.:" + port, http.StatusOK},
		{"127.0.0.1:" + port, http.StatusOK},
		{"[::1]:" + port, http.StatusOK},
		{"crmon.example.org:" + port, http.StatusOK},
		{host + ":" + port, http.StatusOK},
	} {
		for _, p := range []string{"/metrics", "/api/v1/snapshot", "/healthz", "/", "/ui/app.js", "/api/v1/live/container?key=x"} {
			code, body := get(t, "GET", base+p, tc.host, false)
			if p == "/api/v1/live/container?key=x" && tc.code == http.StatusOK {
				tc.code = http.StatusNotFound // served, and it has no such row
			}
			if code != tc.code {
				t.Errorf("GET %s with Host %q: HTTP %d, want %d: %.100s", p, tc.host, code, tc.code, body)
			}
		}
	}
}

// TestTCPReadOnly checks that the TCP listener serves no session API,
// whatever handlers the control socket has.
func TestTCPReadOnly(t *testing.T) {
	called := false
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true })
	base, _ := serve(t, Options{Handlers: map[string]http.Handler{"/api/v1/sessions": h}})
	for _, m := range []string{"GET", "POST", "DELETE"} {
		for _, p := range []string{"/api/v1/sessions", "/api/v1/sessions/x", "/api/v1/sessions/x/stop"} {
			if code, _ := get(t, m, base+p, "", false); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s over TCP: HTTP %d, want 404", m, p, code)
			}
		}
	}
	if called {
		t.Error("the session handler was reached over TCP")
	}
}

// TestWebConfigEveryEndpoint checks that with a web config, every endpoint
// of the TCP listener requires its credentials.
func TestWebConfigEveryEndpoint(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "web.yml")
	// bcrypt of "s3cret", cost 4.
	if err := os.WriteFile(cfg, []byte("basic_auth_users:\n  ci: $2a$04$ibcrWRKmxDWdGpkrK/hVq.LJSsf6UjhkXjPoYmYHMNQ1XLrRHG2.6\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base, _ := serve(t, Options{WebConfigFile: cfg})
	for _, p := range []string{"/metrics", "/api/v1/snapshot", "/healthz", "/", "/ui/app.js", "/ui/app.css", "/api/v1/live/events", "/api/v1/live/container?key=x"} {
		if code, _ := get(t, "GET", base+p, "", false); code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: HTTP %d, want 401", p, code)
		}
		if strings.HasPrefix(p, "/api/v1/live/") {
			continue // a stream, and a row the hub does not have
		}
		if code, body := get(t, "GET", base+p, "", true); code != http.StatusOK {
			t.Errorf("GET %s with credentials: HTTP %d: %.100s", p, code, body)
		}
	}
}
