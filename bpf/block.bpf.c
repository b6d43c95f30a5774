// SPDX-License-Identifier: GPL-2.0-only
// Copyright The crmon Authors.

// Block I/O per cgroup and device: bytes, operations and issue-to-complete
// latency, charged to the cgroup the block layer charges the I/O to.
//
// Bytes are counted as a request is issued, operations and latency as it
// completes. On Linux 6.18, beside `stress-ng --io 1`, some requests were
// issued again while still in flight for the completion program, which
// had not run for them (and counted no recursion miss): counted at
// completion, a 1 MiB O_DIRECT write then went missing from its cgroup's
// bytes. blk-cgroup itself (io.stat, blkio.throttle.io_service_bytes)
// counts bytes as bios are submitted, so counting at issue is also closer
// to what the kernel reports; a requeued request gives back what it has
// left and is counted again when issued again.

#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"
#include "bpf/bpf_core_read.h"
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

// histograms switches the latency histogram; set at load time.
const volatile bool histograms = true;

// REQ_OP_* from include/linux/blk_types.h: the low 8 bits of cmd_flags.
// Odd ops write (op_is_write()); the block layer's own accounting
// (diskstats, blk-cgroup io.stat) counts everything but discards as a
// read or a write that way, WRITE_ZEROES included: ext4 issues those when
// it zeroes out blocks for a file being written.
#define REQ_OP_MASK 0xff
#define REQ_OP_FLUSH 2
#define REQ_OP_DISCARD 3
#define OP_READ 0
#define OP_WRITE 1

static __always_inline bool read_or_write(__u32 op)
{
	return op != REQ_OP_FLUSH && op != REQ_OP_DISCARD;
}

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
	// latency_count counts the operations whose issue was seen, the
	// histogram's observations.
	__u64 latency_count;
	__u64 latency_ns;
	__u64 latency_hist[HIST_BUCKETS];
};

// inflight is what block_rq_issue leaves for block_rq_complete: the
// issue time, for the latency. The op and cgroup are read from the request
// at completion, so a completion whose issue was not seen (issued before
// the probe attached, an entry lost to a full map) still counts an
// operation. An entry also says that the request's bytes were counted, for
// block_rq_requeue to take back.
struct inflight {
	__u64 issued_ns;
};

enum block_drop {
	BLOCK_DROP_CGROUP_MAP_FULL,
	BLOCK_DROP_INFLIGHT_FULL,
	// A request issued again while still in flight: its completion was
	// not seen, and neither its bytes. User space adds those it sweeps.
	BLOCK_DROP_LOST_COMPLETION,
	BLOCK_DROP_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct block_key);
	__type(value, struct block_value);
} block_cgroups SEC(".maps");

// block_inflight holds issued requests by address until they complete.
// Preallocated: completions run in interrupt context. A request whose
// completion was not seen is counted as a lost completion when it is
// issued again, or when user space sweeps it after a timeout.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct inflight);
} block_inflight SEC(".maps");

DEFINE_DROPS(block_drops, BLOCK_DROP_MAX);

// block_inserts counts the keys put in block_cgroups (lookup_or_init).
__u64 block_inserts = 0;

// block_dirty: the cgroups (key.cgroup, of any hierarchy) whose keys were
// charged since user space's last read; it looks up their keys it knows,
// and reads the whole map when block_inserts moved.
DEFINE_DIRTY(block);

static struct block_value zero_block;

