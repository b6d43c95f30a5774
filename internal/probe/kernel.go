// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// A requirement is something a probe's programs need of the kernel that
// has no fallback in the programs, checked in the kernel's BTF before
// loading: a probe that cannot work on this kernel is refused with a
// reason that says what is missing and since when it exists, instead of
// a verifier log or, worse, a program that loads and reads the wrong
// thing (CO-RE relocates a renamed pointer's target without checking it).
// Where a field was renamed the programs carry a fallback (task_struct's
// state, request's rq_disk) and the requirement accepts either.
type requirement struct {
	what string
	// since is the first Linux release that has it, "" when every
	// kernel with BTF has one of the alternatives.
	since string
	ok    func(*btf.Spec) bool
}

// requirements lists, per probe, what its programs need. README's
// minimum kernel per probe is the latest of these.
var requirements = map[string][]requirement{
	ProbeCgroups: {
		{"tp_btf cgroup_mkdir and cgroup_rmdir (cgroup, path)", "Linux 5.5",
			all(tracepoint("cgroup_mkdir", "cgroup", "char"), tracepoint("cgroup_rmdir", "cgroup", "char"))},
		{"64-bit cgroup ids (kernfs_node.id)", "Linux 5.5", kernfsID64},
	},
	ProbeSched: {
		{"tp_btf sched_switch (preempt, prev, next) and sched_wakeup_new (p)", "Linux 5.5",
			all(tracepoint("sched_switch", "bool", "task_struct", "task_struct"), tracepoint("sched_wakeup_new", "task_struct"))},
		{"task_struct.__state (or .state before Linux 5.14)", "",
			any_(member("task_struct", "__state"), member("task_struct", "state"))},
		{"task_struct.se.sum_exec_runtime, .sched_info.run_delay and .pcount", "",
			all(member("task_struct", "se", "sum_exec_runtime"), member("task_struct", "sched_info", "run_delay"), member("task_struct", "sched_info", "pcount"))},
		{"BPF task storage", "Linux 5.11", enumValue("bpf_map_type", "BPF_MAP_TYPE_TASK_STORAGE")},
		// bpf_task_storage_get(F_CREATE) runs in sched_switch, under the
		// run-queue lock: before local storage allocated from
		// bpf_mem_alloc, that was a kmalloc that can wake kswapd and so
		// take a run-queue lock again. Later kernels allocate it with
		// kmalloc_nolock(), safe in any context, instead.
		{"task storage allocated without kmalloc (bpf_mem_alloc or kmalloc_nolock in local storage)", "Linux 6.4",
			any_(memberOfType("bpf_local_storage_map", "bpf_mem_alloc"),
				member("bpf_local_storage_map", "use_kmalloc_nolock"),
				member("bpf_local_storage_elem", "use_kmalloc_nolock"))},
		{"64-bit cgroup ids (kernfs_node.id)", "Linux 5.5", kernfsID64},
		// The on-CPU marker is refreshed where a task's time is accounted.
		{"tp_btf sched_stat_runtime (tsk)", "Linux 5.5", tracepoint("sched_stat_runtime", "task_struct")},
		{"task_struct.thread_info.cpu", "", member("task_struct", "thread_info", "cpu")},
	},
	ProbeBlock: {
		// Before 5.11 these tracepoints also took the request_queue.
		{"tp_btf block_rq_issue, block_rq_requeue and block_rq_merge (rq), block_rq_complete (rq, error, nr_bytes)", "Linux 5.11",
			all(tracepoint("block_rq_issue", "request"), tracepoint("block_rq_requeue", "request"),
				tracepoint("block_rq_merge", "request"), tracepoint("block_rq_complete", "request", "blk_status_t", "unsigned int"))},
		{"request.part and gendisk.part0 as struct block_device", "Linux 5.11",
			all(pointerMember("request", "part", "block_device"), pointerMember("gendisk", "part0", "block_device"))},
		{"request_queue.disk (or request.rq_disk before Linux 5.15)", "",
			any_(member("request_queue", "disk"), member("request", "rq_disk"))},
		{"bio.bi_blkg (blk-cgroup)", "Linux 4.15", member("bio", "bi_blkg")},
		{"64-bit cgroup ids (kernfs_node.id)", "Linux 5.5", kernfsID64},
	},
}

// hashMemAlloc reports whether the kernel's hash maps allocate elements
// from bpf_mem_alloc (Linux 6.1): then a map without preallocation is safe
// to insert into from any context.
func hashMemAlloc(spec *btf.Spec) bool {
	return memberOfType("bpf_htab", "bpf_mem_alloc")(spec)
}

