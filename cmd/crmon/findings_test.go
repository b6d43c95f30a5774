// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/pkg/session"
)

// findingCodes runs crmon exec with args and returns the codes of its
// findings by scope, and the report.
func findingCodes(t *testing.T, args ...string) (map[string][]string, *session.Report) {
	t.Helper()
	j := filepath.Join(t.TempDir(), "r.json")
	_, stderr, code := run(t, append([]string{"exec", noAgent, "--ebpf", "required", "--json", j}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	b, err := os.ReadFile(j)
	if err != nil {
		t.Fatal(err)
	}
	// The list is there, and empty when nothing was found: never null.
	var raw struct {
		Findings json.RawMessage `json:"findings"`
	}
	if err := json.Unmarshal(b, &raw); err != nil || len(raw.Findings) == 0 || string(raw.Findings) == "null" {
		t.Fatalf("findings: %q, %v", raw.Findings, err)
	}
	r := readReport(t, j)
	out := map[string][]string{}
	for _, f := range r.Findings {
		out[f.Scope] = append(out[f.Scope], f.Code)
		t.Logf("%s (%s, %s): %s", f.Code, f.Scope, f.Severity, f.Message)
		// The summary shows each finding.
		if !strings.Contains(stderr, "finding "+f.Code+" ("+f.Scope) {
			t.Errorf("summary lacks finding %s of %s:\n%s", f.Code, f.Scope, stderr)
		}
	}
	return out, r
}

// TestFindingsIdle: a run that does nothing much has no findings. It
// starts no container: other tests' containers, created meanwhile, are
// left out by a label none has.
func TestFindingsIdle(t *testing.T) {
	requireRootRun(t)
	got, _ := findingCodes(t, "--containers", fmt.Sprintf("crmon.test=findings-idle-%d", os.Getpid()), "--", "sleep", "1")
	if len(got) != 0 {
		t.Errorf("an idle run has findings: %v", got)
	}
}

// TestFindingsStarved: a CPU-bound run beside two CPU burners on this
// 2-core machine waits for the CPUs, and the finding names the burners'
// cgroup among those that used them.
func TestFindingsStarved(t *testing.T) {
	requireRootRun(t)
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		t.Fatal(err)
	}
	cg := newTestCgroup(t, h, fmt.Sprintf("crmon-test-burners-%d", os.Getpid()))
	dir, err := os.Open(cg.V2Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	for range 2 {
		b := exec.Command("sh", "-c", "while :; do :; done")
		b.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Process.Kill(); _ = b.Wait() })
	}
	// Three loops: the run waits about half its 1.1 s of CPU, well over
	// starvedMin even when the scheduler favours it (a run of two waited
	// 0.243 s of 0.723 s once, under the 0.25 s minimum).
	got, r := findingCodes(t, "--", "sh", "-c", burner+"; "+burner+"; "+burner)
	if !slices.Contains(got["run"], session.FindingCPUStarved) {
		t.Fatalf("findings %v: want cpu_starved for the run (wait %.3fs, cpu %.3fs)", got, r.Totals.RunqueueWaitSeconds, r.Totals.CPUSeconds)
	}
	for _, f := range r.Findings {
		if f.Code != session.FindingCPUStarved {
			continue
		}
		if !slices.ContainsFunc(f.Others, func(o session.CgroupCPU) bool { return o.Cgroup == cg.Path }) {
			t.Errorf("cpu_starved names %+v, not the burners' cgroup %s", f.Others, cg.Path)
		}
	}
	for _, c := range []string{session.FindingCPUThrottled, session.FindingOOMKill, session.FindingMemoryNearLimit, session.FindingContainerFailed} {
		if slices.Contains(got["run"], c) {
			t.Errorf("findings %v: %s was not staged", got, c)
		}
	}
}

