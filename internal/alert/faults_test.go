// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// busyHost is a collector whose host CPU is always at 90 %.
type busyHost struct{}

func (busyHost) Name() string                            { return "busy" }
func (busyHost) Update(context.Context, time.Time) error { return nil }
func (busyHost) Describe(chan<- *prometheus.Desc)        {}
func (busyHost) Collect(chan<- prometheus.Metric)        {}
func (busyHost) Fill(m *metrics.ResourceMetrics)         { m.CPU.UsagePercent = 90 }
func (busyHost) AppendText(b []byte) []byte              { return b }

var _ collect.Collector = busyHost{}

// TestFaultyChannelsDelayNothing runs the agent, the engine and four
// channels: one that answers 500 to its first attempts, one that never
// answers, one that refuses connections, and a good one. The good channel
// gets every notification at once; the 500 one gets every one in the end
// (retried, none lost inside its queue); the dead ones fail after their
// retries, counted; and the ticks keep their schedule.
func TestFaultyChannelsDelayNothing(t *testing.T) {
	good, flaky := newReceiver(t), newReceiver(t)
	flaky.fail = 3
	hang := make(chan struct{})
	never := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer never.Close()
	defer close(hang)
	refused := "http://" + testenv.FreePort(t) + "/hook"

	cfg := []config.AlertChannel{
		{Name: "good", Type: config.ChannelWebhook, URL: config.Secret(good.URL)},
		{Name: "flaky", Type: config.ChannelWebhook, URL: config.Secret(flaky.URL)},
		{Name: "never", Type: config.ChannelSlack, WebhookURL: config.Secret(never.URL)},
		{Name: "refused", Type: config.ChannelAlertmanager, URL: config.Secret(refused)},
	}
	chs, err := NewChannels(cfg, ChannelOptions{Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dm := NewDeliveryMetrics()
	d := NewDispatcher(chs, dm, DeliveryOptions{
		// An attempt on the channel that never answers lasts 5 s: were
		// the channels coupled, the good one would be that late.
		QueueSize: 16, AttemptTimeout: 5 * time.Second, RetryDeadline: 12 * time.Second,
		Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	defer d.Close(0)

	// A firing alert notified every tick (no cooldown), so the channels
	// get a notification per tick.
	const interval = 20 * time.Millisecond
	const want = 10
	rule := Rule{Name: "CPU", Resource: config.ResourceCPU, Condition: ">", Threshold: 50, Severity: "critical"}
	svc := NewService(New([]Rule{rule}, Options{Cooldown: 0}), d)
	a := agent.New([]collect.Collector{busyHost{}}, interval, nil)
	reader := a.Subscribe("reader", 1000)
	sub := a.Subscribe("alert", 16)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error)
	go func() { ran <- a.Run(ctx) }()
	done := make(chan struct{})
	go func() { svc.Run(sub); close(done) }()

	var ticks []time.Time
	for len(ticks) < want {
		s := <-reader.C()
		ticks = append(ticks, s.Time)
	}
	cancel()
	<-ran
	<-done

	// Ticks on schedule: whole intervals apart, bounded by what a busy
	// host's scheduler allows; a tick that waited for a channel would
	// wait 200 ms per attempt at least.
	var worst time.Duration
	for i := 1; i < len(ticks); i++ {
		worst = max(worst, ticks[i].Sub(ticks[i-1]))
	}
	t.Logf("largest gap between ticks %v at %v", worst, interval)
	if worst > 2*time.Second {
		t.Errorf("largest gap between ticks %v at a %v interval", worst, interval)
	}

	// The good channel has every notification, each soon after its tick.
	n := 0
	deadline := time.Now().Add(10 * time.Second)
	for n < len(ticks) && time.Now().Before(deadline) {
		b, _ := good.got()
		n = len(b)
		time.Sleep(10 * time.Millisecond)
	}
	_, at := good.got()
	if len(at) < len(ticks) {
		t.Fatalf("good channel got %d notifications for %d ticks", len(at), len(ticks))
	}
	// Each tick notifies once (no cooldown), and a channel delivers in
	// order: the i-th delivery is the i-th tick's.
	var late time.Duration
	for i := range ticks {
		late = max(late, at[i].Sub(ticks[i]))
	}
	t.Logf("good channel: latest delivery %v after its tick", late)
	if late >= 2500*time.Millisecond {
		t.Errorf("good channel delivered %v after the tick, while another channel hung for 5 s per attempt", late)
	}
	// The flaky channel: every notification in the end, after retries.
	deadline = time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := flaky.got(); len(b) >= len(at) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b, _ := flaky.got(); len(b) != len(at) {
		t.Errorf("flaky channel delivered %d of %d", len(b), len(at))
	}
	// The dead ones are retried, and never succeed.
	for _, name := range []string{"never", "refused"} {
		var fails float64
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if fails = testutil.ToFloat64(dm.attemptsFail.WithLabelValues(name)); fails >= 2 {
				break
			}
		}
		if fails < 2 {
			t.Errorf("%s: %v failed attempts, want retries", name, fails)
		}
		sent := testutil.ToFloat64(dm.notifications.WithLabelValues(name, "sent"))
		if sent != 0 {
			t.Errorf("%s: %v sent", name, sent)
		}
		// Inside the queue's bound nothing is dropped: each waits its turn.
		if d := testutil.ToFloat64(dm.notifications.WithLabelValues(name, "dropped")); d != 0 {
			t.Errorf("%s: %v dropped with %d notifications and a queue of 16", name, d, len(at))
		}
	}
	if v := testutil.ToFloat64(dm.notifications.WithLabelValues("good", "sent")); int(v) != len(at) {
		t.Errorf("good: crmon_alert_notifications_total{result=sent} = %v, want %d", v, len(at))
	}
	if v := testutil.ToFloat64(dm.attemptsFail.WithLabelValues("flaky")); v != 3 {
		t.Errorf("flaky: %v failed attempts, want the 3 it answered 500 to", v)
	}
	if err := testutil.CollectAndCompare(dm, strings.NewReader(fmt.Sprintf(`
# HELP crmon_alert_notifications_total Alert notifications by channel and result: sent, failed (every attempt up to the retry deadline failed, or the channel refused it) or dropped (its queue was full, or it was still queued when the grace period ran out at a stop or after its channel was removed).
# TYPE crmon_alert_notifications_total counter
crmon_alert_notifications_total{channel="flaky",result="dropped"} 0
crmon_alert_notifications_total{channel="flaky",result="failed"} 0
crmon_alert_notifications_total{channel="flaky",result="sent"} %d
crmon_alert_notifications_total{channel="good",result="dropped"} 0
crmon_alert_notifications_total{channel="good",result="failed"} 0
crmon_alert_notifications_total{channel="good",result="sent"} %d
`, len(at), len(at))), "crmon_alert_notifications_total"); err != nil {
		// The dead channels' figures depend on timing; only the two
		// that must deliver are compared.
		if !strings.Contains(err.Error(), "never") && !strings.Contains(err.Error(), "refused") {
			t.Error(err)
		}
	}
}

// TestQueueBound: beyond its queue, a stuck channel drops and counts.
func TestQueueBound(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	stuck := &funcChannel{name: "stuck", send: func(ctx context.Context, _ Notification) error {
		select {
		case <-hang:
		case <-ctx.Done():
		}
		return ctx.Err()
	}}
	dm := NewDeliveryMetrics()
	d := NewDispatcher([]Channel{stuck}, dm, DeliveryOptions{QueueSize: 3, AttemptTimeout: time.Hour, RetryDeadline: time.Hour})
	defer d.Close(0)
	firing, _ := firingAndResolved()
	start := time.Now()
	for range 10 {
		d.Notify(firing)
	}
	t.Logf("10 notifications queued in %v", time.Since(start))
	// One is being sent, three wait, the rest were dropped; the first
	// may not have been taken yet, so 6 or 7.
	dropped := testutil.ToFloat64(dm.notifications.WithLabelValues("stuck", "dropped"))
	if dropped != 6 && dropped != 7 {
		t.Errorf("dropped %v, want 6 or 7", dropped)
	}
	// Once the first is taken: one in flight, the rest queued or dropped.
	var q float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if q = testutil.ToFloat64(dm.queueLength.WithLabelValues("stuck")); q+dropped == 9 {
			break
		}
	}
	if q+dropped != 9 {
		t.Errorf("queue length %v with %v dropped of 10, one in flight", q, dropped)
	}
}

type funcChannel struct {
	name string
	send func(context.Context, Notification) error
}

func (f *funcChannel) Name() string                                   { return f.name }
func (f *funcChannel) Type() string                                   { return config.ChannelWebhook }
func (f *funcChannel) Send(ctx context.Context, n Notification) error { return f.send(ctx, n) }
