// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package cgroupid maps cgroup IDs, the kernfs node ids that BPF programs
// see (bpf_get_current_cgroup_id, cgroup->kn->id), to cgroup paths and
// back. An ID is the inode number of the cgroup's directory in its
// hierarchy's mount; IDs are unique per hierarchy and never reused, so a
// cgroup2 ID and a v1 blkio ID may be equal and still name different
// cgroups.
package cgroupid

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNoCgroup2 is returned when no cgroup2 hierarchy is mounted.
var ErrNoCgroup2 = errors.New("no cgroup2 mount")

// Mount is where one cgroup hierarchy is mounted.
type Mount struct {
	// Dir is the mount point, e.g. /sys/fs/cgroup/unified.
	Dir string
	// Root is the cgroup path mounted there, "/" unless the mount is of a
	// subtree (a cgroup namespace, a bind mount).
	Root string
}

// Mounts are the hierarchies crmon reads IDs of.
type Mounts struct {
	// Unified is the cgroup2 hierarchy: /sys/fs/cgroup on pure v2 hosts,
	// /sys/fs/cgroup/unified on hybrid ones. Dir is empty when none.
	Unified Mount
	// Blkio is the v1 blkio hierarchy on hybrid and v1 hosts; Dir is empty
	// on pure v2 hosts, where the block layer charges cgroup2 cgroups.
	Blkio Mount
}

// FindMounts reads <procfs>/self/mountinfo.
func FindMounts(procfs string) (Mounts, error) {
	b, err := os.ReadFile(filepath.Join(procfs, "self", "mountinfo"))
	if err != nil {
		return Mounts{}, fmt.Errorf("reading mountinfo: %w", err)
	}
	return parseMountinfo(b)
}

// parseMountinfo picks the first cgroup2 mount and the first v1 mount with
// the blkio controller.
func parseMountinfo(b []byte) (Mounts, error) {
	var m Mounts
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		// 38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
		fields := strings.Fields(s.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || len(fields) < sep+4 {
			continue
		}
		root, dir := unescapeMount(fields[3]), unescapeMount(fields[4])
		switch fields[sep+1] {
		case "cgroup2":
			if m.Unified.Dir == "" {
				m.Unified = Mount{Dir: dir, Root: root}
			}
		case "cgroup":
			if m.Blkio.Dir != "" {
				continue
			}
			for _, o := range strings.Split(fields[sep+3], ",") {
				if o == "blkio" {
					m.Blkio = Mount{Dir: dir, Root: root}
				}
			}
		}
	}
	if err := s.Err(); err != nil {
		return Mounts{}, fmt.Errorf("parsing mountinfo: %w", err)
	}
	if m.Unified.Dir == "" {
		return m, ErrNoCgroup2
	}
	return m, nil
}

// unescapeMount undoes mountinfo's octal escapes of space, tab, newline
// and backslash.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// BlkioHierarchy reads <procfs>/cgroups and returns the hierarchy ID of the
// v1 blkio controller, 0 when it is not mounted as v1 (cgroup->root->
// hierarchy_id, the first column of /proc/<pid>/cgroup).
func BlkioHierarchy(procfs string) (int, error) {
	b, err := os.ReadFile(filepath.Join(procfs, "cgroups"))
	if err != nil {
		return 0, fmt.Errorf("reading cgroups: %w", err)
	}
	return parseCgroups(b, "blkio")
}

func parseCgroups(b []byte, controller string) (int, error) {
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		// #subsys_name hierarchy num_cgroups enabled
		fields := strings.Fields(s.Text())
		if len(fields) < 4 || fields[0] != controller {
			continue
		}
		h, err := strconv.Atoi(fields[1])
		if err != nil {
			return 0, fmt.Errorf("parsing cgroups: %q: %w", s.Text(), err)
		}
		return h, nil
	}
	return 0, s.Err()
}
