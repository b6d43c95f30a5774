// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package cgroupid

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/internal/testenv"
)

const hybridMountinfo = `25 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Mounts
		err  error
	}{
		{
			name: "hybrid",
			in:   hybridMountinfo,
			want: Mounts{
				Unified: Mount{Dir: "/sys/fs/cgroup/unified", Root: "/"},
				Blkio:   Mount{Dir: "/sys/fs/cgroup/blkio", Root: "/"},
			},
		},
		{
			name: "pure v2",
			in:   "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n",
			want: Mounts{Unified: Mount{Dir: "/sys/fs/cgroup", Root: "/"}},
		},
		{
			name: "v1 with combined controllers, namespaced v2, escaped path",
			in: "38 31 0:35 /docker/x /sys/fs/cgroup/blkio,io rw - cgroup cgroup rw,blkio,cpu\n" +
				`41 31 0:38 /docker/x /mnt/cg\040two rw - cgroup2 cgroup2 rw` + "\n",
			want: Mounts{
				Unified: Mount{Dir: "/mnt/cg two", Root: "/docker/x"},
				Blkio:   Mount{Dir: "/sys/fs/cgroup/blkio,io", Root: "/docker/x"},
			},
		},
		{
			name: "no cgroup2",
			in:   "38 31 0:35 / /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio\n",
			want: Mounts{Blkio: Mount{Dir: "/sys/fs/cgroup/blkio", Root: "/"}},
			err:  ErrNoCgroup2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMountinfo([]byte(tt.in))
			if !errors.Is(err, tt.err) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseMountinfo() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseCgroups(t *testing.T) {
	in := "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t4\t1\nblkio\t7\t4\t1\nio\t0\t1\t1\n"
	tests := []struct {
		controller string
		want       int
	}{
		{"blkio", 7},
		{"cpu", 1},
		{"io", 0},
		{"memory", 0},
	}
	for _, tt := range tests {
		got, err := parseCgroups([]byte(in), tt.controller)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("parseCgroups(%s) = %d, want %d", tt.controller, got, tt.want)
		}
	}
}

// TestResolverTree resolves the inodes of a plain directory tree: the
// Resolver only relies on directory inodes, so any filesystem will do.
func TestResolverTree(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"docker/abc", "system.slice/x.service"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := NewResolver(Mount{Dir: dir, Root: "/"})
	want := map[string]uint64{}
	for _, p := range []string{"/", "/docker", "/docker/abc", "/system.slice/x.service"} {
		id, err := r.ID(p)
		if err != nil {
			t.Fatal(err)
		}
		want[p] = id
	}
	got := map[string]uint64{}
	for p, id := range want {
		rp, ok := r.Path(id)
		if !ok {
			t.Fatalf("Path(%d) of %s not found", id, p)
		}
		got[rp] = id
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paths mismatch (-want +got):\n%s", diff)
	}
	if w := r.Walks(); w != 1 {
		t.Errorf("walks = %d, want 1 (one walk fills the cache)", w)
	}

	// A new directory is found by one more walk.
	if err := os.Mkdir(filepath.Join(dir, "late"), 0o755); err != nil {
		t.Fatal(err)
	}
	id, _ := r.ID("/late")
	if p, ok := r.Path(id); !ok || p != "/late" {
		t.Errorf("Path(late) = %q, %v; want /late", p, ok)
	}
	// An ID no walk finds stays unknown without walking again.
	const gone = 1 << 60
	for range 3 {
		if _, ok := r.Path(gone); ok {
			t.Fatal("unknown id resolved")
		}
	}
	if w := r.Walks(); w != 3 {
		t.Errorf("walks = %d, want 3", w)
	}
	r.Add(gone, "/removed")
	if p, ok := r.Path(gone); !ok || p != "/removed" {
		t.Errorf("Path after Add = %q, %v", p, ok)
	}
}

// TestResolverCgroupfs checks against the host's own cgroup2 hierarchy.
func TestResolverCgroupfs(t *testing.T) {
	testenv.RequireRoot(t)
	m, err := FindMounts("/proc")
	if err != nil {
		testenv.Unavailable(t, "no cgroup2: %v", err)
	}
	r := NewResolver(m.Unified)
	dir, err := os.MkdirTemp(m.Unified.Dir, "crmon-cgroupid-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	id, err := ID(dir)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := r.Path(id)
	if want := "/" + filepath.Base(dir); !ok || p != want {
		t.Errorf("Path(%d) = %q, %v; want %q", id, p, ok, want)
	}
	if root, _ := r.ID("/"); root != 1 {
		t.Errorf("root id = %d, want 1", root)
	}
}
