#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# Two builds of the agent side by side: both run at once at a 1 s interval
# over the same window, with the same containers on the host (they watch
# those matching INCLUDE; none by default), so that what else the host does
# weighs on both alike. CPU is the sum of every thread's run time from
# /proc/PID/task/*/schedstat over the window after WARMUP (nanoseconds,
# where /proc/PID/stat counts in ticks), in % of one core; RSS the median
# of VmRSS read every 5 s. A scrape of each every 15 s is part of the load.
# Run it twice with the builds swapped: the agent that reads second in a
# tick finds some of the kernel's data warm.
#
#   scripts/bench-ab.sh ./crmon.before ./crmon
#   INCLUDE='web-*' SECONDS_PER_RUN=300 scripts/bench-ab.sh ./crmon ./crmon.before
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $# -eq 2 && -x $1 && -x $2 ]] || { echo "usage: $0 BIN_A BIN_B (built)" >&2; exit 1; }
INCLUDE=${INCLUDE:-none-*}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-120}
WARMUP=${WARMUP:-20}
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

start() { # bin port dir
	mkdir -p "$3"
	printf '[cleanroom.monitoring.store]\nenabled = false\npath = "%s/tsdb"\n[cleanroom.monitoring.containers]\ninclude = ["%s"]\n' "$3" "$INCLUDE" >"$3/c.toml"
	"$1" --log.level warn run --config "$3/c.toml" --control.socket "$3/s" --collection-interval 1s --web.listen-address "127.0.0.1:$2" >/dev/null 2>&1 &
	pids+=($!)
}
runtime_us() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d", s / 1000}'; }
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

start "$1" 9811 "$tmp/a"
start "$2" 9812 "$tmp/b"
sleep "$WARMUP"
a0=$(runtime_us "${pids[0]}"); b0=$(runtime_us "${pids[1]}")
ra=(); rb=()
for i in $(seq 1 "$SECONDS_PER_RUN"); do
	if ((i % 15 == 0)); then
		curl -s -o /dev/null 127.0.0.1:9811/metrics || true
		curl -s -o /dev/null 127.0.0.1:9812/metrics || true
	fi
	if ((i % 5 == 0)); then
		ra+=("$(awk '/VmRSS/ {print $2}' /proc/"${pids[0]}"/status)")
		rb+=("$(awk '/VmRSS/ {print $2}' /proc/"${pids[1]}"/status)")
	fi
	sleep 1
done
a1=$(runtime_us "${pids[0]}"); b1=$(runtime_us "${pids[1]}")
row() { # bin runtime_us rss_kB
	awk -v b="$1" -v us="$2" -v s="$SECONDS_PER_RUN" -v kb="$3" 'BEGIN {printf "%-24s %10.3f %12.1f\n", b, us / s / 10000, kb / 1024}'
}
printf '%-24s %10s %12s\n' bin cpu_%core rss_MiB_med
row "$(basename "$1")" $((a1 - a0)) "$(median "${ra[@]}")"
row "$(basename "$2")" $((b1 - b0)) "$(median "${rb[@]}")"
