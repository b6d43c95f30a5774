// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package runner runs one command in fresh cgroups of its own, so that
// everything it and its descendants do is counted and nothing else is:
// `crmon exec`.
package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/pkg/session"
)

// v1Controllers are the v1 hierarchies a run joins on hybrid hosts: memory
// for the peak, and blkio because the kernel charges a bio to the v1 blkio
// cgroup there. CPU time comes from cgroup2's cpu.stat, which counts in
// every cgroup2 cgroup, and processes from fork events, so cpu, cpuacct and
// pids are not needed; each v1 hierarchy joined costs an RCU grace period
// in the kernel (cgroup_threadgroup_rwsem) on the way in. On a legacy host
// (no cgroup2) cpuacct is joined for CPU time.
var v1Controllers = []string{"memory", "blkio"}

// Cgroup is a run's cgroups, one per hierarchy, all with the same path.
type Cgroup struct {
	// Path is the path under every hierarchy's root: "/crmon/exec-4242-1a2b".
	Path string
	// V2Dir is the cgroup2 directory, "" on a legacy host.
	V2Dir string
	// V1Dirs maps a v1 controller to the run's directory in it.
	V1Dirs map[string]string
	h      *cgroups.Hierarchy
}

// NewCgroup creates parent/name in the cgroup2 hierarchy and, on hybrid or
// legacy hosts, in the v1 hierarchies the measures need. On a pure v2 host
// it enables the memory, io and pids controllers for the run where the
// root allows it, so memory.peak and io.stat exist. On error nothing it
// created is left behind.
func NewCgroup(h *cgroups.Hierarchy, parent, name string) (_ *Cgroup, err error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("bad cgroup name %q", name)
	}
	parent, err = CleanParent(parent)
	if err != nil {
		return nil, err
	}
	p := parent
	if p != "/" {
		p += "/"
	}
	// The partial cgroup is cleaned up through its own variable: the
	// error returns below leave the function's result nil.
	cg := &Cgroup{Path: p + name, V1Dirs: map[string]string{}, h: h}
	defer func() {
		if err != nil {
			_ = cg.Remove()
		}
	}()
	if h.Unified != "" {
		if h.Mode == cgroups.ModeUnified {
			enableControllers(h.Unified, filepath.Join(h.Unified, parent))
		}
		dir := filepath.Join(h.Unified, cg.Path)
		if err := mkdirRun(dir); err != nil {
			return nil, err
		}
		cg.V2Dir = dir
	}
	if h.Mode != cgroups.ModeUnified {
		for _, ctrl := range v1ControllersFor(h) {
			mnt, ok := h.V1[ctrl]
			if !ok {
				continue
			}
			dir := filepath.Join(mnt, cg.Path)
			if err := mkdirRun(dir); err != nil {
				return nil, err
			}
			cg.V1Dirs[ctrl] = dir
			if ctrl == "blkio" {
				enableBlkioStats(dir, "/sys")
			}
		}
	}
	if cg.V2Dir == "" && len(cg.V1Dirs) == 0 {
		return nil, errors.New("creating cgroup: no cgroup hierarchy mounted")
	}
	return cg, nil
}

// v1ControllersFor is the v1 hierarchies a run joins on h.
func v1ControllersFor(h *cgroups.Hierarchy) []string {
	if h.Unified == "" {
		return append(slices.Clone(v1Controllers), "cpuacct")
	}
	return v1Controllers
}

// ErrNoCgroupAccess is why a run's cgroup could not be made: the kernel
// refused, or the cgroup file system is read-only.
var ErrNoCgroupAccess = errors.New("needs root (or CAP_SYS_ADMIN) or a cgroup parent this user may write to")

// mkdirRun makes a run's cgroup directory and the parents it lacks. The
// directory itself must be new: one that exists is another run's, which
// the cleanup on error would otherwise remove.
func mkdirRun(dir string) error {
	err := os.MkdirAll(filepath.Dir(dir), 0o755)
	if err == nil {
		err = os.Mkdir(dir, 0o755)
	}
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		dir, err = pe.Path, pe.Err
	}
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EROFS) {
		return fmt.Errorf("creating cgroup %s: %w: %w", dir, err, ErrNoCgroupAccess)
	}
	return fmt.Errorf("creating cgroup %s: %w", dir, err)
}

// CleanParent checks a parent cgroup path as a user gives it
// ("crmon", "/ci/jobs") and returns it absolute and clean ("/crmon"). A
// path with "..", "." or empty components, or a NUL, is refused rather
// than cleaned: it can only mean a path outside the cgroup root, or a
// mistake.
func CleanParent(parent string) (string, error) {
	if strings.ContainsRune(parent, 0) {
		return "", fmt.Errorf("cgroup parent %q: contains NUL", parent)
	}
	t := strings.Trim(parent, "/")
	if t == "" {
		return "/", nil
	}
	for _, part := range strings.Split(t, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("cgroup parent %q: want a path under the cgroup root such as /ci/jobs, without \"..\", \".\" or \"//\"", parent)
		}
	}
	return "/" + t, nil
}

