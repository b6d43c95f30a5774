// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
)

// TestAgentContainerAlerts runs the agent against the real engine with a
// container_cpu rule: a busy container fires its own alert, labelled with
// its name, image and cgroup, an idle one beside it does not, and when
// the busy one is removed its alert is resolved.
func TestAgentContainerAlerts(t *testing.T) {
	dockertest.Require(t)
	hook := newHookReceiver(t)
	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	name := func(role string) string { return "crmon-alert-" + role + "-" + tag }
	cfg := filepath.Join(t.TempDir(), "crmon.toml")
	body := fmt.Sprintf(`[cleanroom.monitoring]
collection_interval = "1s"

`+thresholdsOff+`
[cleanroom.monitoring.containers]
include = ["crmon-alert-*-%s"]
idle_refresh = "0s"

[cleanroom.monitoring.store]
path = %q

[[cleanroom.monitoring.alerting.alert_channels]]
name = "hook"
type = "webhook"
url = %q

[[cleanroom.monitoring.alerting.alert_rules]]
name = "ContainerBusy"
resource = "container_cpu"
threshold = 20
for = "2s"
`, tag, t.TempDir(), hook.URL)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	startAgent(t, "--config", cfg, "--ebpf", "disabled")
	busy := dockertest.Run(t, []string{"--name", name("busy"), "--cpus", "0.5"}, "sh", "-c", "yes >/dev/null")
	dockertest.Run(t, []string{"--name", name("idle")}, "sleep", "600")

	deadline := time.Now().Add(60 * time.Second)
	for hook.count() < 1 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if hook.count() < 1 {
		t.Fatal("no alert for the busy container within 60 s")
	}
	hook.mu.Lock()
	first := hook.msgs[0]
	hook.mu.Unlock()
	a := first.Alerts[0]
	if first.Status != "firing" || a.Labels["alertname"] != "ContainerBusy" || a.Labels["name"] != name("busy") ||
		a.Labels["image"] != dockertest.Image || a.Labels["id"] == "" || !strings.Contains(a.Labels["id"], busy[:12]) {
		t.Errorf("alert %+v", first)
	}

	dockertest.Remove(busy)
	deadline = time.Now().Add(60 * time.Second)
	for hook.count() < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.msgs) != 2 || hook.msgs[1].Status != "resolved" || hook.msgs[1].Alerts[0].Labels["name"] != name("busy") {
		t.Errorf("after removing the busy container: %+v, want its alert resolved and none for the idle one", hook.msgs)
	}
}
