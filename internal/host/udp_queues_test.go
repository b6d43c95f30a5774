// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// udpRx is node_udp_queues{ip=v4,queue=rx} after an Update of c.
func udpRx(t *testing.T, c *udpQueuesCollector) float64 {
	t.Helper()
	if err := c.Update(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	var rx float64
	found := false
	c.mu.RLock()
	for _, s := range c.cur {
		if s.desc == c.desc && s.lv[0] == "v4" && s.lv[1] == "rx" {
			rx, found = s.value, true
		}
	}
	c.mu.RUnlock()
	if !found {
		t.Fatal("no node_udp_queues{ip=v4,queue=rx}")
	}
	return rx
}

// TestUDPQueuesReal: datagrams waiting on a bound socket are in the
// receive queue the collector serves (sockstat counts the socket, so the
// table is read), and they are gone from it once the socket is closed.
func TestUDPQueuesReal(t *testing.T) {
	if _, err := os.Stat("/proc/net/udp"); err != nil {
		testenv.Unavailable(t, "needs /proc/net/udp: %v", err)
	}
	c, err := newUDPQueuesCollector(collect.Options{Paths: collect.DefaultPaths()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	base := udpRx(t, c)

	rcv, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	snd, err := net.Dial("udp4", rcv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	for range 4 {
		if _, err := snd.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	// The kernel charges each datagram's whole buffer (truesize), more
	// than its 1 000 bytes.
	if got := udpRx(t, c); got < base+4000 {
		sockstat, _ := os.ReadFile("/proc/thread-self/net/sockstat")
		udp, _ := os.ReadFile("/proc/thread-self/net/udp")
		t.Errorf("udp rx queue %v with 4 × 1 000 bytes waiting (%v before); /proc/net/sockstat:\n%s/proc/net/udp:\n%s", got, base, sockstat, udp)
	}
	rcv.Close()
	if got := udpRx(t, c); got > base {
		t.Errorf("udp rx queue %v after the socket closed (%v before)", got, base)
	}
}