// CheckAccess reports, before anything is loaded or started, whether
// NewCgroup(h, parent, …) can succeed for this process: the nearest
// existing directory of parent in every hierarchy a run joins must be
// writable.
func CheckAccess(h *cgroups.Hierarchy, parent string) error {
	parent, err := CleanParent(parent)
	if err != nil {
		return err
	}
	var roots []string
	if h.Unified != "" {
		roots = append(roots, h.Unified)
	}
	if h.Mode != cgroups.ModeUnified {
		for _, ctrl := range v1ControllersFor(h) {
			if mnt, ok := h.V1[ctrl]; ok {
				roots = append(roots, mnt)
			}
		}
	}
	for _, root := range roots {
		dir := filepath.Join(root, parent)
		for dir != root && !exists(dir) {
			dir = filepath.Dir(dir)
		}
		if err := unix.Access(dir, unix.W_OK); err != nil {
			return fmt.Errorf("creating a cgroup in %s: %w: %w", dir, err, ErrNoCgroupAccess)
		}
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// enableControllers turns on memory, io and pids from the root down to
// parent, so the run's cgroup gets their files. Failures are ignored: the
// root may not offer a controller (then its measures are unavailable), and
// a host where a manager owns the tree may refuse.
func enableControllers(root, parent string) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return
	}
	rel, err := filepath.Rel(root, parent)
	if err != nil {
		return
	}
	dir := root
	for _, part := range append([]string{""}, strings.Split(rel, "/")...) {
		if part != "" && part != "." {
			dir = filepath.Join(dir, part)
		}
		for _, ctrl := range []string{"memory", "io", "pids"} {
			_ = os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+ctrl), 0)
		}
	}
}

// unlimitedBps is a throttle far above any device: 1 PiB/s.
const unlimitedBps = 1 << 50

// enableBlkioStats sets a read and a write throttle no device reaches on
// every disk. Linux (5.x on) counts a v1 cgroup's
// blkio.throttle.io_service_bytes only for bios that pass a throttle rule;
// without one they stay 0 whatever the cgroup writes.
func enableBlkioStats(dir, sysFS string) {
	disks, err := os.ReadDir(filepath.Join(sysFS, "block"))
	if err != nil {
		return
	}
	for _, d := range disks {
		dev, err := os.ReadFile(filepath.Join(sysFS, "block", d.Name(), "dev"))
		if err != nil {
			continue
		}
		rule := []byte(strings.TrimSpace(string(dev)) + " " + strconv.Itoa(unlimitedBps))
		_ = os.WriteFile(filepath.Join(dir, "blkio.throttle.read_bps_device"), rule, 0)
		_ = os.WriteFile(filepath.Join(dir, "blkio.throttle.write_bps_device"), rule, 0)
	}
}

// Paths returns the cgroup's paths in the form internal/cgroups reads.
func (c *Cgroup) Paths() cgroups.Paths {
	p := cgroups.Paths{V1: map[string]string{}}
	if c.V2Dir != "" {
		p.V2 = c.Path
	}
	for ctrl := range c.V1Dirs {
		p.V1[ctrl] = c.Path
	}
	return p
}

// Join moves pid into the v1 cgroups. The cgroup2 part is joined at clone
// time (CLONE_INTO_CGROUP).
func (c *Cgroup) joinV1(pid int) error {
	b := []byte(strconv.Itoa(pid))
	var errs []error
	for ctrl, dir := range c.V1Dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), b, 0); err != nil {
			errs = append(errs, fmt.Errorf("joining %s cgroup: %w", ctrl, err))
		}
	}
	return errors.Join(errs...)
}

// Populated reports whether any process is left in the cgroup.
func (c *Cgroup) Populated() (bool, error) {
	if c.V2Dir != "" {
		b, err := os.ReadFile(filepath.Join(c.V2Dir, "cgroup.events"))
		if err != nil {
			return false, fmt.Errorf("reading cgroup.events: %w", err)
		}
		return cgroups.Populated(b), nil
	}
	for _, dir := range c.V1Dirs {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			return false, fmt.Errorf("reading cgroup.procs: %w", err)
		}
		return len(bytes.TrimSpace(b)) > 0, nil
	}
	return false, nil
}

// maxCommand bounds a listed command line.
const maxCommand = 200

// Processes lists up to max processes of the cgroup and its descendants,
// with their command lines.
func (c *Cgroup) Processes(max int) []session.Process {
	dir := c.V2Dir
	if dir == "" {
		for _, d := range c.V1Dirs {
			dir = d
			break
		}
	}
	pids := cgroups.TreePIDs(dir, max)
	out := make([]session.Process, 0, len(pids))
	for _, pid := range pids {
		out = append(out, session.Process{PID: pid, Command: commandLine(pid)})
	}
	return out
}

