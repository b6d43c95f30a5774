#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# Time from starting `crmon run` to its first complete sample being served
# (/healthz answers 200 only once the first sample is published), probes
# loaded. Median of RUNS starts.
#
#   scripts/bench-startup.sh            # as root, probes on
#   EBPF=disabled scripts/bench-startup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-./crmon}
RUNS=${RUNS:-11}
EBPF=${EBPF:-auto}
ADDR=${ADDR:-127.0.0.1:9798}
[[ -x $BIN ]] || { echo "build first: make build" >&2; exit 1; }

times=()
for ((i = 0; i < RUNS; i++)); do
	t0=$(date +%s%N)
	$BIN --log.level warn run --ebpf "$EBPF" --web.listen-address "$ADDR" 2>/dev/null &
	pid=$!
	until curl -sf -o /dev/null "http://$ADDR/healthz"; do
		kill -0 "$pid" 2>/dev/null || { echo "crmon run exited" >&2; exit 1; }
		sleep 0.002
	done
	t1=$(date +%s%N)
	times+=($(((t1 - t0) / 1000000)))
	kill "$pid"; wait "$pid" 2>/dev/null || true
done
printf '%s\n' "${times[@]}" | sort -n | awk -v e="$EBPF" '{a[NR]=$1} END {printf "start to first sample (ebpf=%s): median %d ms, min %d ms, max %d ms over %d runs\n", e, a[int((NR+1)/2)], a[1], a[NR], NR}'
