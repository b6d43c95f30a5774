// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/metrics"
	"github.com/crmon-dev/crmon/pkg/session"
)

// TestSnapshotAgreesWithProc checks `crmon snapshot --json` on this host
// against /proc read directly.
func TestSnapshotAgreesWithProc(t *testing.T) {
	out, stderr, code := run(t, "snapshot", "--json", "--window", "200ms", "--collector.containers=false")
	if code != 0 {
		t.Fatalf("crmon snapshot exited %d: %s", code, stderr)
	}
	var m metrics.ResourceMetrics
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("snapshot is not ResourceMetrics JSON: %v\n%s", err, out)
	}

	meminfo, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	kb := regexp.MustCompile(`(?m)^MemTotal:\s+(\d+) kB`).FindSubmatch(meminfo)
	total, _ := strconv.ParseUint(string(kb[1]), 10, 64)
	if m.Memory.TotalBytes != total*1024 {
		t.Errorf("memory.total_bytes = %d, /proc/meminfo MemTotal = %d", m.Memory.TotalBytes, total*1024)
	}
	if int(m.CPU.Cores) != runtime.NumCPU() {
		t.Errorf("cpu.cores = %d, want %d", m.CPU.Cores, runtime.NumCPU())
	}
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	secs, _ := strconv.ParseFloat(strings.Fields(string(up))[0], 64)
	// The snapshot was taken a moment ago: allow a second either way.
	if d := math.Abs(float64(m.System.UptimeSeconds) - secs); d > 1.5 {
		t.Errorf("system.uptime_seconds = %d, /proc/uptime = %.1f", m.System.UptimeSeconds, secs)
	}
	if m.System.BootTime.IsZero() || m.Timestamp.IsZero() {
		t.Errorf("boot_time %v, timestamp %v: want both set", m.System.BootTime, m.Timestamp)
	}
	if m.System.Processes == 0 || m.System.Threads < m.System.Processes || m.System.ContextSwitches == 0 {
		t.Errorf("system = %+v: want processes, threads >= processes and context switches", m.System)
	}
	if m.Disk.TotalBytes == 0 || len(m.Disk.Partitions) == 0 {
		t.Errorf("disk = %+v: want the root filesystem at least", m.Disk)
	}

	// Every ResourceMetrics field of ADR-006 is present under its snake_case name.
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &top); err != nil {
		t.Fatal(err)
	}
	raw := map[string]map[string]any{}
	for k, v := range top {
		var part map[string]any
		if json.Unmarshal(v, &part) == nil {
			raw[k] = part
		}
	}
	if _, ok := top["timestamp"]; !ok {
		t.Error("snapshot lacks timestamp")
	}
	adr := map[string][]string{
		"cpu":        {"usage_percent", "load_average", "cores", "frequency_mhz", "temperature_celsius", "processes"},
		"memory":     {"total_bytes", "used_bytes", "free_bytes", "cached_bytes", "buffers_bytes", "swap_total_bytes", "swap_used_bytes", "swap_free_bytes", "processes"},
		"disk":       {"total_bytes", "used_bytes", "free_bytes", "read_bytes_per_sec", "write_bytes_per_sec", "read_ops_per_sec", "write_ops_per_sec", "partitions"},
		"network":    {"bytes_sent", "bytes_received", "packets_sent", "packets_received", "errors_sent", "errors_received", "bandwidth_bytes_per_sec", "interfaces"},
		"containers": {"total_containers", "running_containers", "stopped_containers", "container_details"},
		"system":     {"uptime_seconds", "boot_time", "users", "processes", "threads", "open_files", "context_switches"},
	}
	for part, fields := range adr {
		for _, f := range fields {
			if _, ok := raw[part][f]; !ok {
				t.Errorf("snapshot lacks %s.%s", part, f)
			}
		}
	}
}

