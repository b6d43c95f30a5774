// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// receiver is a local HTTP endpoint that records what it is sent.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	at     []time.Time
	fail   int // answer 500 to this many requests first
	header http.Header
	// delay is how long each answer takes (a slow receiver); a request
	// given up by its sender before is not recorded.
	delay time.Duration
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		r.mu.Lock()
		delay := r.delay
		r.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-req.Context().Done():
				return
			}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.header = req.Header.Clone()
		if r.fail > 0 {
			r.fail--
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		r.bodies = append(r.bodies, b)
		r.at = append(r.at, time.Now())
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() ([][]byte, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...), append([]time.Time(nil), r.at...)
}

// strict decodes b into v, refusing fields v does not have.
func strict(t *testing.T, b []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}

func firingAndResolved() (Notification, Notification) {
	a := Alert{
		Name: "CPU", Severity: "critical", Resource: "cpu", Message: "host CPU usage is 91.5 % (> 50 %)",
		Value: 91.5, Threshold: 50, Timestamp: t0.Add(3 * time.Second), State: StateFiring,
		Labels:   map[string]string{"alertname": "CPU", "severity": "critical", "resource": "cpu"},
		ActiveAt: t0, StartsAt: t0.Add(3 * time.Second),
	}
	r := a
	r.State, r.EndsAt, r.Value, r.Timestamp = StateResolved, t0.Add(20*time.Second), 3, t0.Add(20*time.Second)
	return Notification{Alert: a}, Notification{Alert: r}
}

func channel(t *testing.T, c config.AlertChannel) Channel {
	t.Helper()
	chs, err := NewChannels([]config.AlertChannel{c}, ChannelOptions{Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return chs[0]
}

// TestWebhookShape: the webhook channel sends Alertmanager's webhook
// payload, version 4, with the documented fields, firing then resolved.
func TestWebhookShape(t *testing.T) {
	r := newReceiver(t)
	c := channel(t, config.AlertChannel{Name: "hook", Type: config.ChannelWebhook, URL: config.Secret(r.URL + "/hook?token=s3cret"),
		Headers: map[string]config.Secret{"Authorization": "Bearer tok"}})
	firing, resolved := firingAndResolved()
	for _, n := range []Notification{firing, resolved} {
		if err := c.Send(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
	if h := r.header.Get("Authorization"); h != "Bearer tok" {
		t.Errorf("Authorization header %q", h)
	}
	bodies, _ := r.got()
	if len(bodies) != 2 {
		t.Fatalf("%d requests, want 2", len(bodies))
	}
	for i, want := range []string{"firing", "resolved"} {
		var m WebhookMessage
		strict(t, bodies[i], &m)
		if m.Version != "4" || m.Status != want || m.Receiver != "hook" || m.GroupLabels["alertname"] != "CPU" ||
			m.GroupKey != `{}:{alertname="CPU"}` || len(m.Alerts) != 1 {
			t.Errorf("message %d: %+v", i, m)
			continue
		}
		a := m.Alerts[0]
		if a.Status != want || a.Labels["severity"] != "critical" || a.Annotations["summary"] == "" ||
			a.Annotations["value"] == "" || !a.StartsAt.Equal(t0.Add(3*time.Second)) || len(a.Fingerprint) != 16 {
			t.Errorf("alert %d: %+v", i, a)
		}
		if want == "firing" && !a.EndsAt.IsZero() || want == "resolved" && !a.EndsAt.Equal(t0.Add(20*time.Second)) {
			t.Errorf("alert %d endsAt %v", i, a.EndsAt)
		}
	}
}

// TestSlackShape: ADR-006's attachment, coloured by severity, and a
// resolved message in green.
func TestSlackShape(t *testing.T) {
	r := newReceiver(t)
	c := channel(t, config.AlertChannel{Name: "slack", Type: config.ChannelSlack, WebhookURL: config.Secret(r.URL), Channel: "#ci"})
	firing, resolved := firingAndResolved()
	warn := firing
	warn.Alert.Severity = "warning"
	for _, n := range []Notification{firing, warn, resolved} {
		if err := c.Send(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
	bodies, _ := r.got()
	want := []struct{ text, color, value, time string }{
		{"🚨 Resource Alert: host CPU usage is 91.5 % (> 50 %)", "danger", "91.5", "2026-12-06T03:00:03Z"},
		{"🚨 Resource Alert: host CPU usage is 91.5 % (> 50 %)", "warning", "91.5", "2026-12-06T03:00:03Z"},
		{"✅ Resolved: host CPU usage is 91.5 % (> 50 %)", "good", "3", "2026-12-06T03:00:20Z"},
	}
	for i, w := range want {
		var m SlackMessage
		strict(t, bodies[i], &m)
		if m.Text != w.text || m.Channel != "#ci" || len(m.Attachments) != 1 || m.Attachments[0].Color != w.color {
			t.Errorf("message %d: %+v", i, m)
			continue
		}
		f := map[string]string{}
		for _, x := range m.Attachments[0].Fields {
			f[x.Title] = x.Value
		}
		if f["Resource"] != "cpu" || f["Value"] != w.value || f["Threshold"] != "50" || f["Time"] != w.time {
			t.Errorf("message %d fields %v", i, f)
		}
	}
}

// TestHTTPErrorsHideTheURL: a webhook URL often is the secret; no error
// may show it, and a 4xx is not retried.
func TestHTTPErrorsHideTheURL(t *testing.T) {
	r := newReceiver(t)
	firing, _ := firingAndResolved()
	refused := "http://" + testenv.FreePort(t) + "/services/T000/B000/s3cret"
	for _, u := range []string{refused, r.URL + "/s3cret"} {
		c := channel(t, config.AlertChannel{Name: "s", Type: config.ChannelSlack, WebhookURL: config.Secret(u)})
		r.mu.Lock()
		r.fail = 1
		r.mu.Unlock()
		err := c.Send(context.Background(), firing)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error %v: want one that does not show the URL", err)
		}
	}
	bad := firing
	bad.Alert.Labels = nil
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusUnauthorized) }))
	defer srv.Close()
	c := channel(t, config.AlertChannel{Name: "h", Type: config.ChannelWebhook, URL: config.Secret(srv.URL)})
	var p permanent
	if err := c.Send(context.Background(), bad); err == nil || !asPermanent(err, &p) {
		t.Errorf("401: %v, want a permanent error", err)
	}
}

func asPermanent(err error, p *permanent) bool { return errors.As(err, p) }
