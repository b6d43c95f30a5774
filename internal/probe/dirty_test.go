// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"fmt"
	"io"
	"net"
	"path"
	"testing"
	"time"
)

// TestSchedDirtyReads: once the probes were read whole, a read looks up
// only the cgroups the sched probe marked as charged since the read
// before, and finds each one's new counts; the others keep theirs, as a
// whole read finds them. More cgroups charged in a tick than the probe's
// table holds make the read whole.
func TestSchedDirtyReads(t *testing.T) {
	p := loadProbes(t, DefaultOptions())
	m := mounts(t)
	run := func(cgs []*testCgroup, workload, arg string) {
		t.Helper()
		var ws []*workloadProc
		for _, cg := range cgs {
			ws = append(ws, start(t, cg, -1, workload, arg))
		}
		for _, w := range ws {
			w.go_(t)
		}
		for _, w := range ws {
			w.wait(t)
		}
		settle()
	}
	var cgs []*testCgroup
	for i := range 20 {
		cgs = append(cgs, newCgroup(t, m, fmt.Sprintf("dirty%d", i)))
	}
	run(cgs, "idle", "1ms")
	readState := func() (sinceWhole int, stale bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.state.schedMap.sinceWhole, p.state.schedMap.knownStale
	}
	// Other work on the host may charge more cgroups in a tick than the
	// table holds: such a read is whole. A few tries find one that is
	// not.
	var before, after *Snapshot
	for try := 0; ; try++ {
		var err error
		for range 3 {
			if before, err = p.Read(time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		run(cgs[7:8], "burn", "20ms")
		if after, err = p.Read(time.Now()); err != nil {
			t.Fatal(err)
		}
		if since, stale := readState(); since > 0 && stale {
			break
		}
		if try == 9 {
			t.Fatal("ten reads after one cgroup ran were whole; want its key looked up alone")
		}
	}
	for i, cg := range cgs {
		b, _ := before.Cgroup(cg.path)
		a, ok := after.Cgroup(cg.path)
		if !ok {
			t.Fatalf("%s missing after a read of the marked keys", cg.path)
		}
		if i == 7 {
			if a.CPU-b.CPU < 15*time.Millisecond || a.VoluntarySwitches+a.InvoluntarySwitches <= b.VoluntarySwitches+b.InvoluntarySwitches {
				t.Errorf("the cgroup that burned 20 ms: CPU %v → %v, switches %d → %d", b.CPU, a.CPU,
					b.VoluntarySwitches+b.InvoluntarySwitches, a.VoluntarySwitches+a.InvoluntarySwitches)
			}
		} else if a.CPU != b.CPU || a.VoluntarySwitches != b.VoluntarySwitches {
			t.Errorf("%s did nothing, yet moved: CPU %v → %v", cg.path, b.CPU, a.CPU)
		}
	}

	// A whole read finds what the marked keys' reads made of every one.
	p.mu.Lock()
	p.state.schedMap.sinceWhole = wholeEvery
	p.mu.Unlock()
	whole, err := p.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if since, _ := readState(); since != 0 {
		t.Fatalf("%d reads since the whole one; want this one whole", since)
	}
	for _, cg := range cgs {
		a, _ := after.Cgroup(cg.path)
		w, _ := whole.Cgroup(cg.path)
		if a.CPU != w.CPU || a.VoluntarySwitches != w.VoluntarySwitches || a.InvoluntarySwitches != w.InvoluntarySwitches {
			t.Errorf("%s: by marked keys CPU %v, %d+%d switches; whole %v, %d+%d", cg.path,
				a.CPU, a.VoluntarySwitches, a.InvoluntarySwitches, w.CPU, w.VoluntarySwitches, w.InvoluntarySwitches)
		}
	}

	// 100 cgroups charged at once overflow the 64 slots of a CPU's table.
	if _, err := p.Read(time.Now()); err != nil {
		t.Fatal(err)
	}
	var many []*testCgroup
	for i := range 100 {
		many = append(many, newCgroup(t, m, fmt.Sprintf("many%d", i)))
	}
	run(many, "idle", "1ms")
	snap, err := p.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if since, _ := readState(); since != 0 {
		t.Errorf("100 cgroups charged in one tick: the read looked up marked keys (%d since the whole read); want it whole", since)
	}
	for _, cg := range many {
		if c, ok := snap.Cgroup(cg.path); !ok || c.VoluntarySwitches+c.InvoluntarySwitches == 0 {
			t.Errorf("%s: not read (%v, %+v)", cg.path, ok, c)
		}
	}
}

// TestBlockNetDirtyReads is TestSchedDirtyReads for the block and net
// probes: with more keys than are looked up without marks (20 cgroups
// that each wrote to disk and sent), a read after one cgroup did I/O and
// sent looks up the keys of the cgroups marked alone; that cgroup's counts
// move and no other test cgroup's; a whole read then finds the same.
func TestBlockNetDirtyReads(t *testing.T) {
	p := loadProbes(t, DefaultOptions())
	m := mounts(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	file := testFile(t)
	work := func(cgs []*testCgroup) {
		t.Helper()
		var ws []*workloadProc
		for _, cg := range cgs {
			ws = append(ws, start(t, cg, -1, "direct-io", fmt.Sprintf("%d,%s", 1<<20, file+"-"+path.Base(cg.path))),
				start(t, cg, -1, "send", fmt.Sprintf("%d,%s", 64<<10, l.Addr())))
		}
		for _, w := range ws {
			w.go_(t)
		}
		for _, w := range ws {
			w.wait(t)
		}
		settle()
	}
	var cgs []*testCgroup
	for i := range 20 {
		cgs = append(cgs, newCgroup(t, m, fmt.Sprintf("bndirty%d", i)))
	}
	work(cgs)
	byMarks := func() (block, net bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		s := p.state
		return s.blockMap.sinceWhole > 0 && s.blockMap.knownStale, s.netMap.sinceWhole > 0 && s.netMap.knownStale
	}
	totals := func(c CgroupStats) [2]uint64 {
		return [2]uint64{c.BlockBytes(OpRead) + c.BlockBytes(OpWrite) + c.BlockOps(OpRead) + c.BlockOps(OpWrite),
			c.NetTransmitBytes + c.NetReceiveBytes + c.NetTransmitPackets + c.NetReceivePackets}
	}
	var before, after *Snapshot
	for try := 0; ; try++ {
		for range 3 {
			if before, err = p.Read(time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		work(cgs[7:8])
		if after, err = p.Read(time.Now()); err != nil {
			t.Fatal(err)
		}
		if block, net := byMarks(); block && net {
			break
		}
		if try == 9 {
			t.Fatal("ten reads after one cgroup wrote and sent read a map whole; want its keys looked up alone")
		}
	}
	for i, cg := range cgs {
		b, _ := before.Cgroup(cg.path)
		a, ok := after.Cgroup(cg.path)
		if !ok {
			t.Fatalf("%s missing after a read of the marked keys", cg.path)
		}
		tb, ta := totals(b), totals(a)
		if i == 7 {
			if a.BlockBytes(OpWrite)-b.BlockBytes(OpWrite) < 1<<20 || a.NetTransmitBytes-b.NetTransmitBytes < 64<<10 {
				t.Errorf("the cgroup that wrote 1 MiB and sent 64 KiB: written %d → %d, sent %d → %d",
					b.BlockBytes(OpWrite), a.BlockBytes(OpWrite), b.NetTransmitBytes, a.NetTransmitBytes)
			}
		} else if tb != ta {
			t.Errorf("%s did nothing, yet moved: block and net %v → %v", cg.path, tb, ta)
		}
	}

	p.mu.Lock()
	p.state.blockMap.sinceWhole, p.state.netMap.sinceWhole = wholeEvery, wholeEvery
	p.mu.Unlock()
	whole, err := p.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, cg := range cgs {
		a, _ := after.Cgroup(cg.path)
		w, _ := whole.Cgroup(cg.path)
		if totals(a) != totals(w) {
			t.Errorf("%s: by marked keys block and net %v; whole %v", cg.path, totals(a), totals(w))
		}
	}
}