// TestRunServesAndStops runs the agent on this host: the core node_exporter
// families are served, the snapshot endpoint answers, SIGHUP with a broken
// file keeps the running config, with a good one applies it, and SIGTERM
// ends the agent within a second.
func TestRunServesAndStops(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "crmon.toml")
	writeConfig := func(body string) {
		if err := os.WriteFile(cfgFile, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("[cleanroom.monitoring]\ncollection_interval = \"1s\"\n")
	p := startAgent(t, "--config", cfgFile, "--ebpf", "disabled", "--collector.containers=false")

	scrape := p.get(t, "/metrics")
	testenv.CheckPromtool(t, []byte(scrape), "/proc/meminfo")
	for _, fam := range []string{
		"node_cpu_seconds_total", "node_load1", "node_memory_MemTotal_bytes", "node_filesystem_avail_bytes",
		"node_disk_read_bytes_total", "node_network_receive_bytes_total", "node_boot_time_seconds",
		"node_context_switches_total", "node_procs_running", "crmon_collector_success", "go_goroutines",
		"crmon_process_resident_memory_bytes",
	} {
		if !strings.Contains(scrape, "\n"+fam) {
			t.Errorf("/metrics lacks %s", fam)
		}
	}
	var m metrics.ResourceMetrics
	if err := json.Unmarshal([]byte(p.get(t, "/api/v1/snapshot")), &m); err != nil {
		t.Fatalf("/api/v1/snapshot: %v", err)
	}
	if m.Memory.TotalBytes == 0 {
		t.Error("/api/v1/snapshot: memory.total_bytes is 0")
	}
	if got := p.get(t, "/healthz"); got != "ok\n" {
		t.Errorf("/healthz = %q", got)
	}

	interval := regexp.MustCompile(`(?m)^crmon_collection_interval_seconds (\S+)$`)
	writeConfig("[cleanroom.monitoring]\ncollection_interval = 5s\n") // not TOML
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(p.logs(), "config reload failed") })
	if v := interval.FindStringSubmatch(p.get(t, "/metrics")); v == nil || v[1] != "1" {
		t.Errorf("after a bad reload: interval = %v, want 1", v)
	}
	writeConfig("[cleanroom.monitoring]\ncollection_interval = \"2s\"\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(p.logs(), "config reloaded") })
	if v := interval.FindStringSubmatch(p.get(t, "/metrics")); v == nil || v[1] != "2" {
		t.Errorf("after a good reload: interval = %v, want 2", v)
	}

	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("crmon run after SIGTERM: %v\n%s", err, p.logs())
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("SIGTERM took %v to stop the agent, want < 1s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("crmon run still running 5s after SIGTERM")
	}
}

// A reload whose secret file is /dev/zero or a FIFO fails at once and
// keeps the running config; the agent's memory does not grow and it still
// stops on SIGTERM.
func TestReloadRefusesSpecialSecretFiles(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "crmon.toml")
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	writeConfig := func(body string) {
		if err := os.WriteFile(cfgFile, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("[cleanroom.monitoring]\ncollection_interval = \"1s\"\n")
	p := startAgent(t, "--config", cfgFile, "--ebpf", "disabled", "--collector.containers=false")
	rss := func() int {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("no VmRSS in\n%s", b)
		}
		kb, _ := strconv.Atoi(string(m[1]))
		return kb
	}
	before := rss()
	interval := regexp.MustCompile(`(?m)^crmon_collection_interval_seconds (\S+)$`)
	for i, c := range []struct{ file, want string }{
		{"/dev/zero", "is a character device, not a regular file"},
		{fifo, "is a named pipe (FIFO), not a regular file"},
	} {
		writeConfig(fmt.Sprintf(`[cleanroom.monitoring]
collection_interval = "2s"

[[cleanroom.monitoring.alerting.alert_channels]]
name = "slack"
type = "slack"
webhook_url_file = %q
`, c.file))
		p.cmd.Process.Signal(syscall.SIGHUP)
		waitFor(t, func() bool { return strings.Count(p.logs(), "config reload failed") == i+1 })
		if !strings.Contains(p.logs(), c.want) {
			t.Errorf("webhook_url_file = %q: the log does not say %q:\n%s", c.file, c.want, p.logs())
		}
		if v := interval.FindStringSubmatch(p.get(t, "/metrics")); v == nil || v[1] != "1" {
			t.Errorf("after a failed reload: interval = %v, want 1", v)
		}
	}
	// Nothing was read: what the agent gained is its own churn, not the
	// gigabytes /dev/zero would give.
	if after := rss(); after > before+64<<10 {
		t.Errorf("RSS grew from %d kB to %d kB across the failed reloads", before, after)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("crmon run still running 5s after SIGTERM")
	}
}

