// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSnapshotRetired builds snapshots from a read state without the
// kernel: removed cgroups' final counts are merged in path order with the
// live ones, shared by snapshots until the removed set changes, and a
// path both removed and live again sums both and is not removed; no
// snapshot changes after it was made.
func TestSnapshotRetired(t *testing.T) {
	s := newReadState(&Probes{opts: Options{RemovedRetention: time.Minute}})
	const vda = 253 << 20
	s.devices[vda] = "vda"
	t0 := time.Unix(1_000_000, 0)
	r := s.retire("/b", 11, t0)
	r.addSched(&schedSchedValue{CpuNs: 5, Voluntary: 1})
	r.addBlock("vda", vda, 1, &blockBlockValue{Bytes: 10, Ops: 1})
	r = s.retire("/d", 13, t0)
	r.addSched(&schedSchedValue{CpuNs: 1})
	r.addBlock("vda", vda, 1, &blockBlockValue{Bytes: 100, Ops: 2})
	s.sched[22] = &schedAcc{path: "/a", v: schedSchedValue{CpuNs: 2}}
	s.sched[21] = &schedAcc{path: "/d", v: schedSchedValue{CpuNs: 3}}
	s.block[blockBlockKey{Cgroup: 21, Dev: vda, Op: 1}] = &blockAcc{path: "/d", id: 21, v: blockBlockValue{Bytes: 4, Ops: 1}}

	write := func(bytes, ops uint64) []BlockStats {
		return []BlockStats{{Device: "vda", Major: 253, Op: OpWrite, Bytes: bytes, Ops: ops}}
	}
	want := []CgroupStats{
		{Path: "/a", ID: 22, CPU: 2},
		{Path: "/b", ID: 11, Removed: true, RemovedAt: t0, CPU: 5, VoluntarySwitches: 1, Block: write(10, 1)},
		{Path: "/d", ID: 21, CPU: 4, Block: write(104, 3)},
	}
	first := s.snapshot(t0.Add(time.Second))
	if diff := cmp.Diff(want, first.Cgroups); diff != "" {
		t.Fatalf("first snapshot (-want +got):\n%s", diff)
	}
	second := s.snapshot(t0.Add(2 * time.Second))
	if diff := cmp.Diff(want, second.Cgroups); diff != "" {
		t.Fatalf("second snapshot (-want +got):\n%s", diff)
	}
	if &first.Cgroups[1].Block[0] != &second.Cgroups[1].Block[0] {
		t.Error("a removed cgroup's stats were made again, though no cgroup was removed or forgotten since")
	}
	if &first.Cgroups[2].Block[0] == &second.Cgroups[2].Block[0] {
		t.Error("a cgroup live again shares its stats between snapshots")
	}

	// /c goes; then /b is forgotten after the retention.
	s.retire("/c", 12, t0.Add(30*time.Second)).addSched(&schedSchedValue{CpuNs: 7})
	third := s.snapshot(t0.Add(30 * time.Second))
	if got := paths(third.Cgroups); !cmp.Equal(got, []string{"/a", "/b", "/c", "/d"}) {
		t.Errorf("after /c is removed: %q", got)
	}
	s.expireRetired(t0.Add(61 * time.Second))
	fourth := s.snapshot(t0.Add(61 * time.Second))
	if got := paths(fourth.Cgroups); !cmp.Equal(got, []string{"/a", "/c", "/d"}) {
		t.Errorf("after /b is forgotten: %q", got)
	}
	if diff := cmp.Diff(want, first.Cgroups); diff != "" {
		t.Errorf("the first snapshot changed since (-want +got):\n%s", diff)
	}
}

func paths(cs []CgroupStats) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Path)
	}
	return out
}

