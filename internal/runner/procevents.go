// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package runner

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Constants of the proc connector (linux/connector.h, linux/cn_proc.h).
const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procEventFork     = 0x1
	procEventExit     = 0x80000000

	// initPIDNSIno is the inode of the initial PID namespace
	// (PROC_PID_INIT_INO in include/linux/proc_ns.h).
	initPIDNSIno = 0xEFFFFFFC

	nlmsgHdrLen = 16
	cnMsgLen    = 20
	// A fork event's data starts after what, cpu and timestamp_ns.
	forkDataOff = nlmsgHdrLen + cnMsgLen + 16
)

// ForkCounter counts the processes a run starts: CMD and, transitively,
// every process forked by one of them, from the kernel's fork events (the
// proc connector). It follows parentage, not cgroups, so it needs no
// probe. The events queue in the socket as each fork happens; the owner
// drains them now and then (Drain) and at the end (Stop), on its own
// goroutine, so they are handled in order and nothing waits for a hand-off.
type ForkCounter struct {
	fd       int
	tree     map[uint32]bool
	count    uint64
	overflow bool
	buf      []byte
}

// NewForkCounter subscribes to fork events. Call it before CMD starts.
func NewForkCounter() (*ForkCounter, error) {
	// The kernel ignores subscriptions from outside the initial PID
	// namespace and reports host PIDs: in a container without the host's
	// PID namespace CMD's tree would never be seen, and a count of 1
	// would pass for exact.
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return nil, fmt.Errorf("reading the PID namespace: %w", err)
	}
	if st.Ino != initPIDNSIno {
		return nil, errors.New("fork events need the host's PID namespace")
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("opening proc connector: %w", err)
	}
	fc := &ForkCounter{fd: fd, tree: map[uint32]bool{}, buf: make([]byte, 64<<10)}
	// Room for the forks of a busy host between two drains.
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
	return fc, nil
}

// Root sets the run's first process. Events queued before the call are
// handled after it, so none of its forks is missed.
func (fc *ForkCounter) Root(pid int) {
	fc.tree[uint32(pid)] = true
	fc.count = 1
}

// Drain handles every queued event without blocking.
func (fc *ForkCounter) Drain() {
	for {
		n, _, err := unix.Recvfrom(fc.fd, fc.buf, 0)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			fc.overflow = true
			continue
		case err != nil || n <= 0:
			return
		}
		fc.parse(fc.buf[:n])
	}
}

// Stop drains the queued events and returns the number of processes the
// run started (CMD included), and false when events were lost.
func (fc *ForkCounter) Stop() (uint64, bool) {
	fc.Drain()
	unix.Close(fc.fd)
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
