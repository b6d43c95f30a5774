// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package mountinfo

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	in := `27 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw,discard
31 27 259:1 / /srv/data\040dir rw,relatime shared:7 master:2 - xfs /dev/nvme0n1p1 rw,attr2
33 27 254:16 / /mnt/ro ro,relatime - ext4 /dev/vdb rw
34 27 0:42 / /mnt/sb rw - ext4 /dev/vdc ro

41 31 0:38 /docker/x /sys/fs/cgroup/unified rw - cgroup2 cgroup2
`
	want := []Mount{
		{Major: 254, Minor: 1, Root: "/", MountPoint: "/", Options: "rw,relatime", FSType: "ext4", Source: "/dev/vda1", SuperOptions: "rw,discard"},
		{Major: 259, Minor: 1, Root: "/", MountPoint: "/srv/data dir", Options: "rw,relatime", FSType: "xfs", Source: "/dev/nvme0n1p1", SuperOptions: "rw,attr2"},
		{Major: 254, Minor: 16, Root: "/", MountPoint: "/mnt/ro", Options: "ro,relatime", FSType: "ext4", Source: "/dev/vdb", SuperOptions: "rw"},
		{Major: 0, Minor: 42, Root: "/", MountPoint: "/mnt/sb", Options: "rw", FSType: "ext4", Source: "/dev/vdc", SuperOptions: "ro"},
		{Major: 0, Minor: 38, Root: "/docker/x", MountPoint: "/sys/fs/cgroup/unified", Options: "rw", FSType: "cgroup2", Source: "cgroup2"},
	}
	got, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	for i, ro := range []bool{false, false, true, true, false} {
		if got[i].ReadOnly() != ro {
			t.Errorf("%s: ReadOnly = %v, want %v", got[i].MountPoint, !ro, ro)
		}
	}
	if _, err := Parse([]byte("27 1 254:1 / / rw\n")); !errors.Is(err, ErrMalformed) {
		t.Errorf("line without separator: err = %v, want ErrMalformed", err)
	}
}

func TestParseLineMalformed(t *testing.T) {
	for _, line := range []string{
		"27 1 254:1 / / rw",                     // no separator
		"27 1 254:1 / / rw - ext4",              // no source
		"27 1 254-1 / / rw - ext4 /dev/vda1 rw", // bad device
		"27 1 254:x / / rw - ext4 /dev/vda1 rw", // bad minor
		"27 1 254:1 / - rw ext4 /dev/vda1 rw",   // "-" among the fixed fields
	} {
		if m, err := ParseLine(line); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseLine(%q) = %+v, %v; want ErrMalformed", line, m, err)
		}
	}
}

func TestUnescape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/plain", "/plain"},
		{`/a\040b`, "/a b"},
		{`/tab\011nl\012`, "/tab\tnl\n"},
		{`/back\134slash`, `/back\slash`},
		{`/short\04`, `/short\04`}, // too short to be an escape
		{`/not\999octal`, `/not\999octal`},
	} {
		if got := Unescape(tc.in); got != tc.want {
			t.Errorf("Unescape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestReadOnly(t *testing.T) {
	for _, tc := range []struct {
		m    Mount
		want bool
	}{
		{Mount{Options: "rw,relatime", SuperOptions: "rw"}, false},
		{Mount{Options: "ro,relatime", SuperOptions: "rw"}, true},
		{Mount{Options: "rw", SuperOptions: "ro"}, true},
		{Mount{Options: "rw,errors=ro", SuperOptions: "rw"}, false},
	} {
		if got := tc.m.ReadOnly(); got != tc.want {
			t.Errorf("%+v ReadOnly = %v, want %v", tc.m, got, tc.want)
		}
	}
}

// TestHostTables checks whose mount table names the host's mounts, and
// below which root its mount points open.
func TestHostTables(t *testing.T) {
	proc := t.TempDir() // no ns links: init's namespace cannot be compared
	own := Table{Path: filepath.Join(proc, "self", "mountinfo"), Root: "/"}
	initT := Table{Path: filepath.Join(proc, "1", "mountinfo"), Root: "/rootfs"}
	if got := HostTables(proc, "/rootfs"); !slices.Equal(got, []Table{initT, own}) {
		t.Errorf("host / at /rootfs: %v, want init's below /rootfs, then ours", got)
	}
	// No host root given and no way to tell that init's mounts are ours:
	// init's "/" would be statted as our "/".
	for _, root := range []string{"/", "", "//"} {
		if got := HostTables(proc, root); !slices.Equal(got, []Table{own}) {
			t.Errorf("rootfs %q, namespaces unknown: %v, want our own table alone", root, got)
		}
	}
	// This process shares init's mount namespace when it can read both
	// links and they agree, as on a host.
	a, err1 := os.Readlink("/proc/1/ns/mnt")
	b, err2 := os.Readlink("/proc/self/ns/mnt")
	got := HostTables("/proc", "/")
	if err1 == nil && err2 == nil && a == b {
		if len(got) != 2 || got[0].Path != "/proc/1/mountinfo" || got[0].Root != "/" {
			t.Errorf("in init's mount namespace: %v, want init's table first, as it is", got)
		}
	} else if len(got) != 1 || got[0].Path != "/proc/self/mountinfo" {
		t.Errorf("outside init's mount namespace (%v %v): %v, want our own table alone", err1, err2, got)
	}
}

func TestFSType(t *testing.T) {
	for _, tc := range []struct {
		line, want string
		ok         bool
	}{
		{"27 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw,discard", "ext4", true},
		{"31 27 259:1 / /srv/data\\040-\\040dir rw shared:7 master:2 - xfs /dev/nvme0n1p1 rw", "xfs", true},
		{"900 27 0:99 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw,lowerdir=/a:/b", "overlay", true},
		{"27 1 254:1 / / rw - ext4", "ext4", true},
		{"27 1 254:1 / / rw", "", false},
		{"27 1 254:1 / / rw - ", "", false},
	} {
		got, ok := FSType([]byte(tc.line))
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("FSType(%q) = %q, %v; want %q, %v", tc.line, got, ok, tc.want, tc.ok)
		}
		// It agrees with ParseLine wherever that parses the line.
		if m, err := ParseLine(tc.line); err == nil && m.FSType != string(got) {
			t.Errorf("FSType(%q) = %q, ParseLine's %q", tc.line, got, m.FSType)
		}
	}
}
