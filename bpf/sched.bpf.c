// SPDX-License-Identifier: GPL-2.0-only
// Copyright The crmon Authors.

// Scheduler accounting per cgroup2 cgroup: on-CPU time, run-queue wait and
// context switches, aggregated in the kernel and read by user space once per
// tick.
//
// Everything is charged at switch-out, from the task's own cumulative
// clocks, as deltas since the task was last charged (kept in task
// storage):
//   - CPU time from se.sum_exec_runtime, the clock rusage and cpuacct
//     report;
//   - run-queue wait from sched_info.run_delay, the kernel's own sum of the
//     time from enqueue (sched_wakeup, sched_wakeup_new, or preemption
//     while TASK_RUNNING) to switch-in, i.e. /proc/<pid>/schedstat. Between
//     two switch-outs a task is switched in exactly once, so each delta is
//     one wait: that makes the histogram.
// This needs no sched_wakeup program and no timestamp per event: the hot
// path is one program, one task-storage lookup and one map lookup per
// context switch.

#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"
#include "bpf/bpf_core_read.h"
#include "common.h"
#include "task.h"

char LICENSE[] SEC("license") = "GPL";

// histograms switches the run-queue latency histogram; set at load time.
const volatile bool histograms = true;

struct sched_value {
	__u64 cpu_ns;
	__u64 wait_ns;
	__u64 waits;
	__u64 voluntary;
	__u64 involuntary;
	__u64 wait_hist[HIST_BUCKETS];
};

struct task_state {
	// last_runtime and last_delay are the sum_exec_runtime and run_delay
	// already charged.
	__u64 last_runtime;
	__u64 last_delay;
	__u64 last_pcount;
	// cset and cgroup cache the task's css_set and its cgroup2 id: a task
	// that did not move keeps its css_set, and one pointer compare saves
	// three dependent loads per switch.
	__u64 cset;
	__u64 cgroup;
	// baseline is 1 once the last_* values are valid: tasks running before
	// the probe attached are charged from their first switch-out on.
	__u32 baseline;
	__u32 pad;
};

enum sched_drop {
	SCHED_DROP_CGROUP_MAP_FULL,
	SCHED_DROP_TASK_STORAGE,
	SCHED_DROP_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct sched_value);
} sched_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_state);
} sched_tasks SEC(".maps");

DEFINE_DROPS(sched_drops, SCHED_DROP_MAX);

// sched_inserts counts the keys put in sched_cgroups (lookup_or_init).
__u64 sched_inserts = 0;

// sched_oncpu holds, per CPU, the cgroup2 id of the task on that CPU (0
// for the idle task), set when the CPU switches to it and again whenever
// the kernel accounts it CPU time. A task that runs through a whole tick without switching
// out charges nothing to sched_cgroups in that tick: user space reads
// this map too, so that such a cgroup still counts as active and its
// cgroupfs counters are read.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sched_oncpu SEC(".maps");

static struct sched_value zero_sched;

// sched_dirty: the cgroups charged since user space's last read (DEFINE_DIRTY).
DEFINE_DIRTY(sched);

// Task fields are read by direct access, not BPF_CORE_READ: vmlinux.h
// marks every type preserve_access_index, so each access is the same CO-RE
// relocation BPF_CORE_READ emits, but tp_btf arguments are BTF pointers the
// verifier lets us load from (as exception-handled loads) without a
// bpf_probe_read_kernel() call per field. sched_switch runs on every
// context switch; those calls were most of its cost.

// task_cgroup is the task's cgroup2 id, what bpf_get_current_cgroup_id()
// returns for current: task->cgroups->dfl_cgrp->kn->id.
static __always_inline __u64 task_cgroup(struct task_struct *t, struct task_state *ts)
{
	struct css_set *cset = t->cgroups;

	if (ts->cset == (__u64)cset)
		return ts->cgroup;
	ts->cset = (__u64)cset;
	ts->cgroup = cset->dfl_cgrp->kn->id;
	return ts->cgroup;
}

