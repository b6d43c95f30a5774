// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

var t0 = time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)

// host is a sample at t0+at with the host CPU at cpu %.
func host(at time.Duration, cpu float64) *metrics.ResourceMetrics {
	return &metrics.ResourceMetrics{Timestamp: t0.Add(at), CPU: metrics.CPUMetrics{UsagePercent: cpu, Cores: 2}}
}

// feed evaluates one sample a second from from to to (exclusive) with the
// CPU at cpu, and returns the notifications with the time of each.
func feed(e *Engine, from, to time.Duration, cpu float64) (got []Notification) {
	for at := from; at < to; at += time.Second {
		got = append(got, e.Eval(host(at, cpu))...)
	}
	return got
}

func cpuRule() Rule {
	return Rule{Name: "CPU", Resource: config.ResourceCPU, Condition: ">", Threshold: 50, For: 3 * time.Second, Severity: "critical", Channels: []string{"mail"}, Labels: map[string]string{"team": "ci"}}
}

// TestLifecycle follows one instance as Prometheus would: pending for
// `for`, firing with one notification, no other one inside the cooldown
// (only Alertmanager resends), another after it, then one resolved
// notification and nothing more.
func TestLifecycle(t *testing.T) {
	e := New([]Rule{cpuRule()}, Options{Cooldown: 90 * time.Second})
	if n := feed(e, 0, 3*time.Second, 90); len(n) != 0 {
		t.Fatalf("notified before `for` elapsed: %+v", n)
	}
	if a := e.Alerts(); len(a) != 1 || a[0].State != StatePending || !a[0].ActiveAt.Equal(t0) {
		t.Fatalf("after 3 samples above: %+v, want one pending since t0", a)
	}
	n := feed(e, 3*time.Second, 4*time.Second, 91.5)
	if len(n) != 1 || n[0].Resend {
		t.Fatalf("at for = 3s: %+v, want one firing notification", n)
	}
	a := n[0].Alert
	want := map[string]string{"alertname": "CPU", "severity": "critical", "resource": "cpu", "team": "ci"}
	if a.State != StateFiring || !a.StartsAt.Equal(t0.Add(3*time.Second)) || !a.EndsAt.IsZero() ||
		a.Value != 91.5 || a.Threshold != 50 || a.Severity != "critical" || a.Resource != "cpu" ||
		!a.Timestamp.Equal(t0.Add(3*time.Second)) || len(a.Labels) != len(want) || n[0].Channels[0] != "mail" {
		t.Errorf("firing alert %+v", a)
	}
	for k, v := range want {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, a.Labels[k], v)
		}
	}
	if a.Message != "host CPU usage is 91.5 % (> 50 %)" {
		t.Errorf("message %q", a.Message)
	}

	// Inside the cooldown: only the resend to Alertmanager, each minute.
	n = feed(e, 4*time.Second, 93*time.Second, 90)
	if len(n) != 1 || !n[0].Resend || !n[0].Alert.Timestamp.Equal(t0.Add(63*time.Second)) {
		t.Fatalf("inside the cooldown: %+v, want one Alertmanager resend at 63s", n)
	}
	n = feed(e, 93*time.Second, 94*time.Second, 90)
	if len(n) != 1 || n[0].Resend {
		t.Fatalf("at the cooldown's end: %+v, want a repeat notification", n)
	}
	if !n[0].Alert.StartsAt.Equal(t0.Add(3 * time.Second)) {
		t.Errorf("a repeat keeps starts_at: %v", n[0].Alert.StartsAt)
	}

	n = feed(e, 94*time.Second, 100*time.Second, 10)
	if len(n) != 1 || n[0].Alert.State != StateResolved || !n[0].Alert.EndsAt.Equal(t0.Add(94*time.Second)) || n[0].Alert.Value != 10 {
		t.Fatalf("after the CPU fell: %+v, want one resolved notification at 94s", n)
	}
	if m := n[0].Alert.Message; m != "host CPU usage is 10 %, no longer > 50 %" {
		t.Errorf("resolved message %q", m)
	}
	if a := e.Alerts(); len(a) != 0 {
		t.Errorf("active after resolving: %+v", a)
	}
}

// TestPendingThatStopsNeverNotifies: a condition shorter than `for`.
func TestPendingThatStopsNeverNotifies(t *testing.T) {
	e := New([]Rule{cpuRule()}, Options{Cooldown: time.Minute})
	n := feed(e, 0, 2*time.Second, 90)
	n = append(n, feed(e, 2*time.Second, 3*time.Second, 20)...)
	n = append(n, feed(e, 3*time.Second, 5*time.Second, 90)...)
	if len(n) != 0 {
		t.Errorf("notified for a condition shorter than for: %+v", n)
	}
	if a := e.Alerts(); len(a) != 1 || !a[0].ActiveAt.Equal(t0.Add(3*time.Second)) {
		t.Errorf("pending should restart at 3s: %+v", a)
	}
}

