// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/collect"
)

// TestFilesystemOwnTable checks the fallback to our own mount table (init's
// hidden, or not readable without CAP_SYS_PTRACE): its mount points are
// this process's paths and are statted as they are, not below
// --path.rootfs, which names the host's / and not ours.
func TestFilesystemOwnTable(t *testing.T) {
	proc := copyProc(t)
	if err := os.Remove(filepath.Join(proc, "1", "mountinfo")); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "self", "mountinfo"),
		[]byte("40 27 254:1 / "+mnt+" rw,relatime - ext4 /dev/vda1 rw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := build(t, "filesystem", collect.Paths{ProcFS: proc, SysFS: fixturePaths(t).SysFS, RootFS: filepath.Join(t.TempDir(), "no-such-root")}, Options{})
	if err := c.Update(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	fc := c.(*filesystemCollector)
	var size float64
	found := false
	for _, s := range fc.metricSet.cur {
		switch {
		case s.desc == fc.devErr && s.lv[1] == mnt:
			found = true
			if s.lv[3] != "" {
				t.Errorf("device_error %q for %s: statted below --path.rootfs?", s.lv[3], mnt)
			}
		case s.desc == fc.size && s.lv[1] == mnt:
			size = s.value
		}
	}
	if !found || size <= 0 {
		t.Errorf("%s: listed %v, size %v; want listed with its size", mnt, found, size)
	}
}
