// SPDX-License-Identifier: GPL-2.0-only
// Copyright The crmon Authors.

// The host's processes in one run of a syscall program (BPF_PROG_TEST_RUN)
// that walks the kernel's task list with open-coded task iterators (Linux
// 6.7): every process, and within it every thread, following the lists'
// links as for_each_process() and for_each_thread() do.
//
// bpf/tasks.bpf.c's iter/task does the same from a PID lookup per task
// (find_ge_pid(), get_pid_task() and a reference taken and dropped) and
// writes a record per thread for user space to add up: beside 150 idle
// containers, whose runtime shims have some ten threads each, that walk
// was 1 µs a thread. Here the threads' CPU time is added up in the kernel
// and each process writes one record, to a chunk of an array map that user
// space reads with one batch lookup.
//
// The fields are those of bpf/tasks.bpf.c; see there.

#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_core_read.h"
#include "task.h"

char LICENSE[] SEC("license") = "GPL";

extern int bpf_iter_task_new(struct bpf_iter_task *it, struct task_struct *task,
			     unsigned int flags) __ksym;
extern struct task_struct *bpf_iter_task_next(struct bpf_iter_task *it) __ksym;
extern void bpf_iter_task_destroy(struct bpf_iter_task *it) __ksym;
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

// PROCS_PER_CHUNK records of 64 bytes make a chunk of a page; PROC_CHUNKS
// chunks hold 16 384 processes (1 MiB). A host with more is listed by the
// iter/task program instead: the run returns -1.
#define PROCS_PER_CHUNK 64
#define PROC_CHUNKS 256

struct proc_rec {
	__u32 tgid;
	__u32 state;
	__u32 exit_state;
	__u32 nr_threads;
	__u64 runtime_ns;
	__u64 start_ns;
	__u64 total_vm_pages;
	__u64 rss_pages;
	char comm[16];
};

struct proc_chunk {
	struct proc_rec r[PROCS_PER_CHUNK];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PROC_CHUNKS);
	__type(key, __u32);
	__type(value, struct proc_chunk);
} proc_chunks SEC(".maps");

// nprocs counts the records written, steps the tasks walked. They are
// kept in globals rather than on the stack: the verifier follows a local
// counter's every value around the loop and gives up.
__u32 nprocs = 0;
__u32 steps = 0;

// MAX_STEPS ends a walk that goes on past the kernel's most tasks
// (PID_MAX_LIMIT): before Linux 6.7.2 the iterator could loop forever on a
// thread group whose non-leader thread ran exec. The run then returns -1
// and the task iterator lists instead.
#define MAX_STEPS (4 * 1024 * 1024)

static __always_inline struct proc_rec *record(__u32 i)
{
	__u32 c = i / PROCS_PER_CHUNK;
	struct proc_chunk *chunk = bpf_map_lookup_elem(&proc_chunks, &c);

	if (!chunk)
		return NULL;
	return &chunk->r[i % PROCS_PER_CHUNK];
}

// crmon_procs fills proc_chunks and returns how many processes it wrote,
// or -1 when they did not fit. The walk of every thread gives a process's
// leader first, then its other threads (for_each_process_thread()), so
// each thread adds its CPU time to the record its leader began.
SEC("syscall")
int crmon_procs(void *ctx)
{
	struct bpf_iter_task it;
	struct task_struct *t;
	struct proc_rec *r;
	int ret = 0;

	nprocs = 0;
	steps = 0;
	bpf_rcu_read_lock();
	bpf_iter_task_new(&it, NULL, BPF_TASK_ITER_ALL_THREADS);
	for (;;) {
		t = bpf_iter_task_next(&it);
		if (!t)
			break;
		if (++steps > MAX_STEPS) {
			ret = -1;
			break;
		}
		__u32 n = nprocs;
		r = n ? record(n - 1) : NULL;
		// A thread adds to its leader's record. So does a second leader
		// of the same group: a thread that ran exec while the walk was in
		// its group took the leader's pid (exchange_tids()).
		if (t->pid != t->tgid || (r && r->tgid == t->tgid)) {
			if (r && r->tgid == t->tgid)
				r->runtime_ns += t->se.sum_exec_runtime;
			continue;
		}
		// The walk starts at init_task, the idle task of PID 0.
		if (t->pid == 0)
			continue;
		r = record(n);
		if (!r) {
			ret = -1;
			break;
		}
		struct signal_struct *sig = t->signal;
		r->tgid = t->tgid;
		r->runtime_ns = t->se.sum_exec_runtime;
		r->nr_threads = 0;
		if (sig) {
			r->runtime_ns += sig->sum_sched_runtime;
			r->nr_threads = sig->nr_threads;
		}
		r->start_ns = t->start_boottime;
		r->state = task_state(t);
		r->exit_state = t->exit_state;
		r->total_vm_pages = 0;
		r->rss_pages = 0;
		struct mm_struct *mm = t->mm;
		if (mm) {
			r->total_vm_pages = mm->total_vm;
			r->rss_pages = mm_rss(mm);
		}
		__builtin_memcpy(r->comm, t->comm, sizeof(r->comm));
		nprocs = n + 1;
	}
	bpf_iter_task_destroy(&it);
	bpf_rcu_read_unlock();
	if (ret == 0)
		ret = nprocs;
	return ret;
}
