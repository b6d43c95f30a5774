// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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

// inNanosleep waits until pid is blocked in nanosleep or clock_nanosleep:
// /proc/PID/syscall names the system call a blocked task is in.
func inNanosleep(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			if n, err := strconv.Atoi(f[0]); err == nil && (n == unix.SYS_NANOSLEEP || n == unix.SYS_CLOCK_NANOSLEEP) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d not in nanosleep within 10s: /proc/%d/syscall %q", pid, pid, b)
		}
	}
}

// usageUsec reads usage_usec from cg's cgroup2 cpu.stat: the cgroup's
// CPU time as the kernel accounts it. The file exists without the cpu
// controller (cgroup2's base stats), on a hybrid host too.
func usageUsec(t *testing.T, cg *testCgroup) uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cg.v2, "cpu.stat"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no usage_usec in %s/cpu.stat", cg.v2)
	return 0
}

// startBurner starts a shell loop (one thread, no syscalls) in cg at
// SCHED_FIFO, pinned to the last CPU, and keeps the test's goroutine's
// thread off that CPU until the test ends.
func startBurner(t *testing.T, cg *testCgroup) *exec.Cmd {
	t.Helper()
	if runtime.NumCPU() < 2 {
		t.Skip("needs a second CPU for the burner")
	}
	burner := startCommand(t, cg, "sh", "-c", "while :; do :; done")
	cpu := runtime.NumCPU() - 1
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(burner.Process.Pid, &set); err != nil {
		t.Fatal(err)
	}
	var rest unix.CPUSet
	for i := 0; i < cpu; i++ {
		rest.Set(i)
	}
	runtime.LockOSThread()
	var old unix.CPUSet
	_ = unix.SchedGetaffinity(0, &old)
	if err := unix.SchedSetaffinity(0, &rest); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	// Cleanups run on the test's goroutine, after the test function.
	t.Cleanup(func() {
		_ = unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	})
	if err := unix.SchedSetAttr(burner.Process.Pid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}, 0); err != nil {
		t.Fatal(err)
	}
	return burner
}

// TestActivityOnCPU checks the property the containers collector relies
// on to skip a cgroup's reads: a cgroup that used CPU between two
// readings is active at the second, even when its only task never
// switches out; and a cgroup whose task sleeps is not.
//
// The burner is a shell loop (one thread, no syscalls) at SCHED_FIFO on a
// CPU of its own, so that in most ticks it is charged no context switch
// and only the on-CPU marker sees it. It is not guaranteed to run in
// every tick: RT throttling (sched_rt_runtime_us) and, from Linux 6.12,
// the fair server (a deadline server) give CFS tasks up to 50 ms a second
// on its CPU, so beside a CPU hog it may be off its CPU for a whole 50 ms
// tick; then it used no CPU, and idle is the right answer.
//
// So the check is made against the kernel's own CPU accounting of the
// cgroup, read just before and just after each reading of the probes.
// The kernel adds a running task's time to cpu.stat (update_curr) only
// while the task is current on its CPU: at a scheduler tick, or as it
// switches out, before the sched_switch tracepoint. If usage_usec moved
// between the read after reading k-1 and the read before reading k, the
// burner was current at some moment between the two readings: either it
// still is at reading k, which reads sched_oncpu first, and the marker
// (set at its switch-in and at each scheduler tick) names its cgroup; or it switched out before,
// and reading k's count, read after sched_oncpu, has that switch. Either
// way reading k says active. The converse is not checked: a reading may
// say active for a tick in which the kernel had not yet accounted the
// burner's time (up to one scheduler tick late), which costs only a read.
func TestActivityOnCPU(t *testing.T) {
	p := loadProbes(t, Options{Sched: true})
	m := mounts(t)
	busy := newCgroup(t, m, "oncpu")
	idle := newCgroup(t, m, "sleeper")
	sleeper := startCommand(t, idle, "sleep", "3600")
	startBurner(t, busy)

	// The sleeper switches out while it execs and loads (page faults that
	// wait for the disk on a busy host); from its nanosleep on, it is
	// charged nothing.
	inNanosleep(t, sleeper.Process.Pid)

	c := NewCollector(p, CollectorOptions{}).(*collector)
	var ca collect.CgroupActivity = c
	time.Sleep(50 * time.Millisecond)
	prev, ok := ca.CgroupActivity(time.Now())
	if !ok {
		t.Fatal("the probes cannot tell activity with the sched probe up")
	}
	after := usageUsec(t, busy)
	prevIdle := prev.Counts.Of(idle.path)
	// ran: ticks in which the burner was accounted CPU time; onlyOnCPU:
	// those of them in which it switched out nothing, seen by the marker
	// alone; notRun: ticks in which the kernel accounted it nothing.
	ran, onlyOnCPU, notRun := 0, 0, 0
	const ticks = 20
	for i := 0; i < ticks; i++ {
		time.Sleep(50 * time.Millisecond)
		before := usageUsec(t, busy)
		now := time.Now()
		act, ok := ca.CgroupActivity(now)
		if !ok {
			t.Fatalf("tick %d: the probes cannot tell activity", i)
		}
		used := before > after
		after = usageUsec(t, busy)
		moved := act.Counts.Of(busy.path) != prev.Counts.Of(busy.path)
		switch {
		case used && !moved && !act.OnCPU[busy.path]:
			t.Errorf("tick %d: the burner's cgroup used CPU since the last reading (cpu.stat usage_usec moved) but looks idle (count %d, not on a CPU)", i, act.Counts.Of(busy.path))
		case used && !moved:
			onlyOnCPU++
		case !used:
			notRun++
		}
		if used {
			ran++
		}
		if act.OnCPU[busy.path] && !act.OnCPU["/"] {
			t.Errorf("tick %d: on a CPU without its ancestors", i)
		}
		if act.OnCPU[idle.path] {
			t.Errorf("tick %d: the sleeper's cgroup is on a CPU", i)
		}
		// A second ask in the same tick is the same reading.
		if again, _ := ca.CgroupActivity(now); again.Counts.Of(busy.path) != act.Counts.Of(busy.path) {
			t.Errorf("tick %d: a second ask read the maps again", i)
		}
		prev = act
	}
	if n := prev.Counts.Of(idle.path); n != prevIdle {
		t.Errorf("the sleeper's cgroup count moved from %d to %d in %d ticks", prevIdle, n, ticks)
	}
	// The point of the test: ticks in which the burner ran and switched
	// out nothing, where only the marker saw it. Throttling takes it off
	// its CPU for at most 100 ms a second (RT runtime and fair server):
	// it runs in most of the 20 ticks.
	if onlyOnCPU == 0 {
		t.Errorf("in none of the %d ticks in which the burner ran (of %d) was it seen by the marker alone: the marker was not tested", ran, ticks)
	}
	t.Logf("of %d ticks: the burner ran in %d, %d of them seen only by the on-CPU marker; it did not run in %d", ticks, ran, onlyOnCPU, notRun)
}

