#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# Installs what building and testing crmon needs, on Debian or Ubuntu, as
# root. Idempotent: packages already there are not touched, so a second run
# costs a second. Not root: says what is missing and carries on (the tests
# that need it skip outside CI and fail in CI).
set -euo pipefail

# package -> why
pkgs=(
	clang-19        # compiles bpf/*.bpf.c (make generate, check-generated)
	llvm-19         # llvm-strip for bpf2go
	libbpf-dev      # bpf_helpers.h and friends (headers/ is refreshed from it)
	bpftool         # vmlinux.h from kernel BTF
	prometheus      # promtool checks every /metrics output
	docker.io       # a real engine for the container tests
	busybox-static  # the local test image (no registry is reachable)
	linux-perf      # perf bench sched pipe, the probe overhead benchmark
	hyperfine       # crmon exec overhead benchmark
	ca-certificates
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps: missing ${missing[*]}; run as root to install them" >&2
		exit 0
	fi
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# The prometheus package would start a server at boot; crmon's tests
	# start their own. policy-rc.d keeps postinst scripts from starting
	# daemons in a container without an init system.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# bpffs and tracefs: the probes pin nothing, but bpftool and tracepoint
# format files need them on hosts that do not mount them at boot.
if [[ $(id -u) -eq 0 ]]; then
	mountpoint -q /sys/fs/bpf 2>/dev/null || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
	mountpoint -q /sys/kernel/tracing 2>/dev/null || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi
