// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/control"
	"github.com/crmon-dev/crmon/internal/host"
	"github.com/crmon-dev/crmon/internal/probe"
	"github.com/crmon-dev/crmon/internal/runner"
	"github.com/crmon-dev/crmon/internal/sessions"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/session"
)

// TestSessionsReadOncePerTick runs an agent on the real kernel (its host
// collectors and the eBPF probes) with N sessions fed by its sample
// stream, each sampling its cgroup every 50 ms, and counts the reads
// between the sessions' starts and stops: the probes' maps are read once
// per tick (the agent's read), not N+1 times, and the sessions open none
// of the host's /proc files, which the agent's tick read for all of
// them. The /proc files the sessions were given are watched with inotify,
// so every open is counted by the kernel. Only the exact reads at a
// session's start and stop remain, one each.
func TestSessionsReadOncePerTick(t *testing.T) {
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

	var cs []collect.Collector
	for _, r := range host.RegistrationsWithOptions(host.Options{}) {
		if !slices.Contains([]string{"cpu", "meminfo", "filesystem"}, r.Name) {
			continue
		}
		c, err := r.New(collect.Options{Paths: collect.DefaultPaths()})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	cs = append(cs, probe.NewCollector(p, probe.CollectorOptions{}))
	a := agent.New(cs, time.Hour, nil)
	ctx := context.Background()
	a.Tick(ctx)

	// The sessions' /proc: copies of the files a session reads, watched.
	procFS := t.TempDir()
	for _, f := range []string{"stat", "meminfo"} {
		b, err := os.ReadFile(filepath.Join("/proc", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(procFS, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opens := watchOpens(t, procFS)

	sub := a.Subscribe("sessions", 4)
	m := sessions.NewManager(sessions.ManagerOptions{
		Hierarchy: h, Meter: sessions.NewProbeMeter(p), ProcFS: procFS, DiskPath: "/", Samples: sub,
	})
	defer m.Close()

	const n = 4
	root := control.Peer{UID: 0, PID: os.Getpid()}
	var cgs []*runner.Cgroup
	defer func() {
		for _, cg := range cgs {
			_ = cg.Remove()
		}
	}()
	readsAt := p.Reads()
	for i := range n {
		cg, err := runner.NewCgroup(h, testenv.CgroupParent, fmt.Sprintf("feed-%d-%d", os.Getpid(), i))
		if err != nil {
			t.Fatal(err)
		}
		cgs = append(cgs, cg)
		if _, err := m.Start(root, session.StartRequest{
			Name: fmt.Sprintf("feed-%d", i), Cgroup: cg.Path, NewCgroup: true, SampleIntervalSeconds: 0.05,
		}); err != nil {
			t.Fatal(err)
		}
	}
	// A start reads the maps once (the base of a fresh cgroup must not
	// wait for a tick) and the two /proc files once.
	if got := p.Reads() - readsAt; got != n {
		t.Errorf("%d session starts read the maps %d times, want %d", n, got, n)
	}
	if got := opens.count(t); got != 2*n {
		t.Errorf("%d session starts opened the sessions' /proc files %d times, want %d", n, got, 2*n)
	}

	// Work in one session's cgroup, so that the ticks carry counts.
	burn := []string{"sh", "-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done"}
	if _, err := runner.Run(ctx, cgs[0], runner.Options{Args: burn}); err != nil {
		t.Fatal(err)
	}

	const ticks = 6
	readsAt = p.Reads()
	for range ticks {
		// Each session samples some six times per tick.
		time.Sleep(300 * time.Millisecond)
		a.Tick(ctx)
	}
	time.Sleep(300 * time.Millisecond)
	if got := p.Reads() - readsAt; got != ticks {
		t.Errorf("%d ticks with %d sessions read the maps %d times, want %d: once per tick", ticks, n, got, ticks)
	}
	if got := opens.count(t); got != 0 {
		t.Errorf("%d sessions opened their /proc files %d times over %d ticks, want 0: the ticks bring the host's figures", n, got, ticks)
	}
	if d := sub.Dropped(); d != 0 {
		t.Errorf("the sessions' subscription dropped %d samples", d)
	}

	readsAt = p.Reads()
	for i := range n {
		rep, err := m.Stop(root, fmt.Sprintf("feed-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		// The copies of /proc never change: a CPU usage can only have
		// come from the agent's ticks.
		if slices.Contains(rep.Unavailable, "host.cpu_usage_percent") || slices.Contains(rep.Host.Unmeasured, "cpu_usage_percent") {
			t.Errorf("session %d: host CPU usage not measured, though %d ticks fell inside it: %+v", i, ticks, rep.Host)
		}
		if rep.Host.MemoryUsagePercent <= 0 || rep.Host.MemoryUsagePercent > 100 {
			t.Errorf("session %d: host memory usage %v%%", i, rep.Host.MemoryUsagePercent)
		}
		if i == 0 && rep.Totals.ContextSwitches == 0 {
			t.Errorf("session 0: no context switches counted for its burner: %+v", rep.Totals)
		}
		if len(rep.Series.Run) < ticks {
			t.Errorf("session %d: %d plot points over %d ticks of 300 ms at 50 ms", i, len(rep.Series.Run), ticks)
		}
	}
	// A stop reads the maps and the /proc files once, for its exact
	// final values.
	if got := p.Reads() - readsAt; got != n {
		t.Errorf("%d session stops read the maps %d times, want %d", n, got, n)
	}
	if got := opens.count(t); got != 2*n {
		t.Errorf("%d session stops opened the sessions' /proc files %d times, want %d", n, got, 2*n)
	}
}

// openCounter counts the opens of the files in a directory, through
// inotify: the kernel reports every one.
type openCounter struct{ fd int }

func watchOpens(t *testing.T, dir string) *openCounter {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_OPEN); err != nil {
		t.Fatal(err)
	}
	return &openCounter{fd: fd}
}

// count returns the opens since the last count.
func (o *openCounter) count(t *testing.T) int {
	t.Helper()
	n := 0
	buf := make([]byte, 64<<10)
	for {
		m, err := unix.Read(o.fd, buf)
		if err == unix.EAGAIN {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= m; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				t.Fatal("inotify queue overflowed: opens lost")
			}
			if ev.Mask&unix.IN_OPEN != 0 {
				n++
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}
