// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// TestAgentAttributesContainers is the containers acceptance check, run
// through the binary against the real engine: a burner limited to half a
// core, an O_DIRECT writer, a sender to a listener on the host and an idle
// container run side by side under `crmon run` at 1 s.
func TestAgentAttributesContainers(t *testing.T) {
	dockertest.Require(t)
	p := startAgent(t, "--config", lostCompletionConfig(t), "--collection-interval", "1s", "--ebpf", "required")
	attributeContainers(t, p.get, "accept")
}

// attributeContainers runs the burner, writer, sender and idle containers
// beside an agent already running with lostCompletionConfig at 1 s, and
// checks what get (a GET of the agent's path) serves about each against
// the kernel's own counts; role prefixes the containers' names.
func attributeContainers(t *testing.T, get func(*testing.T, string) string, role string) {
	t.Helper()
	lost := lostCompletions(parseMetrics(t, get(t, "/metrics")))

	bridge := dockertest.BridgeIP(t)
	ln, received := countingListener(t, bridge+":0")
	port := ln.Addr().(*net.TCPAddr).Port

	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	name := func(r string) string { return "crmon-" + role + "-" + r + "-" + tag }
	const burnSecs, direct, sent = 4, 32 << 20, 8 << 20
	writeCmd := fmt.Sprintf("dd if=/dev/zero of=/tmp/f bs=1M count=%d oflag=direct 2>/dev/null; echo done; sleep 600", direct>>20)
	ids := map[string]string{
		"burn":  dockertest.Run(t, []string{"--name", name("burn"), "--cpus", "0.5"}, "sh", "-c", fmt.Sprintf("yes >/dev/null & sleep %d; kill $!; echo done; sleep 600", burnSecs)),
		"write": dockertest.Run(t, []string{"--name", name("write")}, "sh", "-c", writeCmd),
		"send":  dockertest.Run(t, []string{"--name", name("send")}, "sh", "-c", fmt.Sprintf("dd if=/dev/zero bs=1M count=%d 2>/dev/null | nc %s %d; sleep 600", sent>>20, bridge, port)),
		"idle":  dockertest.Run(t, []string{"--name", name("idle")}, "sleep", "600"),
	}
	var got int64
	select {
	case got = <-received:
	case <-time.After(60 * time.Second):
		t.Fatal("the sender's bytes did not arrive within 60s")
	}
	// The workloads say "done" when they are; on a busy machine that can
	// take a while. Then two ticks.
	waitDone := func(id, name string) {
		deadline := time.Now().Add(2 * time.Minute)
		for dockertest.Docker(t, "logs", id) != "done" {
			if time.Now().After(deadline) {
				t.Fatalf("container %s not done within 2 minutes", name)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, r := range []string{"burn", "write"} {
		waitDone(ids[r], name(r))
	}
	time.Sleep(lostCompletionAfter + lostCompletionAfter/2 + 2500*time.Millisecond) // see accept_test.go

	fams := parseMetrics(t, get(t, "/metrics"))
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		t.Fatal(err)
	}

	// CPU: both families against the cgroup's own counter, whose
	// container stopped burning before the scrape's tick.
	burn := map[string]string{"name": name("burn")}
	ms := matching(fams, "container_cpu_usage_seconds_total", burn)
	if len(ms) != 1 {
		t.Fatalf("container_cpu_usage_seconds_total{name=%q}: %d series, want 1", name("burn"), len(ms))
	}
	id := labelValue(ms[0], "id")
	truth := cgroupCPUSeconds(t, h, id)
	cadv := metricValue(ms[0])
	ebpf := value(fams, "crmon_container_cpu_seconds_total", burn)
	if relErr(cadv, truth) > 0.05 || relErr(ebpf, truth) > 0.05 {
		t.Errorf("burner CPU: container_cpu_usage_seconds_total %.3f, crmon_container_cpu_seconds_total %.3f, cgroup %s says %.3f: want both within 5%%", cadv, ebpf, id, truth)
	}
	// The quota is a ceiling (plus a period's slack for the sleep's
	// wake-up), the one thing the kernel guarantees: on a busy machine the
	// burner gets anything from a little to half a CPU.
	if half := 0.5 * burnSecs; truth > half*1.1 || truth <= 0 {
		t.Errorf("the --cpus 0.5 burner used %.3f CPU-seconds in %ds, want more than 0 and at most %.1f", truth, burnSecs, half)
	}

	writer := name("write")
	w := testenv.UntilBlockCounted(t, direct, func(try int) (float64, uint64) {
		if try > 1 {
			lost = lostCompletions(fams)
			writer = name("write") + "-" + strconv.Itoa(try)
			ids["write"] = dockertest.Run(t, []string{"--name", writer}, "sh", "-c", writeCmd)
			waitDone(ids["write"], writer)
			time.Sleep(lostCompletionAfter + lostCompletionAfter/2 + 2500*time.Millisecond) // see accept_test.go
			fams = parseMetrics(t, get(t, "/metrics"))
		}
		return sum(fams, "crmon_container_block_io_bytes_total", map[string]string{"name": writer, "op": "write"}),
			lostCompletions(fams) - lost
	})
	if w < direct || w > direct*1.02 {
		t.Errorf("crmon_container_block_io_bytes_total{name=%q,op=write} = %.0f, want 0 to +2%% of %d", writer, w, direct)
	}
	if fs := sum(fams, "container_fs_writes_bytes_total", map[string]string{"name": writer}); fs < direct {
		t.Errorf("container_fs_writes_bytes_total{name=%q} = %.0f, want at least %d", writer, fs, direct)
	}

	// The sender's only traffic is its connection: every packet an IPv4
	// and a TCP header (20+20..60 bytes), the listener's bytes at least
	// once, and what its namespace retransmitted, in MSS-sized segments
	// (a busy host makes retransmissions; the device counts them again).
	sendSel := map[string]string{"name": name("send"), "direction": "transmit"}
	tx := value(fams, "crmon_container_network_bytes_total", sendSel)
	pk := value(fams, "crmon_container_network_packets_total", sendSel)
	sendPID, err := strconv.Atoi(dockertest.Docker(t, "inspect", "-f", "{{.State.Pid}}", ids["send"]))
	if err != nil {
		t.Fatal(err)
	}
	tcp := testenv.ReadNetnsTCP(t, sendPID) // after the scrape: at least what it had counted by then
	mtu := testenv.ContainerMTU(t, sendPID, "eth0")
	retrans := float64(tcp.MaxRetransmittedPayload(mtu))
	if retrans >= float64(got) {
		t.Fatalf("the sender retransmitted up to %.0f bytes of its %d of payload (%v): the byte count cannot be checked", retrans, got, tcp)
	}
	lo := float64(got) + pk*(testenv.IPv4Header+testenv.TCPHeaderMin)
	hi := float64(got) + retrans + pk*(testenv.IPv4Header+testenv.TCPHeaderMax)
	if tx < lo || tx > hi {
		t.Errorf("crmon_container_network_bytes_total{name=%q,direction=transmit} = %.0f in %.0f packets, listener got %d: want %.0f to %.0f (%v, MTU %d)", name("send"), tx, pk, got, lo, hi, tcp, mtu)
	}
	t.Logf("sender: %.0f bytes in %.0f packets for %d of payload (+%.2f%%); %v", tx, pk, got, (tx/float64(got)-1)*100, tcp)

	names := map[string]string{"burn": name("burn"), "write": writer, "send": name("send"), "idle": name("idle")}
	for _, n := range names {
		ws := matching(fams, "container_memory_working_set_bytes", map[string]string{"name": n, "image": dockertest.Image})
		if len(ws) != 1 {
			t.Errorf("container_memory_working_set_bytes{name=%q,image=%q}: %d series, want 1", n, dockertest.Image, len(ws))
		}
	}
	if v := value(fams, "crmon_container_cpu_seconds_total", map[string]string{"name": name("idle")}); v >= 0.05 {
		t.Errorf("idle container: %.3f CPU-seconds, want < 0.05", v)
	}

	var snap metrics.ResourceMetrics
	if err := json.Unmarshal([]byte(get(t, "/api/v1/snapshot")), &snap); err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, cd := range snap.Containers.ContainerDetails {
		listed[cd.ContainerName] = true
	}
	for _, n := range names {
		if !listed[n] {
			t.Errorf("the snapshot does not list container %s", n)
		}
	}

	// A removed container's gauges are gone within 12 s; its counters
	// stay, under its name and image, for removed_retention (1m).
	dockertest.Remove(ids["idle"])
	removed := time.Now()
	idle := map[string]string{"name": name("idle"), "image": dockertest.Image}
	for {
		fams := parseMetrics(t, get(t, "/metrics"))
		if count(fams, "container_memory_working_set_bytes", map[string]string{"name": name("idle")}) == 0 {
			t.Logf("removed container's gauges gone after %v", time.Since(removed).Round(100*time.Millisecond))
			if count(fams, "container_cpu_usage_seconds_total", idle) != 1 || count(fams, "crmon_container_cpu_seconds_total", idle) != 1 {
				t.Errorf("removed container %s: its CPU counters are not served under its name and image", name("idle"))
			}
			break
		}
		if time.Since(removed) > 12*time.Second {
			t.Errorf("gauges of removed container %s still served 12s later", name("idle"))
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("burner %.3f s (cgroup %.3f), writer %.0f B, sender %.0f B (listener %d)", ebpf, truth, w, tx, got)
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// cgroupCPUSeconds reads a cgroup's own CPU counter: cpu.stat usage_usec on
// cgroup2 with the cpu controller, cpuacct.usage on v1.
func cgroupCPUSeconds(t *testing.T, h *cgroups.Hierarchy, id string) float64 {
	t.Helper()
	if h.OnV2(cgroups.CPU) {
		b, err := os.ReadFile(filepath.Join(h.Unified, id, "cpu.stat"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "usage_usec" {
				us, _ := strconv.ParseFloat(f[1], 64)
				return us / 1e6
			}
		}
		t.Fatalf("no usage_usec in %s/cpu.stat", id)
	}
	b, err := os.ReadFile(filepath.Join(h.V1["cpuacct"], id, "cpuacct.usage"))
	if err != nil {
		t.Fatal(err)
	}
	ns, _ := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	return ns / 1e9
}

// TestAgentRemovedRetention runs 100 short containers one after another
// under `crmon run` with removed_retention = "5s". Within the retention
// each gone container's counters, container_* and crmon_container_*
// alike, are served under its name and image, and its gauges are not;
// after it, the series and crmon_cgroups_exported are back at their
// baseline and no exported id names a cgroup that no longer exists.
func TestAgentRemovedRetention(t *testing.T) {
	dockertest.Require(t)
	// The containers' cgroups go under a parent of their own, so that
	// other containers on the host are no part of the counts.
	h, parent, prefix := ownCgroupParent(t, "retention")
	const retention = 5 * time.Second
	cfg := filepath.Join(t.TempDir(), "crmon.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`[cleanroom.monitoring]
collection_interval = "1s"

[cleanroom.monitoring.containers]
removed_retention = "5s"
include = [%q]

[cleanroom.monitoring.ebpf]
include = [%q]
lost_completion_after = %q
`, prefix+"-*", parent+"/*", lostCompletionAfter.String())), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, "--config", cfg, "--ebpf", "required")

	// counts returns the container series and crmon_cgroups_exported, and
	// the exported ids whose cgroup is gone.
	counts := func(fams map[string]*dto.MetricFamily) (series int, exported float64, gone []string) {
		for name, f := range fams {
			if !strings.HasPrefix(name, "container_") && !strings.HasPrefix(name, "crmon_container_") {
				continue
			}
			series += len(f.Metric)
			for _, m := range f.Metric {
				if id := labelValue(m, "id"); id != "" {
					if _, err := os.Stat(filepath.Join(h.Unified, id)); err != nil {
						gone = append(gone, name+"{id="+id+"}")
					}
				}
			}
		}
		return series, value(fams, "crmon_cgroups_exported", nil), gone
	}
	time.Sleep(2 * time.Second)
	baseSeries, baseExported, _ := counts(parseMetrics(t, p.get(t, "/metrics")))
	t.Logf("baseline: %d container series, %v cgroups exported", baseSeries, baseExported)

	counters := []string{"container_cpu_usage_seconds_total", "crmon_container_cpu_seconds_total"}
	gauges := []string{"container_memory_working_set_bytes", "container_memory_usage_bytes", "container_processes",
		"container_threads", "container_last_seen", "container_spec_memory_limit_bytes", "container_start_time_seconds"}
	failures := 0
	for i := 0; i < 100 && failures < 5; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		// --rm: the CLI returns once the engine removed the container.
		dockertest.Docker(t, "run", "--rm", "--network", "none", "--cgroup-parent", parent, "--name", name, dockertest.Image,
			"sh", "-c", "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done")
		removed := time.Now()
		labels := map[string]string{"name": name, "image": dockertest.Image}
		var missing, present []string
		for {
			fams := parseMetrics(t, p.get(t, "/metrics"))
			missing, present = nil, nil
			for _, f := range counters {
				if count(fams, f, labels) == 0 {
					missing = append(missing, f)
				}
			}
			for _, f := range gauges {
				if count(fams, f, map[string]string{"name": name}) != 0 {
					present = append(present, f)
				}
			}
			if len(missing) == 0 && len(present) == 0 {
				break
			}
			// The retention starts at the end of the container (or the
			// reap of its cgroup, a second later): before then, its
			// counters must be served and its gauges gone.
			if time.Since(removed) > retention-time.Second {
				failures++
				t.Errorf("%s, %v after it was removed: counters not served under its name and image: %v; gauges still served: %v",
					name, time.Since(removed).Round(100*time.Millisecond), missing, present)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// After the retention (and the second before a removed cgroup is
	// reaped), everything is back at its baseline.
	time.Sleep(retention + 2*time.Second)
	var series int
	var exported float64
	var gone []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		series, exported, gone = counts(parseMetrics(t, p.get(t, "/metrics")))
		ok := series <= baseSeries+5 && series >= baseSeries-5 && exported <= baseExported+5 && exported >= baseExported-5 && len(gone) == 0
		if ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("after the retention: %d container series, %v cgroups exported", series, exported)
	if series > baseSeries+5 || series < baseSeries-5 {
		t.Errorf("%d container series after the retention, baseline %d: want within 5", series, baseSeries)
	}
	if exported > baseExported+5 || exported < baseExported-5 {
		t.Errorf("crmon_cgroups_exported = %v after the retention, baseline %v: want within 5", exported, baseExported)
	}
	if len(gone) > 0 {
		t.Errorf("%d series name cgroups that no longer exist, e.g. %v", len(gone), gone[:min(5, len(gone))])
	}
	// Where crmon lost a final read to the runtime's removal of the
	// cgroup, the probes' counts stood in: none is left with nothing or
	// with the last tick's counters.
	fams := parseMetrics(t, p.get(t, "/metrics"))
	for _, f := range []string{"last_read", "none"} {
		if n := value(fams, "crmon_containers_unread_total", map[string]string{"fallback": f}); n != 0 {
			t.Errorf("crmon_containers_unread_total{fallback=%q} = %v, want 0", f, n)
		}
	}
	t.Logf("%v of 100 containers served from the probes' counts", value(fams, "crmon_containers_unread_total", map[string]string{"fallback": "ebpf"}))
}

// TestAgentFrozenThroughContainer stops the agent (SIGSTOP) while a
// container starts, burns CPU, writes 8 MiB with O_DIRECT, ends and is
// removed: the extreme of a host too busy for crmon to read a container's
// final cgroupfs counters before the runtime removes its cgroup. The
// probes' counts, which the kernel keeps by cgroup id, stand in for them:
// container_cpu_usage_seconds_total and container_fs_writes_bytes_total are
// served, crmon_container_counters_from_ebpf names those families, and
// crmon_containers_unread_total{fallback="ebpf"} counts the container once.
// The CPU total is checked against the account of the container's cgroup
// parent, which holds no other container and keeps its children's usage
// after they are gone.
func TestAgentFrozenThroughContainer(t *testing.T) {
	dockertest.Require(t)
	h, parent, prefix := ownCgroupParent(t, "frozen")
	cfg := filepath.Join(t.TempDir(), "crmon.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`[cleanroom.monitoring]
collection_interval = "1s"

[cleanroom.monitoring.containers]
removed_retention = "1m"
include = [%q]

[cleanroom.monitoring.ebpf]
include = [%q]
lost_completion_after = %q
`, prefix+"-*", parent+"/*", lostCompletionAfter.String())), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, "--config", cfg, "--ebpf", "required")
	run := func(name string, cmd ...string) {
		t.Helper()
		dockertest.Docker(t, append([]string{"run", "--rm", "--network", "none", "--cgroup-parent", parent, "--name", name, dockertest.Image}, cmd...)...)
	}
	// A first container makes the parent, which the agent then watches
	// for new cgroups; it runs throughout, read from cgroupfs as usual.
	warm := prefix + "-warm"
	dockertest.Run(t, []string{"--network", "none", "--cgroup-parent", parent, "--name", warm}, "sleep", "600")
	unread := func(fams map[string]*dto.MetricFamily) (out [3]float64) {
		for i, f := range []string{"ebpf", "last_read", "none"} {
			out[i] = value(fams, "crmon_containers_unread_total", map[string]string{"fallback": f})
		}
		return out
	}
	var before [3]float64
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		fams := parseMetrics(t, p.get(t, "/metrics"))
		if count(fams, "container_cpu_usage_seconds_total", map[string]string{"name": warm}) == 1 {
			before = unread(fams)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not served within 15s", warm)
		}
	}

	// The parent's CPU total before and after holds the frozen
	// container's exactly: no other task runs in it.
	parentCPU := func() uint64 {
		st, err := h.ReadStats(h.Uniform(parent))
		if err != nil {
			t.Fatal(err)
		}
		return st.CPU.UsageNanos
	}
	// A write the probes under-count is retried with a new container
	// only when lost block completions explain it (testenv.UntilBlockCounted).
	const written = 8 << 20
	var name string
	var want map[string]string
	var fams map[string]*dto.MetricFamily
	var cadv, ebpf, truth float64
	testenv.UntilBlockCounted(t, written, func(try int) (float64, uint64) {
		name = prefix + "-frozen"
		if try > 1 {
			name += "-" + strconv.Itoa(try)
			before = unread(parseMetrics(t, p.get(t, "/metrics")))
		}
		lost0 := lostCompletions(parseMetrics(t, p.get(t, "/metrics")))
		cpu0 := parentCPU()
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		thawed := false
		thaw := func() {
			if !thawed {
				thawed = true
				if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
					t.Error(err)
				}
			}
		}
		t.Cleanup(thaw)
		run(name, "sh", "-c", fmt.Sprintf("dd if=/dev/zero of=/tmp/f bs=1M count=%d oflag=direct 2>/dev/null; i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done", written>>20))
		truth = float64(parentCPU()-cpu0) / 1e9
		thaw()

		// The probes' counts of a removed cgroup are final once they reaped
		// it (a second after its removal); then both families say the same.
		want = map[string]string{"name": name, "image": dockertest.Image}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
			fams = parseMetrics(t, p.get(t, "/metrics"))
			cadv = value(fams, "container_cpu_usage_seconds_total", want)
			ebpf = value(fams, "crmon_container_cpu_seconds_total", want)
			if count(fams, "container_cpu_usage_seconds_total", want) == 1 && cadv == ebpf {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: container_cpu_usage_seconds_total %v (%d series) and crmon_container_cpu_seconds_total %v not one and the same within 20s of the thaw; the agent's log:\n%s",
					name, cadv, count(fams, "container_cpu_usage_seconds_total", want), ebpf, p.logs())
			}
		}
		w := sum(fams, "container_fs_writes_bytes_total", want)
		if w < written {
			// A completion the probes missed is counted lost only after
			// lost_completion_after.
			time.Sleep(lostCompletionAfter + lostCompletionAfter/2 + 2500*time.Millisecond) // see accept_test.go
			fams = parseMetrics(t, p.get(t, "/metrics"))
		}
		return w, lostCompletions(fams) - lost0
	})
	if relErr(cadv, truth) > 0.01 {
		t.Errorf("%s: container_cpu_usage_seconds_total %.4f s, its cgroup parent's usage grew %.4f s: want within 1%%", name, cadv, truth)
	}
	for _, f := range []string{"container_cpu_usage_seconds_total", "container_fs_writes_bytes_total", "container_fs_reads_bytes_total"} {
		if v := value(fams, "crmon_container_counters_from_ebpf", map[string]string{"name": name, "family": f}); v != 1 {
			t.Errorf("%s: crmon_container_counters_from_ebpf{family=%q} = %v, want 1", name, f, v)
		}
	}
	// Only the families the probes count are served for it.
	for _, f := range []string{"container_cpu_user_seconds_total", "container_fs_writes_total", "container_memory_failcnt"} {
		if n := count(fams, f, want); n != 0 {
			t.Errorf("%s: %d %s series, want none: crmon never read it", name, n, f)
		}
	}
	// The running container is read from cgroupfs. The probes stand in
	// for its block I/O only on a device they saw it use since its files
	// were last read, until the next idle refresh (10 s) reads them.
	for deadline, f := time.Now().Add(15*time.Second), fams; ; f = parseMetrics(t, p.get(t, "/metrics")) {
		n := count(f, "crmon_container_counters_from_ebpf", map[string]string{"name": warm})
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s, running: %d crmon_container_counters_from_ebpf series 15 s on, want none", warm, n)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	after := unread(fams)
	if d := [3]float64{after[0] - before[0], after[1] - before[1], after[2] - before[2]}; d != [3]float64{1, 0, 0} {
		t.Errorf("crmon_containers_unread_total{fallback=ebpf,last_read,none} grew by %v, want [1 0 0]", d)
	}
	t.Logf("%s: %.4f CPU-seconds served from the probes, %.4f by its parent's account; %v bytes written",
		name, cadv, truth, sum(fams, "container_fs_writes_bytes_total", want))
}

// ownCgroupParent names a cgroup parent of the test's own for its
// containers (--cgroup-parent) and the prefix of their names, and removes
// that parent from every hierarchy when the test ends.
func ownCgroupParent(t *testing.T, kind string) (h *cgroups.Hierarchy, parent, prefix string) {
	t.Helper()
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		t.Fatal(err)
	}
	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	parent = "/crmon-" + kind + "-" + tag
	prefix = "crmon-" + kind + "-" + tag
	t.Cleanup(func() {
		dirs := map[string]bool{h.Unified: true}
		for _, d := range h.V1 {
			dirs[d] = true
		}
		for d := range dirs {
			if d != "" {
				os.Remove(filepath.Join(d, parent))
			}
		}
	})
	return h, parent, prefix
}
