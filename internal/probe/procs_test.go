// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProcsMatchRusage: the processes of a watched cgroup, and of a cgroup
// two levels below it, are each counted once, at exit, with the CPU time their own rusage reports (within 3 %),
// their peak RSS, the file they ran and its arguments; a process outside
// the cgroup is not counted, and after Take nothing is left.
func TestProcsMatchRusage(t *testing.T) {
	m := mounts(t)
	p, cg, id := watchedProcs(t, "procs")
	other := newCgroup(t, m, "procs-other")
	// Two levels below the watched cgroup, as a scope the run makes.
	nested := &testCgroup{v2: filepath.Join(cg.v2, "scope", "inner")}
	if err := os.MkdirAll(nested.v2, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.Remove(nested.v2)
		_ = os.Remove(filepath.Dir(nested.v2))
	})

	burns := []string{"150ms", "300ms", "600ms"}
	var wps []*workloadProc
	for i, d := range burns {
		in := cg
		if i == 1 {
			in = nested
		}
		wp := start(t, in, -1, "burn", d)
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

// TestProcsNetwork: a process of the watched cgroup that sends N bytes
// over TCP is charged N sent, and one that receives M is charged M
// received: its sockets' payload, counted in the process that called.
func TestProcsNetwork(t *testing.T) {
	p, cg, id := watchedProcs(t, "procs-net")

	const sent, received = 3_000_000, 1_500_000
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		got <- n
	}()
	sender := start(t, cg, -1, "send", fmt.Sprintf("%d,%s", sent, l.Addr()))
	sender.go_(t)
	sender.wait(t)
	if n := <-got; n != sent {
		t.Fatalf("the listener got %d bytes, want %d", n, sent)
	}
	receiver := start(t, cg, -1, "receive", "")
	receiver.go_(t)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		addr = strings.TrimSpace(receiver.stdoutString())
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(make([]byte, received)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	receiver.wait(t)

	ps, err := p.Take(id)
	if err != nil {
		t.Fatal(err)
	}
	by := map[int]Process{}
	for _, pr := range ps {
		by[pr.PID] = pr
	}
	s, r := by[sender.cmd.Process.Pid], by[receiver.cmd.Process.Pid]
	if s.NetTxBytes != sent || s.NetRxBytes != 0 {
		t.Errorf("sender: sent %d, received %d; want %d and 0", s.NetTxBytes, s.NetRxBytes, sent)
	}
	if r.NetRxBytes != received || r.NetTxBytes != 0 {
		t.Errorf("receiver: received %d, sent %d; want %d and 0", r.NetRxBytes, r.NetTxBytes, received)
	}
}

// TestProcsRunning: processes still running in a watched cgroup, and one
// level below it, are read with what they used so far, their peak RSS and
// the file they run; a PID that is gone is left out. They then sleep
// until killed: their rusage at death is what they had used when read,
// within 3 %.
func TestProcsRunning(t *testing.T) {
	p, cg, id := watchedProcs(t, "procs-running")
	nested := &testCgroup{v2: filepath.Join(cg.v2, "scope")}
	if err := os.Mkdir(nested.v2, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(nested.v2) })

	var wps []*workloadProc
	for _, in := range []*testCgroup{cg, nested} {
		wp := start(t, in, -1, "burn-and-stay", "300ms")
		wp.go_(t)
		t.Cleanup(func() {
			if wp.cmd.ProcessState == nil {
				_ = wp.cmd.Process.Kill()
				_ = wp.cmd.Wait()
			}
		})
		wps = append(wps, wp)
	}
	for _, wp := range wps {
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(wp.stdoutString(), "done"); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d did not finish burning", wp.cmd.Process.Pid)
			}
		}
	}
	pids := []int{wps[0].cmd.Process.Pid, wps[1].cmd.Process.Pid, 1 << 22} // the last is no process
	got, err := p.Running(id, "/proc", pids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d running processes, want 2: %+v", len(got), got)
	}
	byPID := map[int]Process{}
	for _, pr := range got {
		byPID[pr.PID] = pr
		if pr.MaxRSSBytes == 0 || pr.Filename != os.Args[0] || len(pr.Args) != 3 || pr.PPID != os.Getpid() {
			t.Errorf("pid %d: peak RSS %d, ran %q %q from %d", pr.PID, pr.MaxRSSBytes, pr.Filename, pr.Args, pr.PPID)
		}
	}
	for _, wp := range wps {
		_ = wp.cmd.Process.Kill()
		_ = wp.cmd.Wait()
		truth := rusageCPU(wp.cmd.ProcessState.SysUsage().(*syscall.Rusage))
		pr, ok := byPID[wp.cmd.Process.Pid]
		if !ok {
			t.Errorf("pid %d not read", wp.cmd.Process.Pid)
			continue
		}
		if d := float64(pr.CPU-truth) / float64(truth); d < -0.03 || d > 0 {
			t.Errorf("pid %d: cpu %v, rusage at death %v (%+.2f%%)", pr.PID, pr.CPU, truth, d*100)
		} else {
			t.Logf("pid %d: cpu %v, rusage at death %v (%+.3f%%)", pr.PID, pr.CPU, truth, d*100)
		}
	}
}

// watchedProcs loads the per-process probe and watches a new cgroup named
// name with it, until the test ends.
func watchedProcs(t *testing.T, name string) (*Procs, *testCgroup, uint64) {
	t.Helper()
	requireEBPF(t)
	p, err := NewProcs()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	cg := newCgroup(t, mounts(t), name)
	fi, err := os.Stat(cg.v2)
	if err != nil {
		t.Fatal(err)
	}
	id := fi.Sys().(*syscall.Stat_t).Ino
	if err := p.Watch(id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Unwatch(id) })
	return p, cg, id
}
