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
# The benchmark runs SCHED_FIFO on its CPU: on a shared host, ordinary
# priority measures the neighbours (round trips varied 6-35 us here), not
# the probes. Other BPF programs attached to the same hooks (another crmon)
# are in both halves; the script prints how many links there are.
#
# Usage: bench/probe/run.sh [rounds] [loops] [probe-bench flags]
#        (as root; linux-perf and util-linux's chrt/taskset installed)
#   bench/probe/run.sh 9 30000               the agent's default: stats off
#   bench/probe/run.sh 9 30000 -stats=true   per-event cost in ns (stats cost extra)
#   PIN=0 bench/probe/run.sh 9 30000         unpinned, ordinary priority
set -eu

rounds="${1:-7}"
loops="${2:-30000}"
shift 2 2>/dev/null || shift $#
flags="$*"
cpu="${CPU:-$(($(nproc) - 1))}"

cd "$(dirname "$0")/../.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/probe-bench" ./bench/probe

# PIN=0 runs perf bench as it runs by default (two tasks free to use every
# CPU, ordinary priority): noisier, and closer to what CI jobs do.
pipe_usecs() {
	if [ "${PIN:-1}" = 0 ]; then
		perf bench sched pipe -l "$loops" 2>/dev/null
	else
		chrt -f 50 taskset -c "$cpu" perf bench sched pipe -l "$loops" 2>/dev/null
	fi | awk '/usecs\/op/ { print $1 }'
}

median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "BPF links on the host before the run: $(bpftool link show 2>/dev/null | grep -c '^[0-9]' || true)"
: >"$tmp/off"
: >"$tmp/on"
for i in $(seq "$rounds"); do
	off="$(pipe_usecs)"
	echo "$off" >>"$tmp/off"

	mkfifo "$tmp/ctl"
	# shellcheck disable=SC2086
	"$tmp/probe-bench" $flags <"$tmp/ctl" >"$tmp/hold.$i" 2>&1 &
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
awk -v a="$moff" -v b="$mon" 'BEGIN { printf "slowdown of the medians: %.2f%%\n", (b / a - 1) * 100 }'
# On a shared host the minimum is the least disturbed run of each kind.
minoff="$(sort -g "$tmp/off" | head -1)"
minon="$(sort -g "$tmp/on" | head -1)"
awk -v a="$minoff" -v b="$minon" 'BEGIN { printf "fastest without %s, with %s usecs/op: slowdown of the minima %.2f%%\n", a, b, (b / a - 1) * 100 }'
echo "last round's holder (BPF stats over the whole round, all events on the host):"
cat "$tmp/hold.$rounds"
