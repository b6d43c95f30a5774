// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// hungMount mounts a FUSE filesystem whose daemon never answers, so every
// statfs on it blocks, as on an NFS mount whose server went away. Closing
// the returned file aborts the connection and releases the blocked calls.
func hungMount(t *testing.T, dir string) *os.File {
	t.Helper()
	testenv.RequireRoot(t)
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		testenv.Unavailable(t, "needs /dev/fuse: %v", err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", dev.Fd())
	if err := unix.Mount("hung", dir, "fuse", 0, opts); err != nil {
		dev.Close()
		testenv.Unavailable(t, "mounting fuse: %v", err)
	}
	t.Cleanup(func() {
		dev.Close()
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dev
}

// TestHungMount checks that a mount whose statfs never returns costs one
// timeout, is then skipped without waiting, and is measured again once its
// call returns.
func TestHungMount(t *testing.T) {
	root := t.TempDir()
	mnt := filepath.Join(root, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	dev := hungMount(t, mnt)

	proc := copyProc(t)
	if err := os.WriteFile(filepath.Join(proc, "1/mountinfo"), []byte(
		"27 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n"+
			"40 27 0:99 / /mnt rw,relatime - fuse hung rw,user_id=0,group_id=0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const timeout = 300 * time.Millisecond
	c := build(t, "filesystem", collect.Paths{ProcFS: proc, SysFS: fixturePaths(t).SysFS, RootFS: root},
		Options{FilesystemMountTimeout: timeout})
	fc := c.(*filesystemCollector)
	deviceError := func() (rootErr, mntErr string) {
		for _, s := range fc.metricSet.cur {
			if s.desc != fc.devErr {
				continue
			}
			switch s.lv[1] {
			case "/":
				rootErr = s.lv[3]
			case "/mnt":
				mntErr = s.lv[3]
			}
		}
		return rootErr, mntErr
	}
	update := func() time.Duration {
		t.Helper()
		start := time.Now()
		if err := c.Update(t.Context(), time.Now()); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}

	if d := update(); d < timeout || d > timeout+2*time.Second {
		t.Errorf("first tick took %v, want about the %v timeout", d, timeout)
	}
	if r, m := deviceError(); r != "" || m != "mountpoint timeout" {
		t.Errorf("device_error: / %q, /mnt %q; want \"\" and \"mountpoint timeout\"", r, m)
	}
	if d := update(); d > timeout/2 {
		t.Errorf("second tick took %v: the stuck mount was waited for again", d)
	}
	if _, m := deviceError(); m != "mountpoint timeout" {
		t.Errorf("second tick: /mnt device_error %q, want \"mountpoint timeout\"", m)
	}

	// Aborting the connection returns the blocked statfs (ENOTCONN); the
	// mount is then measured again, and fails fast with the real error.
	dev.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		fc.stuckMu.Lock()
		n := len(fc.stuck)
		fc.stuckMu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stuck mount never recovered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := update(); d > timeout/2 {
		t.Errorf("tick after recovery took %v", d)
	}
	if _, m := deviceError(); m == "" || m == "mountpoint timeout" || !strings.Contains(m, "not connected") {
		t.Errorf("after abort: /mnt device_error %q, want statfs's own error (not connected)", m)
	}
}
