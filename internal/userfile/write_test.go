// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package userfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/testenv"
)

const nobody = 65534

func writeString(s string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

// stickyDir is a directory like /tmp: world-writable with the sticky bit.
func stickyDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// noLeftovers checks that no temporary file is left in dir.
func noLeftovers(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".crmon-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// TestWriteRefusesOthersSymlinkInStickyDir is the attack: another user
// plants /tmp/r.json -> /etc/important and waits for root to write a
// report there. Neither a link as the last component nor one on the way
// is followed, whatever fs.protected_symlinks says.
func TestWriteRefusesOthersSymlinkInStickyDir(t *testing.T) {
	testenv.RequireRoot(t)
	secret := filepath.Join(t.TempDir(), "important")
	if err := os.WriteFile(secret, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := stickyDir(t)
	link := filepath.Join(tmp, "r.json")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	dirLink := filepath.Join(tmp, "d")
	if err := os.Symlink(filepath.Dir(secret), dirLink); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{link, dirLink} {
		if err := os.Lchown(l, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{link, filepath.Join(dirLink, "important")} {
		err := WriteFile(name, writeString("pwned"))
		if err == nil || !strings.Contains(err.Error(), "refusing to follow") {
			t.Errorf("WriteFile(%s) = %v, want a refusal to follow the link", name, err)
		}
	}
	if got := readString(t, secret); got != "keep me" {
		t.Errorf("the link's target was written: %q", got)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the planted link was replaced or removed: %v %v", fi, err)
	}
	noLeftovers(t, tmp)
	noLeftovers(t, filepath.Dir(secret))
}

// TestWriteFollowsOwnSymlink: a link its follower or the directory's owner
// owns is followed, as the kernel would, and the file it points to is
// replaced while the link stays.
func TestWriteFollowsOwnSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.json")
	if err := os.WriteFile(real, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := stickyDir(t)
	link := filepath.Join(tmp, "r.json")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(link, writeString("new")); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, real); got != "new" {
		t.Errorf("target = %q, want new", got)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}
	if fi, _ := os.Stat(real); fi.Mode().Perm() != 0o600 {
		t.Errorf("a replaced file's mode = %v, want it kept (0600)", fi.Mode().Perm())
	}
	noLeftovers(t, dir)
}

// TestCreateRefusesWhatIsNotARegularFile: renaming over /dev/null or a
// FIFO as root would replace it; writing into a FIFO would block.
func TestCreateRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"/dev/null": "a device",
		fifo:        "a FIFO",
		dir:         "a directory",
	} {
		o, err := Create(name)
		if err == nil {
			o.Abort()
			t.Errorf("Create(%s) succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), name) {
			t.Errorf("Create(%s) = %v, want an error naming it and %q", name, err, want)
		}
	}
	if fi, err := os.Lstat("/dev/null"); err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is no longer a device: %v %v", fi, err)
	}
	noLeftovers(t, dir)
}

// TestCreateFailsEarly: a path that cannot be written fails at Create,
// before the work whose result it would hold.
func TestCreateFailsEarly(t *testing.T) {
	for _, name := range []string{"/proc/x.json", filepath.Join(t.TempDir(), "missing", "r.json"), "/proc/self/status/x"} {
		o, err := Create(name)
		if err == nil {
			o.Abort()
			t.Errorf("Create(%s) succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), name) {
			t.Errorf("Create(%s) = %v, want the path named", name, err)
		}
	}
}

// TestAbortKeepsTarget: until Commit the target is untouched, and Abort
// leaves nothing behind.
func TestAbortKeepsTarget(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.json")
	if err := os.WriteFile(p, []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(o, "half"); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, p); got != "before" {
		t.Errorf("target changed before Commit: %q", got)
	}
	o.Abort()
	if got := readString(t, p); got != "before" {
		t.Errorf("target changed by Abort: %q", got)
	}
	noLeftovers(t, dir)

	// A new file gets 0666 less the umask, as os.Create gives.
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	n := filepath.Join(dir, "new.json")
	if err := WriteFile(n, writeString("x")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(n); fi.Mode().Perm() != 0o644 {
		t.Errorf("new file mode = %v, want 0644", fi.Mode().Perm())
	}
}

// TestWithinGivesUp: a file system call that does not return is given up
// after its deadline, with ErrTimeout naming the path.
func TestWithinGivesUp(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	err := within("write", "/mnt/hung/r.json", 50*time.Millisecond, func() error { <-block; return nil })
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "/mnt/hung/r.json") {
		t.Errorf("within = %v, want ErrTimeout naming the path", err)
	}
}

// TestWriteIsBounded: an Output refuses to hold more than MaxWriteBytes.
func TestWriteIsBounded(t *testing.T) {
	dir := t.TempDir()
	o, err := Create(filepath.Join(dir, "big.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Abort()
	chunk := make([]byte, 1<<20)
	var n int64
	for n <= MaxWriteBytes {
		m, err := o.Write(chunk)
		n += int64(m)
		if err != nil {
			break
		}
	}
	if n > MaxWriteBytes {
		t.Errorf("Output took %d bytes, more than %d", n, MaxWriteBytes)
	}
}
