// SPDX-License-Identifier: GPL-2.0-only
// Copyright The crmon Authors.

// Scheduler accounting per cgroup2 cgroup: on-CPU time, run-queue wait and
// context switches, aggregated in the kernel and read by user space once per
// tick.

#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"
#include "bpf/bpf_core_read.h"
#include "common.h"

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
	// last_runtime is the se.sum_exec_runtime already charged.
	__u64 last_runtime;
	// enqueued_ns is when the task last became runnable; 0 while it runs or
	// sleeps.
	__u64 enqueued_ns;
	// baseline is 1 once last_runtime is valid: tasks running before the
	// probe attached are charged from their first switch-out on.
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
	__uint(map_flags, BPF_F_NO_PREALLOC);
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

static struct sched_value zero_sched;

// task_cgroup is the task's cgroup2 id, what bpf_get_current_cgroup_id()
// returns for current: task->cgroups->dfl_cgrp->kn->id.
static __always_inline __u64 task_cgroup(struct task_struct *t)
{
	return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
}

static __always_inline struct sched_value *cgroup_value(__u64 cg)
{
	struct sched_value *v = lookup_or_init(&sched_cgroups, &cg, &zero_sched);

	if (!v)
		count_drop(&sched_drops, SCHED_DROP_CGROUP_MAP_FULL);
	return v;
}

static __always_inline struct task_state *task_state(struct task_struct *t, __u64 flags)
{
	struct task_state *ts = bpf_task_storage_get(&sched_tasks, t, 0, flags);

	if (!ts && flags)
		count_drop(&sched_drops, SCHED_DROP_TASK_STORAGE);
	return ts;
}

// switch_out charges prev's slice. __schedule() calls update_curr() (via
// put_prev_task) before trace_sched_switch, so sum_exec_runtime already
// includes the slice that just ended; this includes a dying task's last
// switch (prev->__state == TASK_DEAD).
static __always_inline void switch_out(struct task_struct *prev, __u64 now)
{
	__u64 runtime = BPF_CORE_READ(prev, se.sum_exec_runtime);
	unsigned int state = BPF_CORE_READ(prev, __state);
	struct task_state *ts = task_state(prev, BPF_LOCAL_STORAGE_GET_F_CREATE);
	struct sched_value *v = cgroup_value(task_cgroup(prev));
	__u64 delta = 0;

	if (ts) {
		if (ts->baseline && runtime > ts->last_runtime)
			delta = runtime - ts->last_runtime;
		ts->last_runtime = runtime;
		ts->baseline = 1;
		// Still TASK_RUNNING at switch-out: preempted, back on the run
		// queue from now.
		ts->enqueued_ns = state == TASK_RUNNING ? now : 0;
	}
	if (!v)
		return;
	v->cpu_ns += delta;
	if (state == TASK_RUNNING)
		v->involuntary++;
	else
		v->voluntary++;
}

static __always_inline void switch_in(struct task_struct *next, __u64 now)
{
	struct task_state *ts = task_state(next, 0);
	struct sched_value *v;
	__u64 wait;

	if (!ts || !ts->enqueued_ns)
		return;
	wait = now > ts->enqueued_ns ? now - ts->enqueued_ns : 0;
	ts->enqueued_ns = 0;
	v = cgroup_value(task_cgroup(next));
	if (!v)
		return;
	v->wait_ns += wait;
	v->waits++;
	if (histograms) {
		__u32 b = hist_bucket(wait);

		if (b < HIST_BUCKETS)
			v->wait_hist[b]++;
	}
}

SEC("tp_btf/sched_switch")
int BPF_PROG(crmon_sched_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next, unsigned int prev_state)
{
	__u64 now = bpf_ktime_get_ns();

	// pid 0 is the idle task: neither its time nor its waits are work.
	if (BPF_CORE_READ(prev, pid))
		switch_out(prev, now);
	if (BPF_CORE_READ(next, pid))
		switch_in(next, now);
	return 0;
}

// sched_wakeup fires from ttwu_do_wakeup() once the task is runnable.
SEC("tp_btf/sched_wakeup")
int BPF_PROG(crmon_sched_wakeup, struct task_struct *p)
{
	struct task_state *ts = task_state(p, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (ts)
		ts->enqueued_ns = bpf_ktime_get_ns();
	return 0;
}

// sched_wakeup_new fires from wake_up_new_task() before the new task first
// runs, when its sum_exec_runtime is still the 0 that sched_fork() set: all
// its CPU time is charged.
SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(crmon_sched_wakeup_new, struct task_struct *p)
{
	struct task_state *ts = task_state(p, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!ts)
		return 0;
	ts->last_runtime = BPF_CORE_READ(p, se.sum_exec_runtime);
	ts->baseline = 1;
	ts->enqueued_ns = bpf_ktime_get_ns();
	return 0;
}
