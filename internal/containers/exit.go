// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"bytes"
	"errors"
	"os"
	"path"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// exitWatcher watches containers' cgroup.events with inotify. The kernel
// signals a modification when "populated" drops to 0, that is when the last
// process left, which is before the runtime removes the cgroup: the one
// moment a short-lived container's final counters can be read.
//
// It also watches the directories containers' cgroups are made in, so that
// a container's cgroup.events is watched from the moment the runtime makes
// its cgroup, before its process runs: one that exits before the engine's
// start event is handled still gets its final read.
type exitWatcher struct {
	f        *os.File
	fd       int
	onZero   func(id string)
	onCreate func(cgroup string)

	mu   sync.Mutex
	byWD map[int]string
	// parents are the watched parent directories' cgroup paths by watch,
	// and their watches by cgroup path; at most maxParents.
	parents  map[int]string
	parentWD map[string]int
}

// maxParents bounds the parent directories watched: each container may
// name its own (--cgroup-parent); beyond the bound, containers in new
// parents are watched from their start event only.
const maxParents = 64

func newExitWatcher(onZero func(string), onCreate func(string)) (*exitWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	// A non-blocking fd in an os.File goes through the runtime poller, so
	// Close wakes the reader.
	return &exitWatcher{
		f: os.NewFile(uintptr(fd), "inotify"), fd: fd, onZero: onZero, onCreate: onCreate,
		byWD: map[int]string{}, parents: map[int]string{}, parentWD: map[string]int{},
	}, nil
}

// addParent watches dir, the directory of the cgroup at cgroup, for new
// cgroups, unless it already is or maxParents are.
func (w *exitWatcher) addParent(dir, cgroup string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.parentWD[cgroup]; ok || len(w.parentWD) >= maxParents {
		return
	}
	wd, err := unix.InotifyAddWatch(w.fd, dir, unix.IN_CREATE|unix.IN_ONLYDIR)
	if err != nil {
		return
	}
	w.parents[wd] = cgroup
	w.parentWD[cgroup] = wd
}

func (w *exitWatcher) add(path, id string) (int, error) {
	wd, err := unix.InotifyAddWatch(w.fd, path, unix.IN_MODIFY)
	if err != nil {
		return -1, err
	}
	w.mu.Lock()
	w.byWD[wd] = id
	w.mu.Unlock()
	return wd, nil
}

func (w *exitWatcher) remove(wd int) {
	w.mu.Lock()
	delete(w.byWD, wd)
	w.mu.Unlock()
	// The watch may be gone already with its cgroup (IN_IGNORED).
	unix.InotifyRmWatch(w.fd, uint32(wd))
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
			id, ok := w.byWD[int(ev.Wd)]
			parent, isParent := w.parents[int(ev.Wd)]
			if ev.Mask&unix.IN_IGNORED != 0 {
				delete(w.byWD, int(ev.Wd))
				if isParent {
					delete(w.parents, int(ev.Wd))
					delete(w.parentWD, parent)
				}
			}
			w.mu.Unlock()
			switch {
			case ok && ev.Mask&unix.IN_MODIFY != 0:
				w.onZero(id)
			case isParent && ev.Mask&unix.IN_CREATE != 0 && ev.Mask&unix.IN_ISDIR != 0 && len(name) > 0:
				w.onCreate(path.Join(parent, string(name)))
			}
		}
	}
}

func (w *exitWatcher) close() error { return w.f.Close() }
