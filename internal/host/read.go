// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cpath is a NUL-terminated path, built once, so that opening it each tick
// does not allocate the C string that unix.Open would.
type cpath []byte

func mkpath(elem ...string) cpath {
	p := filepath.Join(elem...)
	return append([]byte(p), 0)
}

func (p cpath) String() string { return string(p[:len(p)-1]) }

// reader reads whole procfs/sysfs files into one reused buffer. The slice
// it returns is valid until the next read.
type reader struct {
	buf []byte
}

func newReader(size int) *reader { return &reader{buf: make([]byte, size)} }

// read reads the file at p. procfs and sysfs report sizes of 0 or 4096, so
// it reads until EOF and grows the buffer when it fills up.
func (r *reader) read(p cpath) ([]byte, error) {
	return r.readAt(unix.AT_FDCWD, p)
}

// readAt is read of p relative to the directory open at dirfd: in sysfs,
// each open by full path walks every component again, through the
// /sys/class symlinks.
func (r *reader) readAt(dirfd int, p cpath) ([]byte, error) {
	fd, err := openatDir(dirfd, p, unix.O_RDONLY)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p.String(), Err: err}
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(r.buf) {
			nb := make([]byte, 2*len(r.buf)+512)
			copy(nb, r.buf)
			r.buf = nb
		}
		m, err := unix.Read(fd, r.buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: p.String(), Err: err}
		}
		if m == 0 {
			return r.buf[:n], nil
		}
		n += m
	}
}

// pread reads a whole open file from offset 0; procfs regenerates the
// content on each read from the start.
func (r *reader) pread(fd int) ([]byte, error) {
	n := 0
	for {
		if n == len(r.buf) {
			nb := make([]byte, 2*len(r.buf)+512)
			copy(nb, r.buf)
			r.buf = nb
		}
		m, err := unix.Pread(fd, r.buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return r.buf[:n], nil
		}
		n += m
	}
}

// openFile is a procfs file kept open between ticks and pread each time.
// Opening a /proc/net path costs several times what generating the file
// does, and a fresh open starts with a one-page seq_file buffer, so a file
// larger than a page (/proc/net/netstat) is generated twice. The file is
// reopened after a failed or empty read: its entry goes away when, say,
// the module behind it is unloaded.
type openFile struct {
	path cpath
	fd   int
	open bool
}

// read returns the file's content in r's buffer.
func (f *openFile) read(r *reader) ([]byte, error) {
	if f.open {
		if b, err := r.pread(f.fd); err == nil && len(b) > 0 {
			return b, nil
		}
		f.Close()
	}
	fd, err := openat(f.path, unix.O_RDONLY)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: f.path.String(), Err: err}
	}
	b, err := r.pread(fd)
	if err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "read", Path: f.path.String(), Err: err}
	}
	f.fd, f.open = fd, true
	return b, nil
}

// readUint reads the file as one unsigned integer.
func (f *openFile) readUint(r *reader) (uint64, error) {
	b, err := f.read(r)
	if err != nil {
		return 0, err
	}
	v, ok := parseUint(bytes.TrimSpace(b))
	if !ok {
		return 0, &os.PathError{Op: "parse", Path: f.path.String(), Err: strconv.ErrSyntax}
	}
	return v, nil
}

// Close closes the file if it is open.
func (f *openFile) Close() error {
	if !f.open {
		return nil
	}
	f.open = false
	return unix.Close(f.fd)
}

func openat(p cpath, flags int) (int, error) {
	return openatDir(unix.AT_FDCWD, p, flags)
}

// openatDir opens p relative to the directory open at dirfd.
func openatDir(dirfd int, p cpath, flags int) (int, error) {
	for {
		fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&p[0])),
			uintptr(flags|unix.O_CLOEXEC), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(fd), nil
	}
}

// readString reads a small sysfs/procfs file as a trimmed string; for files
// read rarely (at construction or on change).
func readString(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}

// --- allocation-free field parsing ---

// nextField returns the next space-separated field of b and the rest.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' {
		j++
	}
	return b[i:j], b[j:]
}

// nthField returns b's field n, counting from 0, as nextField splits them.
func nthField(b []byte, n int) []byte {
	var f []byte
	for range n + 1 {
		f, b = nextField(b)
	}
	return f
}

// nextLine returns the first line of b (without '\n') and the rest.
func nextLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// parseUint parses a decimal unsigned integer; ok is false for anything else.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// parseInt parses a decimal integer with an optional sign.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	u, ok := parseUint(b)
	if !ok {
		return 0, false
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}

func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// parseFloat parses a decimal such as "0.52" or "2596.142". It converts via
// strconv on a stack copy so it does not allocate.
func parseFloat(b []byte) (float64, bool) {
	var tmp [64]byte
	if len(b) == 0 || len(b) > len(tmp) {
		return 0, false
	}
	n := copy(tmp[:], b)
	f, err := strconv.ParseFloat(unsafe.String(&tmp[0], n), 64)
	return f, err == nil
}

// procNetPath is the path of name in procFS's net directory as seen by
// the thread that opens it: <procFS>/thread-self/net/<name> on a procfs
// mount, <procFS>/net/<name> in a tree without thread-self (a fixture).
// /proc/net is /proc/self/net, the network namespace of the process's
// main thread, and a goroutine that enters another namespace to make a
// socket there (rtnl, a test's own namespace) locks whatever thread it
// runs on, the main one included: a file opened through /proc/net while
// it is there would be that namespace's, and the collectors keep theirs
// open. The threads that run the collectors are never in another one.
func procNetPath(procFS, name string) cpath {
	if st, err := os.Stat(filepath.Join(procFS, "thread-self")); err == nil && st.IsDir() {
		return mkpath(procFS, "thread-self", "net", name)
	}
	return mkpath(procFS, "net", name)
}

// eachDirent calls fn with the name of every entry of the directory at
// dir, "." and ".." included, listed with getdents into buf, so that a
// listing allocates nothing. The name is valid during the call.
func eachDirent(dir cpath, buf []byte, fn func(name []byte)) error {
	fd, err := openat(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir.String(), Err: err}
	}
	defer unix.Close(fd)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "getdents", Path: dir.String(), Err: err}
		}
		if n <= 0 {
			return nil
		}
		for off := 0; off < n; {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			reclen := int(*(*uint16)(unsafe.Pointer(&buf[off+16])))
			name := buf[off+19 : off+reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			off += reclen
			if len(name) > 0 {
				fn(name)
			}
		}
	}
}
