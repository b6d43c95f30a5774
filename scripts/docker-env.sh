#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# docker-env.sh prepares a Docker engine for crmon's container tests:
# installs Debian's docker.io and busybox-static when missing, starts dockerd
# when it does not answer, and builds the local image crmon-test/busybox:latest
# (no registry is needed). Safe to run any number of times. Needs root.
set -eu

IMAGE=${CRMON_TEST_IMAGE:-crmon-test/busybox:latest}
LOG=${CRMON_DOCKERD_LOG:-/var/log/crmon-dockerd.log}
WAIT=${CRMON_DOCKERD_WAIT:-30}

if [ "$(id -u)" -ne 0 ]; then
	echo "docker-env.sh: must run as root" >&2
	exit 1
fi

missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
[ -x /bin/busybox ] || missing="$missing busybox-static"
if [ -n "$missing" ]; then
	echo "docker-env.sh: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing
fi

# Prefer Debian's CLI, which matches the engine; any newer CLI negotiates down.
DOCKER=docker
[ -x /usr/bin/docker ] && DOCKER=/usr/bin/docker

if ! $DOCKER version >/dev/null 2>&1; then
	echo "docker-env.sh: starting dockerd (log: $LOG)"
	mkdir -p "$(dirname "$LOG")"
	nohup dockerd >>"$LOG" 2>&1 </dev/null &
	i=0
	until $DOCKER version >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt "$((WAIT * 2))" ]; then
			echo "docker-env.sh: dockerd did not answer within ${WAIT}s; last log lines:" >&2
			tail -n 20 "$LOG" >&2 || true
			exit 1
		fi
		sleep 0.5
	done
fi

if ! $DOCKER image inspect "$IMAGE" >/dev/null 2>&1; then
	echo "docker-env.sh: building $IMAGE from busybox-static"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	mkdir -p "$tmp/r/bin" "$tmp/r/tmp" "$tmp/r/data"
	cp /bin/busybox "$tmp/r/bin/"
	for c in sh sleep dd yes cat nc head true wc ls; do
		ln -s busybox "$tmp/r/bin/$c"
	done
	tar -C "$tmp/r" -c . | $DOCKER import -c 'ENV PATH=/bin' - "$IMAGE" >/dev/null
fi

echo "docker-env.sh: ready ($($DOCKER version --format '{{.Server.Version}} API {{.Server.APIVersion}}'), image $IMAGE)"
