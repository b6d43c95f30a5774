// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package runner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// Constants of the proc connector (linux/connector.h, linux/cn_proc.h).
const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procEventFork     = 0x1
	procEventExit     = 0x80000000

	nlmsgHdrLen = 16
	cnMsgLen    = 20
	// A fork event's data starts after what, cpu and timestamp_ns.
	forkDataOff = nlmsgHdrLen + cnMsgLen + 16
)

// ForkCounter counts the processes a run starts: CMD and, transitively,
// every process forked by one of them, from the kernel's fork events (the
// proc connector). It follows parentage, not cgroups, so it needs no
// probe; the events are queued in the socket as each fork happens, so
// draining after the run ends misses none unless the queue overflowed.
type ForkCounter struct {
	fd       int
	mu       sync.Mutex
	tree     map[uint32]bool
	count    uint64
	overflow bool
	rooted   chan struct{}
	quit     chan struct{}
	done     chan struct{}
	buf      []byte
	// wake interrupts the loop's poll at Stop (an eventfd).
	wake int
}

// NewForkCounter subscribes to fork events. Call it before CMD starts.
func NewForkCounter() (*ForkCounter, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("opening proc connector: %w", err)
	}
	fc := &ForkCounter{fd: fd, tree: map[uint32]bool{}, rooted: make(chan struct{}), quit: make(chan struct{}), done: make(chan struct{}), buf: make([]byte, 64<<10)}
	// A busy host forks a lot: room for a burst while we are descheduled.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding proc connector: %w", err)
	}
	msg := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	le := binary.LittleEndian
	le.PutUint32(msg[0:], uint32(len(msg)))
	le.PutUint16(msg[4:], unix.NLMSG_DONE)
	le.PutUint32(msg[12:], uint32(unix.Getpid()))
	le.PutUint32(msg[16:], cnIdxProc)
	le.PutUint32(msg[20:], cnValProc)
	le.PutUint16(msg[32:], 4)
	le.PutUint32(msg[36:], procCnMcastListen)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("subscribing to fork events: %w", err)
	}
	if fc.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("creating eventfd: %w", err)
	}
	go fc.loop()
	return fc, nil
}

// Root sets the run's first process. Events queued before the call are
// processed after it.
func (fc *ForkCounter) Root(pid int) {
	fc.mu.Lock()
	fc.tree[uint32(pid)] = true
	fc.count = 1
	fc.mu.Unlock()
	close(fc.rooted)
}

// loop consumes events while the run goes on, so a long run on a busy host
// does not overflow the socket. Before Root the events stay queued: the
// tree is empty until then.
func (fc *ForkCounter) loop() {
	defer close(fc.done)
	select {
	case <-fc.rooted:
	case <-fc.quit:
		return
	}
	for {
		select {
		case <-fc.quit:
			return
		default:
		}
		fds := []unix.PollFd{{Fd: int32(fc.fd), Events: unix.POLLIN}, {Fd: int32(fc.wake), Events: unix.POLLIN}}
		if n, err := unix.Poll(fds, -1); n <= 0 || err != nil || fds[1].Revents != 0 {
			continue
		}
		fc.recv()
	}
}

// recv reads the queued events without blocking; false once none is left.
func (fc *ForkCounter) recv() bool {
	n, _, err := unix.Recvfrom(fc.fd, fc.buf, unix.MSG_DONTWAIT)
	fc.mu.Lock()
	defer fc.mu.Unlock()
	switch {
	case errors.Is(err, unix.EINTR):
		return true
	case errors.Is(err, unix.ENOBUFS):
		fc.overflow = true
		return true
	case err != nil || n <= 0:
		return false
	}
	fc.parse(fc.buf[:n])
	return true
}

// Stop drains the queued events and returns the number of processes the
// run started (CMD included), and false when events were lost.
func (fc *ForkCounter) Stop() (uint64, bool) {
	close(fc.quit)
	_, _ = unix.Write(fc.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	<-fc.done
	defer unix.Close(fc.fd)
	defer unix.Close(fc.wake)
	for fc.recv() {
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.count, !fc.overflow
}

// parse handles the netlink messages in b.
func (fc *ForkCounter) parse(b []byte) {
	le := binary.LittleEndian
	for len(b) >= nlmsgHdrLen {
		l := int(le.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			return
		}
		m := b[:l]
		b = b[(l+3)&^3:]
		if len(m) < forkDataOff+16 {
			continue
		}
		switch le.Uint32(m[nlmsgHdrLen+cnMsgLen:]) {
		case procEventExit:
			// Forget an exited process, so a reused PID is not ours.
			if pid, tgid := le.Uint32(m[forkDataOff:]), le.Uint32(m[forkDataOff+4:]); pid == tgid {
				delete(fc.tree, tgid)
			}
			continue
		case procEventFork:
		default:
			continue
		}
		parentTgid := le.Uint32(m[forkDataOff+4:])
		childPid := le.Uint32(m[forkDataOff+8:])
		childTgid := le.Uint32(m[forkDataOff+12:])
		if childPid != childTgid || !fc.tree[parentTgid] {
			continue // a thread, or not ours
		}
		fc.tree[childTgid] = true
		fc.count++
	}
}
