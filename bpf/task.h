// SPDX-License-Identifier: GPL-2.0-only
// Copyright The crmon Authors.

// Task fields read the same way by every program that reads them, on every
// kernel crmon runs on: a task's state, and its mm's resident pages.
//
// The fields are loaded directly through the task's BTF pointers, which
// the verifier turns into guarded loads; BPF_CORE_READ's helper call per
// field was a fifth of the task iterator's time. Where a flavour below
// does not exist in the running kernel, its branch is dead and left out
// at load.
//
// Needs vmlinux.h and bpf/bpf_core_read.h.

#ifndef CRMON_TASK_H
#define CRMON_TASK_H

// The mm counters' indices (include/linux/mm_types_task.h), not in BTF.
#define MM_FILEPAGES 0
#define MM_ANONPAGES 1
#define MM_SHMEMPAGES 3

// Before Linux 5.14 the task's state was "long state".
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

// Before Linux 6.2 the mm counters were an atomic array.
struct mm_rss_stat___pre62 {
	atomic_long_t count[4];
} __attribute__((preserve_access_index));
struct mm_struct___pre62 {
	struct mm_rss_stat___pre62 rss_stat;
} __attribute__((preserve_access_index));

// task_state is the task's __state (state before 5.14, where it was
// long: read with a helper, as a direct load of eight bytes at __state's
// place is refused where BTF gives it four).
static __always_inline unsigned long task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return t->__state;
	return BPF_CORE_READ((struct task_struct___pre514 *)t, state);
}

static __always_inline __u64 positive(long v)
{
	return v > 0 ? v : 0;
}

// mm_rss is get_mm_rss(): the file, anonymous and shmem pages, each read
// as percpu_counter_read_positive() does (before 6.2, an atomic array).
static __always_inline __u64 mm_rss(struct mm_struct *mm)
{
	if (bpf_core_type_exists(struct mm_rss_stat___pre62)) {
		struct mm_struct___pre62 *o = (void *)mm;
		return positive(o->rss_stat.count[MM_FILEPAGES].counter) +
		       positive(o->rss_stat.count[MM_ANONPAGES].counter) +
		       positive(o->rss_stat.count[MM_SHMEMPAGES].counter);
	}
	return positive(mm->rss_stat[MM_FILEPAGES].count) +
	       positive(mm->rss_stat[MM_ANONPAGES].count) +
	       positive(mm->rss_stat[MM_SHMEMPAGES].count);
}

#endif
