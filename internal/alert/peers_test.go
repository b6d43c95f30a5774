// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// mailpit is a real SMTP server on loopback whose API reads mails back.
type mailpit struct{ smtp, api string }

func startMailpit(t *testing.T) mailpit {
	smtp, api := testenv.Mailpit(t)
	return mailpit{smtp: smtp, api: api}
}

type mailpitMessage struct {
	ID      string
	Subject string
	To      []struct{ Address string }
}

// messages are the mails mailpit holds, newest first.
func (m mailpit) messages(t *testing.T) []mailpitMessage {
	var r struct{ Messages []mailpitMessage }
	testenv.GetJSON(t, "http://"+m.api+"/api/v1/messages", &r)
	return r.Messages
}

func (m mailpit) text(t *testing.T, id string) string {
	var r struct{ Text string }
	testenv.GetJSON(t, "http://"+m.api+"/api/v1/message/"+id, &r)
	return r.Text
}

// TestEmailThroughMailpit: through a dispatcher, the engine's firing,
// repeat-suppressed and resolved notifications become one mail per
// notification to each recipient, with ADR-006's subject and body.
func TestEmailThroughMailpit(t *testing.T) {
	m := startMailpit(t)
	chs, err := NewChannels([]config.AlertChannel{{
		Name: "mail", Type: config.ChannelEmail, SMTPHost: "127.0.0.1", SMTPPort: testenv.Port(t, m.smtp),
		From: "crmon@example.com", To: []string{"a@example.com", "b@example.com"}, Username: "crmon", Password: "s3cret",
	}}, ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dm := NewDeliveryMetrics()
	d := NewDispatcher(chs, dm, DeliveryOptions{RetryDeadline: 20 * time.Second, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	defer d.Close(0)
	e := New([]Rule{cpuRule()}, Options{Cooldown: time.Hour})
	notify := func(ns []Notification) {
		for _, n := range ns {
			d.Notify(n)
		}
	}
	// 3 s pending, then firing for a minute: one notification inside
	// the cooldown; then resolved.
	notify(feed(e, 0, 60*time.Second, 90))
	notify(feed(e, 60*time.Second, 62*time.Second, 4))

	var msgs []mailpitMessage
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if msgs = m.messages(t); len(msgs) >= 4 {
			break
		}
	}
	time.Sleep(200 * time.Millisecond) // none more must come
	if msgs = m.messages(t); len(msgs) != 4 {
		t.Fatalf("%d mails, want 4 (firing and resolved, to each of 2 recipients): %+v", len(msgs), msgs)
	}
	count := map[string]int{}
	for _, msg := range msgs {
		if len(msg.To) != 1 {
			t.Errorf("mail %q to %v: want one mail per recipient", msg.Subject, msg.To)
			continue
		}
		count[msg.Subject+" → "+msg.To[0].Address]++
		body := m.text(t, msg.ID)
		for _, want := range []string{"Resource Alert: host CPU usage is", "Severity: critical", "Resource: cpu", "Threshold: 50", "Time: 2026-12-06T03:0", "Alert: CPU"} {
			if !strings.Contains(body, want) {
				t.Errorf("mail %q lacks %q:\n%s", msg.Subject, want, body)
			}
		}
		if strings.HasPrefix(msg.Subject, "[RESOLVED]") && !strings.Contains(body, "Resolved: 2026-12-06T03:01:00Z") {
			t.Errorf("resolved mail without its end:\n%s", body)
		}
	}
	for _, to := range []string{"a@example.com", "b@example.com"} {
		for _, s := range []string{"[FIRING] Resource Alert: host CPU usage is 90 % (> 50 %)", "[RESOLVED] Resource Alert: host CPU usage is 4 %, no longer > 50 %"} {
			if count[s+" → "+to] != 1 {
				t.Errorf("%q to %s: %d mails, want 1; got %v", s, to, count[s+" → "+to], count)
			}
		}
	}
}

// TestAlertmanagerReal: a firing alert reaches a real Alertmanager with
// its labels and annotations, and resolves there.
func TestAlertmanagerReal(t *testing.T) {
	addr := testenv.Alertmanager(t)

	chs, err := NewChannels([]config.AlertChannel{{Name: "am", Type: config.ChannelAlertmanager, URL: config.Secret("http://" + addr + "/")}}, ChannelOptions{Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	am := chs[0]
	// Times near now: Alertmanager forgets alerts that ended long ago.
	now := time.Now().UTC().Truncate(time.Second)
	e := New([]Rule{cpuRule()}, Options{Cooldown: time.Hour})
	sample := func(at time.Time, cpu float64) *metrics.ResourceMetrics {
		return &metrics.ResourceMetrics{Timestamp: at, CPU: metrics.CPUMetrics{UsagePercent: cpu}}
	}
	var ns []Notification
	for i := range 4 {
		ns = append(ns, e.Eval(sample(now.Add(time.Duration(i-4)*time.Second), 90))...)
	}
	if len(ns) != 1 {
		t.Fatalf("%d notifications, want 1", len(ns))
	}
	if err := am.Send(context.Background(), ns[0]); err != nil {
		t.Fatal(err)
	}
	type gettable struct {
		Labels      map[string]string
		Annotations map[string]string
		StartsAt    time.Time
		EndsAt      time.Time
		Status      struct{ State string }
	}
	var got []gettable
	testenv.GetJSON(t, "http://"+addr+"/api/v2/alerts", &got)
	if len(got) != 1 {
		t.Fatalf("Alertmanager holds %d alerts, want 1: %+v", len(got), got)
	}
	g := got[0]
	if g.Labels["alertname"] != "CPU" || g.Labels["severity"] != "critical" || g.Labels["team"] != "ci" || g.Labels["resource"] != "cpu" ||
		g.Annotations["summary"] != "host CPU usage is 90 % (> 50 %)" || g.Annotations["threshold"] != "50" ||
		!g.StartsAt.Equal(now.Add(-time.Second)) || !g.EndsAt.After(now) || g.Status.State != "active" {
		t.Errorf("Alertmanager's alert: %+v", g)
	}

	ns = e.Eval(sample(now, 10))
	if len(ns) != 1 || ns[0].Alert.State != StateResolved {
		t.Fatalf("want a resolved notification: %+v", ns)
	}
	if err := am.Send(context.Background(), ns[0]); err != nil {
		t.Fatal(err)
	}
	// Resolved: Alertmanager no longer lists it as active.
	var active []gettable
	testenv.GetJSON(t, "http://"+addr+"/api/v2/alerts?active=true&silenced=false&inhibited=false&unprocessed=false", &active)
	for _, a := range active {
		if a.Labels["alertname"] == "CPU" && a.EndsAt.After(now) {
			t.Errorf("still active after resolving: %+v", a)
		}
	}
	testenv.GetJSON(t, "http://"+addr+"/api/v2/alerts", &got)
	for _, a := range got {
		if a.Labels["alertname"] == "CPU" && !a.EndsAt.Equal(now) {
			t.Errorf("endsAt %v after resolving at %v", a.EndsAt, now)
		}
	}
}