// TestSnapshotLayout: snapshots taken while no cgroup's entry came or
// went share one layout and differ in their counts alone, each left as
// it was taken; an entry added or deleted, or a cgroup retired, makes the
// layout again.
func TestSnapshotLayout(t *testing.T) {
	s := newReadState(&Probes{opts: Options{RemovedRetention: time.Minute}})
	const vda = 253 << 20
	s.devices[vda] = "vda"
	t0 := time.Unix(1_000_000, 0)
	// As readSched, readNet and readBlock add them.
	add := func(f func()) {
		f()
		s.layoutStale = true
	}
	add(func() { s.sched[1] = &schedAcc{path: "/b", at: -1, v: schedSchedValue{CpuNs: 1}} })
	add(func() { s.net[2] = &netAcc{path: "/a", at: -1, v: netNetValue{RxPackets: 1}} })
	add(func() {
		s.block[blockBlockKey{Cgroup: 1, Dev: vda}] = &blockAcc{path: "/b", at: -1, id: 1, v: blockBlockValue{Bytes: 8, Ops: 1}}
	})
	first := s.snapshot(t0)
	layout := &s.layout[0]

	s.sched[1].v.CpuNs = 5
	s.block[blockBlockKey{Cgroup: 1, Dev: vda}].v.Bytes = 16
	second := s.snapshot(t0.Add(time.Second))
	if &s.layout[0] != layout {
		t.Error("layout made again though no entry came or went")
	}
	read := func(bytes uint64) []BlockStats {
		return []BlockStats{{Device: "vda", Major: 253, Op: OpRead, Bytes: bytes, Ops: 1}}
	}
	want := []CgroupStats{{Path: "/a", ID: 2, NetReceivePackets: 1}, {Path: "/b", ID: 1, CPU: 1, Block: read(8)}}
	if diff := cmp.Diff(want, first.Cgroups); diff != "" {
		t.Errorf("first snapshot, after the second was taken (-want +got):\n%s", diff)
	}
	want[1].CPU, want[1].Block = 5, read(16)
	if diff := cmp.Diff(want, second.Cgroups); diff != "" {
		t.Errorf("second snapshot (-want +got):\n%s", diff)
	}

	// A new cgroup between the two.
	add(func() { s.sched[3] = &schedAcc{path: "/ab", at: -1, v: schedSchedValue{CpuNs: 2}} })
	third := s.snapshot(t0.Add(2 * time.Second))
	if got := paths(third.Cgroups); !cmp.Equal(got, []string{"/a", "/ab", "/b"}) || third.Cgroups[1].CPU != 2 || third.Cgroups[2].CPU != 5 {
		t.Errorf("after /ab came: %+v", third.Cgroups)
	}

	// /b removed, then made again: its final counts, retired, and the
	// new cgroup's added to them.
	bk := blockBlockKey{Cgroup: 1, Dev: vda}
	r := s.retire("/b", 1, t0.Add(3*time.Second))
	r.addSched(&s.sched[1].v)
	r.addBlock("vda", vda, 0, &s.block[bk].v)
	delete(s.sched, 1)
	delete(s.block, bk)
	s.layoutStale = true
	fourth := s.snapshot(t0.Add(3 * time.Second))
	if c := fourth.Cgroups[2]; c.Path != "/b" || !c.Removed || c.CPU != 5 || len(c.Block) != 1 {
		t.Errorf("/b removed: %+v", c)
	}
	add(func() { s.sched[4] = &schedAcc{path: "/b", at: -1, v: schedSchedValue{CpuNs: 1}} })
	fifth := s.snapshot(t0.Add(4 * time.Second))
	sixth := s.snapshot(t0.Add(5 * time.Second))
	for _, snap := range []*Snapshot{fifth, sixth} {
		if c := snap.Cgroups[2]; c.Path != "/b" || c.Removed || c.CPU != 6 || c.ID != 4 {
			t.Errorf("/b live again: %+v", c)
		}
	}
	if &fifth.Cgroups[2].Block[0] == &sixth.Cgroups[2].Block[0] {
		t.Error("a cgroup live again shares its block stats between snapshots")
	}
}
