// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package textpages

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/internal/testenv"
)

const maps = `00400000-01828000 r-xp 00000000 fe:00 9978128                            /usr/local/bin/crmon
01828000-02e3a000 r--p 01428000 fe:00 9978128                            /usr/local/bin/crmon
02e3a000-02f69000 rw-p 02a3a000 fe:00 9978128                            /usr/local/bin/crmon
02f69000-04fb9000 rw-p 00000000 00:00 0 
b8296c00000-b8297c00000 rw-p 00000000 00:00 0 
7f0000000000-7f0000001000 r--s 00000000 fe:00 9978128                    /usr/local/bin/crmon
7f0000001000-7f0000002000 r--p 00000000 fe:00 1234                       /usr/lib/locale/C.utf8/LC_CTYPE
7f0000002000-7f0000003000 r--p 00000000 fe:01 9978128                    /other/disk/same-inode
7f0000003000-7f0000004000 ---p 00000000 fe:00 9978128                    /usr/local/bin/crmon
7ffe07b9f000-7ffe07bc0000 rw-p 00000000 00:00 0                          [stack]
7ffe07bc4000-7ffe07bc6000 r-xp 00000000 00:00 0                          [vdso]
`

func TestReadOnlyMappings(t *testing.T) {
	text := Mapping{Start: 0x400000, End: 0x1828000, Perms: "r-xp"}
	rodata := Mapping{Start: 0x1828000, End: 0x2e3a000, Perms: "r--p"}
	for _, tc := range []struct {
		name string
		exe  File
		want []Mapping
	}{
		{"by inode and device", File{Ino: 9978128, Major: 0xfe, Minor: 0}, []Mapping{text, rodata}},
		{"by inode and device, path differs", File{Path: "/proc/1/root/crmon", Ino: 9978128, Major: 0xfe}, []Mapping{text, rodata}},
		// On overlayfs the maps line can show the layer's inode and device.
		{"by path", File{Path: "/usr/local/bin/crmon", Ino: 1, Major: 0, Minor: 42}, []Mapping{text, rodata}},
		{"another file", File{Path: "/bin/sh", Ino: 77, Major: 0xfe}, nil},
		{"anonymous never", File{Ino: 0}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadOnlyMappings([]byte(maps), tc.exe)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mappings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadOnlyMappingsBadInput(t *testing.T) {
	for _, in := range []string{
		"00400000 r-xp 00000000 fe:00 9978128 /usr/local/bin/crmon\n",
		"01828000-00400000 r-xp 00000000 fe:00 9978128 /usr/local/bin/crmon\n",
		"00400000-zz r-xp 00000000 fe:00 9978128 /usr/local/bin/crmon\n",
		"00400000-01828000 r-xp\n",
	} {
		if _, err := ReadOnlyMappings([]byte(in), File{Ino: 9978128, Major: 0xfe}); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

// TestRelease drops this test binary's read-only pages on the running
// kernel and checks that they were resident before, that fewer are
// after, and that code and read-only data the process had not run since
// (a regexp compile, a hash, formatting) still work: the pages come back
// from the file.
func TestRelease(t *testing.T) {
	if _, err := os.Stat("/proc/self/maps"); err != nil {
		t.Skipf("needs Linux /proc: %v", err)
	}
	before, err := rssFile("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if before == 0 {
		t.Fatal("RssFile is 0 before the release: nothing of the executable is resident?")
	}
	released, err := Release("/proc")
	if err != nil {
		t.Fatal(err)
	}
	after, err := rssFile("/proc")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RssFile %d KiB before, %d KiB after; released %d KiB", before>>10, after>>10, released>>10)
	if released <= 0 || after >= before {
		t.Errorf("released %d bytes; RssFile %d -> %d: want it lower", released, before, after)
	}

	re := regexp.MustCompile(`^(\d+)-(\d+) ([rwxp-]{4})$`)
	if m := re.FindStringSubmatch("12-34 r-xp"); len(m) != 4 || m[3] != "r-xp" {
		t.Errorf("regexp after the release: %q", m)
	}
	if got := fmt.Sprintf("%x", sha256.Sum256([]byte("crmon"))); got != "3e050f714df95eba76e76b976f53219aef6c8cffdc131a72169de481c4c7dd5c" {
		t.Errorf("sha256 after the release: %s", got)
	}
}

// TestReleasePIE runs Release in a position-independent build, as
// distributions build Go programs: its read-only data relocated at start
// (.data.rel.ro, made read-only after relocation) differs from the file,
// and dropping those pages would bring back the file's unrelocated
// pointers.
func TestReleasePIE(t *testing.T) {
	testenv.RequireLong(t, "a build of a helper program")
	gobin := testenv.RequireCommand(t, "go")
	bin := filepath.Join(t.TempDir(), "release")
	if out, err := exec.Command(gobin, "build", "-buildmode=pie", "-o", bin, "./testdata/release").CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).CombinedOutput()
	if err != nil {
		t.Fatalf("the PIE build after Release: %v\n%.2000s", err, out)
	}
	want := fmt.Sprintf("332833500 [\"12-34\" \"12\" \"34\"] %x\n", sha256.Sum256([]byte("crmon")))
	if string(out) != want {
		t.Errorf("the PIE build after Release printed %q, want %q", out, want)
	}
}

func TestWrittenMappings(t *testing.T) {
	smaps := `00400000-01828000 r-xp 00000000 fe:00 9978128                            /usr/local/bin/crmon
Size:              20640 kB
Rss:               11936 kB
Anonymous:             0 kB
Swap:                  0 kB
SwapPss:               0 kB
01828000-02e3a000 r--p 01428000 fe:00 9978128                            /usr/local/bin/crmon
Size:              23112 kB
Anonymous:           312 kB
Swap:                  0 kB
02e3a000-02f69000 r--p 02a3a000 fe:00 9978128                            /usr/local/bin/crmon
Size:               1212 kB
Anonymous:             0 kB
Swap:                  8 kB
SwapPss:               8 kB
7ffe07b9f000-7ffe07bc0000 rw-p 00000000 00:00 0                          [stack]
Anonymous:            16 kB
`
	got := writtenMappings([]byte(smaps))
	want := map[uint64]bool{0x1828000: true, 0x2e3a000: true, 0x7ffe07b9f000: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("written mappings (-want +got):\n%s", diff)
	}
}
