// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// newTestCollector starts a collector against the real engine.
func newTestCollector(t testing.TB, o Options) *Collector {
	t.Helper()
	dockertest.Require(t)
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("collector not ready after 10s")
	}
	if !c.Up() {
		t.Fatal("engine down after the first sync")
	}
	return c
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func uniq(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e9) }

// truth reads a cgroup's own counters directly, as ground truth.
type truth struct {
	t testing.TB
	h *cgroups.Hierarchy
}

func (g truth) file(ctrl, v1ctrl, cg, v2name, v1name string) string {
	g.t.Helper()
	var p string
	if g.h.Unified != "" && (ctrl == "" || g.h.OnV2(map[string]cgroups.Controller{"cpu": cgroups.CPU, "memory": cgroups.Memory, "io": cgroups.IO}[ctrl])) {
		p = filepath.Join(g.h.Unified, cg, v2name)
	} else {
		p = filepath.Join(g.h.V1[v1ctrl], cg, v1name)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		g.t.Fatal(err)
	}
	return string(b)
}

func field(s, key string) uint64 {
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == key {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			return v
		}
	}
	return 0
}

// cpuNanos is the cgroup's total CPU time.
func (g truth) cpuNanos(cg string) uint64 {
	if g.h.OnV2(cgroups.CPU) {
		return field(g.file("cpu", "", cg, "cpu.stat", ""), "usage_usec") * 1000
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(g.file("cpu", "cpuacct", cg, "", "cpuacct.usage")), 10, 64)
	return v
}

// writeBytes sums the bytes written to every device.
func (g truth) writeBytes(cg string) uint64 {
	var n uint64
	if g.h.OnV2(cgroups.IO) {
		for _, l := range strings.Split(g.file("io", "", cg, "io.stat", ""), "\n") {
			for _, f := range strings.Fields(l) {
				if v, ok := strings.CutPrefix(f, "wbytes="); ok {
					x, _ := strconv.ParseUint(v, 10, 64)
					n += x
				}
			}
		}
		return n
	}
	for _, l := range strings.Split(g.file("io", "blkio", cg, "", "blkio.throttle.io_service_bytes_recursive"), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[1] == "Write" {
			x, _ := strconv.ParseUint(f[2], 10, 64)
			n += x
		}
	}
	return n
}

// workingSet is usage minus inactive file pages.
func (g truth) workingSet(cg string) uint64 {
	if g.h.OnV2(cgroups.Memory) {
		u, _ := strconv.ParseUint(strings.TrimSpace(g.file("memory", "", cg, "memory.current", "")), 10, 64)
		return u - field(g.file("memory", "", cg, "memory.stat", ""), "inactive_file")
	}
	u, _ := strconv.ParseUint(strings.TrimSpace(g.file("memory", "memory", cg, "", "memory.usage_in_bytes")), 10, 64)
	return u - field(g.file("memory", "memory", cg, "", "memory.stat"), "total_inactive_file")
}

func within(got, want, frac float64) bool {
	return got >= want*(1-frac) && got <= want*(1+frac)
}

// gather returns the collector's families by name.
func gather(t testing.TB, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	r := prometheus.NewPedanticRegistry()
	r.MustRegister(c)
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		m[mf.GetName()] = mf
	}
	return m
}

