#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# The agent's CPU and RSS at 0 containers, then with N idle containers
# started while it runs, in one run: the ratio the cost budget is about.
# Containers started under a running agent are what a CI host sees, and
# cost more than the same containers started before it (bench-ab.sh,
# bench-agent.sh REUSE=1): the probes then count each one's start and hold
# its cgroup in their maps. Two builds run side by side, so that the
# host's noise weighs on both alike; run it again with the builds swapped.
# CPU is every thread's run time from /proc/PID/task/*/schedstat over each
# window, RSS the VmRSS at its end; a scrape of each every 15 s is part of
# the load.
#
#   scripts/bench-ratio.sh ./crmon.before ./crmon
#   N=1000 SECONDS_PER_RUN=120 scripts/bench-ratio.sh ./crmon ./crmon.before
#   STORE=true scripts/bench-ratio.sh ./crmon.before ./crmon   (the local store on, as by default)
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $# -eq 2 && -x $1 && -x $2 ]] || { echo "usage: $0 BIN_A BIN_B (built)" >&2; exit 1; }
N=${N:-150}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-90}
WARMUP=${WARMUP:-20}
SETTLE=${SETTLE:-30}
PARALLEL=${PARALLEL:-8}
STORE=${STORE:-false}
IMAGE=${CRMON_TEST_IMAGE:-crmon-test/busybox:latest}
DOCKER=docker; [[ -x /usr/bin/docker ]] && DOCKER=/usr/bin/docker
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	# Killed first, then removed two batches at a time (see bench-agent.sh).
	$DOCKER ps -q --filter label=crmon-ratio=1 2>/dev/null | xargs -r -n 50 timeout 120 $DOCKER kill >/dev/null 2>&1 || true
	$DOCKER ps -aq --filter label=crmon-ratio=1 2>/dev/null | xargs -r -P 2 -n 20 timeout 120 $DOCKER rm -f >/dev/null 2>&1 || true
	$DOCKER network rm crmon-ratio >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

start() { # bin port dir
	mkdir -p "$3"
	printf '[cleanroom.monitoring.store]\nenabled = %s\npath = "%s/tsdb"\n[cleanroom.monitoring.containers]\ninclude = ["crmon-ratio-*"]\n' "$STORE" "$3" >"$3/c.toml"
	"$1" --log.level warn run --config "$3/c.toml" --control.socket "$3/s" --collection-interval 1s --web.listen-address "127.0.0.1:$2" >/dev/null 2>&1 &
	pids+=($!)
}
runtime_us() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d", s / 1000}'; }
rss_kb() { awk '/VmRSS/ {print $2}' /proc/"$1"/status; }
# window prints, per agent, its CPU in µs a second and its RSS in kB.
window() {
	local a0 b0 a1 b1
	a0=$(runtime_us "${pids[0]}") b0=$(runtime_us "${pids[1]}")
	for i in $(seq 1 "$SECONDS_PER_RUN"); do
		if ((i % 15 == 0)); then
			curl -s -o /dev/null 127.0.0.1:9813/metrics || true
			curl -s -o /dev/null 127.0.0.1:9814/metrics || true
		fi
		sleep 1
	done
	a1=$(runtime_us "${pids[0]}") b1=$(runtime_us "${pids[1]}")
	echo $(((a1 - a0) / SECONDS_PER_RUN)) $(((b1 - b0) / SECONDS_PER_RUN)) "$(rss_kb "${pids[0]}")" "$(rss_kb "${pids[1]}")"
}

start "$1" 9813 "$tmp/a"
start "$2" 9814 "$tmp/b"
sleep "$WARMUP"
read -r za zb zra zrb < <(window)
$DOCKER network create crmon-ratio >/dev/null
seq 1 "$N" | xargs -P "$PARALLEL" -I{} $DOCKER run -d --label crmon-ratio=1 --network crmon-ratio --name crmon-ratio-{} "$IMAGE" sleep 86400 >/dev/null
sleep "$SETTLE"
read -r na nb nra nrb < <(window)
row() { # bin cpu0 cpuN rss0 rssN
	awk -v b="$1" -v c0="$2" -v c1="$3" -v r0="$4" -v r1="$5" 'BEGIN {printf "%-24s %9.3f %9.3f %6.2f %9.1f %9.1f\n", b, c0 / 1e4, c1 / 1e4, c1 / c0, r0 / 1024, r1 / 1024}'
}
printf '%-24s %9s %9s %6s %9s %9s\n' bin cpu0_% "cpu${N}_%" ratio rss0_MiB "rss${N}_MiB"
row "$(basename "$1")" "$za" "$na" "$zra" "$nra"
row "$(basename "$2")" "$zb" "$nb" "$zrb" "$nrb"
