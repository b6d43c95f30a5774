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
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/cgroups"
)

// exitWatcher polls containers' cgroup.events. The kernel signals a change
// when "populated" drops to 0, that is when the last process left, which
// is before the runtime removes the cgroup: the one moment a short-lived
// container's final counters can be read.
//
// A container's counters are read through files opened as its first
// process enters the cgroup (populated 1), kept for its first
// keepReaderFor: then the final read is a pread of each, where opening a
// dozen files in as many hierarchies after the last process left loses the
// race with the runtime's rmdir now and then, even on an idle host.
//
// It also watches, with inotify, the directories containers' cgroups are
// made in, so that
// a container's cgroup.events is watched from the moment the runtime makes
// its cgroup, before its process runs: one that exits before the engine's
// start event is handled still gets its final read.
type exitWatcher struct {
	f        *os.File
	fd       int
	onZero   func(id string, paths cgroups.Paths, r *cgroups.Reader)
	onCreate func(cgroup string)
	// open opens a container's cgroup reader, or returns nil.
	open func(paths cgroups.Paths) *cgroups.Reader
	// keepFor is keepReaderFor (shorter in tests).
	keepFor time.Duration

	// epfd polls the containers' cgroup.events files. It is non-blocking
	// and waited for in the runtime's poller (ep): nothing wakes while no
	// container starts or ends, and Close wakes the waiter.
	epfd int
	ep   *os.File

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
	// r is the reader opened as the first process entered (opened), until
	// the final read takes it or keepReaderFor has passed since then.
	r      *cgroups.Reader
	opened bool
	since  time.Time
}

// keepReaderFor is how long a reader opened as a container starts is kept
// for its final read. It bounds the descriptors this costs to containers
// started that recently, the short-lived ones; a container that lives
// longer is read every tick or idle_refresh, and its final read opens its
// files after the last process left.
const keepReaderFor = 30 * time.Second

func newExitWatcher(root string, onZero func(string, cgroups.Paths, *cgroups.Reader), onCreate func(string), open func(cgroups.Paths) *cgroups.Reader) (*exitWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err == nil {
		err = unix.SetNonblock(epfd, true)
		if err != nil {
			unix.Close(epfd)
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A non-blocking fd in an os.File goes through the runtime poller, so
	// Close wakes the reader.
	return &exitWatcher{
		f: os.NewFile(uintptr(fd), "inotify"), fd: fd, epfd: epfd, ep: os.NewFile(uintptr(epfd), "epoll"),
		onZero: onZero, onCreate: onCreate, open: open, keepFor: keepReaderFor,
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
//
// started is when the container started, zero when it is starting now. A
// reader is kept for the final read only of one that started less than
// keepReaderFor ago: one found running long since (every container, when
// crmon starts) would otherwise hold a second set of files for that long,
// some 19 per container on a v1 host, 19 000 at 1 000 containers.
func (w *exitWatcher) add(path, id string, paths cgroups.Paths, started time.Time) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	// Read once: kernfs reports a change since the last read.
	var b [64]byte
	n, _ := unix.Pread(fd, b[:], 0)
	ew := exitWatch{id: id, paths: paths}
	if n > 0 && cgroups.Populated(b[:n]) {
		// Its process runs already: no change will say it started.
		ew.opened = true
		if started.IsZero() || time.Since(started) < w.keepFor {
			ew.r, ew.since = w.open(paths), time.Now()
			w.dropLater()
		}
	}
	w.mu.Lock()
	w.byWD[fd] = ew
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
	ew, ok := w.byWD[wd]
	delete(w.byWD, wd)
	w.mu.Unlock()
	if ok {
		unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, wd, nil)
		unix.Close(wd)
		if ew.r != nil {
			ew.r.Close()
		}
	}
}

// poll waits for changes of the watched cgroup.events files, until close.
// It waits in the runtime's poller, not in epoll_wait: with a timeout, so
// as to notice close, it woke twice a second whatever the containers did,
// 4 % of the agent's CPU beside 150 idle containers on this host.
func (w *exitWatcher) poll() {
	rc, err := w.ep.SyscallConn()
	if err != nil {
		return
	}
	evs := make([]unix.EpollEvent, 64)
	var b [64]byte
	for {
		var n int
		var werr error
		if err := rc.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), evs, 0)
			// Nothing ready (or a signal): wait until the epoll fd is.
			return !(werr == nil && n == 0 || werr == unix.EINTR)
		}); err != nil {
			return // closed
		}
		if werr != nil {
			continue
		}
		for _, ev := range evs[:n] {
			fd := int(ev.Fd)
			var start, empty bool
			var r *cgroups.Reader
			w.mu.Lock()
			ew, ok := w.byWD[fd]
			if ok {
				m, _ := unix.Pread(fd, b[:], 0)
				populated := m > 0 && cgroups.Populated(b[:m])
				start, empty = populated && !ew.opened, !populated
				if empty {
					// The final read takes the reader.
					r, ew.r = ew.r, nil
				}
				ew.opened = ew.opened || start
				w.byWD[fd] = ew
			}
			w.mu.Unlock()
			switch {
			case start:
				w.keepReader(fd, ew.id, w.open(ew.paths))
			case empty:
				w.onZero(ew.id, ew.paths, r)
			}
		}
	}
}

// keepReader keeps r for the final read of watch wd if it still is id's:
// r was opened off w.mu, and the watch may have gone meanwhile.
func (w *exitWatcher) keepReader(wd int, id string, r *cgroups.Reader) {
	if r == nil {
		return
	}
	w.mu.Lock()
	ew, ok := w.byWD[wd]
	if ok && ew.id == id && ew.r == nil {
		ew.r, ew.since = r, time.Now()
		w.byWD[wd] = ew
		r = nil
	}
	w.mu.Unlock()
	if r != nil {
		r.Close()
		return
	}
	w.dropLater()
}

// dropLater closes, once keepFor has passed, the readers kept that long.
func (w *exitWatcher) dropLater() {
	time.AfterFunc(w.keepFor, func() { w.dropOldReaders(time.Now()) })
}

// dropOldReaders closes the readers kept longer than keepReaderFor.
func (w *exitWatcher) dropOldReaders(now time.Time) {
	var old []*cgroups.Reader
	w.mu.Lock()
	for wd, ew := range w.byWD {
		if ew.r != nil && now.Sub(ew.since) >= w.keepFor {
			old = append(old, ew.r)
			ew.r = nil
			w.byWD[wd] = ew
		}
	}
	w.mu.Unlock()
	for _, r := range old {
		r.Close()
	}
}

// keptFiles counts the files of the readers kept for final reads: of the
// containers of is true for, of every one when of is nil.
func (w *exitWatcher) keptFiles(of func(id string) bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, ew := range w.byWD {
		if ew.r != nil && (of == nil || of(ew.id)) {
			n += ew.r.Files()
		}
	}
	return n
}

// watching reports whether a watch is held for container id.
func (w *exitWatcher) watching(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ew := range w.byWD {
		if ew.id == id {
			return true
		}
	}
	return false
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
	return errors.Join(w.f.Close(), w.ep.Close())
}

// closeFiles closes every watched file, once both loops have returned
// (close closed the epoll instance).
func (w *exitWatcher) closeFiles() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for fd, ew := range w.byWD {
		unix.Close(fd)
		if ew.r != nil {
			ew.r.Close()
		}
	}
	w.byWD = map[int]exitWatch{}
}