// parallelBurners are eight shell loops at once, 0.6 s of CPU in all:
// with eight runnable tasks the container claims more than its 0.2 CPUs
// even on a host whose load is 20, so it hits its quota, whatever else
// runs (one task there gets 0.1 CPU and is never throttled).
const parallelBurners = `for n in 1 2 3 4 5 6 7 8; do (i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done) & done; wait`

// oomAfterStart allocates 64 MiB a second after the container starts. An
// allocation at once can be killed before containerd watches the
// container's OOM events and before a sample reads its cgroup (1 of 6
// beside stress-ng had no oom event): nothing is left to tell an OOM kill
// from any SIGKILL then (docs/report.md, oom_kill).
const oomAfterStart = "sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1"

// TestFindingsContainers: a container burning CPU under --cpus 0.2 is
// throttled; one that allocates 64 MiB under --memory 16m is OOM-killed
// and fails; one that writes 48 MiB to a file under --memory 32m fills
// its limit with page cache, which the kernel reclaims: near its limit,
// not killed. Each has its own findings and not the others'.
func TestFindingsContainers(t *testing.T) {
	requireRootRun(t)
	dockertest.Require(t)
	thr := fmt.Sprintf("crmon-throttled-%d", os.Getpid())
	oom := fmt.Sprintf("crmon-oom-%d", os.Getpid())
	near := fmt.Sprintf("crmon-nearlimit-%d", os.Getpid())
	t.Cleanup(func() { dockertest.Remove(thr, oom, near) })
	// Only this test's containers: other tests may start theirs meanwhile.
	label := fmt.Sprintf("crmon.test=findings-%d", os.Getpid())
	got, r := findingCodes(t, "--containers", label, "--", "sh", "-c",
		"docker run --rm --label "+label+" --name "+thr+" --cpus 0.2 "+dockertest.Image+" sh -c '"+parallelBurners+"'; "+
			"docker run --rm --label "+label+" --name "+oom+" --memory 16m --memory-swap 16m "+dockertest.Image+" sh -c '"+oomAfterStart+"'; "+
			"docker run --rm --label "+label+" --name "+near+" --memory 32m --memory-swap 32m "+dockertest.Image+" dd if=/dev/zero of=/tmp/x bs=1M count=48; true")
	if !slices.Contains(got["container:"+thr], session.FindingCPUThrottled) {
		t.Errorf("findings %v: want cpu_throttled for %s", got, thr)
	}
	// Its tasks waited while the quota held them: that is the quota's
	// wait, not a starvation by others.
	for _, c := range []string{session.FindingOOMKill, session.FindingContainerFailed, session.FindingMemoryNearLimit, session.FindingCPUStarved} {
		if slices.Contains(got["container:"+thr], c) {
			t.Errorf("findings %v: %s was not staged for %s", got, c, thr)
		}
	}
	for _, c := range []string{session.FindingOOMKill, session.FindingContainerFailed} {
		if !slices.Contains(got["container:"+oom], c) {
			t.Errorf("findings %v: want %s for %s", got, c, oom)
		}
	}
	for _, c := range []string{session.FindingCPUThrottled, session.FindingMemoryNearLimit} {
		if slices.Contains(got["container:"+oom], c) {
			t.Errorf("findings %v: %s was not staged for %s (its OOM kill says more)", got, c, oom)
		}
	}
	if !slices.Contains(got["container:"+near], session.FindingMemoryNearLimit) {
		t.Errorf("findings %v: want memory_near_limit for %s", got, near)
	}
	for _, c := range []string{session.FindingOOMKill, session.FindingContainerFailed, session.FindingCPUThrottled} {
		if slices.Contains(got["container:"+near], c) {
			t.Errorf("findings %v: %s was not staged for %s", got, c, near)
		}
	}
	for _, c := range r.Containers {
		if c.Name == oom && (c.ExitCode == nil || *c.ExitCode != 137 || c.FinishedAt.IsZero()) {
			t.Errorf("container %s: exit %v finished %v, want 137 and a time", oom, c.ExitCode, c.FinishedAt)
		}
	}
}
