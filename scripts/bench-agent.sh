#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# Measures the agent's own cost: CPU (% of one core) and RSS of `crmon run`
# at a 1 s interval (INTERVAL), with N idle containers running, after a
# warm-up.
#
#   scripts/bench-agent.sh                  # 0, 200 and 1000 containers, 120 s each
#   CONTAINERS="50" SECONDS_PER_RUN=300 scripts/bench-agent.sh
#   EBPF=disabled scripts/bench-agent.sh    # procfs/cgroupfs only
#   STORE=true scripts/bench-agent.sh       # with the local store on
#   INTERVAL=10s scripts/bench-agent.sh     # at the default interval
#   BINS="./crmon.old ./crmon" scripts/bench-agent.sh   # builds side by side,
#                                           # each over the same containers
#   REUSE=1 INCLUDE="web-*" CONTAINERS=1000 scripts/bench-agent.sh
#                                           # over containers already running
#                                           # (INCLUDE), none made or removed;
#                                           # CONTAINERS only labels the row
#
# CPU is utime+stime from /proc/PID/stat over the measured window (after
# WARMUP seconds), so it is the agent's whole cost, probes' user-space side
# included; the in-kernel cost of the probes is measured separately by
# bench/probe. RSS is the median of VmRSS read once a second; the peak is
# printed too. A scrape of /metrics every SCRAPE_EVERY (15) s, as
# Prometheus would do, is part of the load, and its median time is
# reported, uncompressed and gzipped. The agent watches only the bench's containers (INCLUDE, a name
# pattern; empty: every container), so that other containers on the host
# are no part of the figures; its probes still see every cgroup.
# 1000 `sleep` containers take about 10 GiB (a runtime shim each): check
# `free -g` first. They are started PARALLEL at a time and removed at the
# end.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-./crmon}
CONTAINERS=${CONTAINERS:-"0 200 1000"}
INCLUDE=${INCLUDE-crmon-bench-*}
PARALLEL=${PARALLEL:-8}
STORE=${STORE:-false}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-120}
INTERVAL=${INTERVAL:-1s}
SCRAPE_EVERY=${SCRAPE_EVERY:-15}
WARMUP=${WARMUP:-20}
EBPF=${EBPF:-auto}
ADDR=${ADDR:-127.0.0.1:9799}
IMAGE=${CRMON_TEST_IMAGE:-crmon-test/busybox:latest}
DOCKER=docker; [[ -x /usr/bin/docker ]] && DOCKER=/usr/bin/docker

BINS=${BINS:-$BIN}
for b in $BINS; do
	[[ -x $b ]] || { echo "build first: make build ($b)" >&2; exit 1; }
done
tck=$(getconf CLK_TCK)

REUSE=${REUSE:-}
cleanup() {
	[[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	[[ -n $REUSE ]] && return
	# Killed first, then removed two batches at a time, each with a
	# deadline: Docker 20.10 wedged (every delete and network call blocked
	# on libnetwork's locks) when twelve bulk removals of 50 containers ran
	# at once, and when 1 000 running ones were removed with rm -f two
	# batches at a time; killed first, 150 went in 10 s.
	$DOCKER ps -q --filter label=crmon-bench=1 2>/dev/null | xargs -r -n 50 timeout 120 $DOCKER kill >/dev/null 2>&1 || true
	$DOCKER ps -aq --filter label=crmon-bench=1 2>/dev/null | xargs -r -P 2 -n 20 timeout 120 $DOCKER rm -f >/dev/null 2>&1 || true
	$DOCKER network rm crmon-bench >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The agent's own config, socket and store, apart from any other agent's.
tmp=$(mktemp -d)
trap 'cleanup; rm -rf "$tmp"' EXIT
cfg=$tmp/crmon.toml
printf '[cleanroom.monitoring.store]\nenabled = %s\npath = "%s/tsdb"\n' "$STORE" "$tmp" >"$cfg"
if [[ -n $INCLUDE ]]; then
	printf '[cleanroom.monitoring.containers]\ninclude = ["%s"]\n' "$INCLUDE" >>"$cfg"
fi

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }

printf '%-11s %-14s %-8s %-10s %-12s %-12s %-14s %-14s %-6s\n' containers bin ebpf cpu_%core rss_MiB_med rss_MiB_peak scrape_ms_med gzip_ms_med fds
for n in $CONTAINERS; do
	cleanup
	if ((n > 0)) && [[ -z $REUSE ]]; then
		scripts/docker-env.sh >/dev/null
		# A bridge of their own: one holds at most 1024 ports, and
		# docker0 has the host's other containers.
		# Docker 20.10 can keep a removed bridge's stale endpoints after
		# a bulk removal, refusing to delete it: reuse it then.
		$DOCKER network inspect crmon-bench >/dev/null 2>&1 ||
			$DOCKER network create --label crmon-bench=1 crmon-bench >/dev/null
		seq 1 "$n" | xargs -P "$PARALLEL" -I{} $DOCKER run -d --label crmon-bench=1 --network crmon-bench --name "crmon-bench-{}" "$IMAGE" sleep 86400 >/dev/null
	fi
	for bin in $BINS; do
		"$bin" --log.level warn run --config "$cfg" --control.socket "$tmp/crmon.sock" --collection-interval "$INTERVAL" --ebpf "$EBPF" --web.listen-address "$ADDR" &
		pid=$!
		sleep "$WARMUP"
		read -r u0 s0 < <(awk '{print $14, $15}' /proc/$pid/stat)
		t0=$(date +%s.%N)
		rss=(); scrapes=(); gzips=()
		for ((i = 0; i < SECONDS_PER_RUN; i++)); do
			rss+=("$(awk '/VmRSS/ {print $2}' /proc/$pid/status)")
			if ((i % SCRAPE_EVERY == 0)); then
				scrapes+=("$(curl -s -o /dev/null -w '%{time_total}' "http://$ADDR/metrics")")
				gzips+=("$(curl -s -o /dev/null -H 'Accept-Encoding: gzip' -w '%{time_total}' "http://$ADDR/metrics")")
			fi
			sleep 1
		done
		read -r u1 s1 < <(awk '{print $14, $15}' /proc/$pid/stat)
		t1=$(date +%s.%N)
		cpu=$(awk -v a="$u0" -v b="$s0" -v c="$u1" -v d="$s1" -v t0="$t0" -v t1="$t1" -v hz="$tck" \
			'BEGIN {printf "%.3f", ((c+d)-(a+b))/hz/(t1-t0)*100}')
		rss_med=$(printf '%s\n' "${rss[@]}" | median | awk '{printf "%.1f", $1/1024}')
		rss_max=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1 | awk '{printf "%.1f", $1/1024}')
		scr=$(printf '%s\n' "${scrapes[@]}" | median | awk '{printf "%.2f", $1*1000}')
		gz=$(printf '%s\n' "${gzips[@]}" | median | awk '{printf "%.2f", $1*1000}')
		fds=$(ls /proc/$pid/fd | wc -l)
		printf '%-11s %-14s %-8s %-10s %-12s %-12s %-14s %-14s %-6s\n' "$n" "$(basename "$bin")" "$EBPF" "$cpu" "$rss_med" "$rss_max" "$scr" "$gz" "$fds"
		kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
	done
done
