// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/runner"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/session"
)

// TestExecGoTestProcesses runs a real test suite, github.com/prometheus/
// procfs's from the Go module cache (its dependencies are there too, so
// it builds offline), under crmon exec: each package's test binary is a
// row of processes[] of its own, and the rows' CPU adds up to the run's
// within 1 %. (Some of procfs's tests need fixtures its Makefile unpacks,
// so go test may exit 1: the report is what is checked.)
func TestExecGoTestProcesses(t *testing.T) {
	requireRootRun(t)
	goBin := testenv.RequireCommand(t, "go")
	out, err := exec.Command(goBin, "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(strings.TrimSpace(string(out)), "github.com/prometheus/procfs@v0.23.0")
	if _, err := os.Stat(src); err != nil {
		testenv.Unavailable(t, "github.com/prometheus/procfs@v0.23.0 is not in the module cache: %v", err)
	}
	mod := filepath.Join(t.TempDir(), "procfs")
	if out, err := exec.Command("cp", "-r", src, mod).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	if out, err := exec.Command("chmod", "-R", "u+w", mod).CombinedOutput(); err != nil {
		t.Fatalf("chmod: %v\n%s", err, out)
	}
	pkgs, err := exec.Command(goBin, "list", "-C", mod, "-mod=mod", "-f", "{{if .TestGoFiles}}{{.Name}}{{end}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	j := filepath.Join(t.TempDir(), "r.json")
	cmd := exec.Command(crmonBinary(t), "exec", "-q", noAgent, "--ebpf", "required", "--json", j, "--", goBin, "test", "-count=1", "./...")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off")
	outb, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() > 1 || err != nil && !ok {
		t.Fatalf("crmon exec go test: %v\n%s", err, outb)
	}
	r := readReport(t, j)
	rows := map[string]bool{}
	var sum float64
	for _, p := range r.Processes {
		rows[p.Command] = true
		sum += p.CPUSeconds
		if p.Count < 1 || len(p.PIDs) == 0 {
			t.Errorf("row %q: %d processes, pids %v", p.Command, p.Count, p.PIDs)
		}
	}
	for _, name := range strings.Fields(string(pkgs)) {
		if !rows[name+".test"] {
			t.Errorf("no row for %s.test; rows: %v", name, rows)
		}
	}
	if !rows["go test"] || !rows["compile"] {
		t.Errorf("rows %v: want go test and compile among them", rows)
	}
	if d := math.Abs(sum-r.Totals.CPUSeconds) / r.Totals.CPUSeconds; d > 0.01 {
		t.Errorf("processes' CPU sums to %.4fs, the run used %.4fs (%.2f%% apart, want within 1%%)", sum, r.Totals.CPUSeconds, d*100)
	} else {
		t.Logf("%d commands; their CPU sums to %.4fs, the run used %.4fs (%.3f%% apart)", len(r.Processes), sum, r.Totals.CPUSeconds, d*100)
	}
	if r.ProcessesDropped != 0 {
		t.Errorf("%d processes dropped", r.ProcessesDropped)
	}
}

// TestSessionProcessesOnlyForOwner: a user who measures a cgroup that is
// not theirs gets its figures but not its processes (what runs there,
// with an argument, is the owner's business); root gets both.
func TestSessionProcessesOnlyForOwner(t *testing.T) {
	requireRootRun(t)
	dir, bin := sharedDir(t)
	sock := filepath.Join(dir, "run", "crmon.sock")
	a := startAgent(t, "--ebpf", "required", "--collector.containers=false",
		"--control.socket", sock, "--control.socket-group", strconv.Itoa(nobody))
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		t.Fatal(err)
	}
	cg := newTestCgroup(t, h, fmt.Sprintf("crmon-test-owner-%d", os.Getpid()))
	url := "--agent-url=unix://" + sock
	for _, who := range []string{"root", "nobody"} {
		start := []string{"session", "start", url, "--cgroup", cg.Path, "s-" + who}
		stop := []string{"session", "stop", url, "-q", "--json", "-", "s-" + who}
		runAs := func(args ...string) (string, string, int) {
			if who == "nobody" {
				return asNobody(t, bin, args...)
			}
			return run(t, args...)
		}
		if _, stderr, code := runAs(start...); code != 0 {
			t.Fatalf("%s: session start: exit %d\n%s\n%s", who, code, stderr, a.logs())
		}
		w := startInCgroup(t, cg, nil, "sh", "-c", "read x; "+burner)
		if err := w.Wait(); err != nil {
			t.Fatal(err)
		}
		out, stderr, code := runAs(stop...)
		if code != 0 {
			t.Fatalf("%s: session stop: exit %d\n%s", who, code, stderr)
		}
		var r session.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%s: %v\n%s", who, err, out)
		}
		if r.Totals.CPUSeconds < 0.1 {
			t.Errorf("%s: cpu_seconds %v, want the burner's", who, r.Totals.CPUSeconds)
		}
		if got := len(r.Processes); (who == "root") != (got > 0) {
			t.Errorf("%s: %d process rows; want them for root only", who, got)
		}
	}
}

