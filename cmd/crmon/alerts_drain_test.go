// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// slowHook is a webhook receiver that answers after delay; it counts the
// requests that began and those whose sender waited for the answer.
type slowHook struct {
	*httptest.Server
	delay              time.Duration
	mu                 sync.Mutex
	started, delivered int
}

func newSlowHook(t *testing.T, delay time.Duration) *slowHook {
	h := &slowHook{delay: delay}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		h.mu.Lock()
		h.started++
		h.mu.Unlock()
		select {
		case <-time.After(h.delay):
		case <-r.Context().Done():
			return // the sender gave up: not delivered
		}
		h.mu.Lock()
		h.delivered++
		h.mu.Unlock()
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *slowHook) counts() (started, delivered int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started, h.delivered
}

// TestAgentAlertDeliverySurvivesReloadAndStop runs the agent with a rule
// that fires at every tick (no cooldown) and a webhook that takes 700 ms
// per notification, so that notifications queue up. A SIGHUP that leaves
// the channel as it was cuts nothing short: the delivery under way
// completes. SIGTERM then lets the queue drain for delivery_grace_period
// (2 s): the agent delivers for that long, exits, and logs how many it
// could not send.
func TestAgentAlertDeliverySurvivesReloadAndStop(t *testing.T) {
	root, err := filepath.Abs("../../testdata")
	if err != nil {
		t.Fatal(err)
	}
	hook := newSlowHook(t, 700*time.Millisecond)
	cfg := filepath.Join(t.TempDir(), "crmon.toml")
	body := fmt.Sprintf(`[cleanroom.monitoring]
collection_interval = "200ms"

`+thresholdsOff+`
[cleanroom.monitoring.store]
path = %q

[cleanroom.monitoring.alerting]
cooldown_period = "0s"
delivery_grace_period = "2s"

[[cleanroom.monitoring.alerting.alert_channels]]
name = "hook"
type = "webhook"
url = %q

[[cleanroom.monitoring.alerting.alert_rules]]
name = "Procs"
resource = "processes"
threshold = 0
severity = "info"
`, t.TempDir(), hook.URL)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, "--config", cfg,
		"--path.procfs", filepath.Join(root, "proc"), "--path.sysfs", filepath.Join(root, "sys"),
		"--path.rootfs", filepath.Join(root, "rootfs"), "--ebpf", "disabled", "--collector.containers=false")

	// A delivery is under way: reload.
	waitFor(t, func() bool { s, _ := hook.counts(); return s >= 1 })
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(p.logs(), "config reloaded") })
	// Every delivery that began completes: the reload cut none short.
	waitFor(t, func() bool { _, d := hook.counts(); return d >= 2 })
	if s, d := hook.counts(); s-d > 1 {
		t.Errorf("%d deliveries began, %d completed: the reload cut some short", s, d)
	}

	// Stop with notifications queued (one per 200 ms tick, one sent per
	// 700 ms).
	_, before := hook.counts()
	stop := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not stop")
	}
	took := time.Since(stop)
	_, after := hook.counts()
	t.Logf("stopped after %v; %d notifications delivered during the stop", took.Round(time.Millisecond), after-before)
	if after-before < 2 {
		t.Errorf("%d notifications delivered in the 2 s grace period, want the 2 or 3 a 700 ms receiver takes", after-before)
	}
	if took < 2*time.Second {
		t.Errorf("stopped after %v, before the grace period of 2 s, with notifications queued", took)
	}
	m := regexp.MustCompile(`alert notifications not sent: the agent stopped.* unsent=(\d+)`).FindStringSubmatch(p.logs())
	if m == nil {
		t.Fatalf("no log line of what the stop could not send:\n%s", p.logs())
	}
	if n, _ := strconv.Atoi(m[1]); n < 1 {
		t.Errorf("unsent=%d, want the notifications left in the queue", n)
	}
}