// checkKernel returns why probe cannot load on the kernel described by
// spec, or nil.
func checkKernel(probe string, spec *btf.Spec) error {
	var missing []error
	for _, r := range requirements[probe] {
		switch {
		case r.ok(spec):
		case r.since == "":
			missing = append(missing, fmt.Errorf("kernel lacks %s", r.what))
		default:
			missing = append(missing, fmt.Errorf("kernel lacks %s (%s)", r.what, r.since))
		}
	}
	return errors.Join(missing...)
}

func all(fs ...func(*btf.Spec) bool) func(*btf.Spec) bool {
	return func(s *btf.Spec) bool {
		for _, f := range fs {
			if !f(s) {
				return false
			}
		}
		return true
	}
}

func any_(fs ...func(*btf.Spec) bool) func(*btf.Spec) bool {
	return func(s *btf.Spec) bool {
		for _, f := range fs {
			if f(s) {
				return true
			}
		}
		return false
	}
}

// structType returns the struct named name.
func structType(s *btf.Spec, name string) *btf.Struct {
	var st *btf.Struct
	if err := s.TypeByName(name, &st); err != nil {
		return nil
	}
	return st
}

// findMember returns the member called name of a struct or union,
// looking into anonymous members as C does.
func findMember(t btf.Type, name string) *btf.Member {
	var members []btf.Member
	switch c := btf.UnderlyingType(t).(type) {
	case *btf.Struct:
		members = c.Members
	case *btf.Union:
		members = c.Members
	default:
		return nil
	}
	for i := range members {
		m := &members[i]
		if m.Name == name {
			return m
		}
		if m.Name == "" {
			if inner := findMember(m.Type, name); inner != nil {
				return inner
			}
		}
	}
	return nil
}

// member reports whether struct typ has the member path (a.b.c).
func member(typ string, path ...string) func(*btf.Spec) bool {
	return func(s *btf.Spec) bool {
		st := structType(s, typ)
		if st == nil {
			return false
		}
		var t btf.Type = st
		for _, name := range path {
			m := findMember(t, name)
			if m == nil {
				return false
			}
			t = m.Type
		}
		return true
	}
}

// pointerMember reports whether typ.name is a pointer to struct target.
func pointerMember(typ, name, target string) func(*btf.Spec) bool {
	return func(s *btf.Spec) bool {
		st := structType(s, typ)
		if st == nil {
			return false
		}
		m := findMember(st, name)
		if m == nil {
			return false
		}
		p, ok := btf.UnderlyingType(m.Type).(*btf.Pointer)
		return ok && typeName(p.Target) == target
	}
}

// memberOfType reports whether struct typ has a member of struct type
// target, whatever its name.
func memberOfType(typ, target string) func(*btf.Spec) bool {
	return func(s *btf.Spec) bool {
		st := structType(s, typ)
		if st == nil {
			return false
		}
		for _, m := range st.Members {
			if typeName(m.Type) == target {
				return true
			}
		}
		return false
	}
}

func kernfsID64(s *btf.Spec) bool {
	st := structType(s, "kernfs_node")
	if st == nil {
		return false
	}
	m := findMember(st, "id")
	if m == nil {
		return false
	}
	i, ok := btf.UnderlyingType(m.Type).(*btf.Int)
	return ok && i.Size == 8
}

func enumValue(typ, name string) func(*btf.Spec) bool {
	return func(s *btf.Spec) bool {
		var e *btf.Enum
		if err := s.TypeByName(typ, &e); err != nil {
			return false
		}
		for _, v := range e.Values {
			if v.Name == name {
				return true
			}
		}
		return false
	}
}

// tracepoint reports whether the raw tracepoint name passes arguments of
// the named types (pointers by their target's name), in order: what a
// tp_btf program reads from its context.
func tracepoint(name string, args ...string) func(*btf.Spec) bool {
	return func(s *btf.Spec) bool {
		var td *btf.Typedef
		if err := s.TypeByName("btf_trace_"+name, &td); err != nil {
			return false
		}
		p, ok := td.Type.(*btf.Pointer)
		if !ok {
			return false
		}
		fp, ok := p.Target.(*btf.FuncProto)
		// The first parameter is the tracepoint's data pointer; later
		// kernels may append arguments (sched_switch's prev_state).
		if !ok || len(fp.Params) < 1+len(args) {
			return false
		}
		for i, want := range args {
			if typeName(fp.Params[1+i].Type) != want {
				return false
			}
		}
		return true
	}
}

// typeName names t without qualifiers; a pointer by its target's name.
func typeName(t btf.Type) string {
	for {
		switch v := t.(type) {
		case *btf.Const:
			t = v.Type
		case *btf.Volatile:
			t = v.Type
		case *btf.Restrict:
			t = v.Type
		case *btf.Pointer:
			t = v.Target
		default:
			return t.TypeName()
		}
	}
}