// TestResolveThreshold: hysteresis keeps a firing alert until the value
// crosses resolve_threshold, not just the threshold.
func TestResolveThreshold(t *testing.T) {
	r := cpuRule()
	r.For = 0
	rt := 30.0
	r.ResolveThreshold = &rt
	e := New([]Rule{r}, Options{Cooldown: time.Hour})
	if n := feed(e, 0, time.Second, 60); len(n) != 1 {
		t.Fatalf("for = 0 fires at once: %+v", n)
	}
	if n := feed(e, time.Second, 10*time.Second, 40); len(n) != 0 {
		t.Errorf("between resolve_threshold and threshold: %+v, want still firing, nothing sent", n)
	}
	if a := e.Alerts(); len(a) != 1 || a[0].State != StateFiring {
		t.Errorf("want still firing: %+v", a)
	}
	if n := feed(e, 10*time.Second, 11*time.Second, 30); len(n) != 1 || n[0].Alert.State != StateResolved {
		t.Errorf("at resolve_threshold: %+v, want resolved", n)
	}
}

func containers(at time.Duration, cpu map[string]float64) *metrics.ResourceMetrics {
	m := host(at, 0)
	for _, id := range []string{"aaa", "bbb"} {
		v, ok := cpu[id]
		if !ok {
			continue
		}
		m.Containers.ContainerDetails = append(m.Containers.ContainerDetails, metrics.ContainerDetailMetrics{
			ContainerID: id, ContainerName: "ct-" + id, Image: "img:" + id, State: "running",
			CgroupPath: "/docker/" + id, CPUUsagePercent: v,
		})
	}
	return m
}

// TestPerContainer: a container_* rule makes one instance per container,
// labelled with its name, image and id; a container that goes away while
// its alert fires resolves it.
func TestPerContainer(t *testing.T) {
	r := Rule{Name: "CtCPU", Resource: config.ResourceContainerCPU, Condition: ">=", Threshold: 80, Severity: "warning"}
	e := New([]Rule{r}, Options{Cooldown: time.Hour})
	n := e.Eval(containers(0, map[string]float64{"aaa": 99, "bbb": 80}))
	if len(n) != 2 {
		t.Fatalf("%d notifications, want one per container: %+v", len(n), n)
	}
	byName := map[string]Alert{}
	for _, x := range n {
		byName[x.Alert.Labels["name"]] = x.Alert
	}
	if a := byName["ct-aaa"]; a.Labels["image"] != "img:aaa" || a.Labels["id"] != "/docker/aaa" || a.Value != 99 ||
		a.Message != "container ct-aaa CPU usage is 99 % of a core (>= 80 % of a core)" {
		t.Errorf("container alert %+v", a)
	}
	n = e.Eval(containers(time.Second, map[string]float64{"aaa": 99}))
	if len(n) != 1 || n[0].Alert.State != StateResolved || n[0].Alert.Labels["name"] != "ct-bbb" {
		t.Errorf("container bbb gone: %+v, want its alert resolved", n)
	}
	if a := e.Alerts(); len(a) != 1 || a[0].Labels["name"] != "ct-aaa" {
		t.Errorf("active: %+v", a)
	}
}

// TestContainerNameInMessage: a name with control characters cannot
// add lines to a mail's subject.
func TestContainerNameInMessage(t *testing.T) {
	if m := message("container_cpu", ">", 99, 80, "evil\r\nBcc: x@example.com", false); strings.ContainsAny(m, "\r\n") {
		t.Errorf("message %q", m)
	}
}

// TestMaxInstances: instances keyed by what containers the world creates
// are bounded, and the overflow is counted.
func TestMaxInstances(t *testing.T) {
	r := Rule{Name: "CtCPU", Resource: config.ResourceContainerCPU, Condition: ">", Threshold: 1, Severity: "warning"}
	e := New([]Rule{r}, Options{MaxInstances: 1})
	e.Eval(containers(0, map[string]float64{"aaa": 99, "bbb": 99}))
	if a := e.Alerts(); len(a) != 1 || e.overflow != 1 {
		t.Errorf("%d instances, %d overflow; want 1 and 1", len(a), e.overflow)
	}
}

