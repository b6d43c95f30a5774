#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# The local store's cost, side by side: two agents at a 1 s interval over
# the same N idle containers and the same window, one with the store off
# and one with it on (in a temporary directory), measured as
# scripts/bench-agent.sh measures one: CPU (% of one core) from
# /proc/PID/stat over the window after WARMUP, RSS the median of VmRSS
# read once a second (and its peak). Then the on-agent's store size.
#
#   scripts/bench-store.sh                          # 50 containers, 300 s
#   CONTAINERS=50 SECONDS_PER_RUN=600 scripts/bench-store.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-./crmon}
CONTAINERS=${CONTAINERS:-50}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-300}
WARMUP=${WARMUP:-20}
EBPF=${EBPF:-auto}
IMAGE=${CRMON_TEST_IMAGE:-crmon-test/busybox:latest}
DOCKER=docker; [[ -x /usr/bin/docker ]] && DOCKER=/usr/bin/docker

[[ -x $BIN ]] || { echo "build first: make build" >&2; exit 1; }
tck=$(getconf CLK_TCK)
tmp=$(mktemp -d)
pids=()
# This run's containers only: other runs may be going on beside it.
run=crmon-bench-store-$$

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	$DOCKER ps -aq --filter "label=crmon-bench-store=$run" 2>/dev/null | xargs -r $DOCKER rm -f >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

if ((CONTAINERS > 0)); then
	scripts/docker-env.sh >/dev/null
	for i in $(seq 1 "$CONTAINERS"); do
		$DOCKER run -d --label "crmon-bench-store=$run" --name "$run-$i" "$IMAGE" sleep 86400 >/dev/null
	done
fi
printf '[cleanroom.monitoring.store]\nenabled = false\n' >"$tmp/off.toml"
$BIN --log.level warn run --config "$tmp/off.toml" --collection-interval 1s --ebpf "$EBPF" \
	--web.listen-address 127.0.0.1:0 --control.socket "" 2>"$tmp/off.log" &
pids+=($!)
$BIN --log.level warn run --store.path "$tmp/store" --collection-interval 1s --ebpf "$EBPF" \
	--web.listen-address 127.0.0.1:0 --control.socket "" 2>"$tmp/on.log" &
pids+=($!)
sleep "$WARMUP"
declare -A u0 rss
for p in "${pids[@]}"; do u0[$p]=$(awk '{print $14 + $15}' /proc/$p/stat); rss[$p]=""; done
t0=$(date +%s.%N)
for ((i = 0; i < SECONDS_PER_RUN; i++)); do
	for p in "${pids[@]}"; do rss[$p]+="$(awk '/VmRSS/ {print $2}' /proc/$p/status) "; done
	sleep 1
done
t1=$(date +%s.%N)
printf '%-11s %-6s %-10s %-12s %-12s %s\n' containers store cpu_%core rss_MiB_med rss_MiB_peak store_bytes
for k in 0 1; do
	p=${pids[$k]}
	u1=$(awk '{print $14 + $15}' /proc/$p/stat)
	cpu=$(awk -v a="${u0[$p]}" -v b="$u1" -v t0="$t0" -v t1="$t1" -v hz="$tck" 'BEGIN {printf "%.3f", (b-a)/hz/(t1-t0)*100}')
	med=$(tr ' ' '\n' <<<"${rss[$p]}" | grep . | median | awk '{printf "%.1f", $1/1024}')
	max=$(tr ' ' '\n' <<<"${rss[$p]}" | grep . | sort -n | tail -1 | awk '{printf "%.1f", $1/1024}')
	size=-
	[[ $k == 1 ]] && size=$(du -sb "$tmp/store" | cut -f1)
	printf '%-11s %-6s %-10s %-12s %-12s %s\n' "$CONTAINERS" "$([[ $k == 1 ]] && echo on || echo off)" "$cpu" "$med" "$max" "$size"
done
