// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package cgroups

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Populated reads "populated 0|1" from a cgroup2 cgroup.events: whether
// any process is left in the cgroup or below it.
func Populated(b []byte) bool {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if v, ok := bytes.CutPrefix(line, []byte("populated ")); ok {
			return len(v) > 0 && v[0] == '1'
		}
	}
	return false
}

// TreePIDs lists up to max PIDs of the processes in the cgroup directory
// dir and the cgroups below it, walking the tree in lexical order. A
// cgroup removed during the walk is skipped.
func TreePIDs(dir string, max int) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if len(pids) >= max {
				return filepath.SkipAll
			}
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}
