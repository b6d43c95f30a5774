// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// kernelSpec returns a private copy of the running kernel's BTF, for a
// test to turn into an older kernel's.
func kernelSpec(t *testing.T) *btf.Spec {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireLong(t, "eBPF")
	s, err := btf.LoadKernelSpec()
	if err != nil {
		testenv.Unavailable(t, "no kernel BTF: %v", err)
	}
	return s.Copy()
}

func mustStruct(t *testing.T, s *btf.Spec, name string) *btf.Struct {
	t.Helper()
	st := structType(s, name)
	if st == nil {
		t.Fatalf("no struct %s in the kernel's BTF", name)
	}
	return st
}

func renameMember(t *testing.T, s *btf.Spec, typ, from, to string) {
	t.Helper()
	st := mustStruct(t, s, typ)
	m := findMember(st, from)
	if m == nil {
		t.Fatalf("no %s.%s in the kernel's BTF", typ, from)
	}
	m.Name = to
}

// dropMembersOfType removes typ's members of struct type target.
func dropMembersOfType(t *testing.T, s *btf.Spec, typ, target string) {
	t.Helper()
	st := mustStruct(t, s, typ)
	n := len(st.Members)
	st.Members = slices.DeleteFunc(st.Members, func(m btf.Member) bool { return typeName(m.Type) == target })
	if len(st.Members) == n {
		t.Fatalf("%s has no %s member", typ, target)
	}
}

