// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/probe"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestProcessesLister scans with the eBPF task iterator and by procfs side
// by side: the same processes, counts and threads, a sleeping child with
// the same figures in both, a busy child with the CPU time procfs gives,
// and no stat file held open by the scan that listed.
func TestProcessesLister(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireLong(t, "eBPF")
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		testenv.Unavailable(t, "no kernel BTF")
	}
	tk, err := probe.NewTasks()
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	withIter := build(t, "processes", collect.Paths{ProcFS: "/proc"}, Options{}).(*processesCollector)
	withIter.SetProcessLister(tk)
	byProcfs := build(t, "processes", collect.Paths{ProcFS: "/proc"}, Options{}).(*processesCollector)

	sleeping := exec.Command("sleep", "60")
	busy := exec.Command("/bin/sh", "-c", "while :; do :; done")
	for _, c := range []*exec.Cmd{sleeping, busy} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	}
	now := time.Now()
	scan := func() {
		t.Helper()
		now = now.Add(time.Second)
		for _, c := range []*processesCollector{withIter, byProcfs} {
			if err := c.Update(t.Context(), now); err != nil {
				t.Fatal(err)
			}
		}
	}
	scan()
	time.Sleep(500 * time.Millisecond)
	scan()
	if !withIter.useLister() {
		t.Fatal("the task iterator is not used with the live /proc of the initial PID namespace")
	}
	if d := int(withIter.nProcs) - int(byProcfs.nProcs); d > 5 || d < -5 {
		t.Errorf("%d processes by the iterator, %d by procfs", withIter.nProcs, byProcfs.nProcs)
	}
	if d := int(withIter.nThreads) - int(byProcfs.nThreads); d > 20 || d < -20 {
		t.Errorf("%d threads by the iterator, %d by procfs", withIter.nThreads, byProcfs.nThreads)
	}
	// PID 1's at most, where the iterator does not give it.
	if len(withIter.fds) > 1 {
		t.Errorf("the listing scan holds %d stat files", len(withIter.fds))
	}
	for _, pid := range []int32{1, int32(sleeping.Process.Pid)} {
		a, b := withIter.procs[pid], byProcfs.procs[pid]
		if a == nil || b == nil {
			t.Errorf("process %d: by the iterator %v, by procfs %v", pid, a != nil, b != nil)
			continue
		}
		if a.name != b.name || a.start != b.start || a.threads != b.threads || a.state != b.state || a.vsize != b.vsize {
			t.Errorf("process %d: iterator %+v, procfs %+v", pid, *a, *b)
		}
	}
	// The procfs scan comes second, and takes a few milliseconds on a
	// host of many processes, while the busy child runs on.
	a, b := withIter.procs[int32(busy.Process.Pid)], byProcfs.procs[int32(busy.Process.Pid)]
	if a == nil || b == nil || a.ticks > b.ticks+1 || b.ticks > a.ticks+10 || b.ticks < 20 {
		t.Errorf("busy process: %+v by the iterator, %+v by procfs (at least 20 ticks burnt)", a, b)
	}
	// A lister that fails leaves the scan to procfs.
	withIter.SetProcessLister(failingLister{})
	scan()
	if d := int(withIter.nProcs) - int(byProcfs.nProcs); d > 5 || d < -5 || len(withIter.fds) < 5 {
		t.Errorf("after the lister failed: %d processes (procfs %d), %d stat files open", withIter.nProcs, byProcfs.nProcs, len(withIter.fds))
	}
}

// TestProcessesCPUNeverBack: a listing whose CPU time for a process went
// back (a thread's time missed as it exited) keeps the time read before,
// so the next scan's share is what the process used since then.
func TestProcessesCPUNeverBack(t *testing.T) {
	c := build(t, "processes", collect.Paths{ProcFS: "/proc"}, Options{}).(*processesCollector)
	l := &scriptedLister{}
	c.SetProcessLister(l)
	if !c.useLister() {
		testenv.Unavailable(t, "the scan lists by procfs here: not the host's PID namespace")
	}
	const pid = 1 << 30 // no real process's
	now := time.Now()
	for i, cpu := range []uint64{10, 9, 11} {
		l.ps = []collect.ProcessStat{{PID: pid, CPUNanos: cpu * 1e9, StartNanos: 5e9, State: 'S', Threads: 3}}
		now = now.Add(time.Second)
		if err := c.Update(t.Context(), now); err != nil {
			t.Fatal(err)
		}
		e := c.procs[pid]
		if e == nil {
			t.Fatalf("scan %d: the listed process not kept", i)
		}
		want := []uint64{1000, 1000, 1100}[i]
		if e.ticks != want {
			t.Errorf("scan %d (listed %d s): %d ticks kept, want %d", i, cpu, e.ticks, want)
		}
		if i == 2 {
			for _, s := range c.buf {
				if s.pid == pid && s.delta != 100 {
					t.Errorf("scan 2: a share of %d ticks, want 100 (not the 200 since the dip)", s.delta)
				}
			}
		}
	}
}

// scriptedLister lists what the test set.
type scriptedLister struct{ ps []collect.ProcessStat }

func (l *scriptedLister) ListProcesses(buf []collect.ProcessStat) ([]collect.ProcessStat, error) {
	return append(buf, l.ps...), nil
}

type failingLister struct{}

func (failingLister) ListProcesses(buf []collect.ProcessStat) ([]collect.ProcessStat, error) {
	return buf, errors.New("no iterator")
}
