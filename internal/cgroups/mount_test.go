// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package cgroups

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDetectWhoseMountTable checks which root a mount point is opened
// below. A sidecar started with --path.procfs /host/proc --path.rootfs
// /rootfs (the host's / bind-mounted at /rootfs) reads its own mountinfo
// when init's is not readable, and that table lists its own paths,
// /rootfs/sys/fs/cgroup/unified among them: joined under rootFS again they
// named nothing, and every container cgroup read as removed.
func TestDetectWhoseMountTable(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"rootfs/sys/fs/cgroup/unified", "rootfs/sys/fs/cgroup/memory", "proc/self"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rootfs := filepath.Join(dir, "rootfs")
	// The container's own table: what a bind of the host's / brings
	// along (Root "/", our paths), and the container's cgroup namespace
	// view of memory (Root is its own cgroup), which names no host path.
	own := "110 109 0:28 / " + rootfs + "/sys/fs/cgroup rw - tmpfs tmpfs rw\n" +
		"114 110 0:32 / " + rootfs + "/sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n" +
		"120 110 0:38 / " + rootfs + "/sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n" +
		"130 101 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n"
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/self/mountinfo", own)

	h, err := Detect(filepath.Join(dir, "proc"), rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(rootfs, "sys/fs/cgroup/unified"); h.Unified != want {
		t.Errorf("own table: Unified = %q, want %q (our path, not joined under rootfs)", h.Unified, want)
	}
	if want := filepath.Join(rootfs, "sys/fs/cgroup/memory"); h.V1["memory"] != want || h.Mode != ModeHybrid {
		t.Errorf("own table: memory at %q, mode %v; want %q, hybrid", h.V1["memory"], h.Mode, want)
	}

	// Init's table, readable with the host's PID namespace: host paths,
	// opened below rootfs; it wins over our own.
	if err := os.MkdirAll(filepath.Join(dir, "proc/1"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("proc/1/mountinfo", "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"+
		"40 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n")
	h, err = Detect(filepath.Join(dir, "proc"), rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(rootfs, "sys/fs/cgroup/unified"); h.Unified != want || h.Mode != ModeUnified {
		t.Errorf("init's table: Unified = %q, mode %v; want %q, unified", h.Unified, h.Mode, want)
	}
}
