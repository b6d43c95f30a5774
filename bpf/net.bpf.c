// SPDX-License-Identifier: GPL-2.0-only
// Copyright The crmon Authors.

// Network bytes and packets per cgroup2 cgroup, from cgroup_skb programs
// attached at the cgroup2 root (effective for every descendant).

// vmlinux.h's struct __sk_buff is hidden behind a local one holding only
// the field used: its pointer members (sk, flow_keys) make clang emit BTF
// forward declarations in an order that depends on the source's absolute
// path, and the committed object must not depend on where it was built.
// The verifier rewrites context accesses by offset, and len is at 0 in the
// UAPI struct __sk_buff.
#define __sk_buff __sk_buff___vmlinux
#include "vmlinux.h"
#undef __sk_buff
struct __sk_buff {
	__u32 len;
};

#include "bpf/bpf_helpers.h"
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

struct net_value {
	__u64 rx_bytes;
	__u64 rx_packets;
	__u64 tx_bytes;
	__u64 tx_packets;
};

enum net_drop {
	NET_DROP_CGROUP_MAP_FULL,
	NET_DROP_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct net_value);
} net_cgroups SEC(".maps");

DEFINE_DROPS(net_drops, NET_DROP_MAX);

// net_inserts counts the keys put in net_cgroups (lookup_or_init).
__u64 net_inserts = 0;

// net_dirty: the cgroups charged since user space's last read.
DEFINE_DIRTY(net);

// count charges skb->len, the packet from its network header on, to the
// cgroup of the socket it belongs to.
static __always_inline void count(struct __sk_buff *skb, bool egress)
{
	struct net_value zero = {}, *v;
	__u64 cg = bpf_skb_cgroup_id(skb);

	v = lookup_or_init(&net_cgroups, &cg, &zero, &net_inserts);
	if (!v) {
		count_drop(net_drops, NET_DROP_CGROUP_MAP_FULL);
		return;
	}
	if (egress) {
		v->tx_bytes += skb->len;
		v->tx_packets++;
	} else {
		v->rx_bytes += skb->len;
		v->rx_packets++;
	}
	mark_dirty(&net_dirty, net_dirty_epoch, cg);
}

// Both programs return 1: crmon only counts, it never drops traffic.
SEC("cgroup_skb/ingress")
int crmon_net_ingress(struct __sk_buff *skb)
{
	count(skb, false);
	return 1;
}

SEC("cgroup_skb/egress")
int crmon_net_egress(struct __sk_buff *skb)
{
	count(skb, true);
	return 1;
}
