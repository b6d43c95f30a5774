// SPDX-License-Identifier: GPL-2.0-only
// Copyright The crmon Authors.

// The host's processes in one read: a task iterator (iter/task, Linux 5.8)
// that writes, for every task, its thread group, its id and its CPU time,
// and for a thread group's leader what /proc/<pid>/stat says of the whole
// process. User space sums the threads' CPU time per process.
//
// /proc/<pid>/stat costs some 8 µs a process whatever its threads; beside
// 1 000 idle containers, the runtime shims' stat files were a quarter of
// the agent's CPU. Reading every task here costs some 200 ns a task.
//
// The fields are those proc_pid_stat(5) computes (fs/proc/array.c):
//   - CPU: se.sum_exec_runtime of each live thread, and for the leader
//     signal->sum_sched_runtime (threads that exited): the rtime that
//     thread_group_cputime_adjusted() splits into utime and stime.
//   - state: __state (state before 5.14) and exit_state, which user space
//     turns into task_state_index()'s letter.
//   - start_boottime, signal->nr_threads, mm->total_vm, and the mm's file,
//     anonymous and shmem page counters (get_mm_rss()), each read as
//     percpu_counter_read_positive() does (before 6.2, an atomic array).

#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_core_read.h"
#include "task.h"

char LICENSE[] SEC("license") = "GPL";

// struct task_rec is what every task writes; a leader (pid == tgid)
// writes a struct leader_rec after it.
struct task_rec {
	__u32 tgid;
	__u32 pid;
	__u64 runtime_ns;
};

struct leader_rec {
	__u64 dead_runtime_ns;
	__u64 start_ns;
	__u64 total_vm_pages;
	__u64 rss_pages;
	__u32 state;
	__u32 exit_state;
	__u32 nr_threads;
	__u32 pad;
	char comm[16];
};

SEC("iter/task")
int crmon_tasks(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *t = ctx->task;
	if (!t)
		return 0;
	struct task_rec r = {
		.tgid = t->tgid,
		.pid = t->pid,
		.runtime_ns = t->se.sum_exec_runtime,
	};
	bpf_seq_write(seq, &r, sizeof(r));
	if (r.pid != r.tgid)
		return 0;
	struct leader_rec l = {};
	struct signal_struct *sig = t->signal;
	if (sig) {
		l.dead_runtime_ns = sig->sum_sched_runtime;
		l.nr_threads = sig->nr_threads;
	}
	l.start_ns = t->start_boottime;
	l.state = task_state(t);
	l.exit_state = t->exit_state;
	struct mm_struct *mm = t->mm;
	if (mm) {
		l.total_vm_pages = mm->total_vm;
		l.rss_pages = mm_rss(mm);
	}
	__builtin_memcpy(l.comm, t->comm, sizeof(l.comm));
	bpf_seq_write(seq, &l, sizeof(l));
	return 0;
}
