// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crmon-dev/crmon/internal/config"
)

// slowReceiver is a webhook receiver that takes delay to answer.
func slowReceiver(t *testing.T, delay time.Duration) *receiver {
	r := newReceiver(t)
	r.delay = delay
	return r
}

func (r *receiver) count() int {
	b, _ := r.got()
	return len(b)
}

// waitFor polls cond for up to 30 s (a loaded machine is slow, never
// this slow).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func webhooks(t *testing.T, urls ...string) []Channel {
	t.Helper()
	var cfg []config.AlertChannel
	for i := 0; i < len(urls); i += 2 {
		cfg = append(cfg, config.AlertChannel{Name: urls[i], Type: config.ChannelWebhook, URL: config.Secret(urls[i+1])})
	}
	chs, err := NewChannels(cfg, ChannelOptions{Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return chs
}

// TestReloadKeepsQueues reloads while three slow webhook receivers still
// have notifications queued: the unchanged channel goes on without a loss
// or a repeat, the changed one (a new URL) delivers what it held to its
// new receiver, and the removed one delivers its queue within the grace
// period.
func TestReloadKeepsQueues(t *testing.T) {
	keep, oldURL, newURL, gone := slowReceiver(t, 100*time.Millisecond), slowReceiver(t, 100*time.Millisecond),
		slowReceiver(t, 20*time.Millisecond), slowReceiver(t, 50*time.Millisecond)
	dm := NewDeliveryMetrics()
	d := NewDispatcher(webhooks(t, "keep", keep.URL, "moved", oldURL.URL, "removed", gone.URL), dm,
		DeliveryOptions{QueueSize: 32, Backoff: 10 * time.Millisecond})
	defer d.Close(0)
	const n = 10
	firing, _ := firingAndResolved()
	for range n {
		d.Notify(firing)
	}
	// Let each channel start a delivery, so that one is under way.
	time.Sleep(30 * time.Millisecond)
	d.Reload(webhooks(t, "keep", keep.URL, "moved", newURL.URL), 10*time.Second)

	waitFor(t, "the unchanged channel's queue", func() bool { return keep.count() >= n })
	waitFor(t, "the changed channel's queue at its new URL", func() bool { return oldURL.count()+newURL.count() >= n })
	waitFor(t, "the removed channel's queue", func() bool { return gone.count() >= n })
	time.Sleep(200 * time.Millisecond) // anything more would show now
	if got := keep.count(); got != n {
		t.Errorf("unchanged channel: %d notifications, want %d: none lost, none repeated", got, n)
	}
	// A delivery cut short by the reload may have arrived anyway; it is
	// sent again with the new settings rather than lost.
	if o, nw := oldURL.count(), newURL.count(); o > 1 || o+nw < n || o+nw > n+1 {
		t.Errorf("changed channel: %d at the old URL, %d at the new one, want %d in all (+1 cut short)", o, nw, n)
	}
	if got := gone.count(); got != n {
		t.Errorf("removed channel: %d delivered in its grace period, want %d", got, n)
	}
	for _, c := range []string{"keep", "moved", "removed"} {
		if v := testutil.ToFloat64(dm.notifications.WithLabelValues(c, "dropped")); v != 0 {
			t.Errorf("%s: %v dropped", c, v)
		}
	}
	// The removed channel's queue length is gone from /metrics once it
	// is drained; its counters stay.
	waitFor(t, "the removed channel's queue length to go", func() bool {
		return testutil.CollectAndCount(dm.queueLength) == 2
	})
	// The new settings are used from now on.
	d.Notify(firing)
	waitFor(t, "a notification after the reload", func() bool { return keep.count() == n+1 && newURL.count() > 0 })
}

// logBuffer is a slog handler's output, safe for the dispatcher's
// goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCloseDrainsWithinGrace stops a dispatcher whose channel is a slow
// receiver: what fits in the grace period is delivered, the rest is
// counted as dropped and logged, and Close returns once the grace is over;
// with a queue that fits, Close returns as soon as it is empty.
func TestCloseDrainsWithinGrace(t *testing.T) {
	slow := slowReceiver(t, 300*time.Millisecond)
	logs := &logBuffer{}
	dm := NewDeliveryMetrics()
	d := NewDispatcher(webhooks(t, "slow", slow.URL), dm, DeliveryOptions{
		QueueSize: 32, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	const n = 10
	firing, _ := firingAndResolved()
	for range n {
		d.Notify(firing)
	}
	const grace = time.Second
	start := time.Now()
	d.Close(grace)
	took := time.Since(start)
	sent := testutil.ToFloat64(dm.notifications.WithLabelValues("slow", "sent"))
	dropped := testutil.ToFloat64(dm.notifications.WithLabelValues("slow", "dropped"))
	t.Logf("Close(%v) took %v: %v sent, %v dropped", grace, took, sent, dropped)
	// 300 ms each: some fit in a second, never all ten. The delivery cut
	// short at the end may have reached the receiver as it was cut.
	if got := slow.count(); sent < 1 || sent >= n || sent+dropped != n || got < int(sent) || got > int(sent)+1 {
		t.Errorf("%v sent (receiver got %d) and %v dropped of %d", sent, slow.count(), dropped, n)
	}
	if took < grace {
		t.Errorf("Close returned after %v, before the grace period of %v with notifications queued", took, grace)
	}
	// Cutting the delivery short is immediate; the bound is generous
	// for a loaded machine.
	if took > grace+5*time.Second {
		t.Errorf("Close took %v, want about the grace period of %v", took, grace)
	}
	if l := logs.String(); !strings.Contains(l, "alert notifications not sent") || !strings.Contains(l, fmt.Sprintf("unsent=%d", int(dropped))) {
		t.Errorf("log does not say what was not sent:\n%s", l)
	}
	d.Notify(firing) // after Close: ignored, not a panic
	if v := testutil.ToFloat64(dm.notifications.WithLabelValues("slow", "dropped")); v != dropped {
		t.Errorf("a notification after Close was counted: dropped %v", v)
	}

	fast := slowReceiver(t, 20*time.Millisecond)
	dm = NewDeliveryMetrics()
	d = NewDispatcher(webhooks(t, "fast", fast.URL), dm, DeliveryOptions{QueueSize: 32})
	for range 5 {
		d.Notify(firing)
	}
	start = time.Now()
	d.Close(time.Minute)
	if took := time.Since(start); took > 30*time.Second || fast.count() != 5 {
		t.Errorf("Close with a minute of grace took %v and delivered %d of 5; want all, as soon as the queue was empty", took, fast.count())
	}
}

// TestReloadTwiceLosesNothing changes a slow channel's URL twice in a
// row: what the first successor had not sent yet goes to the second.
func TestReloadTwiceLosesNothing(t *testing.T) {
	a, b, c := slowReceiver(t, 50*time.Millisecond), slowReceiver(t, 50*time.Millisecond), slowReceiver(t, 10*time.Millisecond)
	dm := NewDeliveryMetrics()
	d := NewDispatcher(webhooks(t, "hook", a.URL), dm, DeliveryOptions{QueueSize: 32, Backoff: 10 * time.Millisecond})
	defer d.Close(0)
	const n = 20
	firing, _ := firingAndResolved()
	for range n {
		d.Notify(firing)
	}
	time.Sleep(20 * time.Millisecond)
	d.Reload(webhooks(t, "hook", b.URL), time.Second)
	d.Reload(webhooks(t, "hook", c.URL), time.Second)
	waitFor(t, "every notification", func() bool { return a.count()+b.count()+c.count() >= n })
	time.Sleep(100 * time.Millisecond)
	// Each reload may cut one delivery short that arrived anyway.
	if got := a.count() + b.count() + c.count(); got > n+2 || c.count() == 0 {
		t.Errorf("delivered %d, %d, %d of %d", a.count(), b.count(), c.count(), n)
	}
	if v := testutil.ToFloat64(dm.notifications.WithLabelValues("hook", "dropped")); v != 0 {
		t.Errorf("%v dropped", v)
	}
}
