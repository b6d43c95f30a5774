// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"os"
	"syscall"
	"testing"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestProcsMatchRusage: the processes of a watched cgroup are each counted
// once, at exit, with the CPU time their own rusage reports (within 3 %),
// their peak RSS, the file they ran and its arguments; a process outside
// the cgroup is not counted, and after Take nothing is left.
func TestProcsMatchRusage(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireLong(t, "eBPF")
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		testenv.Unavailable(t, "no kernel BTF")
	}
	p, err := NewProcs()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	m := mounts(t)
	cg := newCgroup(t, m, "procs")
	fi, err := os.Stat(cg.v2)
	if err != nil {
		t.Fatal(err)
	}
	id := fi.Sys().(*syscall.Stat_t).Ino
	if err := p.Watch(id); err != nil {
		t.Fatal(err)
	}
	defer p.Unwatch(id)
	other := newCgroup(t, m, "procs-other")

	burns := []string{"150ms", "300ms", "600ms"}
	var wps []*workloadProc
	for _, d := range burns {
		wp := start(t, cg, -1, "burn", d)
		wp.go_(t)
		wps = append(wps, wp)
	}
	outside := start(t, other, -1, "burn", "50ms")
	outside.go_(t)
	outside.wait(t)
	want := map[int]*syscall.Rusage{}
	for _, wp := range wps {
		want[wp.cmd.Process.Pid] = wp.wait(t)
	}
	got, err := p.Take(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d processes counted, want %d: %+v", len(got), len(want), got)
	}
	for _, pr := range got {
		ru, ok := want[pr.PID]
		if !ok {
			t.Errorf("process %d (%s) was not started in the cgroup", pr.PID, pr.Comm)
			continue
		}
		truth := rusageCPU(ru)
		if d := float64(pr.CPU-truth) / float64(truth); d < -0.03 || d > 0.03 {
			t.Errorf("pid %d: cpu %v, rusage %v (%+.2f%%)", pr.PID, pr.CPU, truth, d*100)
		} else {
			t.Logf("pid %d: cpu %v, rusage %v (%+.3f%%)", pr.PID, pr.CPU, truth, d*100)
		}
		rss := uint64(ru.Maxrss) * 1024
		if pr.MaxRSSBytes == 0 || pr.MaxRSSBytes > rss+rss/10 || pr.MaxRSSBytes < rss-rss/10 {
			t.Errorf("pid %d: peak RSS %d, rusage %d", pr.PID, pr.MaxRSSBytes, rss)
		}
		if pr.Filename != os.Args[0] || len(pr.Args) != 3 || pr.Args[1] != "-test.run=^$" || pr.PPID != os.Getpid() {
			t.Errorf("pid %d: ran %q %q from %d, want %s [… -test.run=^$ DURATION] from %d", pr.PID, pr.Filename, pr.Args, pr.PPID, os.Args[0], os.Getpid())
		}
	}
	if again, _ := p.Take(id); len(again) != 0 {
		t.Errorf("Take left %d processes behind", len(again))
	}
	if p.Dropped() != 0 {
		t.Errorf("%d processes dropped", p.Dropped())
	}
}
