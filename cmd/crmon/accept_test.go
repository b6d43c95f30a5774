// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/runner"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestAgentAttributesWorkloadToItsCgroup is the eBPF acceptance check, run
// through the binary as an operator would: `crmon run` at a 1 s interval;
// a fresh cgroup burns 1.5 CPU-seconds, writes 32 MiB with O_DIRECT and
// sends 8 MiB over loopback TCP; an idle cgroup sleeps beside it.
func TestAgentAttributesWorkloadToItsCgroup(t *testing.T) {
	testenv.RequireRoot(t)
	p := startAgent(t, "--config", lostCompletionConfig(t), "--collection-interval", "1s", "--ebpf", "required", "--collector.containers=false")

	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		t.Fatal(err)
	}
	const (
		cpu    = 1.5
		direct = 32 << 20
		sent   = 8 << 20
	)
	var (
		busy, idle *runner.Cgroup
		rusage     float64
		got        int64
		tcp        testenv.TCPSent
		fams       map[string]*dto.MetricFamily
	)
	w := testenv.UntilBlockCounted(t, direct, func(try int) (float64, uint64) {
		lost := lostCompletions(parseMetrics(t, p.get(t, "/metrics")))
		tag := strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(try)
		busy = newTestCgroup(t, h, "crmon-accept-busy-"+tag)
		idle = newTestCgroup(t, h, "crmon-accept-idle-"+tag)
		ln, received := countingListener(t, "127.0.0.1:0")
		sendVars, sentTCP := sendEnv(t, ln.Addr().String(), sent)
		idleCmd := startInCgroup(t, idle, nil, "sleep", "4")
		cmd := startInCgroup(t, busy, append([]string{
			"CRMON_TEST_WORKLOAD=1",
			fmt.Sprintf("CRMON_TEST_CPU=%g", cpu),
			fmt.Sprintf("CRMON_TEST_DIRECT_BYTES=%d", direct),
			"CRMON_TEST_FILE=" + filepath.Join(t.TempDir(), "direct"),
		}, sendVars...), os.Args[0])
		if err := cmd.Wait(); err != nil {
			t.Fatalf("workload: %v", err)
		}
		tcp = sentTCP()
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		rusage = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		got = <-received
		idleCmd.Wait()
		// Two ticks, after a completion the probes missed would be
		// counted lost (the sweep runs every half of the timeout).
		time.Sleep(lostCompletionAfter + lostCompletionAfter/2 + 2500*time.Millisecond)
		fams = parseMetrics(t, p.get(t, "/metrics"))
		return sum(fams, "crmon_container_block_io_bytes_total", map[string]string{"id": busy.Path, "op": "write"}),
			lostCompletions(fams) - lost
	})

	id := busy.Path
	cpuGot := value(fams, "crmon_container_cpu_seconds_total", map[string]string{"id": id})
	if d := relErr(cpuGot, rusage); d > 0.02 {
		t.Errorf("crmon_container_cpu_seconds_total{id=%q} = %.4f, rusage %.4f: off by %.2f%%, want ≤ 2%%", id, cpuGot, rusage, d*100)
	}
	if w < direct || w > direct*1.01 {
		t.Errorf("crmon_container_block_io_bytes_total{id=%q,op=write} = %.0f, want 0 to +1%% of %d", id, w, direct)
	}
	// The cgroup's only traffic is the sender's connection: every packet
	// an IPv4 and a TCP header (20+20..60 bytes) and the listener's bytes
	// at least once; at most what the sender's TCP stack put out,
	// retransmissions included.
	tx := value(fams, "crmon_container_network_bytes_total", map[string]string{"id": id, "direction": "transmit"})
	pk := value(fams, "crmon_container_network_packets_total", map[string]string{"id": id, "direction": "transmit"})
	if lo, hi := float64(got)+pk*(testenv.IPv4Header+testenv.TCPHeaderMin), float64(tcp.MaxIPBytes()); tx < lo || tx > hi {
		t.Errorf("crmon_container_network_bytes_total{id=%q,direction=transmit} = %.0f in %.0f packets, listener got %d: want %.0f to %.0f (the sender's %+v)", id, tx, pk, got, lo, hi, tcp)
	}
	if n := count(fams, "crmon_container_runqueue_latency_seconds", map[string]string{"id": id}); n == 0 {
		t.Errorf("no crmon_container_runqueue_latency_seconds histogram for %s", id)
	}
	for _, typ := range []string{"voluntary", "involuntary"} {
		if count(fams, "crmon_container_context_switches_total", map[string]string{"id": id, "type": typ}) == 0 {
			t.Errorf("no crmon_container_context_switches_total{id=%q,type=%q}", id, typ)
		}
	}
	if v := value(fams, "crmon_container_cpu_seconds_total", map[string]string{"id": idle.Path}); v >= 0.05 {
		t.Errorf("idle cgroup %s: %.4f CPU-seconds, want < 0.05", idle.Path, v)
	}
	t.Logf("cpu %.4f s (rusage %.4f), O_DIRECT writes %.0f B (%d), tx %.0f B (listener %d, the sender's %+v)", cpuGot, rusage, w, direct, tx, got, tcp)
}

// newTestCgroup makes a cgroup in every hierarchy, removed at the end.
func newTestCgroup(t *testing.T, h *cgroups.Hierarchy, name string) *runner.Cgroup {
	t.Helper()
	cg, err := runner.NewCgroup(h, "", name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cg.Kill()
		for i := 0; i < 50 && cg.Remove() != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
	return cg
}

// startInCgroup starts name in cg: in the cgroup2 part from its first
// instruction (CLONE_INTO_CGROUP), in the v1 parts before it is released.
// A workload child (env set) waits for the release on stdin.
func startInCgroup(t *testing.T, cg *runner.Cgroup, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	dir, err := os.Open(cg.V2Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	release, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, d := range cg.V1Dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			t.Fatalf("moving %d into %s: %v", cmd.Process.Pid, d, err)
		}
	}
	release.Write([]byte{1})
	release.Close()
	return cmd
}

func parseMetrics(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// matching returns the series of family name whose labels include want.
func matching(fams map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
	var out []*dto.Metric
	for _, m := range f.Metric {
		ok := true
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// sum adds the matching series (e.g. block bytes over devices).
func sum(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	s := 0.0
	for _, m := range matching(fams, name, want) {
		s += metricValue(m)
	}
	return s
}

// lostCompletions is the agent's count of block completions its probes
// lost.
func lostCompletions(fams map[string]*dto.MetricFamily) uint64 {
	return uint64(value(fams, "crmon_bpf_dropped_events_total", map[string]string{"probe": "block", "reason": "lost_completion"}))
}

// value is the one matching series' value, 0 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	return sum(fams, name, want)
}

func count(fams map[string]*dto.MetricFamily, name string, want map[string]string) int {
	return len(matching(fams, name, want))
}

func relErr(got, want float64) float64 {
	if want == 0 {
		return got
	}
	d := (got - want) / want
	if d < 0 {
		return -d
	}
	return d
}
