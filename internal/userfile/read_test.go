// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package userfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/testenv"
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

// A regular file whose read never returns (a hung mount) fails after the
// deadline; the read left behind is counted until the kernel returns it.
// A tracefs instance's trace_pipe is such a file: a regular file whose
// read blocks until something is traced. The test releases it by tracing
// more than the read's bound through the instance's trace_marker.
func TestReadDeadline(t *testing.T) {
	testenv.RequireRoot(t)
	const tracefs = "/sys/kernel/tracing"
	if _, err := os.Stat(filepath.Join(tracefs, "instances")); err != nil {
		testenv.Unavailable(t, "tracefs is not mounted at %s: %v", tracefs, err)
	}
	inst := filepath.Join(tracefs, "instances", fmt.Sprintf("crmon-userfile-%d", os.Getpid()))
	if err := os.Mkdir(inst, 0o700); err != nil {
		t.Fatal(err)
	}
	pipe := filepath.Join(inst, "trace_pipe")
	release := func() {
		if err := os.WriteFile(filepath.Join(inst, "trace_marker"), []byte("done\n"), 0); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() {
		// The read must have let go of the instance before it can go.
		for i := 0; ; i++ {
			err := os.Remove(inst)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				return
			}
			if i == 100 {
				t.Errorf("removing %s: %v", inst, err)
				return
			}
			release()
			time.Sleep(50 * time.Millisecond)
		}
	})
	// Wake readers on the first byte traced, not when the buffer is half
	// full.
	if err := os.WriteFile(filepath.Join(inst, "buffer_percent"), []byte("0\n"), 0); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(pipe); err != nil || !fi.Mode().IsRegular() {
		testenv.Unavailable(t, "%s is not a regular file here: %v", pipe, err)
	}

	before := stuck.Load()
	_, err := readWithin(pipe, 16, 200*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("reading %s = %v, want ErrTimeout", pipe, err)
	}
	if !strings.Contains(err.Error(), pipe) {
		t.Errorf("%q does not name %s", err, pipe)
	}
	if n := stuck.Load(); n != before+1 {
		t.Errorf("stuck reads = %d, want %d", n, before+1)
	}
	release()
	deadline := time.Now().Add(10 * time.Second)
	for stuck.Load() != before {
		if time.Now().After(deadline) {
			t.Fatalf("stuck reads = %d 10s after the read was released, want %d", stuck.Load(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
