// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/probe"
	"github.com/crmon-dev/crmon/internal/runner"
	"github.com/crmon-dev/crmon/internal/sessions"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestLostCompletionsInReport runs O_DIRECT writes while the block
// probe's in-flight requests are swept as lost as soon as they are seen,
// the state a completion the probe did not see leaves: the run's report
// counts the lost completions, so it can say its block operations and
// latencies are a lower bound.
func TestLostCompletionsInReport(t *testing.T) {
	testenv.RequireLong(t, "root, cgroups and the probes")
	testenv.RequireRoot(t)
	dd := testenv.RequireCommand(t, "dd")
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		testenv.Unavailable(t, "no cgroups: %v", err)
	}
	opts := probe.Options{Block: true, NoStats: true, Cgroup2Root: h.Unified, Required: true}
	p, err := probe.New(opts)
	if err != nil {
		testenv.Unavailable(t, "eBPF probes: %v", err)
	}
	defer p.Close()
	meter := sessions.NewProbeMeter(p)
	dir, err := os.MkdirTemp("/var/tmp", "crmon-lost-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cg, err := runner.NewCgroup(h, testenv.CgroupParent, fmt.Sprintf("lost-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Remove()
	tr, err := sessions.NewTracker(sessions.TrackerOptions{Hierarchy: h, Meter: meter},
		sessions.Target{Name: "lost", Cgroup: cg.Paths(), Fresh: true})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := p.SweepLostCompletions(0); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	args := []string{dd, "if=/dev/zero", "of=" + filepath.Join(dir, "f"), "bs=64k", "count=512", "oflag=direct", "status=none"}
	_, err = runner.Run(context.Background(), cg, runner.Options{Args: args})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	rep := tr.Stop()
	t.Logf("block write bytes %d, lost completions %d", rep.Totals.BlockWriteBytes, rep.BlockLostCompletions)
	if rep.BlockLostCompletions == 0 {
		t.Error("the report counts no lost completion")
	}
}
