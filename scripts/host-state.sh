#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# Prints what crmon's tests may change on the host and must put back:
# the controllers each cgroup root enables for its children, crmon's test
# cgroups, containers, and objects pinned in bpffs. `make test` prints it
# before and after the tests and fails when the two differ.
#
# --tidy first removes the empty test cgroups an interrupted test run left
# behind (rmdir refuses a cgroup that still has children or processes, so a
# test run going on beside this one keeps its own), so that the tests
# cleaning them up is not taken for a change they made.
set -uo pipefail
if [[ ${1:-} == --tidy ]]; then
	for d in /sys/fs/cgroup/crmon-test /sys/fs/cgroup/*/crmon-test; do
		[[ -d $d ]] || continue
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
fi
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
