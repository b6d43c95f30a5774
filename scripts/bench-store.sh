#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# The local store's cost, side by side: two agents at a 1 s interval over
# the same N idle containers and the same window, one with the store off
# and one with it on (in a temporary directory), measured as
# scripts/bench-agent.sh measures one: CPU (% of one core) from
# /proc/PID/stat over the window after WARMUP, RSS the median of VmRSS
# read once a second (and its peak). Then the on-agent's store size, and
# how it grew over every 10 minutes of the window (read once a minute with
# du -sb, sliding by a minute), extrapolated to a day: min, median and max.
# The agents watch this run's containers only (include), so that other
# containers on the host, and other runs, do not count. BASELINE=BIN adds
# a third agent, that binary with the store on, over the same window: a
# change's before and after side by side.
#
#   scripts/bench-store.sh                          # 50 containers, 300 s
#   CONTAINERS=50 SECONDS_PER_RUN=600 scripts/bench-store.sh
#   BASELINE=/tmp/crmon-old scripts/bench-store.sh
#   INTERVAL=10s WARMUP=1200 SECONDS_PER_RUN=1800 scripts/bench-store.sh
#                                                   # the default interval, the
#                                                   # directory's 10-minute growth
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-./crmon}
BASELINE=${BASELINE:-}
CONTAINERS=${CONTAINERS:-50}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-300}
WARMUP=${WARMUP:-20}
INTERVAL=${INTERVAL:-1s}
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
	$DOCKER ps -aq --filter "label=crmon-bench-store=$run" 2>/dev/null | xargs -r -P 2 -n 20 timeout 120 $DOCKER rm -f >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

if ((CONTAINERS > 0)); then
	scripts/docker-env.sh >/dev/null
	seq 1 "$CONTAINERS" | xargs -P 4 -I{} $DOCKER run -d --label "crmon-bench-store=$run" --name "$run-{}" "$IMAGE" sleep 86400 >/dev/null
fi
include=$(printf '[cleanroom.monitoring.containers]\ninclude = ["%s-*"]\n' "$run")
printf '%s\n[cleanroom.monitoring.store]\nenabled = false\n' "$include" >"$tmp/off.toml"
printf '%s\n' "$include" >"$tmp/on.toml"
$BIN --log.level warn run --config "$tmp/off.toml" --collection-interval "$INTERVAL" --ebpf "$EBPF" \
	--web.listen-address 127.0.0.1:0 --control.socket "" 2>"$tmp/off.log" &
pids+=($!)
names=("$BIN off")
$BIN --log.level warn run --config "$tmp/on.toml" --store.path "$tmp/store" --collection-interval "$INTERVAL" --ebpf "$EBPF" \
	--web.listen-address 127.0.0.1:0 --control.socket "" 2>"$tmp/on.log" &
pids+=($!)
names+=("$BIN on")
stores=("" "$tmp/store")
if [[ -n $BASELINE ]]; then
	$BASELINE --log.level warn run --config "$tmp/on.toml" --store.path "$tmp/store-baseline" --collection-interval "$INTERVAL" --ebpf "$EBPF" \
		--web.listen-address 127.0.0.1:0 --control.socket "" 2>"$tmp/baseline.log" &
	pids+=($!)
	names+=("$BASELINE on")
	stores+=("$tmp/store-baseline")
fi
sleep "$WARMUP"
declare -A u0 rss sizes
for p in "${pids[@]}"; do u0[$p]=$(awk '{print $14 + $15}' /proc/$p/stat); rss[$p]=""; sizes[$p]=""; done
t0=$(date +%s.%N)
for ((i = 0; i < SECONDS_PER_RUN; i++)); do
	for k in "${!pids[@]}"; do
		p=${pids[$k]}
		rss[$p]+="$(awk '/VmRSS/ {print $2}' /proc/$p/status) "
		if ((i % 60 == 0)) && [[ -n ${stores[$k]} ]]; then sizes[$p]+="$(du -sb "${stores[$k]}" | cut -f1) "; fi
	done
	sleep 1
done
t1=$(date +%s.%N)
printf '%-11s %-10s %-12s %-12s %-12s %-24s %s\n' containers cpu_%core rss_MiB_med rss_MiB_peak store_bytes 'MB/day_10m_min/med/max' agent
for k in "${!pids[@]}"; do
	p=${pids[$k]}
	u1=$(awk '{print $14 + $15}' /proc/$p/stat)
	cpu=$(awk -v a="${u0[$p]}" -v b="$u1" -v t0="$t0" -v t1="$t1" -v hz="$tck" 'BEGIN {printf "%.3f", (b-a)/hz/(t1-t0)*100}')
	med=$(tr ' ' '\n' <<<"${rss[$p]}" | grep . | median | awk '{printf "%.1f", $1/1024}')
	max=$(tr ' ' '\n' <<<"${rss[$p]}" | grep . | sort -n | tail -1 | awk '{printf "%.1f", $1/1024}')
	size=- growth=-
	if [[ -n ${stores[$k]} ]]; then
		size=$(du -sb "${stores[$k]}" | cut -f1)
		# Every 10 minutes of the once-a-minute sizes, times 144.
		g=$(tr ' ' '\n' <<<"${sizes[$p]}" | grep . | awk '{s[NR]=$1} END {for (i = 11; i <= NR; i++) printf "%.1f\n", (s[i]-s[i-10])*144/1e6}')
		[[ -n $g ]] && growth=$(sort -n <<<"$g" | awk -v m="$(median <<<"$g")" '{a[NR]=$1} END {printf "%s/%.1f/%s", a[1], m, a[NR]}')
	fi
	printf '%-11s %-10s %-12s %-12s %-12s %-24s %s\n' "$CONTAINERS" "$cpu" "$med" "$max" "$size" "$growth" "${names[$k]}"
done
