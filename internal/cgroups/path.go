// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package cgroups

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Runtime is what created a container's cgroup.
type Runtime string

const (
	RuntimeDocker     Runtime = "docker"
	RuntimeContainerd Runtime = "containerd"
	RuntimeCRIO       Runtime = "crio"
	RuntimePodman     Runtime = "podman"
	// RuntimeCRI is a kubelet cgroupfs pod path (/kubepods/.../pod<uid>/<id>)
	// that does not say which CRI runtime made it.
	RuntimeCRI Runtime = "cri"
)

// scopePatterns are the systemd and cgroupfs names runtimes give a
// container's cgroup directory: prefix + 64 hex digits + suffix. Matching is
// by prefix and suffix, never a regexp, since paths come from the host.
var scopePatterns = [...]struct {
	runtime        Runtime
	prefix, suffix string
}{
	{RuntimeDocker, "docker-", ".scope"},             // systemd driver
	{RuntimeContainerd, "cri-containerd-", ".scope"}, // containerd CRI, systemd
	{RuntimeCRIO, "crio-", ".scope"},                 // CRI-O, systemd
	{RuntimePodman, "libpod-", ".scope"},             // podman, systemd (machine.slice, user.slice)
	{RuntimePodman, "libpod-", ""},                   // podman, cgroupfs (/libpod_parent/libpod-<id>)
	{RuntimeContainerd, "cri-containerd-", ""},       // containerd CRI, cgroupfs with prefix
	{RuntimeDocker, "docker-", ""},                   // rare: docker cgroupfs with a named parent
}

// ParseContainerPath finds the container a cgroup path belongs to: the
// innermost path element that names one, so that a container's own
// sub-cgroups (".../docker-<id>.scope/init.scope") map to it.
func ParseContainerPath(p string) (rt Runtime, id string, ok bool) {
	p = strings.TrimSuffix(p, "/")
	for p != "" && p != "/" {
		dir, elem := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		for _, pat := range scopePatterns {
			if len(elem) == len(pat.prefix)+64+len(pat.suffix) &&
				strings.HasPrefix(elem, pat.prefix) && strings.HasSuffix(elem, pat.suffix) {
				if c := elem[len(pat.prefix) : len(pat.prefix)+64]; isHexID(c) {
					return pat.runtime, c, true
				}
			}
		}
		if isHexID(elem) {
			// A bare ID: cgroupfs drivers. The parent says whose.
			switch {
			case path.Base(dir) == "docker":
				return RuntimeDocker, elem, true
			case strings.HasPrefix(dir, "/kubepods") || strings.Contains(dir, "/kubepods"):
				return RuntimeCRI, elem, true
			default:
				return RuntimeDocker, elem, true
			}
		}
		p = dir
	}
	return "", "", false
}

func isHexID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Paths are one cgroup's paths relative to each hierarchy's root.
type Paths struct {
	// V2 is the path in the unified hierarchy ("/docker/<id>"), "" on a
	// legacy host.
	V2 string
	// V1 maps a v1 controller name ("memory", "cpuacct", "name=systemd")
	// to the path in that hierarchy.
	V1 map[string]string
}

// ID is the path crmon names the cgroup by, cAdvisor's `id` label: the
// cgroup2 path, or on a legacy host the memory (else cpu) hierarchy's.
func (p Paths) ID() string {
	if p.V2 != "" {
		return p.V2
	}
	for _, c := range []string{"memory", "cpu", "cpuacct", "pids", "name=systemd"} {
		if v, ok := p.V1[c]; ok {
			return v
		}
	}
	return ""
}

// ProcCgroup reads procFS/<pid>/cgroup, the cgroups a process is in.
func ProcCgroup(procFS string, pid int) (Paths, error) {
	b, err := os.ReadFile(filepath.Join(procFS, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return Paths{}, fmt.Errorf("reading cgroup of %d: %w", pid, err)
	}
	return parseProcCgroup(b)
}

// parseProcCgroup parses /proc/<pid>/cgroup (cgroups(7)):
// "hierarchy-ID:controller-list:cgroup-path", with "0::path" for cgroup2.
func parseProcCgroup(b []byte) (Paths, error) {
	p := Paths{V1: map[string]string{}}
	// A container's cgroup has the same path in every hierarchy: one
	// string for them all. A copy per line was 1.3 kB a container (1.3 MB
	// of the live heap beside 1 000 containers, in a heap profile).
	var path string
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		_, rest, ok := bytes.Cut(line, []byte{':'})
		ctrls, cg, ok2 := bytes.Cut(rest, []byte{':'})
		if !ok || !ok2 {
			return Paths{}, fmt.Errorf("reading cgroup: malformed line %q", line)
		}
		if path != string(cg) {
			path = string(cg)
		}
		if len(ctrls) == 0 {
			p.V2 = path
			continue
		}
		for _, c := range strings.Split(string(ctrls), ",") {
			p.V1[c] = path
		}
	}
	return p, nil
}

// Layout is how a runtime names the cgroups it creates.
type Layout struct {
	// Driver is "cgroupfs" or "systemd", Docker's CgroupDriver.
	Driver string
	// Parent is the container's cgroup parent ("" for the runtime's
	// default: /docker for cgroupfs, system.slice for systemd).
	Parent string
}

// DockerPath is where Docker puts container id's cgroup under l, the same
// path in every hierarchy. Used when the container has no process to read
// /proc/<pid>/cgroup from (created, exited).
func DockerPath(l Layout, id string) string {
	if l.Driver == "systemd" {
		parent := l.Parent
		if parent == "" {
			parent = "system.slice"
		}
		return ExpandSlice(parent) + "/docker-" + id + ".scope"
	}
	parent := l.Parent
	if parent == "" {
		parent = "/docker"
	}
	if !strings.HasPrefix(parent, "/") {
		parent = "/" + parent
	}
	return strings.TrimSuffix(parent, "/") + "/" + id
}

// ExpandSlice turns a systemd slice name into its cgroup path:
// "a-b-c.slice" is "/a.slice/a-b.slice/a-b-c.slice" (systemd.slice(5)).
func ExpandSlice(slice string) string {
	if strings.HasPrefix(slice, "/") || !strings.HasSuffix(slice, ".slice") {
		return strings.TrimSuffix("/"+strings.TrimPrefix(slice, "/"), "/")
	}
	name := strings.TrimSuffix(slice, ".slice")
	if name == "-" || name == "" {
		return "/"
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] == '-' {
			b.WriteString("/" + name[:i] + ".slice")
		}
	}
	b.WriteString("/" + slice)
	return b.String()
}

// Uniform returns Paths with p in the unified hierarchy (when there is one)
// and in every v1 hierarchy, which is how Docker, containerd and podman lay
// out a container.
func (h *Hierarchy) Uniform(p string) Paths {
	ps := Paths{V1: make(map[string]string, len(h.V1))}
	if h.Unified != "" {
		ps.V2 = p
	}
	for c := range h.V1 {
		ps.V1[c] = p
	}
	return ps
}
