// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package cgroups

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestPopulated(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"empty file", "", false},
		{"populated", "populated 1\nfrozen 0\n", true},
		{"emptied", "populated 0\nfrozen 0\n", false},
		{"not the first line", "frozen 0\npopulated 1\n", true},
		{"no trailing newline", "populated 1", true},
		{"no value", "populated \nfrozen 0\n", false},
		{"other keys only", "frozen 1\n", false},
		{"a key that only starts alike", "populated_x 1\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Populated([]byte(tc.in)); got != tc.want {
				t.Errorf("Populated(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// TestTreePIDs walks a tree shaped like cgroupfs: every cgroup.procs
// below the directory, parents before children, up to the bound.
func TestTreePIDs(t *testing.T) {
	dir := t.TempDir()
	for p, procs := range map[string]string{
		"":        "10\n11\n",
		"a":       "",
		"a/b":     "20\n",
		"c":       "30\nnot-a-pid\n31\n",
		"c/d/e/f": "40\n",
	} {
		d := filepath.Join(dir, p)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(procs), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := TreePIDs(dir, 100), []int{10, 11, 20, 30, 31, 40}; !slices.Equal(got, want) {
		t.Errorf("TreePIDs = %v, want %v", got, want)
	}
	if got, want := TreePIDs(dir, 3), []int{10, 11, 20}; !slices.Equal(got, want) {
		t.Errorf("TreePIDs bounded to 3 = %v, want %v", got, want)
	}
	if got := TreePIDs(filepath.Join(dir, "gone"), 100); len(got) != 0 {
		t.Errorf("TreePIDs of a removed cgroup = %v, want none", got)
	}
}