// request->rq_disk, the request's gendisk before request_queue.disk
// (Linux 5.15) replaced it; gone in 5.19.
struct request___pre519 {
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

// request_disk returns the gendisk rq was issued to.
static __always_inline struct gendisk *request_disk(struct request *rq)
{
	if (bpf_core_field_exists(struct request_queue, disk))
		return BPF_CORE_READ(rq, q, disk);
	return BPF_CORE_READ((struct request___pre519 *)rq, rq_disk);
}

// request_key fills key from rq: op, device and the cgroup the block layer
// charged. Returns false for requests that are neither reads nor writes.
static __always_inline bool request_key(struct request *rq, struct block_key *key)
{
	__u32 op = BPF_CORE_READ(rq, cmd_flags) & REQ_OP_MASK;
	struct cgroup *cg;
	__u32 dev;

	if (!read_or_write(op))
		return false;
	// The bio's blkg is what blk-cgroup charged (bio_associate_blkg at
	// submit, or the inode's writeback cgroup): a kworker writing back
	// someone's dirty pages is not charged. Bios of different blkgs never
	// share a request (blk_cgroup_mergeable), so the first bio speaks for
	// all. A request without a bio stays cgroup 0, the root.
	cg = BPF_CORE_READ(rq, bio, bi_blkg, blkcg, css.cgroup);
	if (cg) {
		key->cgroup = BPF_CORE_READ(cg, kn, id);
		key->hierarchy = BPF_CORE_READ(cg, root, hierarchy_id);
	}
	dev = BPF_CORE_READ(rq, part, bd_dev);
	if (!dev)
		dev = BPF_CORE_READ(request_disk(rq), part0, bd_dev);
	key->dev = dev;
	key->op = op & 1 ? OP_WRITE : OP_READ;
	return true;
}

// block_rq_issue fires from blk_mq_start_request() when the driver takes
// the request.
SEC("tp_btf/block_rq_issue")
int BPF_PROG(crmon_block_rq_issue, struct request *rq)
{
	struct inflight in = {.issued_ns = bpf_ktime_get_ns()};
	struct block_key key = {};
	__u64 addr = (__u64)rq;
	struct block_value *v;
	long err;

	if (!request_key(rq, &key))
		return 0;
	v = lookup_or_init(&block_cgroups, &key, &zero_block, &block_inserts);
	if (!v) {
		count_drop(block_drops, BLOCK_DROP_CGROUP_MAP_FULL);
		return 0;
	}
	v->bytes += BPF_CORE_READ(rq, __data_len);
	mark_dirty(&block_dirty, block_dirty_epoch, key.cgroup);
	// A request is issued again only after it completed (or was requeued,
	// which forgets it): an entry still here is a completion the
	// completion program did not see. Its bytes were counted.
	err = bpf_map_update_elem(&block_inflight, &addr, &in, BPF_NOEXIST);
	if (err == -EEXIST) {
		count_drop(block_drops, BLOCK_DROP_LOST_COMPLETION);
		err = bpf_map_update_elem(&block_inflight, &addr, &in, BPF_EXIST);
	}
	if (err)
		count_drop(block_drops, BLOCK_DROP_INFLIGHT_FULL);
	return 0;
}

// block_rq_complete fires first thing in blk_update_request() (and in
// blk_complete_request() for batched completions) with the bytes
// completed, while the request still holds its bios. A request may
// complete in pieces: it is done when nr_bytes covers what is left of it
// (__data_len, which blk_update_request() then lowers).
SEC("tp_btf/block_rq_complete")
int BPF_PROG(crmon_block_rq_complete, struct request *rq, blk_status_t error,
	     unsigned int nr_bytes)
{
	struct block_key key = {};
	__u64 addr = (__u64)rq;
	struct inflight *in;
	struct block_value *v;

	// Only its last piece completes it.
	if (nr_bytes < BPF_CORE_READ(rq, __data_len))
		return 0;
	if (!request_key(rq, &key) || !nr_bytes) {
		bpf_map_delete_elem(&block_inflight, &addr);
		return 0;
	}
	v = lookup_or_init(&block_cgroups, &key, &zero_block, &block_inserts);
	if (!v) {
		count_drop(block_drops, BLOCK_DROP_CGROUP_MAP_FULL);
		bpf_map_delete_elem(&block_inflight, &addr);
		return 0;
	}
	v->ops++;
	in = bpf_map_lookup_elem(&block_inflight, &addr);
	if (in) {
		__u64 lat = bpf_ktime_get_ns() - in->issued_ns;

		v->latency_ns += lat;
		v->latency_count++;
		if (histograms) {
			__u32 b = hist_bucket(lat);

			if (b < HIST_BUCKETS)
				v->latency_hist[b]++;
		}
		bpf_map_delete_elem(&block_inflight, &addr);
	}
	mark_dirty(&block_dirty, block_dirty_epoch, key.cgroup);
	return 0;
}

// A requeued request is issued again, and counted again then: what it has
// left (__data_len, lowered by any part that completed) is taken back from
// its cgroup, if its issue was counted. Its value is per CPU, and the
// requeue may run on another CPU than the issue: a CPU's share may wrap
// below zero, their sum, which is what is read, does not.
SEC("tp_btf/block_rq_requeue")
int BPF_PROG(crmon_block_rq_requeue, struct request *rq)
{
	struct block_key key = {};
	__u64 addr = (__u64)rq;
	struct block_value *v;

	if (bpf_map_delete_elem(&block_inflight, &addr))
		return 0;
	if (!request_key(rq, &key))
		return 0;
	v = bpf_map_lookup_elem(&block_cgroups, &key);
	if (v) {
		v->bytes -= BPF_CORE_READ(rq, __data_len);
		mark_dirty(&block_dirty, block_dirty_epoch, key.cgroup);
	}
	return 0;
}

// A request merged into another is never issued (attempt_merge frees it):
// its bytes are the other's.
SEC("tp_btf/block_rq_merge")
int BPF_PROG(crmon_block_rq_merge, struct request *rq)
{
	__u64 addr = (__u64)rq;

	bpf_map_delete_elem(&block_inflight, &addr);
	return 0;
}
