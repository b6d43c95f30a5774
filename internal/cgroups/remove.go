// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Dirs returns the directories of p that exist, one per hierarchy
// (co-mounted v1 controllers share one).
func (h *Hierarchy) Dirs(p Paths) []string {
	var dirs []string
	add := func(root, rel string) {
		if root == "" || rel == "" {
			return
		}
		d := filepath.Join(root, rel)
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	add(h.Unified, p.V2)
	for ctrl, rel := range p.V1 {
		add(h.V1[ctrl], rel)
	}
	sort := func(a, b string) int { return len(b) - len(a) }
	slices.SortFunc(dirs, sort)
	return dirs
}

// KillAndRemove kills every process in the cgroup p and its descendants,
// in every hierarchy, and removes their directories, deepest first, within
// timeout. The root cgroup is refused.
func (h *Hierarchy) KillAndRemove(p Paths, timeout time.Duration) error {
	for _, rel := range append([]string{p.V2}, mapValues(p.V1)...) {
		if rel != "" && (path.Clean("/"+rel) == "/" || path.Clean("/"+rel) != rel) {
			return fmt.Errorf("removing cgroup %q: refused", rel)
		}
	}
	deadline := time.Now().Add(timeout)
	roots := h.Dirs(p)
	if h.Unified != "" && p.V2 != "" {
		// cgroup.kill (Linux 5.14) kills the whole subtree at once, forks
		// in flight included.
		_ = os.WriteFile(filepath.Join(h.Unified, p.V2, "cgroup.kill"), []byte("1"), 0)
	}
	var tree []string
	for {
		tree = tree[:0]
		for _, r := range roots {
			_ = filepath.WalkDir(r, func(d string, e fs.DirEntry, err error) error {
				if err == nil && e.IsDir() {
					tree = append(tree, d)
				}
				return nil
			})
		}
		killed := 0
		for _, d := range tree {
			b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			if err != nil {
				continue
			}
			for _, f := range bytes.Fields(b) {
				if pid, err := strconv.Atoi(string(f)); err == nil && pid > 0 {
					_ = unix.Kill(pid, unix.SIGKILL)
					killed++
				}
			}
		}
		if killed == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("removing cgroup %s: processes keep appearing", p.ID())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Deepest first: a cgroup with children cannot be removed.
	slices.SortFunc(tree, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, d := range tree {
		for {
			err := unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			// EBUSY for a moment after the last task exits, while the
			// kernel finishes releasing it.
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