func labelsOf(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// series returns the value of family's series for container name and,
// when given, one more label.
func series(mfs map[string]*dto.MetricFamily, family, name, k, v string) (float64, bool) {
	var sum float64
	found := false
	for _, m := range mfs[family].GetMetric() {
		l := labelsOf(m)
		if l["name"] != name || (k != "" && l[k] != v) {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		}
	}
	return sum, found
}

// dockerBridgeIP is the host's address on Docker's default bridge.

// TestWorkloads runs a CPU burner limited to half a core, an O_DIRECT
// writer, a sender and an idle container side by side, and checks each
// one's counters against the cgroup's own files and the known byte counts.
func TestWorkloads(t *testing.T) {
	// IdleRefresh -1 (every container in full every tick): the idle
	// container's working set is compared with the cgroup's own, which an
	// idle container's reads would let lag.
	c := newTestCollector(t, Options{ContainerLabels: []string{"crmon.test.role"}, EnableMetrics: []string{"pressure", "memory_detail", "spec_detail"}, IdleRefresh: -1})
	g := truth{t, c.h}

	const sendBytes = 4 << 20
	const writeBytes = 32 << 20
	ln, err := net.Listen("tcp", dockertest.BridgeIP(t)+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		n, _ := io.Copy(io.Discard, io.LimitReader(conn, sendBytes))
		conn.Close()
		got <- n
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	names := map[string]string{"burn": uniq("crmon-burn"), "write": uniq("crmon-write"), "send": uniq("crmon-send"), "idle": uniq("crmon-idle")}
	role := func(r string) []string { return []string{"--name", names[r], "--label", "crmon.test.role=" + r} }
	ids := map[string]string{
		"burn":  dockertest.Run(t, append(role("burn"), "--cpus", "0.5"), "sh", "-c", "while :; do :; done"),
		"write": dockertest.Run(t, role("write"), "sh", "-c", fmt.Sprintf("dd if=/dev/zero of=/tmp/f bs=1M count=%d oflag=direct 2>/dev/null; sleep 600", writeBytes>>20)),
		"send":  dockertest.Run(t, role("send"), "sh", "-c", fmt.Sprintf("dd if=/dev/zero bs=4096 count=%d 2>/dev/null | nc %s %d; sleep 600", sendBytes/4096, dockertest.BridgeIP(t), port)),
		"idle":  dockertest.Run(t, append(role("idle"), "--memory", "64m"), "sleep", "600"),
	}
	cg := map[string]string{}
	waitFor(t, 10*time.Second, "containers seen through events", func() bool {
		for r, id := range ids {
			c.mu.RLock()
			ct, ok := c.byID[id]
			if ok {
				cg[r] = ct.cgroupPath
			}
			c.mu.RUnlock()
			if !ok || cg[r] == "" {
				return false
			}
		}
		return true
	})
	select {
	case n := <-got:
		if n != sendBytes {
			t.Fatalf("listener got %d bytes, want %d", n, sendBytes)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("listener got nothing")
	}
	waitFor(t, 30*time.Second, "the writer's 32 MiB", func() bool { return g.writeBytes(cg["write"]) >= writeBytes })

	ctx := context.Background()
	if err := c.Update(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	mfs0 := gather(t, c)
	cpu0 := g.cpuNanos(cg["burn"])
	time.Sleep(3 * time.Second)
	if err := c.Update(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	mfs := gather(t, c)
	cpu1 := g.cpuNanos(cg["burn"])

	// CPU: our delta against the cgroup's own, and half a core.
	u0, _ := series(mfs0, "container_cpu_usage_seconds_total", names["burn"], "cpu", "total")
	u1, _ := series(mfs, "container_cpu_usage_seconds_total", names["burn"], "cpu", "total")
	if want := float64(cpu1-cpu0) / 1e9; !within(u1-u0, want, 0.03) {
		t.Errorf("burner CPU delta %.4fs, cgroup says %.4fs", u1-u0, want)
	}
	checkText(t, c)
	var snap metrics.ResourceMetrics
	c.Fill(&snap)
	details := map[string]metrics.ContainerDetailMetrics{}
	for _, d := range snap.Containers.ContainerDetails {
		details[d.ContainerName] = d
	}
	// The burner's share matches the cgroup's own rate; when it used up
	// its quota in most periods (throttled) it sits near half a core. On a
	// host too busy to give it that, the quota is only an upper bound.
	th0, _ := series(mfs0, "container_cpu_cfs_throttled_periods_total", names["burn"], "", "")
	th1, _ := series(mfs, "container_cpu_cfs_throttled_periods_total", names["burn"], "", "")
	pe0, _ := series(mfs0, "container_cpu_cfs_periods_total", names["burn"], "", "")
	pe1, _ := series(mfs, "container_cpu_cfs_periods_total", names["burn"], "", "")
	p := details[names["burn"]].CPUUsagePercent
	if want := float64(cpu1-cpu0) / 1e9 / 3 * 100; !within(p, want, 0.10) {
		t.Errorf("burner at %.1f%% of a core, the cgroup's counter says about %.1f%%", p, want)
	}
	throttledShare := (th1 - th0) / max(pe1-pe0, 1)
	if p > 55 || (throttledShare >= 0.8 && p < 40) {
		t.Errorf("burner at %.1f%% of a core (throttled in %.0f%% of periods), want about 50", p, throttledShare*100)
	}
	if throttledShare < 0.8 {
		t.Logf("burner throttled in only %.0f%% of periods: the host is busy; it got %.1f%% of a core", throttledShare*100, p)
	}
	if p := details[names["idle"]].CPUUsagePercent; p > 1 {
		t.Errorf("idle container at %.2f%% of a core, want ~0", p)
	}
	// Half a core on a quota: the burner waits on the CPU.
	if w, ok := series(mfs, "container_pressure_cpu_waiting_seconds_total", names["burn"], "", ""); !ok || w <= 0 {
		t.Errorf("burner's CPU pressure %v (served %v), want > 0", w, ok)
	}
	if l, _ := series(mfs, "container_spec_memory_limit_bytes", names["idle"], "", ""); l != 64<<20 {
		t.Errorf("idle container's memory limit %v, want %d", l, 64<<20)
	}
	if q, _ := series(mfs, "container_spec_cpu_quota", names["burn"], "", ""); q != 50000 {
		t.Errorf("burner quota %v, want 50000", q)
	}

	// Block I/O: the writer's bytes, as the cgroup counts them.
	w, _ := series(mfs, "container_fs_writes_bytes_total", names["write"], "", "")
	if want := float64(g.writeBytes(cg["write"])); w != want || w < writeBytes {
		t.Errorf("writer wrote %v bytes, cgroup says %v, dd wrote %d", w, want, writeBytes)
	}
	if ops, _ := series(mfs, "container_fs_writes_total", names["write"], "", ""); ops < writeBytes/(1<<20) {
		t.Errorf("writer did %v write ops, want at least %d", ops, writeBytes>>20)
	}

	// Network: the sender's eth0 carried the payload, what its TCP stack
	// retransmitted, and per packet (a GSO packet is one) an Ethernet,
	// IPv4 and TCP header (14+20+20..60 bytes): nothing else. The payload
	// crossed it at least once, for the listener got it all. On a busy
	// host retransmissions are not rare (a receiver slow to acknowledge,
	// a full backlog): the sender's namespace counts them, in MSS-sized
	// segments. A crmon that counted the traffic twice, or read another
	// interface, is outside these bounds as long as the retransmissions
	// were fewer than the payload, which is checked first.
	tx, ok := series(mfs, "container_network_transmit_bytes_total", names["send"], "interface", "eth0")
	pk, _ := series(mfs, "container_network_transmit_packets_total", names["send"], "interface", "eth0")
	sendPID, err := strconv.Atoi(dockertest.Docker(t, "inspect", "-f", "{{.State.Pid}}", ids["send"]))
	if err != nil {
		t.Fatal(err)
	}
	tcp := testenv.ReadNetnsTCP(t, sendPID) // after the scrape: at least what it had counted by then
	mtu := testenv.ContainerMTU(t, sendPID, "eth0")
	retrans := float64(tcp.MaxRetransmittedPayload(mtu))
	if retrans >= sendBytes {
		t.Fatalf("the sender retransmitted up to %.0f bytes of its %d of payload (%v): the byte count cannot be checked", retrans, sendBytes, tcp)
	}
	lo := sendBytes + pk*(testenv.EthernetHeader+testenv.IPv4Header)
	hi := sendBytes + retrans + pk*(testenv.EthernetHeader+testenv.IPv4Header+testenv.TCPHeaderMax)
	if !ok || tx < lo || tx > hi {
		t.Errorf("sender transmitted %v bytes in %v packets on eth0 for %d bytes of payload, want %.0f to %.0f (%v, MTU %d)", tx, pk, sendBytes, lo, hi, tcp, mtu)
	}
	t.Logf("sender: %d bytes of payload, %v bytes in %v packets on eth0 (+%.2f%%); %v", sendBytes, tx, pk, (tx/sendBytes-1)*100, tcp)
	if d := details[names["send"]]; float64(d.NetworkBytesSent) != tx {
		t.Errorf("snapshot network_bytes_sent %d, metric %v", d.NetworkBytesSent, tx)
	}
	if tx, _ := series(mfs, "container_network_transmit_bytes_total", names["idle"], "", ""); tx > 4096 {
		t.Errorf("idle container transmitted %v bytes", tx)
	}

	// Memory, labels, ids, lookups, snapshot.
	for r, name := range names {
		ws, ok := series(mfs, "container_memory_working_set_bytes", name, "", "")
		if !ok {
			t.Errorf("%s: no container_memory_working_set_bytes", r)
			continue
		}
		// The kernel charges memory in per-CPU batches of 64 pages, so
		// usage itself is only that precise.
		slack := float64(64 * os.Getpagesize() * runtime.NumCPU())
		if want := float64(g.workingSet(cg[r])); !within(ws, want, 0.10) && math.Abs(ws-want) > slack {
			t.Errorf("%s: working set %v, cgroup says %v", r, ws, want)
		}
		for _, m := range mfs["container_memory_working_set_bytes"].GetMetric() {
			l := labelsOf(m)
			if l["name"] != name {
				continue
			}
			if l["image"] != dockertest.Image || l["id"] != cg[r] || l["container_label_crmon_test_role"] != r {
				t.Errorf("%s: labels %v", r, l)
			}
		}
		d, ok := details[name]
		if !ok {
			t.Errorf("%s: not in the snapshot", r)
			continue
		}
		if d.ContainerID != ids[r] || d.State != "running" || d.CgroupPath != cg[r] || d.Image != dockertest.Image ||
			d.StartedAt == nil || d.CreatedAt.IsZero() || d.MemoryUsageBytes == 0 {
			t.Errorf("%s: snapshot %+v", r, d)
		}
		ref, ok := c.LookupCgroup(cg[r])
		if !ok || ref.Name != name || ref.Image != dockertest.Image || ref.ID != ids[r] {
			t.Errorf("%s: LookupCgroup(%q) = %+v, %v", r, cg[r], ref, ok)
		}
		if p, ok := series(mfs, "container_processes", name, "", ""); !ok || p < 1 {
			t.Errorf("%s: %v processes", r, p)
		}
	}
	if snap.Containers.RunningContainers < 4 || snap.Containers.TotalContainers != snap.Containers.RunningContainers+snap.Containers.StoppedContainers {
		t.Errorf("counts %+v", snap.Containers)
	}

	// The text exposition passes promtool's lint, when promtool is there.
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(p, "check", "metrics")
		cmd.Stdin = &buf
		// Exit status 3 is lint only; cAdvisor's container_memory_failcnt
		// is a counter without _total, and crmon keeps cAdvisor's name.
		out, err := cmd.CombinedOutput()
		if err != nil {
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if cmd.ProcessState.ExitCode() != 3 || !strings.HasPrefix(l, "container_memory_failcnt counter") {
					t.Errorf("promtool check metrics: %v\n%s", err, out)
					break
				}
			}
		}
	}
}

// TestEngineRestart cuts the connection to the engine and restores it, with
// a relay in front of the real socket: the collector reports
// crmon_docker_up 0, keeps serving, and catches up on reconnect.
func TestEngineRestart(t *testing.T) {
	dockertest.Require(t)
	sock := filepath.Join(t.TempDir(), "docker.sock")
	relay := startRelay(t, sock)
	c := newTestCollector(t, Options{DockerHost: "unix://" + sock})
	ctx := context.Background()

	relay.stop()
	waitFor(t, 15*time.Second, "docker down", func() bool { return !c.Up() })
	if err := c.Update(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if v, _ := series(gather(t, c), "crmon_docker_up", "", "", ""); v != 0 {
		t.Errorf("crmon_docker_up = %v while the engine is unreachable", v)
	}
	// Started while we could not see the engine: found on reconnect.
	name := uniq("crmon-restart")
	id := dockertest.Run(t, []string{"--name", name}, "sleep", "600")
	relay = startRelay(t, sock)
	defer relay.stop()
	waitFor(t, 20*time.Second, "docker up again", c.Up)
	waitFor(t, 5*time.Second, "the container started while down", func() bool {
		ref, ok := c.LookupCgroup("/docker/" + id)
		if !ok {
			c.mu.RLock()
			ct, ok2 := c.byID[id]
			ok = ok2 && ct.cgroupPath != ""
			if ok {
				ref.Name = ct.name
			}
			c.mu.RUnlock()
		}
		return ok && ref.Name == name
	})
}

// relay forwards a unix socket to the engine's, so a test can take the
// engine away without stopping it.
type relay struct {
	ln    net.Listener
	conns chan net.Conn
}

func startRelay(t testing.TB, path string) *relay {
	t.Helper()
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, conns: make(chan net.Conn, 1024)}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("unix", "/var/run/docker.sock")
			if err != nil {
				in.Close()
				continue
			}
			r.conns <- in
			r.conns <- out
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return r
}

func (r *relay) stop() {
	r.ln.Close()
	for {
		select {
		case c := <-r.conns:
			c.Close()
		default:
			return
		}
	}
}

var _ collect.ContainerLookup = (*Collector)(nil)

// TestDefaultFamilies pins the families served for an idle container by
// default, with their types, and that the optional groups add theirs.
func TestDefaultFamilies(t *testing.T) {
	dockertest.Require(t)
	name := uniq("crmon-families")
	dockertest.Run(t, []string{"--name", name, "--cpus", "0.5"}, "sleep", "600")
	want := map[string]dto.MetricType{
		"container_cpu_usage_seconds_total":                dto.MetricType_COUNTER,
		"container_cpu_user_seconds_total":                 dto.MetricType_COUNTER,
		"container_cpu_system_seconds_total":               dto.MetricType_COUNTER,
		"container_cpu_cfs_periods_total":                  dto.MetricType_COUNTER,
		"container_cpu_cfs_throttled_periods_total":        dto.MetricType_COUNTER,
		"container_cpu_cfs_throttled_seconds_total":        dto.MetricType_COUNTER,
		"container_spec_cpu_quota":                         dto.MetricType_GAUGE,
		"container_spec_cpu_period":                        dto.MetricType_GAUGE,
		"container_spec_cpu_shares":                        dto.MetricType_GAUGE,
		"container_memory_usage_bytes":                     dto.MetricType_GAUGE,
		"container_memory_working_set_bytes":               dto.MetricType_GAUGE,
		"container_memory_rss":                             dto.MetricType_GAUGE,
		"container_memory_cache":                           dto.MetricType_GAUGE,
		"container_memory_max_usage_bytes":                 dto.MetricType_GAUGE,
		"container_memory_failcnt":                         dto.MetricType_COUNTER,
		"container_oom_events_total":                       dto.MetricType_COUNTER,
		"container_spec_memory_limit_bytes":                dto.MetricType_GAUGE,
		"container_network_receive_bytes_total":            dto.MetricType_COUNTER,
		"container_network_receive_packets_total":          dto.MetricType_COUNTER,
		"container_network_receive_errors_total":           dto.MetricType_COUNTER,
		"container_network_receive_packets_dropped_total":  dto.MetricType_COUNTER,
		"container_network_transmit_bytes_total":           dto.MetricType_COUNTER,
		"container_network_transmit_packets_total":         dto.MetricType_COUNTER,
		"container_network_transmit_errors_total":          dto.MetricType_COUNTER,
		"container_network_transmit_packets_dropped_total": dto.MetricType_COUNTER,
		"container_processes":                              dto.MetricType_GAUGE,
		"container_threads":                                dto.MetricType_GAUGE,
		"container_last_seen":                              dto.MetricType_GAUGE,
		"container_start_time_seconds":                     dto.MetricType_GAUGE,
	}
	optional := []string{
		"container_pressure_cpu_waiting_seconds_total", "container_pressure_io_stalled_seconds_total",
		"container_memory_total_inactive_file_bytes", "container_memory_mapped_file",
		"container_spec_memory_reservation_limit_bytes", "container_threads_max", "container_creation_time_seconds",
	}
	for _, groups := range [][]string{nil, {"pressure", "memory_detail", "spec_detail"}} {
		c := newTestCollector(t, Options{Include: []string{name}, EnableMetrics: groups})
		c.Update(context.Background(), time.Now())
		mfs := gather(t, c)
		checkText(t, c)
		for f, typ := range want {
			mf, ok := mfs[f]
			if !ok || mf.GetType() != typ || len(mf.GetMetric()) == 0 {
				t.Errorf("groups %v: %s missing or of type %v, want %v", groups, f, mf.GetType(), typ)
				continue
			}
			// The container's series, beside the root cgroup's (id="/").
			var l map[string]string
			for _, m := range mf.GetMetric() {
				if ml := labelsOf(m); ml["id"] != "/" {
					l = ml
					break
				}
			}
			if l["name"] != name || l["image"] != dockertest.Image || !strings.HasPrefix(l["id"], "/") {
				t.Errorf("groups %v: %s labels %v", groups, f, l)
			}
		}
		for _, f := range optional {
			if _, ok := mfs[f]; ok != (groups != nil) {
				t.Errorf("groups %v: %s served %v", groups, f, ok)
			}
		}
		// Counted: every container family is one this test knows. The
		// block I/O families appear once the cgroup did I/O on a device,
		// which an idle container may or may not have done starting up.
		for f := range mfs {
			_, known := want[f]
			known = known || strings.HasPrefix(f, "container_fs_")
			if strings.HasPrefix(f, "container_") && !known && groups == nil {
				t.Errorf("default serves %s, not in the pinned list", f)
			}
		}
	}
}
