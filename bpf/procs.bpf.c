// SPDX-License-Identifier: GPL-2.0-only
// Copyright The crmon Authors.

// Per-process accounting for the cgroups of test runs (sessions): user
// space puts a run's cgroup2 id in procs_watch while the run lasts, and
// every process of that cgroup and of the cgroups below it (a scope the
// run makes, a nested test harness) is counted, at exit, from the
// kernel's own per-task clocks and counters:
//   - CPU time from se.sum_exec_runtime, the clock rusage reports;
//   - run-queue wait from sched_info.run_delay (/proc/<pid>/schedstat);
//   - storage bytes from the task's ioac (read_bytes, write_bytes less
//     cancelled_write_bytes: /proc/<pid>/io);
//   - peak RSS from signal->maxrss, which do_exit() updates from the mm
//     before trace_sched_process_exit when the thread group dies (rusage's
//     ru_maxrss);
//   - network bytes from sock_send_length and sock_recv_length, which
//     sock_sendmsg_nosec() and sock_recvmsg_nosec() fire in the calling
//     task for every send and receive on a socket (write(2), sendfile and
//     io_uring included): the payload bytes of its IPv4 and IPv6 sockets.
//     These two are attached only while a run is watched.
// Each thread adds its own figures as it exits (sched_process_exit fires
// in do_exit() for every task, before exit_mm() and cgroup_exit()), so a
// process that lives a millisecond is counted. What the thread still
// runs after that (tearing down its memory: milliseconds for a large
// process, 3 % of a `go test ./...` here) is added when the task is freed
// (sched_process_free, after it was reaped and its last switch-out): the
// process entry counts its threads exited and freed, and is final when
// both agree. sched_process_exec
// records what the process runs: the file and the first bytes of argv.
// Nothing runs per context switch, and with procs_watch empty each exit
// or exec costs one read of procs_watching.

#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"
#include "bpf/bpf_core_read.h"
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

#define PROC_FILENAME 128
#define PROC_ARGS 256

struct proc_key {
	__u32 tgid;
	__u32 pad;
	// start is the thread group leader's start_time: a pid reused
	// within the run is another process.
	__u64 start;
};

struct proc_value {
	__u64 cgroup;
	__u64 cpu_ns;
	__u64 wait_ns;
	__u64 read_bytes;
	__u64 write_bytes;
	__u64 maxrss_pages;
	__u64 net_rx_bytes;
	__u64 net_tx_bytes;
	__u32 exited;
	__u32 ppid;
	// threads_exited and threads_freed count the process's threads at
	// sched_process_exit and at sched_process_free.
	__u32 threads_exited;
	__u32 threads_freed;
	char comm[16];
	char filename[PROC_FILENAME];
	char args[PROC_ARGS];
};

enum procs_drop {
	PROCS_DROP_MAP_FULL,
	PROCS_DROP_TASK_STORAGE,
	PROCS_DROP_MAX,
};

// procs_watch holds the cgroup2 ids of the runs being measured.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u32);
} procs_watch SEC(".maps");

// procs holds one entry per process of a watched cgroup, until user space
// takes it at the end of the run.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, struct proc_key);
	__type(value, struct proc_value);
} procs SEC(".maps");

// procs_threads keeps, from a thread's exit to its free, what it was
// charged at exit and the process it belongs to.
struct thread_exit {
	struct proc_key key;
	__u64 runtime;
	__u64 delay;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_exit);
} procs_threads SEC(".maps");

DEFINE_DROPS(procs_drops, PROCS_DROP_MAX);

// procs_watching is how many cgroups procs_watch holds, set by user space:
// with none, a task's cgroups are not looked up at all.
volatile __u32 procs_watching;

// PROCS_MAX_DEPTH bounds the cgroups looked up per event: the task's and
// its ancestors', nearest first. A process more than PROCS_MAX_DEPTH - 1
// levels below the watched cgroup is not counted.
#define PROCS_MAX_DEPTH 16

static struct proc_value zero_proc;

// watched returns the cgroup2 id of the nearest cgroup, t's own or one of
// its ancestors, that a run watches, or 0. t is the current task at every
// caller (exec, exit and socket calls run in the task), so the helpers
// that read the current task's cgroup2 ancestors serve.
static __always_inline __u64 watched(struct task_struct *t)
{
	__u64 cg;
	int level;

	if (!procs_watching)
		return 0;
	level = t->cgroups->dfl_cgrp->level;
	for (int i = 0; i < PROCS_MAX_DEPTH; i++) {
		if (level - i < 0)
			return 0;
		cg = bpf_get_current_ancestor_cgroup_id(level - i);
		if (bpf_map_lookup_elem(&procs_watch, &cg))
			return cg;
	}
	return 0;
}

