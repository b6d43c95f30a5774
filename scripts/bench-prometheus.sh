#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# Measures /metrics as Prometheus sees it: a real Prometheus scrapes
# `crmon run` (1 s interval, probes on when root) beside N idle containers,
# and the median, minimum and maximum of its scrape_duration_seconds and
# the series count per scrape are reported.
#
# Prometheus' scrape_duration_seconds includes its own parsing and storing
# of the samples. To tell that apart, the same Prometheus also scrapes a
# copy of one crmon scrape served as a static file by busybox httpd: what
# Prometheus needs for that many series with no exporter work at all.
#
#   scripts/bench-prometheus.sh                       # 50 containers, 5 s scrapes, 300 s
#   CONTAINERS=10 SCRAPE_INTERVAL=15s SECONDS_TO_RUN=600 scripts/bench-prometheus.sh
#
# Prometheus runs on the same machine, so on a small host it competes with
# the agent for the CPUs it measures: the figures include that.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-./crmon}
CONTAINERS=${CONTAINERS:-50}
SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-5s}
SECONDS_TO_RUN=${SECONDS_TO_RUN:-300}
ADDR=${ADDR:-127.0.0.1:9799}
PROM_ADDR=${PROM_ADDR:-127.0.0.1:9798}
STATIC_ADDR=${STATIC_ADDR:-127.0.0.1:9797}
IMAGE=${CRMON_TEST_IMAGE:-crmon-test/busybox:latest}
DOCKER=docker; [[ -x /usr/bin/docker ]] && DOCKER=/usr/bin/docker

[[ -x $BIN ]] || { echo "build first: make build" >&2; exit 1; }
command -v prometheus >/dev/null || { echo "prometheus not found: make deps" >&2; exit 1; }
command -v busybox >/dev/null || { echo "busybox not found: make deps" >&2; exit 1; }
work=$(mktemp -d)

rm_containers() {
	$DOCKER ps -aq --filter label=crmon-bench=1 2>/dev/null | xargs -r $DOCKER rm -f >/dev/null 2>&1 || true
}
cleanup() {
	[[ -n ${ppid_:-} ]] && kill "$ppid_" 2>/dev/null && wait "$ppid_" 2>/dev/null || true
	[[ -n ${pid:-} ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	[[ -n ${spid:-} ]] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null || true
	rm_containers
	rm -rf "$work"
}
trap cleanup EXIT

rm_containers
if ((CONTAINERS > 0)); then
	scripts/docker-env.sh >/dev/null
	for i in $(seq 1 "$CONTAINERS"); do
		$DOCKER run -d --label crmon-bench=1 --name "crmon-bench-$i" "$IMAGE" sleep 86400 >/dev/null
	done
fi
$BIN --log.level warn run --collection-interval 1s --web.listen-address "$ADDR" &
pid=$!
sleep 5
mkdir "$work/static"
curl -sf -o "$work/static/metrics" "http://$ADDR/metrics"
busybox httpd -f -p "$STATIC_ADDR" -h "$work/static" &
spid=$!

cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: $SCRAPE_INTERVAL
  scrape_timeout: 5s
scrape_configs:
  - job_name: crmon
    static_configs:
      - targets: ['$ADDR']
  - job_name: static
    static_configs:
      - targets: ['$STATIC_ADDR']
YAML
prometheus --config.file "$work/prometheus.yml" --storage.tsdb.path "$work/data" \
	--web.listen-address "$PROM_ADDR" --log.level warn >"$work/prometheus.log" 2>&1 &
ppid_=$!
sleep "$SECONDS_TO_RUN"

q() {
	curl -s --get "http://$PROM_ADDR/api/v1/query" --data-urlencode "query=$1" |
		sed -n 's/.*"value":\[[^,]*,"\([^"]*\)"\].*/\1/p'
}
win="${SECONDS_TO_RUN}s"
printf '%-7s %-11s %-9s %-8s %-10s %-10s %-10s %-8s %-3s\n' job containers interval scrapes median_ms min_ms max_ms series up
for job in crmon static; do
	sel="{job=\"$job\"}"
	med=$(q "quantile_over_time(0.5, scrape_duration_seconds$sel[$win])")
	lo=$(q "min_over_time(scrape_duration_seconds$sel[$win])")
	hi=$(q "max_over_time(scrape_duration_seconds$sel[$win])")
	n=$(q "count_over_time(scrape_duration_seconds$sel[$win])")
	series=$(q "max_over_time(scrape_samples_scraped$sel[$win])")
	up=$(q "min_over_time(up$sel[$win])")
	awk -v j="$job" -v c="$CONTAINERS" -v i="$SCRAPE_INTERVAL" -v n="$n" -v m="$med" -v l="$lo" -v h="$hi" -v s="$series" -v u="$up" \
		'BEGIN {printf "%-7s %-11s %-9s %-8s %-10.2f %-10.2f %-10.2f %-8s %-3s\n", j, c, i, n, m*1000, l*1000, h*1000, s, u}'
done
