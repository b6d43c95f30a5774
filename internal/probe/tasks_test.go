// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// procStat is what /proc/<pid>/stat says of pid, by field number of
// proc_pid_stat(5) (3 state, 14 utime, 15 stime, 20 num_threads, 22
// starttime, 23 vsize, 24 rss).
func procStat(t *testing.T, pid int) (comm string, f map[int]string) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	l, r := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	f = map[int]string{}
	for i, v := range strings.Fields(string(b[r+1:])) {
		f[i+3] = v
	}
	return string(b[l+1 : r]), f
}

func num(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func listed(t *testing.T, tk *Tasks) map[int32]collect.ProcessStat {
	t.Helper()
	ps, err := tk.ListProcesses(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := map[int32]collect.ProcessStat{}
	for _, p := range ps {
		if _, dup := m[p.PID]; dup {
			t.Fatalf("process %d listed twice", p.PID)
		}
		m[p.PID] = p
	}
	return m
}

// kernelAtLeast reports whether the running kernel is major.minor or
// later.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var rel []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	var ma, mi int
	if _, err := fmt.Sscanf(string(rel), "%d.%d", &ma, &mi); err != nil {
		t.Fatalf("kernel release %q: %v", rel, err)
	}
	return ma > major || ma == major && mi >= minor
}

// listers loads the task list walk (Linux 6.7+: required there) and the
// task iterator alone, each a subtest's.
func listers(t *testing.T) map[string]*Tasks {
	t.Helper()
	requireEBPF(t)
	walk, err := NewTasks()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { walk.Close() })
	if walk.walk == nil {
		if kernelAtLeast(t, 6, 7) {
			t.Fatal("the task list walk did not load on Linux 6.7 or later")
		}
		t.Log("no task list walk before Linux 6.7: the iterator alone")
	}
	iter, err := newTasks(tasksOptions{noWalk: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iter.Close() })
	return map[string]*Tasks{"walk": walk, "iterator": iter}
}

// TestTasksMatchProcfs lists the host's processes with the task list walk
// and with the task iterator, and compares them with /proc/<pid>/stat:
// the same processes, and for processes whose figures stand still (a
// sleeping, a stopped and a zombie child, a kernel thread) the same state,
// name, threads, start time, virtual size and resident pages; for this
// busy, multi-threaded test process, the CPU time of all its threads
// between two reads of its stat file.
func TestTasksMatchProcfs(t *testing.T) {
	ls := listers(t)

	start := func(args ...string) *exec.Cmd {
		c := exec.Command(args[0], args[1:]...)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return c
	}
	sleeping := start("sleep", "60")
	stopped := start("sleep", "60")
	if err := stopped.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	zombie := start("true")
	// Burn CPU on several threads of this process, which also exit: the
	// exited threads' time counts too.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			runtime.LockOSThread() // the thread exits with the goroutine
			for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, fz := procStat(t, zombie.Process.Pid)
		_, fs := procStat(t, stopped.Process.Pid)
		_, fl := procStat(t, sleeping.Process.Pid)
		if fz[3] == "Z" && fs[3] == "T" && fl[3] == "S" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("children not settled: %s %s %s", fz[3], fs[3], fl[3])
		}
		time.Sleep(10 * time.Millisecond)
	}

	for name, tk := range ls {
		t.Run(name, func(t *testing.T) {
			if name == "walk" && tk.walk == nil {
				t.Skip("no task list walk before Linux 6.7")
			}
			matchProcfs(t, tk, []int{sleeping.Process.Pid, stopped.Process.Pid, zombie.Process.Pid, 2})
		})
	}
}

func matchProcfs(t *testing.T, tk *Tasks, still []int) {
	self := os.Getpid()
	_, before := procStat(t, self)
	got := listed(t, tk)
	_, after := procStat(t, self)

	for _, pid := range still {
		comm, f := procStat(t, pid)
		p, ok := got[int32(pid)]
		if !ok {
			t.Errorf("process %d (%s) not listed", pid, comm)
			continue
		}
		gotComm := string(bytes.TrimRight(p.Comm[:], "\x00"))
		if gotComm != comm || string(p.State) != f[3] || p.Threads != num(t, f[20]) ||
			p.StartNanos/1e7 != num(t, f[22]) || p.VSize != num(t, f[23]) || p.RSS != num(t, f[24]) {
			t.Errorf("process %d: listed %s %c threads %d start %d vsize %d rss %d; /proc: %s %s threads %s start %s vsize %s rss %s",
				pid, gotComm, p.State, p.Threads, p.StartNanos/1e7, p.VSize, p.RSS, comm, f[3], f[20], f[22], f[23], f[24])
		}
	}
	p := got[int32(self)]
	lo := num(t, before[14]) + num(t, before[15])
	hi := num(t, after[14]) + num(t, after[15])
	// /proc splits the time into two counts, each cut to a tick.
	if ticks := p.CPUNanos / 1e7; ticks+2 < lo || ticks > hi+1 || lo < 20 {
		t.Errorf("this process's CPU: %d ticks listed, /proc/self/stat %d before and %d after (at least 20 burnt)", ticks, lo, hi)
	}
	// The same processes as the procfs root lists, less those that came
	// or went in between.
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
			if _, ok := got[int32(num(t, e.Name()))]; !ok {
				if _, err := os.Stat("/proc/" + e.Name()); err == nil {
					t.Logf("process %s not listed (new since?)", e.Name())
				}
			}
		}
	}
	if d := n - len(got); d > 10 || d < -10 {
		t.Errorf("%d processes listed, the procfs root lists %d", len(got), n)
	}
}

