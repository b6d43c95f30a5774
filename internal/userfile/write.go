// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package userfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MaxWriteBytes bounds what one Output holds, in memory until Commit: a
// report far larger than any run produces is a fault, not something to
// fill a disk with.
const MaxWriteBytes = 256 << 20

// WriteTimeout bounds each step of an Output that touches the file
// system (Create, Commit, Abort): a report on a hung network mount must
// not hold crmon, or CMD's exit code, forever.
const WriteTimeout = 30 * time.Second

// maxSymlinks is the kernel's bound on the symlinks one lookup follows
// (MAXSYMLINKS), past which it fails with ELOOP.
const maxSymlinks = 40

// Output is a file crmon writes on a user's say-so (a report), made safe
// to write as root in a directory others can write to:
//
//   - it is written to a new temporary file beside the target and renamed
//     over it at Commit, so nothing ever writes through a link planted at
//     the target, a reader never sees half a report, and a target that
//     is not a regular file (a device, a FIFO, a directory) is refused;
//   - on the way to the target, a symlink is followed only where the
//     kernel's protected_symlinks rule would follow it: not one in a
//     sticky world-writable directory (/tmp) owned by someone other than
//     the follower or the directory's owner, whatever the sysctl says.
//
// Create opens it before the work whose result it holds, so that a path
// that cannot be written fails first; Commit or Abort ends it.
type Output struct {
	name string // as given, for errors
	path string // the resolved target
	tmp  *os.File
	buf  bytes.Buffer
	done bool
}

// Create resolves name and opens the temporary file that Commit renames
// over it. Errors name the path and say what is wrong with it.
func Create(name string) (*Output, error) {
	made := make(chan *Output, 1)
	err := within("write", name, WriteTimeout, func() error {
		o, err := create(name)
		if err == nil {
			made <- o
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return <-made, nil
}

func create(name string) (*Output, error) {
	target, err := resolveForWrite(name)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(target)
	if err == nil && !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "write", Path: name, Err: fmt.Errorf("%s, not a regular file", fileKind(fi.Mode()))}
	}
	dir, base := filepath.Split(target)
	tmp, err := createTemp(dir, "."+base+".crmon-")
	if err != nil {
		return nil, &fs.PathError{Op: "write", Path: name, Err: fmt.Errorf("cannot create a file in %s: %w", filepath.Clean(dir), err)}
	}
	if fi != nil {
		// A file replaced keeps its permissions.
		if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return nil, &fs.PathError{Op: "write", Path: name, Err: err}
		}
	}
	return &Output{name: name, path: target, tmp: tmp}, nil
}

// createTemp creates a new file in dir, as os.Create would (0666 less the
// umask; os.CreateTemp makes it 0600), under a name no one else has.
func createTemp(dir, prefix string) (*os.File, error) {
	for range 100 {
		p := filepath.Join(dir, prefix+strconv.FormatUint(uint64(rand.Uint32()), 36))
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return f, err
	}
	return nil, fs.ErrExist
}

// Path is the file Commit writes: the name given, its symlinks resolved.
func (o *Output) Path() string { return o.path }

// Write adds p to what Commit writes, at most MaxWriteBytes in all.
func (o *Output) Write(p []byte) (int, error) {
	if int64(o.buf.Len())+int64(len(p)) > MaxWriteBytes {
		return 0, fmt.Errorf("writing %s: more than %d bytes", o.path, int64(MaxWriteBytes))
	}
	return o.buf.Write(p)
}

// Commit puts what was written in place of the target, complete or not at
// all.
func (o *Output) Commit() error {
	if o.done {
		return fmt.Errorf("writing %s: already committed or aborted", o.path)
	}
	o.done = true
	b, tmp := o.buf.Bytes(), o.tmp
	err := within("write", o.path, WriteTimeout, func() error {
		_, err := tmp.Write(b)
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), o.path)
		}
		if err != nil {
			os.Remove(tmp.Name())
		}
		return err
	})
	o.buf = bytes.Buffer{}
	if err != nil {
		return fmt.Errorf("writing %s: %w", o.path, err)
	}
	return nil
}

