// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package testenv

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Mailpit starts mailpit (an SMTP server whose HTTP API reads the mails
// back) on loopback for the test, accepting any login without TLS, and
// returns its SMTP and API addresses. args are more of mailpit's flags,
// e.g. a TLS certificate. make deps installs it.
func Mailpit(t testing.TB, args ...string) (smtp, api string) {
	t.Helper()
	RequireLong(t, "a mail server")
	bin := RequireGoTool(t, "mailpit")
	smtp, api = FreePort(t), FreePort(t)
	base := []string{"--smtp", smtp, "--listen", api, "--database", filepath.Join(t.TempDir(), "mail.db"),
		"--smtp-auth-accept-any", "--disable-version-check"}
	if !slices.Contains(args, "--smtp-tls-cert") {
		// Without TLS, a login is accepted in the clear (loopback only).
		base = append(base, "--smtp-auth-allow-insecure")
	}
	StartServer(t, "http://"+api+"/readyz", bin, append(base, args...)...)
	// mailpit answers readyz from its web server, which it may start
	// before the SMTP listener: a test's first mail found that port shut.
	WaitListening(t, smtp)
	return smtp, api
}

// Alertmanager starts Debian's prometheus-alertmanager on loopback for
// the test, with one receiver that sends nowhere, and returns its address.
func Alertmanager(t testing.TB) string {
	t.Helper()
	RequireLong(t, "Alertmanager")
	bin := RequireCommand(t, "prometheus-alertmanager")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "am.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: none\nreceivers:\n  - name: none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := FreePort(t)
	StartServer(t, "http://"+addr+"/-/ready", bin, "--config.file", cfg, "--storage.path", dir,
		"--web.listen-address", addr, "--cluster.listen-address", "")
	return addr
}

// Prometheus is Debian's prometheus taking remote write on a loopback
// port, its TSDB in dir (a test's temp dir), so that a test can stop it
// (an outage) and start it again on the same address and data.
type Prometheus struct {
	Addr string
	t    testing.TB
	bin  string
	dir  string
	stop func()
}

// StartPrometheus starts a remote-write receiver and returns it; it stops
// with the test.
func StartPrometheus(t testing.TB) *Prometheus {
	t.Helper()
	RequireLong(t, "Prometheus")
	p := &Prometheus{t: t, bin: RequireCommand(t, "prometheus"), dir: t.TempDir(), Addr: FreePort(t)}
	if err := os.WriteFile(filepath.Join(p.dir, "prometheus.yml"), []byte("global:\n  scrape_interval: 1m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Start()
	return p
}

// Start starts the server again after Stop.
func (p *Prometheus) Start() {
	p.t.Helper()
	p.stop = StartServer(p.t, "http://"+p.Addr+"/-/ready", p.bin,
		"--config.file", filepath.Join(p.dir, "prometheus.yml"),
		"--storage.tsdb.path", filepath.Join(p.dir, "data"),
		"--web.listen-address", p.Addr,
		"--web.enable-remote-write-receiver")
}

// Stop stops the server.
func (p *Prometheus) Stop() { p.stop() }

// WriteURL is the remote-write endpoint.
func (p *Prometheus) WriteURL() string { return "http://" + p.Addr + "/api/v1/write" }

// InfluxDB starts Debian's influxd (1.x) on loopback, its data, meta and
// WAL in a temp dir, reporting and self-monitoring off, with database
// created, and returns its HTTP address.
func InfluxDB(t testing.TB, database string) string {
	t.Helper()
	RequireLong(t, "InfluxDB")
	bin := RequireCommand(t, "influxd")
	dir := t.TempDir()
	addr := FreePort(t)
	cfg := fmt.Sprintf(`reporting-disabled = true
bind-address = %q
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
[http]
  bind-address = %q
  log-enabled = false
[monitor]
  store-enabled = false
`, FreePort(t), filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), addr)
	path := filepath.Join(dir, "influxdb.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// /ping answers 204; a query answers 200 once the server is up.
	StartServer(t, "http://"+addr+"/query?q=SHOW+DATABASES", bin, "-config", path)
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.PostForm("http://"+addr+"/query", url.Values{"q": {"CREATE DATABASE " + database}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CREATE DATABASE %s: %s", database, resp.Status)
	}
	return addr
}
