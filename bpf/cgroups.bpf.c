// SPDX-License-Identifier: GPL-2.0-only
// Copyright The crmon Authors.

// Cgroup names and removals, so that user space can name and reap a cgroup
// that came and went between two reads.

#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_tracing.h"
#include "bpf/bpf_core_read.h"
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

// blkio_hierarchy is the v1 blkio hierarchy's id (from /proc/cgroups), 0
// when there is none; cgroups of other v1 hierarchies are ignored.
const volatile int blkio_hierarchy = 0;

#define CGROUP_PATH_MAX 256

struct cgroup_key {
	__u64 id;
	__u32 hierarchy;
	__u32 pad;
};

struct cgroup_name {
	char path[CGROUP_PATH_MAX];
};

enum cgroups_drop {
	CGROUPS_DROP_REMOVED_FULL,
	CGROUPS_DROP_MAX,
};

// cgroup_names holds the path of each cgroup created since load; LRU
// because user space also finds live cgroups by walking cgroupfs.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct cgroup_key);
	__type(value, struct cgroup_name);
} cgroup_names SEC(".maps");

// cgroup_removed holds removed cgroups (value: removal time) until user
// space has read their final counts and reaped them.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct cgroup_key);
	__type(value, __u64);
} cgroup_removed SEC(".maps");

DEFINE_DROPS(cgroups_drops, CGROUPS_DROP_MAX);

// removed_count counts the removals put in cgroup_removed: user space
// walks that map, every bucket of it even when it is empty, only when the
// count moved or entries are still waiting to be reaped.
__u64 removed_count = 0;

// Scratch space for a name: too large for the stack.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cgroup_name);
} cgroup_scratch SEC(".maps");

static __always_inline bool watched(struct cgroup *cgrp, struct cgroup_key *key)
{
	int h = BPF_CORE_READ(cgrp, root, hierarchy_id);

	if (h != 0 && h != blkio_hierarchy)
		return false;
	key->id = BPF_CORE_READ(cgrp, kn, id);
	key->hierarchy = h;
	return true;
}

// cgroup_mkdir fires from cgroup_mkdir() with the path relative to the
// hierarchy's root (TRACE_CGROUP_PATH).
SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(crmon_cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	struct cgroup_key key = {};
	struct cgroup_name *name;
	__u32 zero = 0;

	if (!watched(cgrp, &key))
		return 0;
	name = bpf_map_lookup_elem(&cgroup_scratch, &zero);
	if (!name)
		return 0;
	if (bpf_probe_read_kernel_str(name->path, sizeof(name->path), path) < 0)
		return 0;
	bpf_map_update_elem(&cgroup_names, &key, name, BPF_ANY);
	return 0;
}

SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(crmon_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	struct cgroup_key key = {};
	__u64 now = bpf_ktime_get_ns();

	if (!watched(cgrp, &key))
		return 0;
	if (bpf_map_update_elem(&cgroup_removed, &key, &now, BPF_ANY))
		count_drop(cgroups_drops, CGROUPS_DROP_REMOVED_FULL);
	else
		__sync_fetch_and_add(&removed_count, 1);
	return 0;
}
