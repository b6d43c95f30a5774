// SPDX-License-Identifier: GPL-2.0-only
// Copyright The crmon Authors.

// Block I/O per cgroup and device: bytes, operations and issue-to-complete
// latency, charged to the cgroup the block layer charges the I/O to.

#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"
#include "bpf/bpf_core_read.h"
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

// histograms switches the latency histogram; set at load time.
const volatile bool histograms = true;

// REQ_OP_* from include/linux/blk_types.h: the low 8 bits of cmd_flags.
#define REQ_OP_MASK 0xff
#define OP_READ 0
#define OP_WRITE 1

struct block_key {
	// cgroup is the kernfs id of the blkcg's cgroup; hierarchy says which
	// hierarchy that id belongs to (0: cgroup2, else a v1 blkio hierarchy).
	__u64 cgroup;
	__u32 hierarchy;
	// dev is the kernel dev_t (major << 20 | minor) of the partition.
	__u32 dev;
	__u32 op;
	__u32 pad;
};

struct block_value {
	__u64 bytes;
	__u64 ops;
	__u64 latency_ns;
	__u64 latency_hist[HIST_BUCKETS];
};

struct inflight {
	struct block_key key;
	__u64 issued_ns;
	// remaining bytes: block_rq_complete may report a request in pieces.
	__u64 remaining;
};

enum block_drop {
	BLOCK_DROP_CGROUP_MAP_FULL,
	BLOCK_DROP_INFLIGHT_FULL,
	BLOCK_DROP_STALE,
	BLOCK_DROP_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, struct block_key);
	__type(value, struct block_value);
} block_cgroups SEC(".maps");

// block_inflight holds issued requests by address until they complete.
// Preallocated: completions run in interrupt context. Entries of requests
// that never complete are dropped by user space and counted as stale.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct inflight);
} block_inflight SEC(".maps");

DEFINE_DROPS(block_drops, BLOCK_DROP_MAX);

static struct block_value zero_block;

// block_rq_issue fires from blk_mq_start_request() when the driver takes
// the request.
SEC("tp_btf/block_rq_issue")
int BPF_PROG(crmon_block_rq_issue, struct request *rq)
{
	struct inflight in = {};
	__u64 addr = (__u64)rq;
	__u32 op = BPF_CORE_READ(rq, cmd_flags) & REQ_OP_MASK;
	unsigned int len = BPF_CORE_READ(rq, __data_len);
	struct cgroup *cg;
	__u32 dev;

	// Flushes and discards carry no read or write payload.
	if ((op != OP_READ && op != OP_WRITE) || !len)
		return 0;

	// The bio's blkg is what blk-cgroup charged (bio_associate_blkg at
	// submit, or the inode's writeback cgroup): a kworker writing back
	// someone's dirty pages is not charged. A request without a bio stays
	// cgroup 0, the root.
	cg = BPF_CORE_READ(rq, bio, bi_blkg, blkcg, css.cgroup);
	if (cg) {
		in.key.cgroup = BPF_CORE_READ(cg, kn, id);
		in.key.hierarchy = BPF_CORE_READ(cg, root, hierarchy_id);
	}
	dev = BPF_CORE_READ(rq, part, bd_dev);
	if (!dev)
		dev = BPF_CORE_READ(rq, q, disk, part0, bd_dev);
	in.key.dev = dev;
	in.key.op = op;
	in.issued_ns = bpf_ktime_get_ns();
	in.remaining = len;
	if (bpf_map_update_elem(&block_inflight, &addr, &in, BPF_ANY))
		count_drop(&block_drops, BLOCK_DROP_INFLIGHT_FULL);
	return 0;
}

// block_rq_complete fires from blk_update_request() and
// blk_complete_request() (batched completions) with the bytes completed.
SEC("tp_btf/block_rq_complete")
int BPF_PROG(crmon_block_rq_complete, struct request *rq, blk_status_t error,
	     unsigned int nr_bytes)
{
	__u64 addr = (__u64)rq;
	struct inflight *in = bpf_map_lookup_elem(&block_inflight, &addr);
	struct block_value *v;
	__u64 lat;

	if (!in)
		return 0;
	v = lookup_or_init(&block_cgroups, &in->key, &zero_block);
	if (!v) {
		count_drop(&block_drops, BLOCK_DROP_CGROUP_MAP_FULL);
		bpf_map_delete_elem(&block_inflight, &addr);
		return 0;
	}
	if (nr_bytes < in->remaining) {
		v->bytes += nr_bytes;
		in->remaining -= nr_bytes;
		return 0;
	}
	v->bytes += in->remaining;
	v->ops++;
	lat = bpf_ktime_get_ns() - in->issued_ns;
	v->latency_ns += lat;
	if (histograms) {
		__u32 b = hist_bucket(lat);

		if (b < HIST_BUCKETS)
			v->latency_hist[b]++;
	}
	bpf_map_delete_elem(&block_inflight, &addr);
	return 0;
}

// A requeued request is issued again; a request merged into another never
// completes on its own (attempt_merge frees it).
static __always_inline void forget(struct request *rq)
{
	__u64 addr = (__u64)rq;

	bpf_map_delete_elem(&block_inflight, &addr);
}

SEC("tp_btf/block_rq_requeue")
int BPF_PROG(crmon_block_rq_requeue, struct request *rq)
{
	forget(rq);
	return 0;
}

SEC("tp_btf/block_rq_merge")
int BPF_PROG(crmon_block_rq_merge, struct request *rq)
{
	forget(rq);
	return 0;
}
