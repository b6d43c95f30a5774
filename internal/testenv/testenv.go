// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package testenv decides what a test does when the machine lacks what it
// needs (root, eBPF, Docker, a server): outside CI it skips; with CI=true it
// fails, so that CI can never pass by skipping.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test outside CI and fails it in CI.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true and this test cannot run: "+format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot stops the test unless it runs as root. A test that needs
// root changes or loads something on the host, so it is a long test too:
// under -short it stops even as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	RequireLong(t, "root")
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root")
	}
}

// RequireCommand stops the test unless name is on PATH, and returns its path.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "needs %s on PATH (make test installs it)", name)
	}
	return p
}

// RequireLong stops the test under -short (make test-unit), which leaves
// out what needs root, cgroups, the probes or Docker; with CI=true that
// fails like any other missing requirement.
func RequireLong(t testing.TB, needs string) {
	t.Helper()
	if testing.Short() {
		Unavailable(t, "needs %s (-short)", needs)
	}
}

// CgroupParent is the cgroup that tests make their cgroups under.
const CgroupParent = "crmon-test"

// RemoveCgroupParent removes CgroupParent from every hierarchy once its
// children are gone, so that the tests leave the host's cgroup trees as
// they found them: a package's TestMain calls it after m.Run. Under
// -short, which makes no cgroup, it does nothing. A parent still in use
// (another test binary running beside this one) is not empty, and stays.
func RemoveCgroupParent() {
	if testing.Short() {
		return
	}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + CgroupParent)
	for _, d := range append(dirs, "/sys/fs/cgroup/"+CgroupParent) {
		_ = os.Remove(d)
	}
}
