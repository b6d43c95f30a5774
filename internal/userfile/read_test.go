// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package userfile

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 511, 512, 513, 4096, 100000} {
		p := filepath.Join(dir, "f")
		want := bytes.Repeat([]byte("x"), n)
		if err := os.WriteFile(p, want, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Read(p, int64(n))
		if err != nil {
			t.Fatalf("%d bytes, limit %d: %v", n, n, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: read %d", n, len(got))
		}
	}
}

func TestReadTooLarge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(p, bytes.Repeat([]byte("x"), 1<<20+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Read(p, 1<<20)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	for _, s := range []string{p, "longer than 1 MiB"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not say %q", err, s)
		}
	}
}

// A procfs file says its size is 0: the bound must hold while reading.
func TestReadBoundsWhatTheSizeHides(t *testing.T) {
	fi, err := os.Stat("/proc/self/mountinfo")
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
		t.Skip("no procfs here")
	}
	b, err := Read("/proc/self/mountinfo", 1<<20)
	if err != nil || len(b) == 0 {
		t.Fatalf("mountinfo: %d bytes, %v", len(b), err)
	}
	if _, err := Read("/proc/self/mountinfo", int64(len(b)/2)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("mountinfo with a limit of half its size: err = %v, want ErrTooLarge", err)
	}
}

func TestReadRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	zeroLink := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zeroLink); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, what string
	}{
		{"/dev/zero", "is a character device"},
		{zeroLink, "is a character device"},
		{fifo, "is a named pipe (FIFO)"},
		{sock, "is a socket"},
		{dir, "is a directory"},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			start := time.Now()
			b, err := Read(tc.path, 1<<20)
			if !errors.Is(err, ErrNotRegular) {
				t.Fatalf("Read(%s) = %d bytes, %v; want ErrNotRegular", tc.path, len(b), err)
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Path != tc.path {
				t.Errorf("%v does not name %s", err, tc.path)
			}
			if !strings.Contains(err.Error(), tc.what+", not a regular file") {
				t.Errorf("%q does not say %q", err, tc.what)
			}
			// Refused, not timed out: nothing was waited for.
			if d := time.Since(start); d >= Timeout {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestReadMissing(t *testing.T) {
	_, err := Read(filepath.Join(t.TempDir(), "nope"), 10)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}
