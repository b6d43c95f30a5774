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

	"github.com/crmon-dev/crmon/internal/mountinfo"
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
// the blkio controller. Lines that are not mountinfo lines are skipped.
func parseMountinfo(b []byte) (Mounts, error) {
	var m Mounts
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		// 38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
		mi, err := mountinfo.ParseLine(string(line))
		if err != nil {
			continue
		}
		switch mi.FSType {
		case "cgroup2":
			if m.Unified.Dir == "" {
				m.Unified = Mount{Dir: mi.MountPoint, Root: mi.Root}
			}
		case "cgroup":
			// A v1 mount's controllers are among its superblock options.
			if m.Blkio.Dir == "" && mountinfo.HasOption(mi.SuperOptions, "blkio") {
				m.Blkio = Mount{Dir: mi.MountPoint, Root: mi.Root}
			}
		}
	}
	if m.Unified.Dir == "" {
		return m, ErrNoCgroup2
	}
	return m, nil
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
