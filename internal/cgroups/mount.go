// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package cgroups finds a container's cgroups and reads their counters, on
// cgroup v1, pure cgroup2 and hybrid hosts, in one place.
//
// Where a controller lives is decided once per host (Detect): on a pure v2
// host every controller comes from the unified hierarchy; on a hybrid host
// the unified hierarchy has no controllers, so memory, cpu, pids and blkio
// come from their v1 hierarchies while the cgroup2 path still names the
// container (it is what the eBPF probes see).
package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/crmon-dev/crmon/internal/mountinfo"
)

// Mode is how a host mounts cgroups.
type Mode int

const (
	// ModeUnified is a pure cgroup2 host: /sys/fs/cgroup is cgroup2.
	ModeUnified Mode = iota
	// ModeHybrid has v1 controllers and a cgroup2 mount without them.
	ModeHybrid
	// ModeLegacy has only v1 hierarchies.
	ModeLegacy
)

func (m Mode) String() string {
	switch m {
	case ModeUnified:
		return "unified"
	case ModeHybrid:
		return "hybrid"
	case ModeLegacy:
		return "legacy"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Controller is a resource controller crmon reads.
type Controller int

const (
	Memory Controller = iota
	CPU
	Pids
	IO
	numControllers
)

func (c Controller) String() string {
	return [...]string{"memory", "cpu", "pids", "io"}[c]
}

// Hierarchy is where a host's cgroups are mounted, with paths already
// joined under the configured root.
type Hierarchy struct {
	Mode Mode
	// Unified is the cgroup2 mount point, "" when there is none.
	Unified string
	// V1 maps a v1 controller ("memory", "cpu", "cpuacct", "blkio",
	// "pids", "name=systemd") to its mount point. Co-mounted controllers
	// ("cpu,cpuacct") share one.
	V1 map[string]string
	// onV2 says which controllers are enabled in the unified hierarchy.
	onV2 [numControllers]bool
}

// OnV2 reports whether c is read from the unified hierarchy.
func (h *Hierarchy) OnV2(c Controller) bool { return h.onV2[c] }

// Detect reads the host's mount table and the root cgroup.controllers to
// find the host's layout: procFS/1/mountinfo, whose mount points are
// opened below rootFS (a fixture tree, or the host's / mounted elsewhere),
// or, when init's table is not ours to read, procFS/self/mountinfo, whose
// mount points are our own paths (mountinfo.HostTables).
func Detect(procFS, rootFS string) (*Hierarchy, error) {
	b, root, err := mountinfo.ReadHost(procFS, rootFS)
	if err != nil {
		return nil, err
	}
	h, err := parseMountinfo(b, root)
	if err != nil {
		return nil, err
	}
	if h.Unified != "" {
		// cgroup.controllers of the root lists what cgroup2 manages; on
		// a hybrid host it is empty.
		c, err := os.ReadFile(filepath.Join(h.Unified, "cgroup.controllers"))
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("reading cgroup.controllers: %w", err)
		}
		for _, f := range strings.Fields(string(c)) {
			switch f {
			case "memory":
				h.onV2[Memory] = true
			case "cpu":
				h.onV2[CPU] = true
			case "pids":
				h.onV2[Pids] = true
			case "io":
				h.onV2[IO] = true
			}
		}
	}
	switch {
	case h.Unified != "" && len(h.V1) == 0:
		h.Mode = ModeUnified
	case h.Unified != "":
		h.Mode = ModeHybrid
	case len(h.V1) > 0:
		h.Mode = ModeLegacy
	default:
		return nil, fmt.Errorf("reading mountinfo: no cgroup mounts")
	}
	// A controller missing on both sides is read from nowhere; one that
	// is on neither v2 nor v1 simply yields zeros.
	return h, nil
}

// parseMountinfo finds the cgroup and cgroup2 mounts in a mountinfo file
// (proc(5)): "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw".
func parseMountinfo(b []byte, rootFS string) (*Hierarchy, error) {
	ms, err := mountinfo.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	h := &Hierarchy{V1: map[string]string{}}
	for _, m := range ms {
		// Only the root of a hierarchy is useful; a bind mount of a
		// subtree (Root != "/") would hide the host's paths.
		if m.Root != "/" {
			continue
		}
		mnt := filepath.Join(rootFS, m.MountPoint)
		switch m.FSType {
		case "cgroup2":
			if h.Unified == "" {
				h.Unified = mnt
			}
		case "cgroup":
			for _, o := range strings.Split(m.SuperOptions, ",") {
				switch o {
				case "rw", "ro", "relatime", "noexec", "nosuid", "nodev", "clone_children", "noprefix", "xattr":
					continue
				}
				if strings.HasPrefix(o, "release_agent=") {
					continue
				}
				if _, dup := h.V1[o]; !dup {
					h.V1[o] = mnt
				}
			}
		}
	}
	return h, nil
}
