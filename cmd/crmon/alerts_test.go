// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/alert"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// thresholdsOff turns off the built-in threshold rules, so that a test's
// agent alerts only on the rules the test gives it.
const thresholdsOff = `[cleanroom.monitoring.thresholds]
cpu_usage_percent = 0
memory_usage_percent = 0
disk_usage_percent = 0
network_bandwidth_percent = 0
container_count = 0
process_count = 0
`

// hookReceiver records the webhook payloads it is sent.
type hookReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	msgs []alert.WebhookMessage
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m alert.WebhookMessage
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.msgs = append(h.msgs, m)
		h.mu.Unlock()
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookReceiver) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

// TestAgentAlerts runs the agent on the fixture trees with a rule that
// holds at once and two channels, a webhook and a dead Slack: the
// webhook gets one firing notification, /api/v1/alerts and `crmon alerts
// list` show the alert, a reload and a restart keep its state without
// notifying again inside the cooldown, and `crmon alerts test` reports
// each channel, failing for the dead one.
func TestAgentAlerts(t *testing.T) {
	root, err := filepath.Abs("../../testdata")
	if err != nil {
		t.Fatal(err)
	}
	hook := newHookReceiver(t)
	dead := "http://" + testenv.FreePort(t) + "/services/T/B/s3cret"
	data := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "crmon.toml")
	body := fmt.Sprintf(`[cleanroom.monitoring]
collection_interval = "200ms"

`+thresholdsOff+`
[cleanroom.monitoring.store]
path = %q

[cleanroom.monitoring.alerting]
cooldown_period = "1h"

[[cleanroom.monitoring.alerting.alert_channels]]
name = "hook"
type = "webhook"
url = %q

[[cleanroom.monitoring.alerting.alert_channels]]
name = "dead"
type = "slack"
webhook_url = %q

[[cleanroom.monitoring.alerting.alert_rules]]
name = "Procs"
resource = "processes"
threshold = 0
severity = "info"
labels = { team = "ci" }
`, data, hook.URL, dead)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfg,
		"--path.procfs", filepath.Join(root, "proc"), "--path.sysfs", filepath.Join(root, "sys"),
		"--path.rootfs", filepath.Join(root, "rootfs"), "--ebpf", "disabled", "--collector.containers=false"}
	p := startAgent(t, args...)

	waitFor(t, func() bool { return hook.count() >= 1 })
	hook.mu.Lock()
	m := hook.msgs[0]
	hook.mu.Unlock()
	if m.Version != "4" || m.Status != "firing" || m.Receiver != "hook" || len(m.Alerts) != 1 ||
		m.Alerts[0].Labels["alertname"] != "Procs" || m.Alerts[0].Labels["team"] != "ci" {
		t.Errorf("webhook payload %+v", m)
	}

	var api alert.APIResponse
	if err := json.Unmarshal([]byte(p.get(t, "/api/v1/alerts")), &api); err != nil {
		t.Fatal(err)
	}
	if api.Status != "success" || len(api.Data.Alerts) != 1 || api.Data.Alerts[0].State != alert.StateFiring {
		t.Fatalf("/api/v1/alerts: %+v", api)
	}
	activeAt := api.Data.Alerts[0].ActiveAt
	out, err := exec.Command(crmonBinary(t), "alerts", "list", "--web.listen-address", p.addr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Procs") || !strings.Contains(string(out), "firing") || !strings.Contains(string(out), "team=ci") {
		t.Errorf("crmon alerts list: %v\n%s", err, out)
	}
	if strings.Contains(p.logs(), "s3cret") {
		t.Errorf("the Slack URL's secret is in the log:\n%s", p.logs())
	}
	if _, err := os.Stat(filepath.Join(data, "alerts.json")); err != nil {
		t.Errorf("no state file: %v", err)
	}

	// A reload with the same rules keeps the alert and its cooldown.
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(p.logs(), "config reloaded") })
	time.Sleep(time.Second)
	if err := json.Unmarshal([]byte(p.get(t, "/api/v1/alerts")), &api); err != nil || len(api.Data.Alerts) != 1 || !api.Data.Alerts[0].ActiveAt.Equal(activeAt) {
		t.Errorf("after a reload: %+v (%v), want the alert active since %v", api, err, activeAt)
	}

	// A restart too.
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	p = startAgent(t, args...)
	time.Sleep(time.Second)
	if err := json.Unmarshal([]byte(p.get(t, "/api/v1/alerts")), &api); err != nil || len(api.Data.Alerts) != 1 || !api.Data.Alerts[0].ActiveAt.Equal(activeAt) {
		t.Errorf("after a restart: %+v (%v), want the alert active since %v", api, err, activeAt)
	}
	if n := hook.count(); n != 1 {
		t.Errorf("%d webhook notifications after a reload and a restart inside the cooldown, want 1", n)
	}

	// alerts test: one line per channel, exit 1 for the dead one.
	cmd := exec.Command(crmonBinary(t), "alerts", "test", "--config", cfg, "--timeout", "2s")
	out, err = cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("crmon alerts test with a dead channel: %v, want exit 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "hook") || !strings.Contains(string(out), "sent") ||
		!strings.Contains(string(out), "dead") || !strings.Contains(string(out), "failed") || strings.Contains(string(out), "s3cret") {
		t.Errorf("crmon alerts test:\n%s", out)
	}
	out, err = exec.Command(crmonBinary(t), "alerts", "test", "--config", cfg, "--channel", "hook").CombinedOutput()
	if err != nil || strings.Contains(string(out), "dead") {
		t.Errorf("crmon alerts test --channel hook: %v\n%s", err, out)
	}
	out, err = exec.Command(crmonBinary(t), "alerts", "test", "--config", cfg, "--channel", "hoook").CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), `no such channel; the channels are "hook", "dead"`) {
		t.Errorf("crmon alerts test --channel hoook: %v, want exit 2 naming the channels\n%s", err, out)
	}
}

