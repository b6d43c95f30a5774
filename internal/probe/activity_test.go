// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/collect"
)

// startCommand starts argv in cg's cgroup2 cgroup; it is killed when the
// test ends.
func startCommand(t *testing.T, cg *testCgroup, argv ...string) *exec.Cmd {
	t.Helper()
	dir, err := os.Open(cg.v2)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// TestActivityOnCPU checks that a cgroup whose only task never switches out
// is active in every tick, and that one whose task sleeps is not. The
// burner is a shell loop (one thread, no syscalls) at SCHED_FIFO on a CPU
// of its own: no CFS task can preempt it, so between two ticks it is
// charged no context switch at all (RT throttling switches it out for
// 50 ms once a second, sched_rt_runtime_us): only the on-CPU marker says
// it runs.
func TestActivityOnCPU(t *testing.T) {
	p := loadProbes(t, Options{Sched: true})
	if runtime.NumCPU() < 2 {
		t.Skip("needs a second CPU for the burner")
	}
	m := mounts(t)
	busy := newCgroup(t, m, "oncpu")
	idle := newCgroup(t, m, "sleeper")
	startCommand(t, idle, "sleep", "3600")
	burner := startCommand(t, busy, "sh", "-c", "while :; do :; done")
	cpu := runtime.NumCPU() - 1
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(burner.Process.Pid, &set); err != nil {
		t.Fatal(err)
	}
	// Keep this test's own threads off the burner's CPU.
	var rest unix.CPUSet
	for i := 0; i < cpu; i++ {
		rest.Set(i)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.CPUSet
	_ = unix.SchedGetaffinity(0, &old)
	if err := unix.SchedSetaffinity(0, &rest); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &old)
	if err := unix.SchedSetAttr(burner.Process.Pid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}, 0); err != nil {
		t.Fatal(err)
	}

	c := NewCollector(p, CollectorOptions{}).(*collector)
	var ca collect.CgroupActivity = c
	time.Sleep(50 * time.Millisecond)
	prev, ok := ca.CgroupActivity(time.Now())
	if !ok {
		t.Fatal("the probes cannot tell activity with the sched probe up")
	}
	prevIdle := prev.Counts[idle.path]
	onlyOnCPU := 0
	const ticks = 20
	for i := 0; i < ticks; i++ {
		time.Sleep(50 * time.Millisecond)
		now := time.Now()
		act, ok := ca.CgroupActivity(now)
		if !ok {
			t.Fatalf("tick %d: the probes cannot tell activity", i)
		}
		moved := act.Counts[busy.path] != prev.Counts[busy.path]
		if !moved && !act.OnCPU[busy.path] {
			t.Errorf("tick %d: the burner's cgroup looks idle (count %d, not on a CPU)", i, act.Counts[busy.path])
		}
		if !moved {
			onlyOnCPU++
		}
		if !act.OnCPU["/"] && act.OnCPU[busy.path] {
			t.Errorf("tick %d: on a CPU without its ancestors", i)
		}
		if act.OnCPU[idle.path] {
			t.Errorf("tick %d: the sleeper's cgroup is on a CPU", i)
		}
		// A second ask in the same tick is the same reading.
		if again, _ := ca.CgroupActivity(now); again.Counts[busy.path] != act.Counts[busy.path] {
			t.Errorf("tick %d: a second ask read the maps again", i)
		}
		prev = act
	}
	if n := prev.Counts[idle.path]; n != prevIdle {
		t.Errorf("the sleeper's cgroup count moved from %d to %d in %d ticks", prevIdle, n, ticks)
	}
	// The point of the test: ticks in which the burner switched out
	// nothing, where only the marker saw it.
	if onlyOnCPU == 0 {
		t.Errorf("the burner was charged a context switch in each of %d ticks: the marker was not tested", ticks)
	}
	t.Logf("%d of %d ticks seen only by the on-CPU marker", onlyOnCPU, ticks)
}
