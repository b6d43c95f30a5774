// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestMountWatch mounts a tmpfs and checks that the watch on the real
// mountinfo reports that change, and only that change.
func TestMountWatch(t *testing.T) {
	testenv.RequireRoot(t)
	var w mountWatch
	defer w.close()
	p := mkpath("/proc/self/mountinfo")
	now := time.Now()
	if !w.changed(p, now) {
		t.Fatal("the first call must report a change: nothing was read yet")
	}
	if !w.procfs {
		t.Fatal("/proc/self/mountinfo not recognised as procfs")
	}
	if w.changed(p, now) {
		t.Fatal("no mount happened, yet a change was reported")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		testenv.Unavailable(t, "mounting a tmpfs: %v", err)
	}
	defer unix.Unmount(dir, 0)
	if !w.changed(p, now) {
		t.Error("a tmpfs was mounted, but no change was reported")
	}
	if w.changed(p, now) {
		t.Error("a change was reported twice")
	}
	if !w.changed(p, now.Add(mountRecheck)) {
		t.Error("no re-read after mountRecheck")
	}

	// A fixture file is not procfs: read every time.
	var f mountWatch
	defer f.close()
	fp := mkpath("../../testdata/proc/1/mountinfo")
	f.changed(fp, now)
	if f.procfs || !f.changed(fp, now) {
		t.Error("a regular file must be re-read every tick")
	}
}