func TestStateLetter(t *testing.T) {
	for _, c := range []struct {
		state, exit uint32
		want        byte
	}{
		{0, 0, 'R'}, {1, 0, 'S'}, {2, 0, 'D'}, {4, 0, 'T'}, {8, 0, 't'},
		{0, 16, 'X'}, {0, 32, 'Z'}, {0x40, 0, 'P'}, {0x402, 0, 'I'},
		{0x1000, 0, 'D'}, {0x8001, 0, 'D'},
	} {
		if got := stateLetter(c.state, c.exit); got != c.want {
			t.Errorf("stateLetter(%#x, %#x) = %c, want %c", c.state, c.exit, got, c.want)
		}
	}
}

// TestWalkMatchesIterator lists the host's processes with the walk and
// with the iterator one right after the other: the same processes (less a
// few that came or went in between), and for each the same start time and
// thread group figures that cannot go back.
func TestWalkMatchesIterator(t *testing.T) {
	ls := listers(t)
	if ls["walk"].walk == nil {
		testenv.Unavailable(t, "no task list walk before Linux 6.7")
	}
	walk := listed(t, ls["walk"])
	iter := listed(t, ls["iterator"])
	missing := 0
	for pid, w := range walk {
		i, ok := iter[pid]
		if !ok {
			missing++
			continue
		}
		if w.StartNanos != i.StartNanos {
			t.Errorf("process %d: start %d by the walk, %d by the iterator", pid, w.StartNanos, i.StartNanos)
		}
		// The iterator read second: the process's CPU can only have
		// grown, by at most the time between the two reads on each CPU.
		if i.CPUNanos+uint64(time.Millisecond) < w.CPUNanos {
			t.Errorf("process %d: %d ns by the walk, %d by the iterator read after it", pid, w.CPUNanos, i.CPUNanos)
		}
	}
	for pid := range iter {
		if _, ok := walk[pid]; !ok {
			missing++
		}
	}
	if missing > 10 {
		t.Errorf("%d processes in one listing only (walk %d, iterator %d)", missing, len(walk), len(iter))
	}
}

// TestTasksWalkFull lists with a walk whose map holds 64 processes, fewer
// than any host has: the iterator lists them all instead, and alone for
// the next walkRest listings.
func TestTasksWalkFull(t *testing.T) {
	requireEBPF(t)
	if !kernelAtLeast(t, 6, 7) {
		testenv.Unavailable(t, "no task list walk before Linux 6.7")
	}
	tk, err := newTasks(tasksOptions{walkChunks: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if tk.walk == nil {
		t.Fatal("the task list walk did not load")
	}
	if _, ok, err := tk.walked(nil); ok || err != nil {
		t.Fatalf("a walk of a map of 64 processes: ok %v, err %v; want it full", ok, err)
	}
	got := listed(t, tk)
	if len(got) <= procsPerChunk {
		t.Fatalf("%d processes listed, want more than the walk's %d", len(got), procsPerChunk)
	}
	if _, ok := got[int32(os.Getpid())]; !ok {
		t.Error("this process not listed")
	}
	if tk.skipWalk != walkRest {
		t.Errorf("after a full walk: %d listings left to the iterator, want %d", tk.skipWalk, walkRest)
	}
	for i := range walkRest {
		if n := len(listed(t, tk)); n <= procsPerChunk {
			t.Fatalf("listing %d after the full walk: %d processes", i, n)
		}
	}
	if tk.skipWalk != 0 {
		t.Errorf("%d listings still left to the iterator after %d", tk.skipWalk, walkRest)
	}
}

// BenchmarkTasksList lists the host's processes with the task list walk
// and with the task iterator.
func BenchmarkTasksList(b *testing.B) {
	requireEBPF(b)
	for _, o := range []struct {
		name string
		opts tasksOptions
	}{{"walk", tasksOptions{}}, {"iterator", tasksOptions{noWalk: true}}} {
		b.Run(o.name, func(b *testing.B) {
			tk, err := newTasks(o.opts)
			if err != nil {
				b.Fatal(err)
			}
			defer tk.Close()
			if !o.opts.noWalk && tk.walk == nil {
				b.Skip("no task list walk before Linux 6.7")
			}
			var buf []collect.ProcessStat
			for b.Loop() {
				if buf, err = tk.ListProcesses(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(buf)), "processes")
		})
	}
}
