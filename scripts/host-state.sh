#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# Prints what crmon's tests may change on the host and must put back:
# the controllers each cgroup root enables for its children, crmon's test
# cgroups, containers, and objects pinned in bpffs. `make test` prints it
# before and after the tests and fails when the two differ.
set -uo pipefail
for root in /sys/fs/cgroup /sys/fs/cgroup/*/; do
	root=$(realpath "$root")
	[[ -f $root/cgroup.procs ]] || continue # the tmpfs that holds v1 hierarchies
	[[ -f $root/cgroup.subtree_control ]] && echo "subtree_control $root: $(cat "$root/cgroup.subtree_control")"
	# crmon/ is the parent that exec and the agent keep, as Docker keeps
	# /docker; what tests make below it or beside it must go.
	find "$root" -maxdepth 3 -type d -name 'crmon*' ! -path "$root/crmon" 2>/dev/null | sed 's/^/cgroup /'
done | sort -u
if command -v docker >/dev/null && timeout 10 docker version >/dev/null 2>&1; then
	timeout 20 docker ps -a --format 'container {{.Names}} {{.Image}}' | sort
fi
[[ -d /sys/fs/bpf ]] && find /sys/fs/bpf -mindepth 1 2>/dev/null | sed 's/^/bpffs /' | sort
exit 0
