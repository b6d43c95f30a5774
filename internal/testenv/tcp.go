// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package testenv

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Network ground truth. A check of crmon's network bytes against the
// payload a test sent must allow what else the kernel puts on the wire:
// headers, and retransmissions. Retransmitted bytes are real bytes on the
// wire that every counter crmon reads (a device's, a cgroup_skb program's)
// counts again, and on a busy host they are not rare: beside
// stress-ng --cpu 1 --io 1 a container sent 4 194 304 bytes of payload in
// 4 647 160 bytes on its eth0 (+10.8 %), ~270 KB more than its headers.
// The bounds below come from the sender's own TCP stack, which counts what
// it retransmitted.

// Header sizes, in bytes.
const (
	EthernetHeader = 14
	IPv4Header     = 20 // Linux sets no IPv4 options on TCP unless asked (IP_OPTIONS)
	TCPHeaderMin   = 20
	TCPHeaderMax   = 60 // 20 plus at most 40 bytes of options
)

// NetnsTCP holds the TCP counters of one network namespace
// (/proc/PID/net/snmp, /proc/PID/net/netstat). They start at zero when the
// namespace is made, so a container's are its own since it started.
type NetnsTCP struct {
	OutSegs, RetransSegs uint64
	// Why segments were retransmitted (TcpExt), for the log.
	Timeouts, SpuriousRTOs, LossProbes, FastRetrans, SlowStartRetrans, LostRetransmit uint64
}

// ReadNetnsTCP reads the TCP counters of the network namespace process pid
// is in.
func ReadNetnsTCP(t testing.TB, pid int) NetnsTCP {
	t.Helper()
	p, err := procfs.NewProc(pid)
	if err != nil {
		t.Fatalf("process %d: %v", pid, err)
	}
	snmp, err := p.Snmp()
	if err != nil {
		t.Fatalf("/proc/%d/net/snmp: %v", pid, err)
	}
	ns, err := p.Netstat()
	if err != nil {
		t.Fatalf("/proc/%d/net/netstat: %v", pid, err)
	}
	u := func(f *float64) uint64 {
		if f == nil {
			return 0
		}
		return uint64(*f)
	}
	if snmp.Tcp.RetransSegs == nil {
		t.Fatalf("/proc/%d/net/snmp has no Tcp RetransSegs", pid)
	}
	return NetnsTCP{
		OutSegs: u(snmp.Tcp.OutSegs), RetransSegs: u(snmp.Tcp.RetransSegs),
		Timeouts: u(ns.TCPTimeouts), SpuriousRTOs: u(ns.TCPSpuriousRTOs), LossProbes: u(ns.TCPLossProbes),
		FastRetrans: u(ns.TCPFastRetrans), SlowStartRetrans: u(ns.TCPSlowStartRetrans), LostRetransmit: u(ns.TCPLostRetransmit),
	}
}

// MaxRetransmittedPayload bounds the payload the namespace's
// retransmissions carried, on a device of the given MTU. The kernel adds
// tcp_skb_pcount to RetransSegs (__tcp_retransmit_skb, which first cuts
// the skb to at most that many current-MSS segments): a retransmitted GSO
// packet counts as all the MSS-sized segments it holds, and an MSS is at
// most the MTU less the IPv4 and TCP headers.
func (n NetnsTCP) MaxRetransmittedPayload(mtu int) uint64 {
	return n.RetransSegs * uint64(mtu-IPv4Header-TCPHeaderMin)
}

// ContainerMTU is the MTU of device dev in the network namespace of
// process pid, from the sysfs mounted in its container (a sysfs shows the
// devices of the namespace it was mounted in).
func ContainerMTU(t testing.TB, pid int, dev string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/sys/class/net/%s/mtu", pid, dev))
	if err != nil {
		t.Fatal(err)
	}
	mtu, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || mtu <= IPv4Header+TCPHeaderMin {
		t.Fatalf("MTU of %s in process %d's namespace: %q", dev, pid, b)
	}
	return mtu
}

func (n NetnsTCP) String() string {
	return fmt.Sprintf("TCP OutSegs %d RetransSegs %d (TcpExt TCPTimeouts %d TCPSpuriousRTOs %d TCPLossProbes %d TCPFastRetrans %d TCPSlowStartRetrans %d TCPLostRetransmit %d)",
		n.OutSegs, n.RetransSegs, n.Timeouts, n.SpuriousRTOs, n.LossProbes, n.FastRetrans, n.SlowStartRetrans, n.LostRetransmit)
}

// TCPSent is what the kernel's TCP stack counted for one connection
// (struct tcp_info), read once nothing more could leave its socket.
type TCPSent struct {
	// BytesSent is tcpi_bytes_sent: the payload of every segment sent,
	// retransmissions included.
	BytesSent uint64 `json:"bytes_sent"`
	// BytesRetrans is tcpi_bytes_retrans, the retransmitted part of it.
	BytesRetrans uint64 `json:"bytes_retrans"`
	// SegsOut is tcpi_segs_out: MSS-sized segments sent, control
	// segments and retransmissions included. Every packet the socket
	// sent is at least one, a GSO packet several.
	SegsOut uint64 `json:"segs_out"`
}

// MaxIPBytes bounds the bytes of the IPv4 packets the connection put out,
// headers included, as a cgroup_skb program counts them (skb->len from the
// network header): its payload, retransmissions included, and an IPv4 and
// a TCP header with options for each segment.
func (s TCPSent) MaxIPBytes() uint64 {
	return s.BytesSent + s.SegsOut*(IPv4Header+TCPHeaderMax)
}

// tcpClose is TCP_CLOSE in include/net/tcp_states.h: a socket in this
// state sends nothing more (a TIME_WAIT peer's acknowledgements leave
// from the namespace's control socket, not from this one).
const tcpClose = 7

// SendTCP connects to addr, sends n bytes, closes its side and waits, up to
// timeout, for the peer to close too and for the socket to reach TCP_CLOSE,
// so that the counters it returns are final: the peer's FIN acknowledged
// every byte, and nothing can be retransmitted any more.
func SendTCP(addr string, n int64, timeout time.Duration) (TCPSent, error) {
	deadline := time.Now().Add(timeout)
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return TCPSent{}, err
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	if err := tc.SetDeadline(deadline); err != nil {
		return TCPSent{}, err
	}
	buf := make([]byte, 64<<10)
	for left := n; left > 0; {
		k, err := tc.Write(buf[:min(int64(len(buf)), left)])
		if err != nil {
			return TCPSent{}, err
		}
		left -= int64(k)
	}
	if err := tc.CloseWrite(); err != nil {
		return TCPSent{}, err
	}
	if _, err := io.Copy(io.Discard, tc); err != nil {
		return TCPSent{}, fmt.Errorf("waiting for the peer to close: %w", err)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return TCPSent{}, err
	}
	for {
		var info *unix.TCPInfo
		var ierr error
		if err := raw.Control(func(fd uintptr) {
			info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		}); err != nil {
			return TCPSent{}, err
		}
		if ierr != nil {
			return TCPSent{}, fmt.Errorf("TCP_INFO: %w", ierr)
		}
		if info.State == tcpClose {
			return TCPSent{BytesSent: info.Bytes_sent, BytesRetrans: info.Bytes_retrans, SegsOut: uint64(info.Segs_out)}, nil
		}
		if time.Now().After(deadline) {
			return TCPSent{}, errors.New("the connection did not close within its timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
