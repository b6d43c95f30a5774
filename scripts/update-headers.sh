#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# Refreshes headers/: vmlinux.h from the running kernel's BTF and the libbpf
# headers from Debian's libbpf-dev, at the pinned version below, so that the
# committed BPF objects are built against known headers.
set -eu

LIBBPF_VERSION="1:1.1.2-0+deb12u1"
BTF="${BTF:-/sys/kernel/btf/vmlinux}"

cd "$(dirname "$0")/.."

installed="$(dpkg-query -W -f='${Version}' libbpf-dev 2>/dev/null || true)"
if [ "$installed" != "$LIBBPF_VERSION" ]; then
	echo "libbpf-dev $LIBBPF_VERSION required, found '${installed:-none}':" >&2
	echo "  apt-get install libbpf-dev=$LIBBPF_VERSION, or update LIBBPF_VERSION here" >&2
	exit 1
fi

mkdir -p headers/bpf
bpftool btf dump file "$BTF" format c >headers/vmlinux.h.tmp
mv headers/vmlinux.h.tmp headers/vmlinux.h
for h in bpf_helpers.h bpf_helper_defs.h bpf_tracing.h bpf_core_read.h bpf_endian.h; do
	cp /usr/include/bpf/$h headers/bpf/$h
done
{
	echo "libbpf-dev $LIBBPF_VERSION"
	echo "vmlinux.h from $(uname -r)"
} >headers/VERSIONS
