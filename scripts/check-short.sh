#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# Runs the unit tests (go test -short, what `make test-unit` runs) under
# strace and fails if any of them touched the host: loaded or attached an
# eBPF program, pinned an object, made, removed or wrote a cgroup, or
# reached the Docker engine. -short promises a run that needs and changes
# none of that, even as root. Feature probes (a one-entry map made and
# closed at once) are not changes and are allowed.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

# -short skips what needs root, eBPF or Docker; under CI=true a skip is a
# failure, but here the skip is the point, so the suite runs without CI.
if [[ $(id -u) -ne 0 ]] || ! command -v strace >/dev/null; then
	# Without root the tests cannot touch the host anyway.
	if [[ ${CI:-} == true ]]; then
		echo "check-short: needs root and strace (scripts/deps.sh installs it)" >&2
		exit 1
	fi
	exec env -u CI "$GO" test -count=1 -short ./...
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --seccomp-bpf stops only on the traced calls, so the run keeps its speed.
strace -f -qq --seccomp-bpf -e signal=none -o "$log" \
	-e trace=bpf,mkdir,mkdirat,rmdir,unlinkat,openat,connect \
	env -u CI "$GO" test -count=1 -short ./...

touched=$(grep -E \
	-e 'bpf\(BPF_(PROG_LOAD|LINK_CREATE|PROG_ATTACH|RAW_TRACEPOINT_OPEN|OBJ_PIN)' \
	-e '(mkdirat|mkdir|rmdir|unlinkat)\((AT_FDCWD, )?"/sys/fs/(cgroup|bpf)' \
	-e 'openat\(AT_FDCWD, "/sys/fs/cgroup/[^"]*", O_(WRONLY|RDWR)' \
	-e 'connect\(.*docker\.sock' \
	"$log" | grep -v ' = -1 ' || true)
if [[ -n $touched ]]; then
	echo "check-short: go test -short touched the host (root, eBPF, cgroups or Docker):" >&2
	echo "$touched" | cut -c1-200 | head -20 >&2
	echo "check-short: guard those tests with testenv.RequireLong (RequireRoot and dockertest.Require do)" >&2
	exit 1
fi
echo "check-short: go test -short touched nothing on the host"
