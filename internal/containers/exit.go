// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"bytes"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/cgroups"
)

// exitWatcher polls containers' cgroup.events. The kernel signals a change
// when "populated" drops to 0, that is when the last process left, which
// is before the runtime removes the cgroup: the one moment a short-lived
// container's final counters can be read.
//
// It also watches, with inotify, the directories containers' cgroups are
// made in, so that
// a container's cgroup.events is watched from the moment the runtime makes
// its cgroup, before its process runs: one that exits before the engine's
// start event is handled still gets its final read.
type exitWatcher struct {
	f        *os.File
	fd       int
	onZero   func(id string, paths cgroups.Paths)
	onCreate func(cgroup string)

	// epfd polls the containers' cgroup.events files; closed stops it.
	epfd   int
	closed atomic.Bool

	mu sync.Mutex
	// byWD are the watched cgroup.events files by descriptor.
	byWD map[int]exitWatch
	// root is the cgroup2 mount. parents are the watched parent
	// directories' cgroup paths by watch, and their watches by cgroup
	// path; at most maxParents. wanted are parents that did not exist yet:
	// their nearest existing ancestor is watched instead, until they do.
	root     string
	parents  map[int]string
	parentWD map[string]int
	wanted   map[string]bool
}

// maxParents bounds the parent directories watched, and those wanted:
// each container may name its own (--cgroup-parent); beyond the bound,
// containers in new parents are watched from their start event only.
const maxParents = 64

// exitWatch is the container a watch is for, and its cgroup: the final
// read needs nothing of the collector's state until it has the counters.
type exitWatch struct {
	id    string
	paths cgroups.Paths
}

func newExitWatcher(root string, onZero func(string, cgroups.Paths), onCreate func(string)) (*exitWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A non-blocking fd in an os.File goes through the runtime poller, so
	// Close wakes the reader.
	return &exitWatcher{
		f: os.NewFile(uintptr(fd), "inotify"), fd: fd, epfd: epfd, onZero: onZero, onCreate: onCreate,
		root: root, byWD: map[int]exitWatch{}, parents: map[int]string{}, parentWD: map[string]int{}, wanted: map[string]bool{},
	}, nil
}

// addParent watches the cgroup at parent for new cgroups, unless it
// already is or maxParents are. A parent that does not exist yet (the
// first container with a new --cgroup-parent) is wanted: its nearest
// existing ancestor is watched until it is made. It reports whether parent
// itself is now watched for the first time.
func (w *exitWatcher) addParent(parent string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for p := parent; ; p = path.Dir(p) {
		if _, ok := w.parentWD[p]; ok {
			if p != parent && len(w.wanted) < maxParents {
				w.wanted[parent] = true
			}
			return false
		}
		if len(w.parentWD) >= maxParents {
			return false
		}
		wd, err := unix.InotifyAddWatch(w.fd, filepath.Join(w.root, p), unix.IN_CREATE|unix.IN_ONLYDIR)
		if err == nil {
			w.parents[wd] = p
			w.parentWD[p] = wd
			if p == parent {
				delete(w.wanted, parent)
				return true
			}
			w.wanted[parent] = true
			return false
		}
		if !errors.Is(err, unix.ENOENT) || p == "/" || len(w.wanted) >= maxParents {
			return false
		}
	}
}

// made runs when the cgroup at cg was made in a watched parent: a wanted
// parent now made, or on its way, is watched, and the cgroups already in
// it (the runtime makes a parent and a container's cgroup in one go) are
// passed to onCreate.
func (w *exitWatcher) made(cg string) {
	w.mu.Lock()
	var now []string
	for p := range w.wanted {
		if p == cg || strings.HasPrefix(p, cg+"/") {
			now = append(now, p)
		}
	}
	w.mu.Unlock()
	for _, p := range now {
		if !w.addParent(p) {
			continue
		}
		es, _ := os.ReadDir(filepath.Join(w.root, p))
		for _, e := range es {
			if e.IsDir() {
				w.onCreate(path.Join(p, e.Name()))
			}
		}
	}
	w.onCreate(cg)
}

// add watches a container's cgroup.events at path. It is polled, not
// watched with inotify: the kernel wakes pollers of a cgroup file as it
// changes (kernfs_notify), but passes inotify its events later, from a
// work queue, which the runtime's removal of the cgroup can beat. It
// returns the file's descriptor, which names the watch.
func (w *exitWatcher) add(path, id string, paths cgroups.Paths) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	// Read once: kernfs reports a change since the last read.
	var b [64]byte
	unix.Pread(fd, b[:], 0)
	w.mu.Lock()
	w.byWD[fd] = exitWatch{id, paths}
	w.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLPRI | unix.EPOLLERR | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		w.remove(fd)
		return -1, err
	}
	return fd, nil
}

func (w *exitWatcher) remove(wd int) {
	w.mu.Lock()
	_, ok := w.byWD[wd]
	delete(w.byWD, wd)
	w.mu.Unlock()
	if ok {
		unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, wd, nil)
		unix.Close(wd)
	}
}

// poll waits for changes of the watched cgroup.events files.
func (w *exitWatcher) poll() {
	evs := make([]unix.EpollEvent, 64)
	var b [64]byte
	for !w.closed.Load() {
		// A timeout, so that close is noticed.
		n, err := unix.EpollWait(w.epfd, evs, 500)
		if err != nil {
			continue
		}
		for _, ev := range evs[:n] {
			fd := int(ev.Fd)
			w.mu.Lock()
			ew, ok := w.byWD[fd]
			if ok {
				unix.Pread(fd, b[:], 0)
			}
			w.mu.Unlock()
			if ok {
				w.onZero(ew.id, ew.paths)
			}
		}
	}
}

// size is the number of container watches held, for tests of churn.
func (w *exitWatcher) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byWD)
}

func (w *exitWatcher) run() {
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : min(n, off+unix.SizeofInotifyEvent+int(ev.Len))]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
			w.mu.Lock()
			parent, isParent := w.parents[int(ev.Wd)]
			if isParent && ev.Mask&unix.IN_IGNORED != 0 {
				delete(w.parents, int(ev.Wd))
				delete(w.parentWD, parent)
			}
			w.mu.Unlock()
			if isParent && ev.Mask&unix.IN_CREATE != 0 && ev.Mask&unix.IN_ISDIR != 0 && len(name) > 0 {
				w.made(path.Join(parent, string(name)))
			}
		}
	}
}

func (w *exitWatcher) close() error {
	w.closed.Store(true)
	return w.f.Close()
}

// closeFiles closes the epoll instance and every watched file, once both
// loops have returned.
func (w *exitWatcher) closeFiles() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for fd := range w.byWD {
		unix.Close(fd)
	}
	w.byWD = map[int]exitWatch{}
	unix.Close(w.epfd)
}