// TestStateSurvivesRestartAndReload: a restarted engine neither notifies
// again inside the cooldown nor forgets a firing alert, whose resolution
// it then sends; a reload keeps the instances of unchanged rules, and
// resolves those of a changed one.
func TestStateSurvivesRestartAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "alerts.json")
	opts := Options{Cooldown: 5 * time.Minute, StatePath: path}
	e := New([]Rule{cpuRule()}, opts)
	if n := feed(e, 0, 5*time.Second, 90); len(n) != 1 {
		t.Fatalf("want one firing notification, got %+v", n)
	}
	// The agent flushes the state when it stops.
	e.Flush()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}

	e2 := New([]Rule{cpuRule()}, opts)
	if a := e2.Alerts(); len(a) != 1 || a[0].State != StateFiring || !a[0].StartsAt.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("after restart: %+v, want the firing alert", a)
	}
	if n := feed(e2, 5*time.Second, 50*time.Second, 90); len(n) != 0 {
		t.Errorf("after restart, inside the cooldown: %+v, want nothing", n)
	}

	// Reload: the same rule keeps its state.
	e2.SetRules([]Rule{cpuRule()})
	if n := feed(e2, 50*time.Second, 51*time.Second, 90); len(n) != 0 {
		t.Errorf("after a reload with the same rule: %+v", n)
	}
	e2.Flush()
	e3 := New([]Rule{cpuRule()}, opts)
	if n := feed(e3, 51*time.Second, 52*time.Second, 5); len(n) != 1 || n[0].Alert.State != StateResolved {
		t.Errorf("restarted and the CPU fell: %+v, want resolved", n)
	}

	// A changed rule ends its firing instances as resolved.
	feed(e2, 52*time.Second, 60*time.Second, 90)
	changed := cpuRule()
	changed.Threshold = 60
	e2.SetRules([]Rule{changed})
	n := feed(e2, 60*time.Second, 61*time.Second, 90)
	if len(n) != 2 || n[0].Alert.State != StateResolved || n[1].Alert.State != StateResolved {
		// The old instance resolves; the new rule's is pending.
		if len(n) != 1 || n[0].Alert.State != StateResolved {
			t.Errorf("after the rule changed: %+v, want the old instance resolved", n)
		}
	}
	if a := e2.Alerts(); len(a) != 1 || a[0].State != StatePending || a[0].Threshold != 60 {
		t.Errorf("after the rule changed: %+v, want a new pending instance", a)
	}
	e2.Flush()
	e4 := New([]Rule{cpuRule()}, Options{StatePath: path})
	for _, a := range e4.Alerts() {
		if a.Threshold != 50 {
			t.Errorf("restored an instance of another rule: %+v", a)
		}
	}

	// A damaged file is no reason to fail: start empty.
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if a := New([]Rule{cpuRule()}, opts).Alerts(); len(a) != 0 {
		t.Errorf("from a damaged file: %+v", a)
	}
}

func TestRulesFromConfig(t *testing.T) {
	cfg := config.Default()
	cfg.Monitoring.Thresholds.DiskUsagePercent = 0
	cfg.Monitoring.Alerting.AlertRules = []config.AlertRule{{Name: "x", Resource: "container_memory", Condition: ">", Threshold: 1 << 30, Severity: "info", For: config.Duration(time.Minute)}}
	rules := Rules(cfg)
	names := map[string]bool{}
	for _, r := range rules {
		names[r.Name] = true
	}
	if len(rules) != 6 || names["HostDiskUsageHigh"] || !names["HostCPUUsageHigh"] || !names["x"] || rules[5].For != time.Minute {
		t.Errorf("rules %+v: want 5 thresholds (disk is 0, off) and x", rules)
	}
	cfg.Monitoring.Alerting.EnableAlerting = false
	if r := Rules(cfg); len(r) != 0 {
		t.Errorf("enable_alerting = false: %d rules", len(r))
	}
}

// TestSetOptions: a reload's cooldown applies to the next repeat, and a
// state file named by a reload is written.
func TestSetOptions(t *testing.T) {
	e := New([]Rule{cpuRule()}, Options{Cooldown: time.Hour})
	if n := feed(e, 0, 4*time.Second, 90); len(n) != 1 {
		t.Fatalf("%+v", n)
	}
	path := filepath.Join(t.TempDir(), "alerts.json")
	e.SetOptions(10*time.Second, path)
	n := feed(e, 4*time.Second, 14*time.Second, 90)
	var repeats int
	for _, x := range n {
		if !x.Resend {
			repeats++
		}
	}
	if repeats != 1 {
		t.Errorf("%d repeats 10 s after firing with a 10 s cooldown, want 1: %+v", repeats, n)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("state file after SetOptions: %v", err)
	}
}
