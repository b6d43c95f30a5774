#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# govulncheck over every package, against the Go vulnerability database
# as the golang.org/x/vulndb module carries it (a snapshot pinned below,
# fetched through the Go module proxy and indexed once into the build
# cache), so the check runs where only the module proxy is reachable.
# Fails on every vulnerability crmon's code reaches, except those listed
# in ALLOW with the reason they cannot apply.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

# Bump to take newer advisories: `go list -m golang.org/x/vulndb@latest`.
VULNDB=v0.0.0-20261105234957-e22db6528018

# ID -> why it does not apply to crmon.
declare -A ALLOW=(
	# Both are in the Docker daemon (AuthZ plugins, plugin privileges);
	# crmon uses only the API client and types of the module, and the
	# advisories name no fixed version of github.com/docker/docker.
	[GO-2026-4887]="daemon AuthZ plugin bypass; crmon is an API client"
	[GO-2026-4883]="daemon plugin privilege validation; crmon is an API client"
)

db="$($GO env GOCACHE)/crmon-vulndb-$VULNDB"
if [[ ! -f $db/index/db.json ]]; then
	echo "vulncheck: indexing golang.org/x/vulndb@$VULNDB (once)"
	src=$($GO mod download -json "golang.org/x/vulndb@$VULNDB" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	rm -rf "$db.tmp"
	(cd "$(mktemp -d)" && GOFLAGS=-mod=mod $GO run "golang.org/x/vulndb/cmd/indexdb@$VULNDB" -vulns "$src/data/osv" -out "$db.tmp")
	mv "$db.tmp" "$db"
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
$GO tool govulncheck -db "file://$db" ./... >"$out" 2>&1 || rc=$?
if ((rc != 0 && rc != 3)); then
	cat "$out" >&2
	echo "vulncheck: govulncheck failed (exit $rc)" >&2
	exit 1
fi
found=()
for id in $(sed -n 's/^Vulnerability #[0-9]*: \(GO-[0-9-]*\).*/\1/p' "$out"); do
	if [[ -n ${ALLOW[$id]:-} ]]; then
		echo "vulncheck: $id allowed: ${ALLOW[$id]}"
	else
		found+=("$id")
	fi
done
if ((${#found[@]})); then
	cat "$out" >&2
	echo "vulncheck: crmon reaches ${found[*]}" >&2
	exit 1
fi
echo "vulncheck: no reachable vulnerability (database golang.org/x/vulndb@$VULNDB)"
