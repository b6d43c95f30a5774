// SPDX-License-Identifier: GPL-2.0-only
// Copyright The crmon Authors.

// Wrappers that let Go tests run the C helpers through BPF_PROG_TEST_RUN.

#include "vmlinux.h"
#include "bpf/bpf_helpers.h"
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

struct bucket_args {
	__u64 value;
	__u32 bucket;
	__u32 pad;
};

SEC("syscall")
int crmon_test_hist_bucket(struct bucket_args *args)
{
	args->bucket = hist_bucket(args->value);
	return 0;
}

struct switch_args {
	__u64 state;
	__u32 preempt;
	__u32 voluntary;
};

SEC("syscall")
int crmon_test_switch_voluntary(struct switch_args *args)
{
	args->voluntary = switch_voluntary(args->preempt, args->state);
	return 0;
}
