// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"slices"

	"github.com/cilium/ebpf"
)

// dirtyKeys reads a probe's per-CPU tables of the cgroups it charged
// since the last read (DEFINE_DIRTY in bpf/common.h: sched_dirty,
// block_dirty, net_dirty), so that a read looks up those cgroups' keys
// alone: a whole read walks every bucket of the map (16 384 at 10 240
// entries) however few cgroups did anything, some 0.3 ms of the agent's
// tick for the sched map beside 150 idle containers whose cgroups it
// holds from their start.
type dirtyKeys struct {
	// epoch is the last value given to the probe's dirty epoch.
	epoch uint64
	vals  []dirtyTable
	ids   []uint64
}

// dirtyTable is struct dirty_table of bpf/common.h, which bpf2go makes a
// type of for each probe; they are one layout.
type dirtyTable = schedDirtyTable

var (
	_ = dirtyTable(blockDirtyTable{})
	_ = dirtyTable(netDirtyTable{})
)

// take raises the probe's epoch and returns the cgroup ids marked since
// the read before, on every CPU, sorted and each once. ok is false when
// they are not known: at the first two reads, when a CPU's table
// overflowed (a cgroup took the slot of one not yet read), or when the
// table cannot be read or the epoch set; every key must then be read.
func (d *dirtyKeys) take(table *ebpf.Map, epoch *ebpf.Variable) (ids []uint64, ok bool) {
	if table == nil || epoch == nil {
		return nil, false
	}
	d.epoch++
	if err := epoch.Set(d.epoch); err != nil {
		d.epoch--
		return nil, false
	}
	vals, err := perCPUValues(&d.vals)
	if err != nil {
		return nil, false
	}
	if err := table.Lookup(uint32(0), vals); err != nil {
		return nil, false
	}
	// Marks made since the last read's look at the tables carry its
	// epoch or this one, or the one before it for a program that read
	// the epoch just before it was raised.
	if d.epoch < 3 {
		return nil, false
	}
	since := d.epoch - 2
	d.ids = d.ids[:0]
	for i := range d.vals {
		t := &d.vals[i]
		if t.OverflowEpoch >= since {
			return nil, false
		}
		for j := range t.Slot {
			if s := &t.Slot[j]; s.Id != 0 && s.Epoch >= since {
				d.ids = append(d.ids, s.Id)
			}
		}
	}
	slices.Sort(d.ids)
	d.ids = slices.Compact(d.ids)
	return d.ids, true
}

// marked says whether id is one of the ids the last take returned.
func (d *dirtyKeys) marked(id uint64) bool {
	_, ok := slices.BinarySearch(d.ids, id)
	return ok
}
