#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# The agent's file descriptors across Docker engine outages: starts a second
# engine of its own (own data root, exec root, socket and bridge, so the
# host's engine and its docker0 are left alone), runs CONTAINERS containers
# on it with a restart policy, points `crmon run` at it, then stops and
# starts that engine CYCLES times, printing the agent's descriptors before,
# during and after each outage. One /proc/PID/stat per host process is left
# out of the count: the processes collector keeps those open by design, so
# they follow the host's process count, not the engine.
#
#   scripts/outage-fds.sh               # as root; KILL=1 kills the engine with SIGKILL
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-./crmon}
CYCLES=${CYCLES:-2}
CONTAINERS=${CONTAINERS:-5}
KILL=${KILL:-0}
ADDR=${ADDR:-127.0.0.1:9799}
IMAGE=crmon-test/busybox:latest
[[ -x $BIN ]] || { echo "build first: make build" >&2; exit 1; }

dir=$(mktemp -d /tmp/crmon-outage.XXXXXX)
sock=$dir/engine.sock
bridge=crmonout$$
bridge=${bridge:0:15}
D=(docker -H "unix://$sock")
agent=

engine() {
	# In a subshell: not a job of this one, which would report its kill.
	(dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/engine.pid" \
		-H "unix://$sock" --bridge="$bridge" --iptables=false --ip-masq=false >>"$dir/engine.log" 2>&1 &)
	for _ in $(seq 60); do "${D[@]}" version >/dev/null 2>&1 && return; sleep 0.5; done
	echo "the engine did not start; see $dir/engine.log" >&2
	exit 1
}

engine_stop() {
	[[ -e $dir/engine.pid ]] || return 0
	if [[ $KILL == 1 ]]; then
		kill -9 "$(cat "$dir/engine.pid")"
		rm -f "$dir/engine.pid"
	else
		kill "$(cat "$dir/engine.pid")"
		while [[ -e $dir/engine.pid ]]; do sleep 0.5; done
	fi
}

cleanup() {
	[[ -n $agent ]] && kill "$agent" 2>/dev/null
	"${D[@]}" rm -f $("${D[@]}" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
	KILL=0 engine_stop || true
	grep " $dir/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount || true
	ip link del "$bridge" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

fds() {
	ls -l "/proc/$agent/fd" | awk 'NR > 1 {print $NF}' | grep -cv '^/proc/[0-9]*/stat$'
}

ip link add "$bridge" type bridge
ip addr add 10.231.0.1/24 dev "$bridge"
ip link set "$bridge" up
engine
docker save "$IMAGE" | "${D[@]}" load >/dev/null
for i in $(seq "$CONTAINERS"); do
	"${D[@]}" run -d --restart=always "$IMAGE" sleep 100000 >/dev/null
done

printf '[cleanroom.monitoring]\ncollection_interval = "1s"\n[cleanroom.monitoring.containers]\ndocker_host = "unix://%s"\n' "$sock" >"$dir/crmon.toml"
$BIN --log.level warn run --config "$dir/crmon.toml" --web.listen-address "$ADDR" 2>>"$dir/agent.log" &
agent=$!
until curl -sf -o /dev/null "http://$ADDR/healthz"; do sleep 0.1; done
sleep 5
echo "before: $(fds) descriptors"
for c in $(seq "$CYCLES"); do
	engine_stop
	sleep 5
	echo "outage $c: $(fds) descriptors"
	engine
	until [[ $("${D[@]}" ps -q | wc -l) -eq $CONTAINERS ]]; do sleep 0.5; done
	until curl -sf "http://$ADDR/metrics" | grep -q '^crmon_docker_up 1'; do sleep 0.5; done
	sleep 5
	echo "after outage $c: $(fds) descriptors"
done
