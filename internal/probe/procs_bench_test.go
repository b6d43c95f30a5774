// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// BenchmarkProcsCost measures, with the kernel's BPF run-time statistics,
// what the per-process programs cost per event (exec, exit, free: every
// process on the host fires them), and what the agent's per-cgroup
// sched_switch program costs per switch beside them, in three states: no
// run watched; a run watched elsewhere (the host's processes are looked up
// and not found, up to 16 cgroups each); and the processes started in the
// watched run. Each iteration starts /bin/true in a test cgroup. Run:
//
//	go test -run '^$' -bench ProcsCost -benchtime 2000x ./internal/probe/
func BenchmarkProcsCost(b *testing.B) {
	testenv.RequireLong(b, "eBPF")
	p := loadProbes(b, Options{Sched: true})
	pr, err := NewProcs()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = pr.Close() })
	var sched *ebpf.Program
	for _, np := range p.progs {
		if np.name == "sched_switch" {
			sched = np.prog
		}
	}
	if sched == nil {
		b.Fatalf("no sched_switch among %v", p.progs)
	}
	m := mounts(b)
	run, other := newCgroup(b, m, "procs-bench"), newCgroup(b, m, "procs-bench-other")
	id := func(cg *testCgroup) uint64 {
		fi, err := os.Stat(cg.v2)
		if err != nil {
			b.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	dir, err := os.Open(run.v2)
	if err != nil {
		b.Fatal(err)
	}
	defer dir.Close()
	procsProgs := []*ebpf.Program{pr.objs.CrmonProcsExec, pr.objs.CrmonProcsExit, pr.objs.CrmonProcsFree}
	stats := func(progs ...*ebpf.Program) (runs uint64, t time.Duration) {
		for _, prog := range progs {
			st, err := prog.Stats()
			if err != nil {
				b.Fatal(err)
			}
			runs += st.RunCount
			t += st.Runtime
		}
		return runs, t
	}
	for _, bc := range []struct {
		name  string
		watch *testCgroup
	}{{"no-session", nil}, {"session-elsewhere", other}, {"session-here", run}} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.watch != nil {
				wid := id(bc.watch)
				if err := pr.Watch(wid); err != nil {
					b.Fatal(err)
				}
				defer pr.Unwatch(wid)
			}
			pr0, pt0 := stats(procsProgs...)
			sr0, st0 := stats(sched)
			b.ResetTimer()
			for range b.N {
				cmd := exec.Command("/bin/true")
				cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			pr1, pt1 := stats(procsProgs...)
			sr1, st1 := stats(sched)
			if pr1 > pr0 {
				b.ReportMetric(float64(pt1-pt0)/float64(pr1-pr0), "procs-ns/event")
			}
			if sr1 > sr0 {
				b.ReportMetric(float64(st1-st0)/float64(sr1-sr0), "sched-ns/switch")
			}
			if bc.watch == run {
				// What the run's processes were charged, then forgotten.
				if ps, err := pr.Take(id(run)); err != nil || len(ps) < b.N {
					b.Errorf("%d of the %d processes counted (%v)", len(ps), b.N, err)
				}
			}
		})
	}
}