// Abort drops what was written; the target stays as it was. After Commit
// it does nothing.
func (o *Output) Abort() {
	if o.done {
		return
	}
	o.done = true
	o.buf = bytes.Buffer{}
	tmp := o.tmp
	_ = within("remove", tmp.Name(), WriteTimeout, func() error {
		tmp.Close()
		return os.Remove(tmp.Name())
	})
}

// within runs op, giving up after timeout: a file system that does not
// answer leaves op blocked in the kernel, counted with Read's, and the
// caller gets ErrTimeout.
func within(op, path string, timeout time.Duration, f func() error) error {
	if stuck.Load() >= maxStuck {
		return &fs.PathError{Op: op, Path: path, Err: fmt.Errorf("%w: earlier calls are still blocked", ErrTimeout)}
	}
	done := make(chan error, 1)
	go func() { done <- f() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		stuck.Add(1)
		go func() {
			<-done
			stuck.Add(-1)
		}()
		return &fs.PathError{Op: op, Path: path, Err: fmt.Errorf("%w within %v", ErrTimeout, timeout)}
	}
}

// WriteFile writes the file name with what write produces, as Output does.
func WriteFile(name string, write func(io.Writer) error) error {
	o, err := Create(name)
	if err != nil {
		return err
	}
	if err := write(o); err != nil {
		o.Abort()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return o.Commit()
}

// resolveForWrite returns name made absolute with every symlink on the way
// resolved, following each only where protected_symlinks allows. The last
// component need not exist.
func resolveForWrite(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", &fs.PathError{Op: "write", Path: name, Err: errors.New("not a file name")}
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return "", &fs.PathError{Op: "write", Path: name, Err: err}
	}
	todo := strings.Split(abs, "/")
	cur, links := "/", 0
	for len(todo) > 0 {
		part := todo[0]
		todo = todo[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) && len(todo) == 0 {
			return next, nil
		}
		if err != nil {
			return "", &fs.PathError{Op: "write", Path: name, Err: err}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if len(todo) > 0 && !fi.IsDir() {
				return "", &fs.PathError{Op: "write", Path: name, Err: fmt.Errorf("%s: %w", next, syscall.ENOTDIR)}
			}
			cur = next
			continue
		}
		if links++; links > maxSymlinks {
			return "", &fs.PathError{Op: "write", Path: name, Err: syscall.ELOOP}
		}
		if err := mayFollow(cur, next, fi); err != nil {
			return "", &fs.PathError{Op: "write", Path: name, Err: err}
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", &fs.PathError{Op: "write", Path: name, Err: err}
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return cur, nil
}

// mayFollow is the kernel's protected_symlinks rule (may_follow_link in
// fs/namei.c): a symlink in a sticky world-writable directory is followed
// only by its owner or when the directory's owner owns it too. Anyone
// who can write to /tmp can plant a link there to a file only root may
// write.
func mayFollow(dir, link string, fi fs.FileInfo) error {
	lst, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	var dst syscall.Stat_t
	if err := syscall.Stat(dir, &dst); err != nil {
		return err
	}
	if dst.Mode&syscall.S_ISVTX == 0 || dst.Mode&0o002 == 0 {
		return nil
	}
	if lst.Uid == uint32(os.Geteuid()) || lst.Uid == dst.Uid {
		return nil
	}
	return fmt.Errorf("refusing to follow %s: a symlink owned by uid %d in the sticky world-writable directory %s (name the file it points to instead)", link, lst.Uid, dir)
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	default:
		return "a special file"
	}
}

// Append adds what write produces to the end of the regular file name,
// creating it if need be: a file a CI system hands every step to add to
// ($GITHUB_STEP_SUMMARY). The path is resolved as for Create, the content
// is bounded by MaxWriteBytes and written with one write(2) (O_APPEND),
// so that steps appending at the same time do not interleave, and the
// whole takes at most WriteTimeout.
func Append(name string, write func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := write(&limitedWriter{w: &buf, n: MaxWriteBytes}); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return within("append", name, WriteTimeout, func() error {
		target, err := resolveForWrite(name)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o666)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return &fs.PathError{Op: "append", Path: name, Err: fmt.Errorf("%s, not a regular file", fileKind(fi.Mode()))}
		}
		if _, err := f.Write(buf.Bytes()); err != nil {
			return err
		}
		return f.Close()
	})
}

// limitedWriter fails a write past n bytes.
type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, fmt.Errorf("more than %s", Size(MaxWriteBytes))
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}
