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