// crmon run refuses a web config that is not a regular file before it
// starts.
func TestRunRefusesSpecialWebConfig(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "web.yml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, want string }{
		{"/dev/zero", "--web.config.file: open /dev/zero: is a character device, not a regular file"},
		{fifo, "--web.config.file: open " + fifo + ": is a named pipe (FIFO), not a regular file"},
	} {
		_, stderr, code := run(t, "run", "--web.listen-address", "127.0.0.1:0", "--ebpf", "disabled", "--web.config.file", c.file)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("--web.config.file %s: exit %d, want an error saying %q:\n%s", c.file, code, c.want, stderr)
		}
	}
}

// TestConfigCheck runs `crmon config check` the way a user would.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("# crmon\n[cleanroom.monitoring]\ncollection_interval = 10s\n"), 0o644)
	_, stderr, code := run(t, "config", "check", bad)
	if code != 1 {
		t.Errorf("config check of an unquoted duration exited %d, want 1", code)
	}
	if !strings.Contains(stderr, ":3") || !strings.Contains(stderr, `"10s"`) {
		t.Errorf("config check error should name line 3 and the fix \"10s\":\n%s", stderr)
	}

	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("[cleanroom.monitoring]\ncollection_interval = \"10s\"\n"), 0o644)
	out, stderr, code := run(t, "config", "check", good)
	if code != 0 {
		t.Fatalf("config check of a good file exited %d: %s", code, stderr)
	}
	if !strings.Contains(out, "collection_interval") || !strings.Contains(out, "10s") {
		t.Errorf("config check should print the effective config:\n%s", out)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunStopsWithHungDocker runs the agent against a Docker engine that
// accepts connections and never answers, with a session running:
// SIGTERM still ends it within a second.
func TestRunStopsWithHungDocker(t *testing.T) {
	testenv.RequireRoot(t)
	cfgFile := filepath.Join(t.TempDir(), "crmon.toml")
	cfg := fmt.Sprintf("[cleanroom.monitoring]\ncollection_interval = \"1s\"\n[cleanroom.monitoring.containers]\ndocker_host = %q\n", dockertest.HungEngine(t))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, "--config", cfgFile, "--ebpf", "disabled")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := session.Start(ctx, session.Options{AgentURL: "unix://" + p.sock, StartRequest: session.StartRequest{Name: "hung-docker"}}); err != nil {
		t.Fatalf("starting a session: %v\n%s", err, p.logs())
	}
	p.get(t, "/metrics")

	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("crmon run after SIGTERM: %v\n%s", err, p.logs())
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("SIGTERM took %v to stop the agent, want < 1s\n%s", d, p.logs())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("crmon run still running 15s after SIGTERM\n%s", p.logs())
	}
}

// TestRunFootprint: once the first sample is taken the agent hands back
// the start-up pages of its executable (the debug log says how many bytes
// left its resident set).
func TestRunFootprint(t *testing.T) {
	t.Setenv("CRMON_LOG_LEVEL", "debug")
	p := startAgent(t, "--ebpf", "disabled", "--collector.containers=false")
	released := regexp.MustCompile(`msg="released start-up pages" bytes=(\d+)`)
	waitFor(t, func() bool { return released.MatchString(p.logs()) })
	n, err := strconv.ParseInt(released.FindStringSubmatch(p.logs())[1], 10, 64)
	if err != nil || n <= 0 {
		t.Errorf("released %d bytes of start-up pages (%v), want some\n%s", n, err, p.logs())
	}
}