// TestActivityMovedWhileOnCPU moves the burner to another cgroup while it
// runs: cgroup migration does not switch it out, so its new cgroup is
// charged no context switch until throttling takes it off its CPU, and
// only the on-CPU marker, refreshed at the scheduler tick, can see it
// there. The check is TestActivityOnCPU's, against the new cgroup's
// cpu.stat usage_usec read around each reading.
func TestActivityMovedWhileOnCPU(t *testing.T) {
	p := loadProbes(t, Options{Sched: true})
	m := mounts(t)
	from := newCgroup(t, m, "move-from")
	to := newCgroup(t, m, "move-to")
	burner := startBurner(t, from)

	c := NewCollector(p, CollectorOptions{}).(*collector)
	var ca collect.CgroupActivity = c
	time.Sleep(50 * time.Millisecond)
	if _, ok := ca.CgroupActivity(time.Now()); !ok {
		t.Fatal("the probes cannot tell activity with the sched probe up")
	}
	if err := os.WriteFile(filepath.Join(to.v2, "cgroup.procs"), []byte(strconv.Itoa(burner.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	prev, _ := ca.CgroupActivity(time.Now())
	after := usageUsec(t, to)
	ran, onlyOnCPU := 0, 0
	const ticks = 10
	for i := 0; i < ticks; i++ {
		time.Sleep(50 * time.Millisecond)
		before := usageUsec(t, to)
		act, ok := ca.CgroupActivity(time.Now())
		if !ok {
			t.Fatalf("tick %d: the probes cannot tell activity", i)
		}
		used := before > after
		after = usageUsec(t, to)
		moved := act.Counts.Of(to.path) != prev.Counts.Of(to.path)
		if used && !moved && !act.OnCPU[to.path] {
			t.Errorf("tick %d: the moved burner's new cgroup used CPU since the last reading (cpu.stat usage_usec moved) but looks idle (not on a CPU; on a CPU by its old cgroup: %v)", i, act.OnCPU[from.path])
		}
		if used {
			ran++
			if !moved {
				onlyOnCPU++
			}
		}
		prev = act
	}
	if onlyOnCPU == 0 {
		t.Errorf("in none of the %d ticks in which the moved burner ran (of %d) was it seen by the marker alone: the marker was not tested", ran, ticks)
	}
	t.Logf("of %d ticks: the moved burner ran in %d, %d of them seen only by the on-CPU marker", ticks, ran, onlyOnCPU)
}
