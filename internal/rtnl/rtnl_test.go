// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package rtnl

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// procNetDev parses /proc/net/dev into its sixteen columns by device.
func procNetDev(t testing.TB, b []byte) map[string][16]uint64 {
	t.Helper()
	out := map[string][16]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 16 {
			t.Fatalf("net/dev line %q: %d fields", line, len(f))
		}
		var v [16]uint64
		for i := range f {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			v[i] = n
		}
		out[strings.TrimSpace(name)] = v
	}
	return out
}

// links dumps c into a map by name.
func links(t testing.TB, c *Conn) map[string]Link {
	t.Helper()
	out := map[string]Link{}
	if err := c.Links(func(l *Link) {
		if _, dup := out[l.Name]; dup {
			t.Errorf("device %s twice", l.Name)
		}
		out[l.Name] = *l
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLinksAreProcNetDev checks, in a namespace of the test's own where
// nothing else moves the counters, that every device's counters are the
// kernel's /proc/net/dev figures, after known traffic on loopback and
// across a veth pair.
func TestLinksAreProcNetDev(t *testing.T) {
	ns := testenv.NewNetns(t)
	ns.IP(t, "link", "set", "lo", "up")
	ns.Veths(t, "t", 3)
	ns.IP(t, "addr", "add", "10.77.0.1/24", "dev", "ta0")
	ns.IP(t, "addr", "add", "10.77.0.2/24", "dev", "tb0")
	var c *Conn
	var err error
	ns.Do(func() { c, err = Open("") })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// 100 datagrams of 1000 bytes on loopback.
	ns.Do(func() {
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		for range 100 {
			if _, err := conn.WriteTo(make([]byte, 1000), conn.LocalAddr()); err != nil {
				t.Error(err)
			}
		}
	})
	got := links(t, c)
	want := procNetDev(t, ns.ProcNetDev(t))
	if len(got) != len(want) || len(got) != 7 {
		t.Fatalf("dump has %d devices, /proc/net/dev %d, want 7", len(got), len(want))
	}
	for name, w := range want {
		l, ok := got[name]
		if !ok {
			t.Errorf("%s not dumped", name)
			continue
		}
		if d := cmp.Diff(w, l.Stats.ProcNetDev()); d != "" {
			t.Errorf("%s: (-/proc/net/dev +rtnl)\n%s", name, d)
		}
	}
	// Each datagram crossed lo once: sent and received, 1000 bytes of
	// payload plus 28 of IP and UDP headers (loopback counts the packet
	// after its Ethernet header is taken off, loopback_xmit).
	lo := got["lo"].Stats
	if lo.TxPackets != 100 || lo.RxPackets != 100 || lo.TxBytes != 100*1028 || lo.RxBytes != 100*1028 {
		t.Errorf("lo: %d/%d packets, %d/%d bytes sent/received, want 100 and %d", lo.TxPackets, lo.RxPackets, lo.TxBytes, lo.RxBytes, 100*1028)
	}
}

// TestLinksFollowNames checks that a renamed device is dumped under its
// new name with the same index, a removed one is gone, and a new one
// shows at the next dump.
func TestLinksFollowNames(t *testing.T) {
	ns := testenv.NewNetns(t)
	ns.Veths(t, "r", 2)
	var c *Conn
	var err error
	ns.Do(func() { c, err = Open("") })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := links(t, c)
	idx := before["ra0"].Index
	if idx == 0 {
		t.Fatalf("ra0 not dumped: %v", before)
	}
	ns.IP(t, "link", "set", "ra0", "down")
	ns.IP(t, "link", "set", "ra0", "name", "renamed0")
	ns.IP(t, "link", "del", "ra1")
	ns.IP(t, "link", "add", "new0", "type", "veth", "peer", "name", "new1")
	after := links(t, c)
	var names []string
	for n := range after {
		names = append(names, n)
	}
	if l, ok := after["renamed0"]; !ok || l.Index != idx {
		t.Errorf("renamed device: %v (index %d), want index %d", names, l.Index, idx)
	}
	for _, gone := range []string{"ra0", "ra1", "rb1"} {
		if _, ok := after[gone]; ok {
			t.Errorf("%s still dumped: %v", gone, names)
		}
	}
	if _, ok := after["new0"]; !ok {
		t.Errorf("new0 not dumped: %v", names)
	}
}

// TestOpenOtherNamespace checks that a connection opened by the file of
// another namespace dumps that namespace's devices, not the caller's.
func TestOpenOtherNamespace(t *testing.T) {
	ns := testenv.NewNetns(t)
	ns.Veths(t, "o", 1)
	c, err := Open(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := links(t, c)
	if _, ok := got["oa0"]; !ok || len(got) != 3 {
		t.Errorf("dumped %v, want lo, oa0, ob0", got)
	}
}

// TestOpenMissingNamespace checks the error for a namespace file that is
// not there.
func TestOpenMissingNamespace(t *testing.T) {
	if _, err := Open("/nonexistent/ns/net"); err == nil || !strings.Contains(err.Error(), "/nonexistent/ns/net") {
		t.Errorf("Open: %v, want an error naming the file", err)
	}
}

// TestParseLink checks the decoding of a RTM_NEWLINK message's index and
// name, and that malformed attributes stop the walk without a panic.
func TestParseLink(t *testing.T) {
	msg := make([]byte, 16)
	msg[4] = 7 // index 7, little- or big-endian alike for the low byte check below
	attr := func(typ uint16, v []byte) []byte {
		l := 4 + len(v)
		b := []byte{byte(l), byte(l >> 8), byte(typ), byte(typ >> 8)}
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	m := append(append(bytes.Clone(msg), attr(4, []byte{1, 2})...), attr(3, []byte("eth0\x00"))...)
	idx, name, ok := parseLink(m)
	if !ok || name != "eth0" || (idx != 7 && idx != 7<<24) {
		t.Errorf("parseLink = %d, %q, %v; want 7, eth0", idx, name, ok)
	}
	bad := append(bytes.Clone(msg), 0xff, 0x00, 3, 0)
	if _, name, ok := parseLink(bad); !ok || name != "" {
		t.Errorf("parseLink of a bad attribute = %q, %v", name, ok)
	}
	if _, _, ok := parseLink(msg[:8]); ok {
		t.Error("parseLink of a short message succeeded")
	}
}

// BenchmarkDump compares one read of every device's counters, with n veth
// pairs in a namespace of the benchmark's own: /proc/net/dev read and
// split into lines and fields (the kernel's text, what crmon read before)
// against the RTM_GETSTATS dump; and Some reading lo alone.
//
//	go test -run '^$' -bench Dump ./internal/rtnl/
func BenchmarkDump(b *testing.B) {
	for _, n := range []int{150, 1000} {
		ns := testenv.NewNetns(b)
		ns.Veths(b, "b", n/2)
		path := ns.Path[:len(ns.Path)-len("ns/net")] + "net/dev"
		b.Run(fmt.Sprintf("devices=%d/procfs", n+1), func(b *testing.B) {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, 1<<20)
			for b.Loop() {
				k, err := f.ReadAt(buf, 0)
				if k == 0 {
					b.Fatal(err)
				}
				lines := 0
				for line := range bytes.Lines(buf[:k]) {
					if _, rest, ok := bytes.Cut(line, []byte{':'}); ok {
						for _, f := range bytes.Fields(rest) {
							if _, err := strconv.ParseUint(string(f), 10, 64); err != nil {
								b.Fatal(err)
							}
						}
						lines++
					}
				}
				if lines != n+1 {
					b.Fatalf("%d devices", lines)
				}
			}
		})
		b.Run(fmt.Sprintf("devices=%d/rtnl", n+1), func(b *testing.B) {
			c, err := Open(ns.Path)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.ReportAllocs()
			for b.Loop() {
				k := 0
				if err := c.Links(func(*Link) { k++ }); err != nil {
					b.Fatal(err)
				}
				if k != n+1 {
					b.Fatalf("%d devices", k)
				}
			}
		})
		// The root container's case: the few devices that are not
		// veths, asked one by one.
		b.Run(fmt.Sprintf("devices=%d/rtnl-some", n+1), func(b *testing.B) {
			c, err := Open(ns.Path)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			keep := func(name string) bool { return !strings.HasPrefix(name, "b") }
			b.ReportAllocs()
			for b.Loop() {
				k := 0
				if err := c.Some(keep, func(*Link) { k++ }); err != nil {
					b.Fatal(err)
				}
				if k != 1 {
					b.Fatalf("%d devices", k)
				}
			}
		})
	}
}

// TestSome checks that Some serves the devices it keeps with the counters
// a dump gives, follows devices made, renamed and removed between two
// calls from the kernel's notifications, and learns everything again
// after notifications were lost.
func TestSome(t *testing.T) {
	ns := testenv.NewNetns(t)
	ns.IP(t, "link", "set", "lo", "up")
	ns.Veths(t, "veth", 3)
	var c, all *Conn
	var err error
	ns.Do(func() {
		if c, err = Open(""); err == nil {
			all, err = Open("")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer all.Close()
	keep := func(name string) bool { return !strings.HasPrefix(name, "veth") }
	some := func() map[string]Link {
		out := map[string]Link{}
		if err := c.Some(keep, func(l *Link) { out[l.Name] = *l }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	check := func(step string, want ...string) {
		t.Helper()
		got := some()
		dump := links(t, all)
		var names []string
		for n, l := range got {
			names = append(names, n)
			if d := cmp.Diff(dump[n], l); d != "" {
				t.Errorf("%s: %s differs from the dump (-dump +some):\n%s", step, n, d)
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, want) {
			t.Errorf("%s: kept %v, want %v", step, names, want)
		}
	}
	check("first", "lo")
	ns.IP(t, "link", "add", "eth0", "type", "veth", "peer", "name", "vethpeer")
	check("made", "eth0", "lo")
	ns.IP(t, "link", "set", "eth0", "name", "eth1")
	check("renamed", "eth1", "lo")
	ns.IP(t, "link", "set", "vetha0", "name", "wan0")
	check("renamed into keep", "eth1", "lo", "wan0")
	ns.IP(t, "link", "del", "eth1")
	check("removed", "lo", "wan0")
	c.resync = true
	check("resync", "lo", "wan0")
	if !c.complete {
		t.Error("not complete after the dump that followed lost notifications")
	}
}

// TestLinksRenamedDuringDump checks that a device renamed, and its old
// name given to a new device, after the notifications were read but
// before the dump is not dumped under its old name: two devices would
// share it, and their series would be one.
func TestLinksRenamedDuringDump(t *testing.T) {
	ns := testenv.NewNetns(t)
	ns.Veths(t, "d", 1)
	var c *Conn
	var err error
	ns.Do(func() { c, err = Open("") })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	idx := links(t, c)["da0"].Index
	if idx == 0 {
		t.Fatal("da0 not dumped")
	}
	testHookBeforeDump = func() {
		ns.IP(t, "link", "set", "da0", "name", "moved0")
		ns.IP(t, "link", "add", "da0", "type", "veth", "peer", "name", "dnew1")
	}
	defer func() { testHookBeforeDump = nil }()
	after := links(t, c)
	if l := after["moved0"]; l.Index != idx {
		t.Errorf("renamed device: moved0 has index %d, want %d", l.Index, idx)
	}
	if l := after["da0"]; l.Index == idx || l.Index == 0 {
		t.Errorf("da0 has index %d, want the new device's (not %d)", l.Index, idx)
	}
}
