// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/mountinfo"
)

// containerMounts is a host mount table with n containers' mounts after
// the fixture's own: each container's overlay root and its network
// namespace, as Docker 20.10 makes them.
func containerMounts(t testing.TB, n int) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixturePaths(t).ProcFS, "1", "mountinfo"))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	sb.Write(b)
	for i := range n {
		id := fmt.Sprintf("%064x", i)
		fmt.Fprintf(&sb, "%d 27 0:%d / /var/lib/docker/overlay2/%s/merged rw,relatime shared:%d - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A:/var/lib/docker/overlay2/l/B,upperdir=/var/lib/docker/overlay2/%[3]s/diff,workdir=/var/lib/docker/overlay2/%[3]s/work\n", 1000+2*i, 100+i, id, 500+i)
		fmt.Fprintf(&sb, "%d 27 0:4 net:[%d] /run/docker/netns/%s rw - nsfs nsfs rw\n", 1001+2*i, 4026532188+i, id[:12])
	}
	// A mount whose type is not excluded but whose mount point is, and one
	// with a space in its mount point.
	sb.WriteString("5000 27 254:1 /x /var/lib/docker/volumes/v rw - ext4 /dev/vda1 rw\n")
	sb.WriteString("5001 27 254:1 /y /srv/a\\040b rw - ext4 /dev/vda1 rw\n")
	return []byte(sb.String())
}

// TestFilesystemSkipsExcludedTypesUnparsed: telling excluded lines by
// their type field alone lists exactly the mounts that parsing every line
// and applying both exclusions lists.
func TestFilesystemSkipsExcludedTypesUnparsed(t *testing.T) {
	proc := copyProc(t)
	table := containerMounts(t, 50)
	if err := os.WriteFile(filepath.Join(proc, "1", "mountinfo"), table, 0o644); err != nil {
		t.Fatal(err)
	}
	o := Options{FilesystemNoStatfs: true}
	c := build(t, "filesystem", collect.Paths{ProcFS: proc, SysFS: fixturePaths(t).SysFS, RootFS: t.TempDir()}, o).(*filesystemCollector)
	if err := c.Update(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range c.mounts {
		got = append(got, m.MountPoint)
	}

	all, err := mountinfo.Parse(table)
	if err != nil {
		t.Fatal(err)
	}
	o = o.withDefaults()
	mpEx, fsEx := regexp.MustCompile(o.FilesystemMountPointsExclude), regexp.MustCompile(o.FilesystemFSTypesExclude)
	var want []string
	seen := map[string]bool{}
	for _, m := range all {
		k := m.Source + "\x00" + m.MountPoint
		if mpEx.MatchString(m.MountPoint) || fsEx.MatchString(m.FSType) || seen[k] {
			continue
		}
		seen[k] = true
		want = append(want, m.MountPoint)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	if !strings.Contains(strings.Join(got, "\n"), "/srv/a b") {
		t.Errorf("mounts %q lack /srv/a b", got)
	}

	// A malformed line still voids the table, as before.
	if err := os.WriteFile(filepath.Join(proc, "1", "mountinfo"), append(table, "bad line - \n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	c = build(t, "filesystem", collect.Paths{ProcFS: proc, SysFS: fixturePaths(t).SysFS, RootFS: t.TempDir()}, o).(*filesystemCollector)
	if err := c.Update(t.Context(), time.Now()); err == nil {
		t.Error("a malformed mountinfo line: no error")
	}
}

// BenchmarkFilesystemLoad is one read of a changed mount table holding
// 1 000 containers' mounts, as on a host where containers come and go.
func BenchmarkFilesystemLoad(b *testing.B) {
	proc := b.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "1"), 0o755); err != nil {
		b.Fatal(err)
	}
	table := containerMounts(b, 1000)
	if err := os.WriteFile(filepath.Join(proc, "1", "mountinfo"), table, 0o644); err != nil {
		b.Fatal(err)
	}
	c := build(b, "filesystem", collect.Paths{ProcFS: proc, SysFS: fixturePaths(b).SysFS, RootFS: b.TempDir()}, Options{FilesystemNoStatfs: true}).(*filesystemCollector)
	b.ReportAllocs()
	b.SetBytes(int64(len(table)))
	now := time.Now()
	for b.Loop() {
		c.sum++ // the table changed
		now = now.Add(time.Second)
		if err := c.load(now); err != nil {
			b.Fatal(err)
		}
	}
}
