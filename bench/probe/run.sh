#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# Overhead of crmon's eBPF probes on a context-switch-heavy workload:
# `perf bench sched pipe` (two tasks ping-ponging over a pipe, pinned to one
# CPU so every round trip is two context switches and two wakeups), run
# alternately without and with the probes attached (held by probe-bench,
# which also reads them once a second like the agent). Prints the medians,
# the slowdown, and the per-run cost of each BPF program from BPF
# run-time statistics.
#
# Usage: bench/probe/run.sh [rounds] [loops]    (as root; linux-perf installed)
set -eu

rounds="${1:-7}"
loops="${2:-200000}"
cpu="${CPU:-$(($(nproc) - 1))}"

cd "$(dirname "$0")/../.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/probe-bench" ./bench/probe

pipe_usecs() {
	taskset -c "$cpu" perf bench sched pipe -l "$loops" 2>/dev/null |
		awk '/usecs\/op/ { print $1 }'
}

median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

: >"$tmp/off"
: >"$tmp/on"
for i in $(seq "$rounds"); do
	off="$(pipe_usecs)"
	echo "$off" >>"$tmp/off"

	mkfifo "$tmp/ctl"
	"$tmp/probe-bench" <"$tmp/ctl" >"$tmp/hold.$i" 2>&1 &
	holder=$!
	exec 3>"$tmp/ctl"
	until grep -q '^ready' "$tmp/hold.$i" 2>/dev/null; do
		if ! kill -0 "$holder" 2>/dev/null; then
			cat "$tmp/hold.$i" >&2
			exit 1
		fi
		sleep 0.05
	done
	on="$(pipe_usecs)"
	echo "$on" >>"$tmp/on"
	echo >&3
	exec 3>&-
	wait "$holder"
	rm -f "$tmp/ctl"
	echo "round $i: without probes $off usecs/op, with probes $on usecs/op"
done

moff="$(median <"$tmp/off")"
mon="$(median <"$tmp/on")"
echo "median without probes: $moff usecs/op"
echo "median with probes:    $mon usecs/op"
awk -v a="$moff" -v b="$mon" 'BEGIN { printf "slowdown: %.2f%%\n", (b / a - 1) * 100 }'
echo "last round's holder (BPF stats over the whole round, all events on the host):"
cat "$tmp/hold.$rounds"
