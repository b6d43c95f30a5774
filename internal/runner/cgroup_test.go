// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package runner

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestNewCgroupCleansUpPartialState makes the second hierarchy fail after
// the first was made: NewCgroup returns the error, without panicking in
// its cleanup, and removes what it had made.
func TestNewCgroupCleansUpPartialState(t *testing.T) {
	unified := t.TempDir()
	h := &cgroups.Hierarchy{
		Mode:    cgroups.ModeHybrid,
		Unified: unified,
		// mkdir under /proc fails, as root too.
		V1: map[string]string{"memory": "/proc"},
	}
	cg, err := NewCgroup(h, testenv.CgroupParent, "partial")
	if err == nil {
		t.Fatalf("NewCgroup succeeded: %+v", cg)
	}
	if cg != nil {
		t.Errorf("NewCgroup returned %+v with its error", cg)
	}
	if _, err := os.Stat(filepath.Join(unified, testenv.CgroupParent, "partial")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cgroup2 directory made before the failure is still there: %v", err)
	}
}

// TestNewCgroupRefusesParentOutsideRoot: a parent from the command line
// must not lead out of the cgroup root, nor into a path other than the
// one it names.
func TestNewCgroupRefusesParentOutsideRoot(t *testing.T) {
	root := t.TempDir()
	unified := filepath.Join(root, "unified")
	if err := os.Mkdir(unified, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &cgroups.Hierarchy{Mode: cgroups.ModeUnified, Unified: unified}
	for _, parent := range []string{"..", "../escaped", "ci/../../escaped", "/ci/./jobs", "ci//jobs", "ci\x00jobs"} {
		if _, err := NewCgroup(h, parent, "run"); err == nil {
			t.Errorf("NewCgroup with parent %q succeeded", parent)
		}
		if err := CheckAccess(h, parent); err == nil {
			t.Errorf("CheckAccess with parent %q succeeded", parent)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "escaped")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a directory was made outside the cgroup root: %v", err)
	}
	for _, parent := range []string{"", "/", "ci/jobs", "/ci/jobs/"} {
		cg, err := NewCgroup(h, parent, "run")
		if err != nil {
			t.Errorf("NewCgroup with parent %q: %v", parent, err)
			continue
		}
		if err := cg.Remove(); err != nil {
			t.Error(err)
		}
	}
}