// TestConfigCheckSMTPHost: config check says, at its line, that an SMTP
// host does not resolve (.invalid never does, RFC 6761), and accepts one
// that does.
func TestConfigCheckSMTPHost(t *testing.T) {
	for host, want := range map[string]string{
		// "it does not resolve", or where no resolver answers, "the
		// lookup did not answer in time": an error at the line either way.
		"smtp.nowhere.invalid": `:4: smtp_host = "smtp.nowhere.invalid": `,
		"localhost":            "",
	} {
		f := filepath.Join(t.TempDir(), "c.toml")
		body := fmt.Sprintf("[[cleanroom.monitoring.alerting.alert_channels]]\nname = \"mail\"\ntype = \"email\"\nsmtp_host = %q\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n", host)
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(crmonBinary(t), "config", "check", f).CombinedOutput()
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v\n%s", host, err, out)
			}
			continue
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), f+want) {
			t.Errorf("%s: %v, want exit 1 and %q:\n%s", host, err, want, out)
		}
	}
}

// TestSnapshotAlerts: crmon snapshot evaluates the config's rules on its
// sample and shows what holds, in the table and the JSON; the agent's
// /api/v1/snapshot carries its active alerts.
func TestSnapshotAlerts(t *testing.T) {
	root, err := filepath.Abs("../../testdata")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "crmon.toml")
	body := `[cleanroom.monitoring.thresholds]
cpu_usage_percent = 0
memory_usage_percent = 0
disk_usage_percent = 0
network_bandwidth_percent = 0
container_count = 0
process_count = 1

[[cleanroom.monitoring.alerting.alert_rules]]
name = "ProcsFor"
resource = "processes"
threshold = 0
for = "1h"
`
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	fixture := []string{"--config", cfg, "--path.procfs", filepath.Join(root, "proc"), "--path.sysfs", filepath.Join(root, "sys"),
		"--path.rootfs", filepath.Join(root, "rootfs"), "--collector.containers=false"}
	out, err := exec.Command(crmonBinary(t), append([]string{"snapshot", "--json", "--window", "100ms"}, fixture...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Alerts []struct {
			Name, State, Message string
			Labels               map[string]string
			StartsAt             *time.Time `json:"starts_at"`
		}
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	state := map[string]string{}
	for _, a := range m.Alerts {
		state[a.Name] = a.State
		if a.State == "firing" && a.StartsAt == nil || a.State == "pending" && a.StartsAt != nil || a.Message == "" {
			t.Errorf("alert %+v", a)
		}
	}
	if len(m.Alerts) != 2 || state["TooManyProcesses"] != "firing" || state["ProcsFor"] != "pending" {
		t.Errorf("snapshot alerts %+v, want TooManyProcesses firing and ProcsFor pending", m.Alerts)
	}
	table, err := exec.Command(crmonBinary(t), append([]string{"snapshot", "--window", "100ms"}, fixture...)...).Output()
	if err != nil || !strings.Contains(string(table), "ALERTS  2 active") || !strings.Contains(string(table), "TooManyProcesses") {
		t.Errorf("snapshot table: %v\n%s", err, table)
	}

	p := startAgent(t, append(fixture, "--ebpf", "disabled")...)
	waitFor(t, func() bool { return strings.Contains(p.get(t, "/api/v1/snapshot"), "TooManyProcesses") })
}