// TestKernelFallbacks loads each probe against the running kernel's BTF
// edited to look like an older kernel's: where the programs have a
// fallback the probe loads and runs; where they have none it is refused
// with a reason naming what is missing, in its status and in the log,
// and the other probes still load.
func TestKernelFallbacks(t *testing.T) {
	tests := []struct {
		name string
		// edit turns the running kernel's BTF into an older one's.
		edit func(*testing.T, *btf.Spec)
		opts Options
		// up is the probes that must load; down maps each refused probe
		// to a fragment of its reason.
		up   []string
		down map[string]string
	}{{
		name: "task_struct.state before 5.14",
		edit: func(t *testing.T, s *btf.Spec) { renameMember(t, s, "task_struct", "__state", "state") },
		opts: Options{Sched: true},
		up:   []string{ProbeSched, ProbeCgroups},
	}, {
		name: "no task state at all",
		edit: func(t *testing.T, s *btf.Spec) { renameMember(t, s, "task_struct", "__state", "__state_gone") },
		opts: Options{Sched: true, Net: true},
		up:   []string{ProbeNet, ProbeCgroups},
		down: map[string]string{ProbeSched: "kernel lacks task_struct.__state"},
	}, {
		name: "task storage from kmalloc before 6.4",
		edit: func(t *testing.T, s *btf.Spec) { dropMembersOfType(t, s, "bpf_local_storage_map", "bpf_mem_alloc") },
		opts: Options{Sched: true, Block: true},
		up:   []string{ProbeBlock, ProbeCgroups},
		down: map[string]string{ProbeSched: "task storage allocated without kmalloc (bpf_mem_alloc or kmalloc_nolock in local storage) (Linux 6.4)"},
	}, {
		name: "task storage from kmalloc_nolock",
		edit: func(t *testing.T, s *btf.Spec) {
			dropMembersOfType(t, s, "bpf_local_storage_map", "bpf_mem_alloc")
			st := mustStruct(t, s, "bpf_local_storage_map")
			st.Members = append(st.Members, btf.Member{Name: "use_kmalloc_nolock", Type: &btf.Int{Name: "_Bool", Size: 1, Encoding: btf.Bool}, Offset: st.Members[len(st.Members)-1].Offset})
		},
		opts: Options{Sched: true},
		up:   []string{ProbeSched, ProbeCgroups},
	}, {
		name: "request.rq_disk before 5.15",
		edit: func(t *testing.T, s *btf.Spec) {
			renameMember(t, s, "request_queue", "disk", "disk_gone")
			// rq_disk where q is: any pointer will do for the verifier,
			// which is what this checks; the read goes through
			// bpf_probe_read_kernel.
			q := findMember(mustStruct(t, s, "request"), "q")
			var disk *btf.Struct
			if err := s.TypeByName("gendisk", &disk); err != nil {
				t.Fatal(err)
			}
			rq := mustStruct(t, s, "request")
			rq.Members = append(rq.Members, btf.Member{Name: "rq_disk", Type: &btf.Pointer{Target: disk}, Offset: q.Offset})
		},
		opts: Options{Block: true},
		up:   []string{ProbeBlock, ProbeCgroups},
	}, {
		name: "neither request_queue.disk nor request.rq_disk",
		edit: func(t *testing.T, s *btf.Spec) { renameMember(t, s, "request_queue", "disk", "disk_gone") },
		opts: Options{Block: true},
		up:   []string{ProbeCgroups},
		down: map[string]string{ProbeBlock: "request_queue.disk (or request.rq_disk before Linux 5.15)"},
	}, {
		name: "block tracepoints with the request_queue before 5.11",
		edit: func(t *testing.T, s *btf.Spec) {
			var td *btf.Typedef
			if err := s.TypeByName("btf_trace_block_rq_issue", &td); err != nil {
				t.Fatal(err)
			}
			fp := td.Type.(*btf.Pointer).Target.(*btf.FuncProto)
			var q *btf.Struct
			if err := s.TypeByName("request_queue", &q); err != nil {
				t.Fatal(err)
			}
			fp.Params = slices.Insert(fp.Params, 1, btf.FuncParam{Name: "q", Type: &btf.Pointer{Target: q}})
		},
		opts: Options{Block: true, Sched: true},
		up:   []string{ProbeSched, ProbeCgroups},
		down: map[string]string{ProbeBlock: "tp_btf block_rq_issue"},
	}, {
		name: "64-bit cgroup ids before 5.5",
		edit: func(t *testing.T, s *btf.Spec) { renameMember(t, s, "kernfs_node", "id", "id_gone") },
		opts: Options{Sched: true, Block: true, Net: true},
		up:   []string{ProbeNet},
		down: map[string]string{ProbeSched: "64-bit cgroup ids", ProbeBlock: "64-bit cgroup ids", ProbeCgroups: "64-bit cgroup ids"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := kernelSpec(t)
			tt.edit(t, spec)
			var log bytes.Buffer
			opts := tt.opts
			opts.KernelTypes = spec
			opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
			p, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			for _, st := range p.Status() {
				frag, refused := tt.down[st.Probe]
				switch {
				case refused && st.Up:
					t.Errorf("%s loaded; want it refused with %q", st.Probe, frag)
				case refused && !strings.Contains(st.Reason, frag):
					t.Errorf("%s refused with %q; want a reason with %q", st.Probe, st.Reason, frag)
				case refused && !strings.Contains(log.String(), frag):
					t.Errorf("the log does not say why %s is down:\n%s", st.Probe, log.String())
				case !refused && !st.Up:
					t.Errorf("%s down: %s", st.Probe, st.Reason)
				}
				if refused {
					t.Logf("%s: %s", st.Probe, st.Reason)
				}
			}
			for _, probe := range tt.up {
				if !p.Up(probe) {
					t.Errorf("%s not up", probe)
				}
			}
			if _, err := p.Read(time.Now()); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestPreallocationBeforeMemAlloc checks the per-cgroup maps' allocation
// against what the kernel allows: preallocated where hash maps do not
// allocate from bpf_mem_alloc (before 6.1), as the programs insert from
// under the run-queue lock and from interrupts, and allocated as cgroups
// appear where they do. crmon_bpf_map_memory_bytes follows the kernel's
// figure either way.
func TestPreallocationBeforeMemAlloc(t *testing.T) {
	const maxCgroups = 4096
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	for _, old := range []bool{false, true} {
		spec := kernelSpec(t)
		if old {
			dropMembersOfType(t, spec, "bpf_htab", "bpf_mem_alloc")
		}
		p, err := New(Options{Sched: true, Block: true, Net: true, Required: true, MaxCgroups: maxCgroups, KernelTypes: spec})
		if err != nil {
			t.Fatal(err)
		}
		snap, err := p.Read(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, mc := range []struct {
			name  string
			m     *ebpf.Map
			value int
		}{
			{"sched_cgroups", p.sched.SchedCgroups, int(unsafe.Sizeof(schedSchedValue{}))},
			{"block_cgroups", p.block.BlockCgroups, int(unsafe.Sizeof(blockBlockValue{}))},
			{"net_cgroups", p.net.NetCgroups, int(unsafe.Sizeof(netNetValue{}))},
		} {
			prealloc := mc.m.Flags()&unix.BPF_F_NO_PREALLOC == 0
			if prealloc != old {
				t.Errorf("kernel with bpf_mem_alloc hash maps %v: %s preallocated %v", !old, mc.name, prealloc)
			}
			var mem uint64
			for _, ms := range snap.Maps {
				if ms.Name == mc.name {
					mem = ms.MemoryBytes
				}
			}
			// Preallocated: every entry's per-CPU values from the start.
			floor := uint64(maxCgroups * cpus * mc.value)
			if old && mem < floor {
				t.Errorf("preallocated %s: %d bytes, want at least %d (%d entries × %d CPUs × %d B)", mc.name, mem, floor, maxCgroups, cpus, mc.value)
			}
			if !old && mem >= floor {
				t.Errorf("%s: %d bytes with few cgroups seen, want less than preallocated (%d)", mc.name, mem, floor)
			}
			t.Logf("preallocated %v: %s %d bytes", old, mc.name, mem)
		}
		p.Close()
	}
}

// bpftoolMemlock is the kernel's figure for a map's memory, as bpftool
// shows it (bytes_memlock, from the map's fdinfo).
func bpftoolMemlock(t *testing.T, bpftool string, m *ebpf.Map) uint64 {
	t.Helper()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("no map id")
	}
	out, err := exec.Command(bpftool, "-j", "map", "show", "id", strconv.Itoa(int(id))).Output()
	if err != nil {
		t.Fatalf("bpftool: %v", err)
	}
	var v struct {
		Memlock uint64 `json:"bytes_memlock"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("bpftool output %q: %v", out, err)
	}
	return v.Memlock
}

// TestMapMemory checks crmon_bpf_map_memory_bytes against bpftool's
// figure for every map, and measures what one more cgroup costs in each
// per-cgroup map (logged: the README's figures).
func TestMapMemory(t *testing.T) {
	bpftool := testenv.RequireCommand(t, "bpftool")
	p := loadProbes(t, Options{Sched: true, Block: true, Net: true})
	now := time.Now()
	// mem returns crmon's figure for name, read where bpftool's did not
	// move around it (the agent's maps change as cgroups come and go).
	mem := func(name string, m *ebpf.Map) uint64 {
		t.Helper()
		for try := 0; try < 5; try++ {
			before := bpftoolMemlock(t, bpftool, m)
			now = now.Add(mapMemoryEvery)
			snap, err := p.Read(now)
			if err != nil {
				t.Fatal(err)
			}
			after := bpftoolMemlock(t, bpftool, m)
			if before != after {
				continue
			}
			for _, ms := range snap.Maps {
				if ms.Name == name {
					if ms.MemoryBytes != after {
						t.Errorf("%s: crmon says %d bytes, bpftool %d", name, ms.MemoryBytes, after)
					}
					return ms.MemoryBytes
				}
			}
			t.Fatalf("map %s missing from the snapshot", name)
		}
		t.Fatalf("%s: bpftool's figure kept moving", name)
		return 0
	}
	for _, nm := range p.mapList {
		mem(nm.name, nm.m)
	}

	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	memlock := func(m *ebpf.Map) uint64 {
		t.Helper()
		info, err := m.Info()
		if err != nil {
			t.Fatal(err)
		}
		b, ok := info.Memlock()
		if !ok {
			t.Fatal("no memlock in the map's fdinfo")
		}
		return b
	}
	const n = 256
	// Keys no cgroup has: ids near 2^62.
	for _, mc := range []struct {
		name string
		m    *ebpf.Map
		key  func(i int) any
		vals any
	}{
		{"sched_cgroups", p.sched.SchedCgroups, func(i int) any { k := uint64(1<<62 + i); return &k }, make([]schedSchedValue, cpus)},
		{"block_cgroups", p.block.BlockCgroups, func(i int) any { return &blockBlockKey{Cgroup: 1<<62 + uint64(i), Dev: 1} }, make([]blockBlockValue, cpus)},
		{"net_cgroups", p.net.NetCgroups, func(i int) any { k := uint64(1<<62 + i); return &k }, make([]netNetValue, cpus)},
	} {
		// The kernel's figure, not a Read: the reader deletes entries
		// whose cgroup does not resolve.
		before := memlock(mc.m)
		for i := range n {
			if err := mc.m.Update(mc.key(i), mc.vals, ebpf.UpdateNoExist); err != nil {
				t.Fatalf("%s: %v", mc.name, err)
			}
		}
		after := memlock(mc.m)
		for i := range n {
			_ = mc.m.Delete(mc.key(i))
		}
		per := float64(after-before) / n
		value := reflect.TypeOf(mc.vals).Elem().Size()
		t.Logf("%s: %.0f bytes per cgroup on %d possible CPUs (%d B of values per CPU)", mc.name, per, cpus, value)
		if mc.m.Flags()&unix.BPF_F_NO_PREALLOC != 0 && per < float64(uintptr(cpus)*value) {
			t.Errorf("%s: %.0f bytes per entry, less than its values (%d CPUs × %d B)", mc.name, per, cpus, value)
		}
	}
}