// switch_out charges prev's slice and the wait before it. __schedule()
// calls update_curr() (via put_prev_task) before trace_sched_switch, so
// sum_exec_runtime includes the slice that just ended; sched_info_arrive()
// added the wait before it when the task was switched in. This includes a
// dying task's last switch (prev->__state == TASK_DEAD). The switch is
// voluntary or not as the kernel counts it (switch_voluntary).
static __always_inline void switch_out(struct task_struct *prev, bool preempt)
{
	struct task_state *ts;
	struct sched_value *v;
	__u64 runtime, delay, pcount, cpu = 0, wait = 0, waits = 0;
	__u64 cg;

	ts = bpf_task_storage_get(&sched_tasks, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!ts) {
		count_drop(sched_drops, SCHED_DROP_TASK_STORAGE);
		return;
	}
	runtime = prev->se.sum_exec_runtime;
	delay = prev->sched_info.run_delay;
	pcount = prev->sched_info.pcount;
	if (ts->baseline) {
		if (runtime > ts->last_runtime)
			cpu = runtime - ts->last_runtime;
		if (delay > ts->last_delay)
			wait = delay - ts->last_delay;
		if (pcount > ts->last_pcount)
			waits = pcount - ts->last_pcount;
	}
	ts->last_runtime = runtime;
	ts->last_delay = delay;
	ts->last_pcount = pcount;
	ts->baseline = 1;

	cg = task_cgroup(prev, ts);
	v = lookup_or_init(&sched_cgroups, &cg, &zero_sched, &sched_inserts);
	if (!v) {
		count_drop(sched_drops, SCHED_DROP_CGROUP_MAP_FULL);
		return;
	}
	v->cpu_ns += cpu;
	v->wait_ns += wait;
	v->waits += waits;
	if (switch_voluntary(preempt, task_state(prev)))
		v->voluntary++;
	else
		v->involuntary++;
	if (histograms && waits) {
		// With one switch-in since the last switch-out (the usual
		// case), wait is that one wait; otherwise its mean.
		__u32 b = hist_bucket(waits == 1 ? wait : wait / waits);

		if (b < HIST_BUCKETS)
			v->wait_hist[b] += waits;
	}
	// After the counts: user space that sees the mark finds them.
	mark_dirty(&sched_dirty, sched_dirty_epoch, cg);
}

// sched_switch's prev_state argument only exists from Linux 5.18: the
// program reads the state from prev, as it was when the tracepoint fired.
SEC("tp_btf/sched_switch")
int BPF_PROG(crmon_sched_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	__u32 zero = 0;
	__u64 *oncpu;

	// pid 0 is the idle task: its time is not work.
	if (prev->pid)
		switch_out(prev, preempt);
	// The same cgroup2 id task_cgroup() reads, without the task-storage
	// lookup: next's css_set pointers are hot, the scheduler just used
	// them. A percpu array lookup is inlined by the verifier.
	oncpu = bpf_map_lookup_elem(&sched_oncpu, &zero);
	if (oncpu)
		*oncpu = next->pid ? next->cgroups->dfl_cgrp->kn->id : 0;
	return 0;
}

// sched_wakeup_new fires from wake_up_new_task() before the new task first
// runs, when sched_fork() has zeroed its sum_exec_runtime and sched_info:
// all its CPU time and waits are charged, not only those after its first
// switch-out.
SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(crmon_sched_wakeup_new, struct task_struct *p)
{
	struct task_state *ts = bpf_task_storage_get(&sched_tasks, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!ts) {
		count_drop(sched_drops, SCHED_DROP_TASK_STORAGE);
		return 0;
	}
	ts->last_runtime = p->se.sum_exec_runtime;
	ts->last_delay = p->sched_info.run_delay;
	ts->last_pcount = p->sched_info.pcount;
	ts->baseline = 1;
	return 0;
}

// A task moved to another cgroup while on its CPU is not switched out:
// cgroup migration does not reschedule. Set at switch-in alone, the
// marker went on naming its old cgroup until it next switched out, and
// its new cgroup looked idle all the while, however much CPU it used.
// sched_stat_runtime fires where the kernel accounts a running task's
// time (update_curr_task(), next to cgroup_account_cputime(); from Linux
// 6.8 for every class, before for CFS tasks only), on the task's CPU: the
// marker then names the cgroup the time is charged to, so a cgroup whose
// cpu.stat moved is on a CPU by the marker or was charged a switch-out.
SEC("tp_btf/sched_stat_runtime")
int BPF_PROG(crmon_sched_stat_runtime, struct task_struct *p)
{
	__u32 zero = 0;
	__u64 *oncpu;

	// p is the task running on its run queue's CPU, but update_curr()
	// may run on another CPU, holding that run queue's lock (a remote
	// wakeup, load balancing): the marker to set is that of p's CPU.
	// sched_switch sets it under the same lock. The helper is Linux 5.19.
	oncpu = bpf_map_lookup_percpu_elem(&sched_oncpu, &zero, p->thread_info.cpu);
	if (oncpu)
		*oncpu = p->cgroups->dfl_cgrp->kn->id;
	return 0;
}