// TestSessionProcessesRunningAndNested: a session's processes[] lists a
// process still running when the session stops, with what it had used
// by then, and one that ran in a cgroup below the session's (a scope the
// job made); each process's CPU within 3 % of its rusage (the running
// one's taken when it is killed after the stop, having slept since it
// burned).
func TestSessionProcessesRunningAndNested(t *testing.T) {
	requireRootRun(t)
	a := startAgent(t, "--ebpf", "required", "--collector.containers=false")
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		t.Fatal(err)
	}
	cg := newTestCgroup(t, h, fmt.Sprintf("crmon-test-running-%d", os.Getpid()))
	nested := &runner.Cgroup{V2Dir: filepath.Join(cg.V2Dir, "scope")}
	if err := os.Mkdir(nested.V2Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	url := "--agent-url=unix://" + a.sock
	if _, stderr, code := run(t, "session", "start", url, "--cgroup", cg.Path, "running"); code != 0 {
		t.Fatalf("session start: exit %d\n%s\n%s", code, stderr, a.logs())
	}
	// Burns, then sleeps through the stop (the same process: exec).
	stays := startInCgroup(t, cg, nil, "sh", "-c", "read x; "+burner+"; exec sleep 300")
	t.Cleanup(func() {
		if stays.ProcessState == nil {
			_ = stays.Process.Kill()
			_ = stays.Wait()
		}
	})
	inner := startInCgroup(t, nested, nil, "sh", "-c", "read x; "+burner)
	if err := inner.Wait(); err != nil {
		t.Fatal(err)
	}
	innerCPU := rusageSeconds(inner.ProcessState)
	// The running one has burned when its CPU time stops growing.
	waitBurned(t, stays.Process.Pid)

	stdout, stderr, code := run(t, "session", "stop", url, "-q", "--json", "-", "running")
	if code != 0 {
		t.Fatalf("session stop: exit %d\n%s", code, stderr)
	}
	var r session.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	_ = stays.Process.Kill()
	_ = stays.Wait()
	staysCPU := rusageSeconds(stays.ProcessState)
	byPID := map[int]session.ProcessReport{}
	for _, p := range r.Processes {
		for _, pid := range p.PIDs {
			if p.Count == 1 {
				byPID[pid] = p
			}
		}
	}
	for _, c := range []struct {
		what string
		pid  int
		cpu  float64
	}{{"still running at the stop", stays.Process.Pid, staysCPU}, {"in a cgroup below the session's", inner.Process.Pid, innerCPU}} {
		p, ok := byPID[c.pid]
		if !ok {
			t.Errorf("%s: pid %d not in processes %+v", c.what, c.pid, r.Processes)
			continue
		}
		if d := math.Abs(p.CPUSeconds-c.cpu) / c.cpu; d > 0.03 {
			t.Errorf("%s: %q cpu %.4fs, rusage %.4fs (%.2f%% apart)", c.what, p.Command, p.CPUSeconds, c.cpu, d*100)
		} else {
			t.Logf("%s: %q cpu %.4fs, rusage %.4fs (%.3f%% apart)", c.what, p.Command, p.CPUSeconds, c.cpu, d*100)
		}
	}
}

func rusageSeconds(ps *os.ProcessState) float64 {
	return (ps.UserTime() + ps.SystemTime()).Seconds()
}

// waitBurned waits until process pid's CPU time stops growing for 200 ms
// (it sleeps), up to 60 s.
func waitBurned(t *testing.T, pid int) {
	t.Helper()
	last := ""
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
		if err != nil {
			t.Fatal(err)
		}
		cur := strings.Fields(string(b))[0]
		if cur == last && cur != "0" {
			return
		}
		last = cur
	}
	t.Fatalf("pid %d still burns after 60 s", pid)
}
