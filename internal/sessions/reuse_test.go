// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/probe"
	"github.com/crmon-dev/crmon/internal/runner"
	"github.com/crmon-dev/crmon/internal/sessions"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestFreshCgroupReusedPath checks that a session on a fresh cgroup does
// not count the work of an earlier cgroup of the same path, whose final
// counts the probes keep for a while after it was removed.
func TestFreshCgroupReusedPath(t *testing.T) {
	testenv.RequireLong(t, "root, cgroups and the probes")
	testenv.RequireRoot(t)
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		testenv.Unavailable(t, "no cgroups: %v", err)
	}
	opts := probe.DefaultOptions()
	opts.NoStats = true
	opts.Cgroup2Root = h.Unified
	p, err := probe.New(opts)
	if err != nil {
		testenv.Unavailable(t, "eBPF probes: %v", err)
	}
	defer p.Close()
	if !p.Up(probe.ProbeSched) {
		testenv.Unavailable(t, "sched probe down")
	}
	meter := sessions.NewProbeMeter(p)

	name := fmt.Sprintf("reuse-%d", os.Getpid())
	first, err := runner.NewCgroup(h, testenv.CgroupParent, name)
	if err != nil {
		t.Fatal(err)
	}
	// CPU, then context switches: each sleep blocks, and its shell waits.
	burn := []string{"sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; for i in $(seq 200); do sleep 0.001; done"}
	if _, err := runner.Run(context.Background(), first, runner.Options{Args: burn}); err != nil {
		first.Remove()
		t.Fatal(err)
	}
	if err := first.Remove(); err != nil {
		t.Fatal(err)
	}
	// Let the probes take the removed cgroup's final values and retire
	// them under its path.
	var before float64
	var beforeSwitches uint64
	for deadline := time.Now().Add(2500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		if err := meter.Refresh(time.Now(), 0); err != nil {
			t.Fatal(err)
		}
		c, _ := meter.Subtree(first.Path)
		before, beforeSwitches = c.CPUSeconds, c.VoluntaryContextSwitches+c.InvoluntaryContextSwitches
	}
	if before < 0.05 {
		t.Fatalf("the probes kept %.3f CPU-seconds of the removed cgroup; the test needs some", before)
	}

	second, err := runner.NewCgroup(h, testenv.CgroupParent, name)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Remove()
	tr, err := sessions.NewTracker(sessions.TrackerOptions{Hierarchy: h, Meter: meter},
		sessions.Target{Name: "reuse", Cgroup: second.Paths(), Fresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runner.Run(context.Background(), second, runner.Options{Args: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	rep := tr.Stop()
	t.Logf("earlier cgroup: %.3f s, %d switches; this run: %+v", before, beforeSwitches, rep.Totals)
	if got := rep.Totals.CPUSeconds; got > before/2 {
		t.Errorf("cpu_seconds = %.3f for a run of true: the earlier cgroup's %.3f counted", got, before)
	}
	if beforeSwitches < 100 {
		t.Fatalf("the probes kept %d context switches of the removed cgroup; the test needs more", beforeSwitches)
	}
	if got := rep.Totals.ContextSwitches; got > beforeSwitches/2 {
		t.Errorf("context_switches = %d for a run of true: the earlier cgroup's %d counted", got, beforeSwitches)
	}
}
