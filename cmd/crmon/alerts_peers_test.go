// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/testenv"
)

type mail struct {
	Subject string
	Created time.Time
}

func mails(t *testing.T, api string) []mail {
	var r struct{ Messages []mail }
	testenv.GetJSON(t, "http://"+api+"/api/v1/messages", &r)
	return r.Messages
}

type amAlert struct {
	Labels   map[string]string
	StartsAt time.Time
	EndsAt   time.Time
	Status   struct{ State string }
}

// TestAgentAlertsAllChannels runs the agent with a rule that holds from
// the start, `for` 1 s, a cooldown of a minute and the four channel
// types: mail to a real SMTP server (mailpit), a real Alertmanager, a
// webhook, and a Slack endpoint that never answers. Nothing is sent
// before `for`; the mail and Alertmanager get the alert in time although
// Slack hangs; exactly one mail comes inside the cooldown; and when the
// rule changes (a reload) the alert is resolved everywhere.
func TestAgentAlertsAllChannels(t *testing.T) {
	smtp, mailAPI := testenv.Mailpit(t)
	am := testenv.Alertmanager(t)
	hook := newHookReceiver(t)
	hang := make(chan struct{})
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer slack.Close()
	defer close(hang)

	root, err := filepath.Abs("../../testdata")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "crmon.toml")
	write := func(threshold int) {
		body := fmt.Sprintf(`[cleanroom.monitoring]
collection_interval = "200ms"

`+thresholdsOff+`
[cleanroom.monitoring.store]
path = %q

[cleanroom.monitoring.alerting]
cooldown_period = "1m"

[[cleanroom.monitoring.alerting.alert_channels]]
name = "mail"
type = "email"
smtp_host = "127.0.0.1"
smtp_port = %d
from = "crmon@example.com"
to = ["oncall@example.com"]

[[cleanroom.monitoring.alerting.alert_channels]]
name = "am"
type = "alertmanager"
url = "http://%s"

[[cleanroom.monitoring.alerting.alert_channels]]
name = "hook"
type = "webhook"
url = %q

[[cleanroom.monitoring.alerting.alert_channels]]
name = "slack"
type = "slack"
webhook_url = %q

[[cleanroom.monitoring.alerting.alert_rules]]
name = "Procs"
resource = "processes"
threshold = %d
for = "1s"
severity = "critical"
`, t.TempDir(), testenv.Port(t, smtp), am, hook.URL, slack.URL, threshold)
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	start := time.Now()
	p := startAgent(t, "--config", cfg, "--path.procfs", filepath.Join(root, "proc"), "--path.sysfs", filepath.Join(root, "sys"),
		"--path.rootfs", filepath.Join(root, "rootfs"), "--ebpf", "disabled", "--collector.containers=false")

	waitFor(t, func() bool { return len(mails(t, mailAPI)) >= 1 })
	got := mails(t, mailAPI)
	if d := got[0].Created.Sub(start); d < time.Second {
		t.Errorf("mail %v after start, before for = 1s", d)
	}
	t.Logf("firing mail %v after start (for = 1s, interval 200ms, Slack hanging)", got[0].Created.Sub(start).Round(time.Millisecond))
	if !strings.HasPrefix(got[0].Subject, "[FIRING] Resource Alert: processes is ") {
		t.Errorf("subject %q", got[0].Subject)
	}
	var alerts []amAlert
	waitFor(t, func() bool {
		testenv.GetJSON(t, "http://"+am+"/api/v2/alerts", &alerts)
		return len(alerts) == 1
	})
	if a := alerts[0]; a.Labels["alertname"] != "Procs" || a.Labels["severity"] != "critical" || a.Status.State != "active" || !a.EndsAt.After(time.Now()) {
		t.Errorf("Alertmanager: %+v", a)
	}
	if hook.count() != 1 {
		t.Errorf("webhook got %d notifications, want 1", hook.count())
	}

	// Inside the cooldown: no second mail, however many ticks.
	time.Sleep(2 * time.Second)
	if n := len(mails(t, mailAPI)); n != 1 {
		t.Errorf("%d mails inside the cooldown, want 1", n)
	}

	// The rule changes: its firing alert is resolved everywhere.
	write(1 << 30)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(mails(t, mailAPI)) >= 2 })
	if s := mails(t, mailAPI)[0].Subject; !strings.HasPrefix(s, "[RESOLVED] Resource Alert: processes is ") {
		t.Errorf("second mail %q, want the resolved one", s)
	}
	waitFor(t, func() bool {
		testenv.GetJSON(t, "http://"+am+"/api/v2/alerts", &alerts)
		return len(alerts) == 0 || !alerts[0].EndsAt.After(time.Now())
	})
	waitFor(t, func() bool { return hook.count() == 2 })
	if strings.Contains(p.logs(), slack.URL) {
		t.Errorf("the Slack URL is in the log:\n%s", p.logs())
	}
}
