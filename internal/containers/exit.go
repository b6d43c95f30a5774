// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"errors"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// exitWatcher watches containers' cgroup.events with inotify. The kernel
// signals a modification when "populated" drops to 0, that is when the last
// process left, which is before the runtime removes the cgroup: the one
// moment a short-lived container's final counters can be read.
type exitWatcher struct {
	f      *os.File
	fd     int
	onZero func(id string)

	mu   sync.Mutex
	byWD map[int]string
}

func newExitWatcher(onZero func(string)) (*exitWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	// A non-blocking fd in an os.File goes through the runtime poller, so
	// Close wakes the reader.
	return &exitWatcher{f: os.NewFile(uintptr(fd), "inotify"), fd: fd, onZero: onZero, byWD: map[int]string{}}, nil
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

// size is the number of watches held, for tests of churn.
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
			off += unix.SizeofInotifyEvent + int(ev.Len)
			w.mu.Lock()
			id, ok := w.byWD[int(ev.Wd)]
			if ev.Mask&unix.IN_IGNORED != 0 {
				delete(w.byWD, int(ev.Wd))
			}
			w.mu.Unlock()
			if ok && ev.Mask&unix.IN_MODIFY != 0 {
				w.onZero(id)
			}
		}
	}
}

func (w *exitWatcher) close() error { return w.f.Close() }
