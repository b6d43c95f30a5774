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

// DEFINE_DIRTY(name) tells user space which cgroups' keys of a per-cgroup
// map were charged since its last read, so that it looks up those alone
// instead of reading the whole map, which walks every one of its buckets
// (16 384 at 10 240 entries: 0.3 ms a tick) whatever few cgroups did
// anything. Each CPU has a table (name_dirty) of DIRTY_SLOTS slots, a
// cgroup id and the epoch it was last charged in. User space raises
// name_dirty_epoch before each read and takes the ids marked in the last
// two epochs (a program that read the epoch just before the raise marks
// with the old one). A cgroup has two slots its id hashes to: it takes
// the one that holds it, else one that is empty or holds a cgroup not
// marked in those epochs; when both hold others marked in them, it sets
// overflow_epoch and user space reads the whole map, as it also does
// every minute. (With ten cgroups charged on a CPU between two reads, one
// slot each would overflow a table about every other read; two, about
// one read in fifteen.) So does a mark made while another was being made
// on the same CPU (a block completion's interrupt during an issue, a
// packet's softirq during a send): busy is set around each, and a mark
// that finds it set gives up its slot for overflow_epoch, since the two
// could interleave their stores to one slot and lose one of them.
#define DIRTY_SLOTS 64

struct dirty_slot {
	__u64 id;
	__u64 epoch;
};

struct dirty_table {
	__u64 overflow_epoch;
	__u64 busy;
	struct dirty_slot slot[DIRTY_SLOTS];
};

#define DEFINE_DIRTY(name)                                  \
	struct {                                            \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);    \
		__uint(max_entries, 1);                     \
		__type(key, __u32);                         \
		__type(value, struct dirty_table);          \
	} name##_dirty SEC(".maps");                        \
	__u64 name##_dirty_epoch = 0

// mark_dirty marks cgroup cg in table (a DEFINE_DIRTY map) at epoch e,
// its name_dirty_epoch. Called after the counts are updated: user space
// that sees the mark finds them.
static __always_inline void mark_dirty(void *table, __u64 e, __u64 cg)
{
	__u32 zero = 0;
	struct dirty_table *t = bpf_map_lookup_elem(table, &zero);
	struct dirty_slot *s;

	if (!t)
		return;
	s = &t->slot[(cg ^ (cg >> 6)) & (DIRTY_SLOTS - 1)];
	// Marked in this epoch already, as most events of a busy cgroup
	// find it: no store.
	if (s->id == cg && s->epoch == e)
		return;
	if (t->busy) {
		t->overflow_epoch = e;
		return;
	}
	t->busy = 1;
	// The compiler keeps the stores in this order; a CPU sees its own
	// in program order, and an interrupt runs on the same CPU.
	asm volatile("" ::: "memory");
	if (s->id != cg) {
		struct dirty_slot *s2 = &t->slot[((cg * 0x9E3779B97F4A7C15ULL) >> 58) & (DIRTY_SLOTS - 1)];

		if (s2->id == cg || (s->id && s->epoch + 1 >= e && (!s2->id || s2->epoch + 1 < e)))
			s = s2;
		if (s->id != cg) {
			if (s->id && s->epoch + 1 >= e)
				t->overflow_epoch = e;
			s->id = cg;
		}
	}
	s->epoch = e;
	asm volatile("" ::: "memory");
	t->busy = 0;
}

#endif
