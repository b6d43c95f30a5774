// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/collect"
)

// sysBlock makes a sysfs tree with disk 8:0 (sda), its partitions 8:1 and
// 8:2, and disk 254:0 (vda) without partitions, linked from dev/block as
// the kernel links them.
func sysBlock(t *testing.T) string {
	t.Helper()
	sys := t.TempDir()
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(sys, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sys, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(name, target string) {
		if err := os.MkdirAll(filepath.Join(sys, "dev", "block"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(sys, "dev", "block", name)); err != nil {
			t.Fatal(err)
		}
	}
	write("devices/pci/block/sda/dev", "8:0\n")
	write("devices/pci/block/sda/sda1/dev", "8:1\n")
	write("devices/pci/block/sda/sda1/partition", "1\n")
	write("devices/pci/block/sda/sda2/dev", "8:2\n")
	write("devices/pci/block/sda/sda2/partition", "2\n")
	write("devices/virtio/block/vda/dev", "254:0\n")
	link("8:0", "../../devices/pci/block/sda")
	link("8:1", "../../devices/pci/block/sda/sda1")
	link("8:2", "../../devices/pci/block/sda/sda2")
	link("254:0", "../../devices/virtio/block/vda")
	return sys
}

func TestWholeDisk(t *testing.T) {
	c := &Collector{opts: Options{Paths: collect.Paths{SysFS: sysBlock(t)}}, disks: map[uint64]uint64{}}
	for _, tc := range []struct{ maj, min, wantMaj, wantMin uint32 }{
		{8, 1, 8, 0},
		{8, 2, 8, 0},
		{8, 0, 8, 0},
		{254, 0, 254, 0},
		{7, 3, 7, 3}, // not in sysfs: itself
	} {
		if maj, min := c.wholeDisk(tc.maj, tc.min); maj != tc.wantMaj || min != tc.wantMin {
			t.Errorf("wholeDisk(%d:%d) = %d:%d, want %d:%d", tc.maj, tc.min, maj, min, tc.wantMaj, tc.wantMin)
		}
	}
}

// TestUseProbeCounts: partitions add up to their disk, as cgroupfs counts
// them, and no count a container serves goes down when a later reading is
// lower.
func TestUseProbeCounts(t *testing.T) {
	c := &Collector{opts: Options{Paths: collect.Paths{SysFS: sysBlock(t)}}, disks: map[uint64]uint64{}, devNames: map[uint64]string{}}
	ct := newContainer("x")
	c.useProbeCounts(ct, &collect.CgroupCounts{HasCPU: true, HasBlock: true, CPU: 3 * time.Millisecond, Block: []collect.BlockBytes{
		{Major: 8, Minor: 1, ReadBytes: 100, WriteBytes: 4096},
		{Major: 8, Minor: 2, WriteBytes: 8192},
		{Major: 254, Minor: 0, ReadBytes: 512},
	}})
	want := []cgroups.IODevice{{Major: 8, Minor: 0, ReadBytes: 100, WriteBytes: 12288}, {Major: 254, Minor: 0, ReadBytes: 512}}
	if diff := cmp.Diff(want, ct.probeIO); diff != "" {
		t.Errorf("probeIO (-want +got):\n%s", diff)
	}
	if !ct.fromProbes || !ct.probeHasCPU || ct.probeCPU != 3e6 || ct.probeFinal {
		t.Errorf("fromProbes %v, probeHasCPU %v, probeCPU %d, probeFinal %v; want true, true, 3000000, false", ct.fromProbes, ct.probeHasCPU, ct.probeCPU, ct.probeFinal)
	}
	// The label sets they are served with exist from then on: a scrape
	// may come before the next tick.
	for _, f := range probeFamilies {
		if ct.lp == nil || ct.lp.fromEBPF[f] == nil {
			t.Fatalf("no crmon_container_counters_from_ebpf label set for %s", families[f].name)
		}
	}
	for _, d := range want {
		if ct.lp.device[devKey(d.Major, d.Minor)] == nil {
			t.Errorf("no label set for device %d:%d", d.Major, d.Minor)
		}
	}
	// A lower reading (the block probe down, say) changes nothing; a
	// final one is kept as such.
	c.useProbeCounts(ct, &collect.CgroupCounts{Removed: true, HasCPU: true, HasBlock: true, CPU: time.Millisecond, Block: []collect.BlockBytes{{Major: 8, Minor: 1, WriteBytes: 1}}})
	if diff := cmp.Diff(want, ct.probeIO); diff != "" {
		t.Errorf("probeIO after a lower reading (-want +got):\n%s", diff)
	}
	if ct.probeCPU != 3e6 || !ct.probeFinal {
		t.Errorf("after a lower, final reading: probeCPU %d, probeFinal %v; want 3000000, true", ct.probeCPU, ct.probeFinal)
	}
}

// blockCounter is a collect.CgroupCounter with fixed block I/O counts.
type blockCounter []collect.BlockBytes

func (b blockCounter) CgroupCounts(string) (collect.CgroupCounts, bool) {
	return collect.CgroupCounts{HasBlock: true, Block: b}, true
}

func (b blockCounter) ReadCgroupCounts(p string) (collect.CgroupCounts, bool) {
	return b.CgroupCounts(p)
}

// TestProbeBlockWhileRunning: a running container's block bytes are the
// larger of cgroupfs's and the probes', by whole disk, a device only the
// probes saw included (its series of both directions the probes'), marked
// as the probes'; a restarted container's
// are cgroupfs's alone (the probes' counts sum every run).
func TestProbeBlockWhileRunning(t *testing.T) {
	c, add, now := fixtureCollector(t)
	c.mu.Lock()
	c.opts.Paths.SysFS = sysBlock(t)
	c.counter = blockCounter{
		{Major: 8, Minor: 1, WriteBytes: 40 << 20}, // above cgroupfs's 32 MiB on 8:0
		{Major: 254, Minor: 0, WriteBytes: 4096},   // not in cgroupfs
	}
	a := add("a1", "writer", "busybox", "ci", "running")
	r := add("r2", "restarted", "busybox", "ci", "running")
	r.restarted = true
	for _, ct := range []*container{a, r} {
		c.probeBlock(ct)
		c.updateLabels(ct)
	}
	c.lastUpdate = now
	c.mu.Unlock()
	checkSeries(t, c)

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			k := f.GetName()
			for _, l := range m.GetLabel() {
				if n := l.GetName(); n == "name" || n == "device" || n == "family" {
					k += "," + l.GetValue()
				}
			}
			got[k] = value(m)
		}
	}
	for k, want := range map[string]float64{
		"container_fs_writes_bytes_total,8:0,writer":                                40 << 20,
		"container_fs_writes_bytes_total,254:0,writer":                              4096,
		"container_fs_reads_bytes_total,8:0,writer":                                 1,
		"crmon_container_counters_from_ebpf,container_fs_writes_bytes_total,writer": 1,
		"container_fs_writes_bytes_total,8:0,restarted":                             32 << 20,
		"container_fs_writes_bytes_total,253:1,restarted":                           7,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (served %v), want %v", k, v, ok, want)
		}
	}
	for _, k := range []string{
		"crmon_container_counters_from_ebpf,container_fs_writes_bytes_total,restarted",
		"container_fs_writes_bytes_total,254:0,restarted",
	} {
		if v, ok := got[k]; ok {
			t.Errorf("%s = %v, want no such series", k, v)
		}
	}
}