// commandLine reads /proc/PID/cmdline, its first maxCommand bytes, with
// spaces between the arguments; comm for a process without one (a kernel
// thread, a zombie).
func commandLine(pid int) string {
	buf := make([]byte, maxCommand)
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err == nil {
		n, _ := f.Read(buf)
		f.Close()
		if s := strings.TrimRight(strings.ReplaceAll(string(buf[:n]), "\x00", " "), " "); s != "" {
			return strings.ToValidUTF8(s, "?")
		}
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return "[" + strings.TrimSpace(string(b)) + "]"
}

// procsEmpty reports whether cgroup.procs lists no process: the cgroup
// only waits for exited tasks to finish leaving.
func (c *Cgroup) procsEmpty() bool {
	dir := c.V2Dir
	if dir == "" {
		for _, d := range c.V1Dirs {
			dir = d
			break
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	return err == nil && len(bytes.TrimSpace(b)) == 0
}

// WaitEmpty returns once no process is left in the cgroup. On cgroup2 it
// sleeps in inotify on cgroup.events, which the kernel modifies when
// "populated" changes; elsewhere it polls. tick, when not nil, runs at
// least every 100 ms while it waits.
func (c *Cgroup) WaitEmpty(ctx context.Context, tick func()) error {
	var ifd = -1
	if c.V2Dir != "" {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err == nil {
			if _, err := unix.InotifyAddWatch(fd, filepath.Join(c.V2Dir, "cgroup.events"), unix.IN_MODIFY); err == nil {
				ifd = fd
				defer unix.Close(fd)
			} else {
				unix.Close(fd)
			}
		}
	}
	buf := make([]byte, 4096)
	wait := time.Millisecond
	for i := 0; ; i++ {
		pop, err := c.Populated()
		if err != nil || !pop {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if tick != nil {
			tick()
		}
		// A task that exited leaves its cgroup only at its very last
		// context switch, after its parent was told: right after CMD
		// exits, a short sleep beats the inotify round trip through a
		// kernel work queue.
		if i < 10 && c.procsEmpty() {
			time.Sleep(200 * time.Microsecond)
			continue
		}
		if ifd >= 0 {
			fds := []unix.PollFd{{Fd: int32(ifd), Events: unix.POLLIN}}
			// A bounded wait so a cancelled ctx is seen.
			if _, err := unix.Poll(fds, 100); err != nil && !errors.Is(err, unix.EINTR) {
				return fmt.Errorf("waiting for cgroup.events: %w", err)
			}
			_, _ = unix.Read(ifd, buf)
			continue
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// Kill kills every process left in the cgroup and below it: cgroup.kill
// on cgroup2 (Linux 5.14+), else SIGKILL to each PID until none is left.
func (c *Cgroup) Kill() error {
	if c.V2Dir != "" {
		if err := os.WriteFile(filepath.Join(c.V2Dir, "cgroup.kill"), []byte("1"), 0); err == nil {
			return nil
		}
	}
	dirs := []string{c.V2Dir}
	for _, d := range c.V1Dirs {
		dirs = append(dirs, d)
	}
	for range 100 {
		killed := 0
		for _, d := range dirs {
			if d == "" {
				continue
			}
			// The cgroups below the run's too: CMD may have made some.
			_ = filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
				if err != nil || !de.IsDir() {
					return nil
				}
				b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
				if err != nil {
					return nil
				}
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						_ = unix.Kill(pid, unix.SIGKILL)
						killed++
					}
				}
				return nil
			})
		}
		if killed == 0 {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return errors.New("killing cgroup: processes keep appearing")
}

// Remove removes the run's cgroups, and the cgroups CMD made below them
// (a scope, a nested harness's), deepest first. They must be empty.
func (c *Cgroup) Remove() error {
	var errs []error
	rm := func(dir string) {
		// rmdir can fail with EBUSY for a moment after the last task
		// exits while the kernel finishes releasing it.
		var err error
		for i := 0; i < 50; i++ {
			err = unix.Rmdir(dir)
			if err == nil || errors.Is(err, unix.ENOENT) {
				return
			}
			if !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dir, err))
	}
	tree := func(dir string) {
		var below []string
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && p != dir {
				below = append(below, p)
			}
			return nil
		})
		// WalkDir lists a directory before what is in it.
		for i := len(below) - 1; i >= 0; i-- {
			rm(below[i])
		}
		rm(dir)
	}
	if c.V2Dir != "" {
		tree(c.V2Dir)
	}
	for _, d := range c.V1Dirs {
		tree(d)
	}
	return errors.Join(errs...)
}
