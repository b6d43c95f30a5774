#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# Installs what building and testing crmon needs, on Debian or Ubuntu, as
# root. Idempotent: packages already there are not touched, so a second run
# costs a second. Not root: says what is missing and carries on (the tests
# that need it skip outside CI and fail in CI).
set -euo pipefail

# package -> why. Names are Debian's; Ubuntu differs for perf and bpftool,
# which come from linux-tools there.
pkgs=(
	clang-19        # compiles bpf/*.bpf.c (make generate, check-generated)
	llvm-19         # llvm-strip for bpf2go
	libbpf-dev      # bpf_helpers.h and friends (headers/ is refreshed from it)
	prometheus      # promtool checks every /metrics output
	docker.io       # a real engine for the container tests
	busybox-static  # the local test image (no registry is reachable)
	hyperfine       # crmon exec overhead benchmark
	curl            # the benchmark scripts scrape the agent; tests call the control socket
	libxml2-utils   # xmllint validates the JUnit reports against the schema
	python3-junitparser # a real JUnit consumer reads the JUnit reports in the tests
	procps          # free(1), which the host tests compare with
	strace          # checks that go test -short touches nothing on the host
	ca-certificates
	prometheus-alertmanager # the alertmanager alert channel is tested against a real one
	influxdb        # the InfluxDB exporter is tested against a real server
	chromium        # the live page and the HTML reports are checked in a real browser
	tmux            # crmon top is driven through a real terminal
	systemd         # systemd-analyze verifies the unit file
	ruby            # ruby -c checks the Vagrantfile
	docker-compose  # runs the sidecar recipe of deploy/compose
	iproute2        # ip makes the veths of the network-device tests
	util-linux      # nsenter runs ip in a test's network namespace
)
if grep -qi '^ID=ubuntu' /etc/os-release 2>/dev/null; then
	command -v bpftool >/dev/null || pkgs+=(linux-tools-common linux-tools-generic "linux-tools-$(uname -r)")
	command -v perf >/dev/null || pkgs+=(linux-tools-common linux-tools-generic)
else
	pkgs+=(bpftool linux-perf) # vmlinux.h from kernel BTF; perf bench sched pipe
fi

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
	# All at once is fastest; a name this release lacks (clang-19 on an
	# older distribution, linux-tools for a custom kernel) must not stop
	# the rest, so fall back to one at a time and name what failed.
	if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
		failed=()
		for p in "${missing[@]}"; do
			apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 || failed+=("$p")
		done
		((${#failed[@]})) && echo "deps: could not install ${failed[*]}; the tests that need them will say so" >&2
	fi
fi

# mailpit, the SMTP server the email alert channel is tested against, is
# not in Debian: built from its module into Go's bin directory, where the
# tests look for it.
mailpit_version=v1.33.1
gobin=$(go env GOBIN 2>/dev/null || true)
[[ -n $gobin ]] || gobin=$(go env GOPATH 2>/dev/null)/bin
if command -v go >/dev/null && ! go version -m "$gobin/mailpit" 2>/dev/null | grep -q "mod.*github.com/axllent/mailpit.*${mailpit_version}"; then
	echo "deps: installing mailpit ${mailpit_version} into $gobin"
	GOBIN=$gobin go install "github.com/axllent/mailpit@${mailpit_version}" ||
		echo "deps: could not install mailpit; the email alert tests will say so" >&2
fi

# bpffs and tracefs: the probes pin nothing, but bpftool and tracepoint
# format files need them on hosts that do not mount them at boot.
if [[ $(id -u) -eq 0 ]]; then
	mountpoint -q /sys/fs/bpf 2>/dev/null || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
	mountpoint -q /sys/kernel/tracing 2>/dev/null || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi
