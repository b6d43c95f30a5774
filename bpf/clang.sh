#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# Runs clang for bpf2go (internal/probe/gen.go: -cc "../../bpf/clang.sh
# clang-19") on a copy of bpf/ and headers/ in a directory whose path has
# the same length on every machine, with a fixed environment, and copies
# the object back. clang-19 orders some BTF forward declarations by the
# addresses of its own allocations, which shift with the length of the
# source's real path (a symlink is resolved, so it does not help): without
# this, a clone at another path produces different bytes from the same
# sources, and scripts/check-generated.sh fails in CI.
set -eu

cc="$1"
shift

src=""
out=""
prev=""
for a in "$@"; do
	case "$prev" in
	-c) src="$a" ;;
	-o) out="$a" ;;
	esac
	prev="$a"
done
case "$src" in
*/bpf/*.c) ;;
*)
	echo "clang.sh: no -c <tree>/bpf/<name>.c among the arguments" >&2
	exit 1
	;;
esac
tree="${src%/bpf/*}"
rel="${PWD#"$tree"}"

# Always /tmp, not $TMPDIR: the length must be the same everywhere.
work="$(mktemp -d /tmp/crmon-bpf.XXXXXXXXXX)"
trap 'rm -rf "$work"' EXIT
cp -R "$tree/bpf" "$tree/headers" "$work/"
mkdir -p "$work$rel"
obj="$work$rel/out.o"

# Point every argument into the tree (-c, -fdebug-prefix-map) at the copy,
# and -o at the scratch object.
n=$#
i=0
prev=""
while [ "$i" -lt "$n" ]; do
	a="$1"
	shift
	if [ "$prev" = "-o" ]; then
		a="$obj"
	else
		case "$a" in
		*"$tree"*)
			a="${a%%"$tree"*}$work${a#*"$tree"}"
			;;
		esac
	fi
	set -- "$@" "$a"
	prev="$a"
	i=$((i + 1))
done

cd "$work$rel"
env -i PATH=/usr/local/bin:/usr/bin:/bin PWD="$work$rel" "$cc" "$@"
cp "$obj" "$out"
