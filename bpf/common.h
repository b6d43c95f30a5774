// SPDX-License-Identifier: GPL-2.0-only
// Copyright The crmon Authors.

// Shared by crmon's BPF programs: histogram buckets and drop counters.

#ifndef CRMON_COMMON_H
#define CRMON_COMMON_H

// HIST_BUCKETS log2 buckets of nanoseconds: bucket b counts values v with
// 2^(b-1) <= v < 2^b (bucket 0 holds v == 0); the last bucket holds
// everything from 2^(HIST_BUCKETS-2) ns (about 4.3 s) up.
#define HIST_BUCKETS 34

// TASK_RUNNING from include/linux/sched.h, not in BTF.
#define TASK_RUNNING 0

// switch_voluntary reports whether __schedule() counts a switch-out in
// the task's nvcsw rather than nivcsw: not a preemption, and the task's
// state (read when sched_switch fires) not TASK_RUNNING. A task preempted
// between set_current_state() and schedule() is not running, yet its
// switch is involuntary. One case still differs: a task that blocks with a
// signal pending is set back to TASK_RUNNING before the tracepoint but
// counted in nvcsw.
static __always_inline bool switch_voluntary(bool preempt, unsigned long state)
{
	return !preempt && state != TASK_RUNNING;
}

// EEXIST from include/uapi/asm-generic/errno-base.h, not in BTF.
#define EEXIST 17

// The per-cgroup maps are preallocated here, as a program that inserts
// from under the run-queue lock or from interrupt context needs before
// Linux 6.1 (no bpf_mem_alloc): an allocation there could wake kswapd and
// take the run-queue lock again. User space sets BPF_F_NO_PREALLOC at load
// where the kernel's hash maps allocate from bpf_mem_alloc, so that memory
// grows with the cgroups seen instead of max_entries.

// hist_bucket returns the bucket of v: its bit length, capped. Branch-light
// binary search rather than a loop so the verifier sees a fixed cost.
static __always_inline __u32 hist_bucket(__u64 v)
{
	__u32 r = 0, shift;

	if (!v)
		return 0;
	shift = (v > 0xffffffffULL) << 5;
	v >>= shift;
	r |= shift;
	shift = (v > 0xffff) << 4;
	v >>= shift;
	r |= shift;
	shift = (v > 0xff) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xf) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	// r is floor(log2(v)); the bit length is one more.
	r += 1;
	if (r > HIST_BUCKETS - 1)
		r = HIST_BUCKETS - 1;
	return r;
}

// DEFINE_DROPS defines n drop counters, which user space sums and exports
// so that a full map is never silent. They are a global array: user space
// reads it from the .bss map's memory mapping without a system call (a
// per-CPU map was a lookup per counter every tick), and drops are rare
// enough that an atomic add costs nothing on the common path.
#define DEFINE_DROPS(name, n) __u64 name[n] = {}

// count_drop adds one to drop counter reason of counters.
#define count_drop(counters, reason) __sync_fetch_and_add(&(counters)[(reason)], 1)

// lookup_or_init returns the value of key in a hash map, inserting zero
// (from a zeroed global, to keep large values off the 512-byte stack) when
// absent. NULL means the map is full. An insert adds one to *inserts,
// unless inserts is NULL: while that count stays, user space knows every
// key of the map and looks them up one by one, where a batch read walks
// every bucket (4 096, some 50 µs a map at each tick on a quiet host).
static __always_inline void *lookup_or_init(void *map, const void *key, const void *zero, __u64 *inserts)
{
	void *v = bpf_map_lookup_elem(map, key);

	if (v)
		return v;
	// BPF_NOEXIST: a concurrent insert on another CPU wins, then we look
	// it up again.
	if (!bpf_map_update_elem(map, key, zero, BPF_NOEXIST) && inserts)
		__sync_fetch_and_add(inserts, 1);
	return bpf_map_lookup_elem(map, key);
}

#endif
