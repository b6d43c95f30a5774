// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package mountinfo parses /proc/<pid>/mountinfo (proc(5)), for the
// packages that look for filesystems and for cgroup hierarchies.
package mountinfo

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrMalformed is returned for a line that is not a mountinfo line.
var ErrMalformed = errors.New("malformed mountinfo line")

// Mount is one line of mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
type Mount struct {
	Major, Minor uint32
	// Root is the directory of the filesystem mounted at MountPoint: "/"
	// unless a subtree is mounted (a bind mount, a cgroup namespace).
	Root         string
	MountPoint   string
	Options      string // per-mount options
	FSType       string
	Source       string // the device
	SuperOptions string // per-superblock options, "" when the line has none
}

// ReadOnly reports whether the mount or its superblock is read-only.
func (m Mount) ReadOnly() bool {
	return HasOption(m.Options, "ro") || HasOption(m.SuperOptions, "ro")
}

// HasOption reports whether the comma-separated opts holds o.
func HasOption(opts, o string) bool {
	for opts != "" {
		var f string
		f, opts, _ = strings.Cut(opts, ",")
		if f == o {
			return true
		}
	}
	return false
}

// Parse parses a whole mountinfo file; a malformed line is an error.
func Parse(b []byte) ([]Mount, error) {
	var out []Mount
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		m, err := ParseLine(string(line))
		if err != nil {
			return nil, fmt.Errorf("parsing mountinfo: %w", err)
		}
		out = append(out, m)
	}
	return out, nil
}

// FSType returns the filesystem type of a mountinfo line, the field after
// the "-" that ends the optional fields, without parsing or copying the
// rest; ok is false when the line has no such field. Paths in the line are
// escaped (a space is \040), so " - " is only ever the separator.
func FSType(line []byte) (fstype []byte, ok bool) {
	i := bytes.Index(line, []byte(" - "))
	if i < 0 {
		return nil, false
	}
	rest := line[i+3:]
	if j := bytes.IndexByte(rest, ' '); j >= 0 {
		rest = rest[:j]
	}
	return rest, len(rest) > 0
}

// ParseLine parses one mountinfo line, without its newline.
func ParseLine(line string) (Mount, error) {
	f := strings.Fields(line)
	// The optional fields (shared:N, master:N, ...) end at "-".
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+2 >= len(f) {
		return Mount{}, fmt.Errorf("%w: %q", ErrMalformed, line)
	}
	maj, min, ok := strings.Cut(f[2], ":")
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return Mount{}, fmt.Errorf("%w: bad device %q", ErrMalformed, f[2])
	}
	m := Mount{
		Major: uint32(ma), Minor: uint32(mi),
		Root:       Unescape(f[3]),
		MountPoint: Unescape(f[4]),
		Options:    f[5],
		FSType:     f[sep+1],
		Source:     Unescape(f[sep+2]),
	}
	if sep+3 < len(f) {
		m.SuperOptions = f[sep+3]
	}
	return m, nil
}

// Unescape undoes the kernel's octal escapes of space, tab, newline and
// backslash in paths (\040 for a space).
func Unescape(s string) string {
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

// Table is a mount table file and the directory its mount points are to be
// opened below, from this process.
//
// The mount points in /proc/PID/mountinfo are paths in PID's mount
// namespace. Those of the host's init (<procfs>/1/mountinfo, with the
// host's procfs and PID namespace) are the host's paths, so they are opened
// below the host's root as this process sees it (--path.rootfs); those of
// <procfs>/self/mountinfo are this process's own paths, opened as they are.
// Joining the wrong root to a mount point is how a sidecar that mounts the
// host's / at /rootfs ends up looking for /rootfs/rootfs/sys/fs/cgroup.
type Table struct {
	Path string // the mountinfo file
	Root string // prefix of every mount point it lists
}

// HostTables are the tables to try, in order, for the host's mounts. Init's
// table (which a container can read only with the host's PID namespace and
// CAP_SYS_PTRACE, and which hidepid hides) comes first when its mount
// points can be opened: below rootFS when one was given, or as they are
// when init's mount namespace is ours. A container given neither gets its
// own table alone: statting the host's "/" there would measure the
// container's.
func HostTables(procFS, rootFS string) []Table {
	own := Table{Path: filepath.Join(procFS, "self", "mountinfo"), Root: "/"}
	if rootFS == "" {
		rootFS = "/"
	}
	if filepath.Clean(rootFS) == "/" && !sameMountNS(procFS) {
		return []Table{own}
	}
	return []Table{{Path: filepath.Join(procFS, "1", "mountinfo"), Root: rootFS}, own}
}

// sameMountNS reports whether this process is in init's mount namespace;
// false when that cannot be told (init's namespace is not ours to read).
func sameMountNS(procFS string) bool {
	initNS, err1 := os.Readlink(filepath.Join(procFS, "1", "ns", "mnt"))
	selfNS, err2 := os.Readlink(filepath.Join(procFS, "self", "ns", "mnt"))
	return err1 == nil && err2 == nil && initNS == selfNS
}

// Unreadable reports whether err from reading a table means trying the
// next one: the file is hidden (hidepid) or not ours to read (ptrace
// access to init).
func Unreadable(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)
}

// ReadHost reads the first of HostTables that can be read, and returns its
// contents and the root its mount points are below.
func ReadHost(procFS, rootFS string) (b []byte, root string, err error) {
	for _, t := range HostTables(procFS, rootFS) {
		if b, err = os.ReadFile(t.Path); err == nil {
			return b, t.Root, nil
		}
		if !Unreadable(err) {
			break
		}
	}
	return nil, "", fmt.Errorf("reading mountinfo: %w", err)
}