static __always_inline struct proc_value *proc_of(struct task_struct *t, __u64 cg, struct proc_key *k)
{
	struct proc_value *v;

	k->tgid = t->tgid;
	k->pad = 0;
	k->start = t->group_leader->start_time;
	v = lookup_or_init(&procs, k, &zero_proc, NULL);

	if (!v) {
		count_drop(procs_drops, PROCS_DROP_MAP_FULL);
		return 0;
	}
	v->cgroup = cg;
	return v;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(crmon_procs_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct proc_value *v;
	struct proc_key k;
	struct mm_struct *mm;
	unsigned long start, len;
	__u64 cg = watched(p);

	if (!cg)
		return 0;
	v = proc_of(p, cg, &k);
	if (!v)
		return 0;
	bpf_probe_read_kernel_str(v->filename, sizeof(v->filename), bprm->filename);
	// The new argv was just copied to the top of the new stack: it is
	// in memory, so a non-faulting read finds it. It is read up to
	// arg_end only: the environment that follows may hold secrets.
	__builtin_memset(v->args, 0, sizeof(v->args));
	mm = p->mm;
	start = mm->arg_start;
	len = mm->arg_end - start;
	if (len > PROC_ARGS - 1)
		len = PROC_ARGS - 1;
	bpf_probe_read_user(v->args, len & (PROC_ARGS - 1), (void *)start);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(crmon_procs_exit, struct task_struct *p, bool group_dead)
{
	struct proc_value *v;
	struct thread_exit *te;
	struct proc_key k;
	__u64 w, c, runtime, delay;
	__u64 cg = watched(p);

	if (!cg)
		return 0;
	v = proc_of(p, cg, &k);
	if (!v)
		return 0;
	runtime = p->se.sum_exec_runtime;
	delay = p->sched_info.run_delay;
	// Threads of one process may exit on several CPUs at once.
	__sync_fetch_and_add(&v->cpu_ns, runtime);
	__sync_fetch_and_add(&v->wait_ns, delay);
	te = bpf_task_storage_get(&procs_threads, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (te) {
		te->key = k;
		te->runtime = runtime;
		te->delay = delay;
		__sync_fetch_and_add(&v->threads_exited, 1);
	} else {
		count_drop(procs_drops, PROCS_DROP_TASK_STORAGE);
	}
	__sync_fetch_and_add(&v->read_bytes, p->ioac.read_bytes);
	w = p->ioac.write_bytes;
	c = p->ioac.cancelled_write_bytes;
	__sync_fetch_and_add(&v->write_bytes, w > c ? w - c : 0);
	if (group_dead) {
		v->maxrss_pages = p->signal->maxrss;
		v->ppid = p->real_parent->tgid;
		__builtin_memcpy(v->comm, p->comm, sizeof(v->comm));
		v->exited = 1;
	}
	return 0;
}

// sched_process_free fires from delayed_put_task_struct(), an RCU grace
// period after the task was reaped: its clocks are final.
SEC("tp_btf/sched_process_free")
int BPF_PROG(crmon_procs_free, struct task_struct *p)
{
	struct thread_exit *te = bpf_task_storage_get(&procs_threads, p, 0, 0);
	struct proc_value *v;
	__u64 runtime, delay;

	if (!te)
		return 0;
	v = bpf_map_lookup_elem(&procs, &te->key);
	if (v) {
		runtime = p->se.sum_exec_runtime;
		delay = p->sched_info.run_delay;
		if (runtime > te->runtime)
			__sync_fetch_and_add(&v->cpu_ns, runtime - te->runtime);
		if (delay > te->delay)
			__sync_fetch_and_add(&v->wait_ns, delay - te->delay);
		__sync_fetch_and_add(&v->threads_freed, 1);
	}
	bpf_task_storage_delete(&procs_threads, p);
	return 0;
}

// AF_INET and AF_INET6 from include/linux/socket.h, MSG_PEEK from
// include/linux/socket.h: not in BTF.
#define AF_INET 2
#define AF_INET6 10
#define MSG_PEEK 2

static __always_inline void count_net(struct sock *sk, int ret, bool tx)
{
	struct task_struct *t;
	struct proc_value *v;
	struct proc_key k;
	__u16 family;
	__u64 cg;

	if (ret <= 0)
		return;
	family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return;
	t = bpf_get_current_task_btf();
	cg = watched(t);
	if (!cg)
		return;
	v = proc_of(t, cg, &k);
	if (!v)
		return;
	if (tx)
		__sync_fetch_and_add(&v->net_tx_bytes, ret);
	else
		__sync_fetch_and_add(&v->net_rx_bytes, ret);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(crmon_procs_send, struct sock *sk, int ret, int flags)
{
	count_net(sk, ret, true);
	return 0;
}

// A peek reads bytes that a later receive reads again.
SEC("tp_btf/sock_recv_length")
int BPF_PROG(crmon_procs_recv, struct sock *sk, int ret, int flags)
{
	if (!(flags & MSG_PEEK))
		count_net(sk, ret, false);
	return 0;
}
