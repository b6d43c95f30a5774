// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package userfile reads and writes the files a user names to crmon: the
// config file, secret files, limits files, the web config, reports. A name
// given by a user can be anything: a FIFO that never answers, /dev/zero,
// a directory, a file of gigabytes, a file on a mount that hangs. Every
// such read goes through Read, which takes regular files only, reads at
// most a bound, and gives up after a deadline.
package userfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	// ErrNotRegular is what Read returns, wrapped with the path and the
	// kind of file, for anything but a regular file.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge is what Read returns, wrapped with the path and the
	// bound, for a file longer than the bound.
	ErrTooLarge = errors.New("the most crmon reads for it")
	// ErrTimeout is what Read returns when the file system did not answer
	// within Timeout.
	ErrTimeout = errors.New("no answer from the file system")
)

// Timeout bounds one Read: a config or secret file on a hung network
// mount must not hold up the agent's start, a reload or a shutdown.
const Timeout = 5 * time.Second

// maxStuck bounds the reads left blocked in the kernel after their
// deadline (each holds a goroutine and a file descriptor until the mount
// answers); past it Read refuses at once.
const maxStuck = 8

var stuck atomic.Int32

// Read returns the content of the regular file at path, which must be at
// most limit bytes long. It refuses directories, FIFOs, sockets and devices
// without reading them, and a file longer than limit after reading limit+1
// bytes of it: the bound holds while reading, whatever the file claims to
// be. Errors are *fs.PathError naming the path, wrapping ErrNotRegular,
// ErrTooLarge, ErrTimeout or the system's error.
func Read(path string, limit int64) ([]byte, error) {
	return readWithin(path, limit, Timeout)
}

func readWithin(path string, limit int64, timeout time.Duration) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	if stuck.Load() >= maxStuck {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: earlier reads are still blocked", ErrTimeout)}
	}
	go func() {
		b, err := read(path, limit)
		done <- result{b, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.b, r.err
	case <-t.C:
		stuck.Add(1)
		go func() {
			<-done
			stuck.Add(-1)
		}()
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w within %v", ErrTimeout, timeout)}
	}
}

func read(path string, limit int64) ([]byte, error) {
	// Refuse by the name first, so that a device is never opened (opening
	// some has side effects), then again by the descriptor, which is what
	// is read: the name may have been replaced in between.
	if fi, err := os.Stat(path); err != nil {
		return nil, err
	} else if err := regular(path, fi); err != nil {
		return nil, err
	}
	// O_NONBLOCK: a FIFO put there after the check must not block the
	// open waiting for a writer. It changes nothing for regular files.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := regular(path, fi); err != nil {
		return nil, err
	}
	// The size is a hint only (procfs says 0, a growing file says less);
	// what bounds the read is limit+1, the first byte too many.
	b := make([]byte, 0, max(min(limit, fi.Size())+1, 512))
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		end := min(int64(cap(b)), limit+1)
		n, err := f.Read(b[len(b):end])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("is longer than %s, %w", Size(limit), ErrTooLarge)}
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// regular returns an error naming what fi is unless it is a regular file.
func regular(path string, fi fs.FileInfo) error {
	m := fi.Mode()
	if m.IsRegular() {
		return nil
	}
	what := "a special file"
	switch {
	case m.IsDir():
		what = "a directory"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	case m&fs.ModeCharDevice != 0:
		what = "a character device"
	case m&fs.ModeDevice != 0:
		what = "a block device"
	}
	return &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("is %s, %w", what, ErrNotRegular)}
}

// Size formats a byte bound for messages: "1 MiB", "64 KiB", "100 bytes".
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
