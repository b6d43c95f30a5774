// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/probe"
	"github.com/crmon-dev/crmon/internal/sessions"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/session"
)

// listener counts the bytes it receives.
type listener struct {
	ln   net.Listener
	got  atomic.Int64
	done chan struct{}
}

func newListener(t *testing.T) *listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n, _ := io.Copy(io.Discard, c)
			l.got.Add(n)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-l.done })
	return l
}

// workloadCmd runs this test binary as the workload.
func workloadCmd(t *testing.T, env map[string]string) ([]string, []string, string) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	result := filepath.Join(t.TempDir(), "result.json")
	e := append(os.Environ(), "CRMON_WORKLOAD=1", "CRMON_WORKLOAD_RESULT="+result)
	for k, v := range env {
		e = append(e, k+"="+v)
	}
	return []string{self}, e, result
}

func readResult(t *testing.T, p string) workloadResult {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var r workloadResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// directDir is a directory on a block device (O_DIRECT needs one; /tmp
// may be tmpfs).
func directDir(t *testing.T) string {
	d, err := os.MkdirTemp("/var/tmp", "crmon-direct-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func within(t *testing.T, what string, got, want, lo, hi float64) {
	t.Helper()
	rel := (got - want) / want
	if rel < lo || rel > hi {
		t.Errorf("%s = %v, want %v (%+.2f%%, allowed %+.1f%%..%+.1f%%)", what, got, want, 100*rel, 100*lo, 100*hi)
	} else {
		t.Logf("%s = %v, want %v (%+.3f%%)", what, got, want, 100*rel)
	}
}

func hierarchy(t *testing.T) *cgroups.Hierarchy {
	requireCgroups(t)
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		testenv.Unavailable(t, "no cgroups: %v", err)
	}
	return h
}

// TestExecCgroupfs measures a workload of known size from the cgroup files
// alone (no probes): CPU and block writes must be exact.
func TestExecCgroupfs(t *testing.T) {
	h := hierarchy(t)
	const cpu, write = 0.5, 8 << 20
	args, env, result := workloadCmd(t, map[string]string{
		"CRMON_WORKLOAD_CPU":   fmt.Sprint(cpu),
		"CRMON_WORKLOAD_WRITE": fmt.Sprint(write),
		"CRMON_WORKLOAD_DIR":   directDir(t),
	})
	rep, res, err := Exec(context.Background(), ExecOptions{
		Options:   Options{Args: args, Env: env, Stdout: os.Stdout, Stderr: os.Stderr},
		Hierarchy: h,
		Parent:    testParent,
		Tracker:   sessions.TrackerOptions{Hierarchy: h},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("workload exit %d", res.ExitCode)
	}
	if w := readResult(t, result); w.Written != write {
		t.Fatalf("workload wrote %d", w.Written)
	}
	// rusage from wait4 covers every thread of the workload.
	within(t, "cpu_seconds", rep.Totals.CPUSeconds, res.RusageSeconds, -0.01, 0.01)
	within(t, "block_write_bytes", float64(rep.Totals.BlockWriteBytes), write, 0, 0.02)
	if rep.Totals.PeakMemoryBytes == 0 {
		t.Error("peak_memory_bytes = 0")
	}
	if len(rep.Series.Run) < 2 {
		t.Errorf("%d samples, want at least 2 over %.2fs", len(rep.Series.Run), rep.DurationSeconds)
	}
}

// probeMeter is the probes as a run's meter, and the probes themselves.
type probeMeter struct {
	*sessions.ProbeMeter
	p *probe.Probes
}

// lostCompletions is what a run that counted got of want block bytes
// lost: the completions its report counts and, when it under-counted,
// those of its requests still in flight: the run waited for its I/O, so
// they were lost too, but the probes count them only at LostAfter. They
// are swept after a second, time enough for anyone else's request issued
// just before the run ended.
func (m probeMeter) lostCompletions(t *testing.T, rep *session.Report, got, want float64) uint64 {
	t.Helper()
	n := rep.BlockLostCompletions
	if got >= want {
		return n
	}
	read := func() uint64 {
		snap, err := m.p.Read(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return snap.Dropped(probe.ProbeBlock, "lost_completion")
	}
	before := read()
	time.Sleep(time.Second)
	if err := m.p.SweepLostCompletions(time.Second); err != nil {
		t.Fatal(err)
	}
	return n + read() - before
}

// loadMeter loads the eBPF probes, all of them.
func loadMeter(t *testing.T, h *cgroups.Hierarchy) probeMeter {
	t.Helper()
	opts := probe.DefaultOptions()
	opts.Required = true
	opts.NoStats = true
	opts.Cgroup2Root = h.Unified
	p, err := probe.New(opts)
	if err != nil {
		testenv.Unavailable(t, "eBPF probes: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return probeMeter{sessions.NewProbeMeter(p), p}
}

func execWorkload(t *testing.T, h *cgroups.Hierarchy, m sessions.Meter, env map[string]string) (*session.Report, Result, workloadResult) {
	t.Helper()
	args, e, result := workloadCmd(t, env)
	rep, res, err := Exec(context.Background(), ExecOptions{
		Options:   Options{Args: args, Env: e, Stdout: os.Stdout, Stderr: os.Stderr},
		Hierarchy: h,
		Parent:    testParent,
		Tracker:   sessions.TrackerOptions{Hierarchy: h, Meter: m},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("workload exit %d", res.ExitCode)
	}
	return rep, res, readResult(t, result)
}

// TestExecPrecision is the ground-truth check of `crmon exec`: a run that
// burns a known CPU time, writes a known number of bytes with O_DIRECT and
// sends a known number of bytes over loopback TCP.
func TestExecPrecision(t *testing.T) {
	h := hierarchy(t)
	m := loadMeter(t, h)
	const write, send = 32 << 20, 8 << 20
	var (
		rep *session.Report
		res Result
		l   *listener
		wl  workloadResult
	)
	testenv.UntilBlockCounted(t, write, func(int) (float64, uint64) {
		l = newListener(t)
		rep, res, wl = execWorkload(t, h, m, map[string]string{
			"CRMON_WORKLOAD_CPU":   "1",
			"CRMON_WORKLOAD_WRITE": fmt.Sprint(write),
			"CRMON_WORKLOAD_DIR":   directDir(t),
			"CRMON_WORKLOAD_SEND":  fmt.Sprint(send),
			"CRMON_WORKLOAD_ADDR":  l.ln.Addr().String(),
		})
		if wl.Sent != send || wl.Written != write {
			t.Fatalf("workload did %+v", wl)
		}
		got := float64(rep.Totals.BlockWriteBytes)
		return got, m.lostCompletions(t, rep, got, write)
	})
	// rusage from wait4 covers every thread of the workload.
	within(t, "cpu_seconds", rep.Totals.CPUSeconds, res.RusageSeconds, -0.01, 0.01)
	within(t, "block_write_bytes", float64(rep.Totals.BlockWriteBytes), write, 0, 0.01)
	// At least the payload the listener got; at most what the sender's TCP
	// stack says it put out, retransmissions and headers included.
	if tx, got, hi := rep.Totals.NetTxBytes, uint64(l.got.Load()), wl.TCP.MaxIPBytes(); tx < got || tx > hi {
		t.Errorf("net_tx_bytes = %d, want %d (the payload the listener got) to %d (the sender's %+v)", tx, got, hi, wl.TCP)
	} else {
		t.Logf("net_tx_bytes = %d: payload %d, the sender's %+v", tx, got, wl.TCP)
	}
	if rep.Totals.BlockWriteOperations == 0 || rep.Totals.BlockIOLatencyP99Seconds == 0 {
		t.Errorf("block ops %d, latency p99 %v: want both > 0", rep.Totals.BlockWriteOperations, rep.Totals.BlockIOLatencyP99Seconds)
	}
	if rep.Totals.ContextSwitches == 0 {
		t.Error("context_switches = 0")
	}
	if !slices.Contains(rep.Sources, "ebpf") || len(rep.Unavailable) != 0 {
		t.Errorf("sources %v, unavailable %v", rep.Sources, rep.Unavailable)
	}
}

// burn spins on this goroutine for d of wall time, outside any run.
func burn(d time.Duration) {
	end := time.Now().Add(d)
	x := 1.0
	for time.Now().Before(end) {
		for i := 0; i < 10000; i++ {
			x = x*1.0000001 + 1e-9
		}
	}
	_ = x
}

// TestExecCountsOnlyItsOwnWork runs two workloads at once, with work
// outside both just before, during and just after: each run reports its
// own work and nothing else.
func TestExecCountsOnlyItsOwnWork(t *testing.T) {
	h := hierarchy(t)
	m := loadMeter(t, h)
	dir := directDir(t)

	var busy, idle *session.Report
	var busyRes Result
	testenv.UntilBlockCounted(t, 4<<20, func(int) (float64, uint64) {
		outside := make(chan struct{})
		go func() {
			defer close(outside)
			burn(1500 * time.Millisecond)
			// Outside work on disk too, with the same O_DIRECT writes.
			_ = directWrite(dir, 8<<20)
		}()

		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			busy, busyRes, _ = execWorkload(t, h, m, map[string]string{
				"CRMON_WORKLOAD_CPU": "0.5", "CRMON_WORKLOAD_WRITE": fmt.Sprint(4 << 20), "CRMON_WORKLOAD_DIR": dir,
			})
		}()
		go func() {
			defer wg.Done()
			idle, _, _ = execWorkload(t, h, m, map[string]string{})
		}()
		wg.Wait()
		<-outside
		if t.Failed() {
			t.FailNow()
		}
		got := float64(busy.Totals.BlockWriteBytes)
		return got, m.lostCompletions(t, busy, got, 4<<20)
	})
	within(t, "busy cpu_seconds", busy.Totals.CPUSeconds, busyRes.RusageSeconds, -0.01, 0.01)
	within(t, "busy block_write_bytes", float64(busy.Totals.BlockWriteBytes), 4<<20, 0, 0.01)
	// The idle run is a Go binary starting and exiting: a few ms of CPU,
	// no block writes of its own.
	if idle.Totals.CPUSeconds > 0.05 || idle.Totals.BlockWriteBytes > 64<<10 {
		t.Errorf("idle run saw cpu %v s, block writes %d B: others' work", idle.Totals.CPUSeconds, idle.Totals.BlockWriteBytes)
	}
}

// TestExecAgentRefuses falls back to measuring in-process when the agent
// answers but does not start the session.
func TestExecAgentRefuses(t *testing.T) {
	h := hierarchy(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	rep, res, err := Exec(context.Background(), ExecOptions{
		Options:   Options{Args: []string{"sh", "-c", "exit 6"}},
		Hierarchy: h,
		Parent:    testParent,
		AgentURL:  srv.URL,
		Tracker:   sessions.TrackerOptions{Hierarchy: h, Logger: slog.New(slog.DiscardHandler)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 6 || rep.ExitCode == nil || *rep.ExitCode != 6 || !slices.Contains(rep.Sources, "cgroupfs") {
		t.Errorf("exit %d, report %+v", res.ExitCode, rep)
	}
}
