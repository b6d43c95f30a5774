// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// netdevPair makes two netdev collectors over the test's namespace ns:
// one reading by rtnetlink, as on a live host, and one reading the
// namespace's /proc/net/dev.
func netdevPair(t *testing.T, ns *testenv.Netns, o Options) (nl, file *netdevCollector) {
	t.Helper()
	var err error
	// Made on the namespace's thread, the rtnetlink sockets are its.
	ns.Do(func() {
		nl, err = newNetdevCollector(collect.Options{Paths: collect.Paths{ProcFS: "/proc", SysFS: t.TempDir()}}, o, &shared{speeds: map[string]uint64{}})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nl.Close() })
	if nl.nl == nil {
		t.Fatal("the collector over the live /proc does not read by rtnetlink")
	}
	task := strings.TrimSuffix(ns.Path, "ns/net")
	file, err = newNetdevCollector(collect.Options{Paths: collect.Paths{ProcFS: task, SysFS: t.TempDir()}}, o, &shared{speeds: map[string]uint64{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	if file.nl != nil {
		t.Fatal("the collector over another namespace's procfs reads by rtnetlink")
	}
	return nl, file
}

// TestNetdevRtnlIsProcNetDev checks that the series and the snapshot's
// interfaces read by rtnetlink are those read from /proc/net/dev, line
// for line, in a namespace where nothing moves the counters between the
// two reads: after known traffic, with veths excluded as by default, and
// across two ticks (rates).
func TestNetdevRtnlIsProcNetDev(t *testing.T) {
	ns := testenv.NewNetns(t)
	ns.IP(t, "link", "set", "lo", "up")
	ns.Veths(t, "veth", 2)
	ns.Veths(t, "eth", 1)
	nl, file := netdevPair(t, ns, Options{NetdevDeviceExclude: "^veth"})
	now := time.Now()
	for tick := range 2 {
		ns.Do(func() {
			conn, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			for range 10 * (tick + 1) {
				conn.WriteTo(make([]byte, 500), conn.LocalAddr())
			}
		})
		now = now.Add(time.Second)
		for _, c := range []*netdevCollector{nl, file} {
			if err := c.Update(context.Background(), now); err != nil {
				t.Fatal(err)
			}
		}
		text := func(c *netdevCollector) string {
			var keep []string
			for _, l := range strings.SplitAfter(string(c.AppendText(nil)), "\n") {
				// rx_nohandler: the file reader takes it from sysfs,
				// which is the host's, not the namespace's.
				if !strings.Contains(l, "nohandler") {
					keep = append(keep, l)
				}
			}
			return strings.Join(keep, "")
		}
		got, want := text(nl), text(file)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("tick %d: series (-/proc/net/dev +rtnetlink):\n%s", tick, d)
		}
		for _, dev := range []string{"lo", "etha0", "ethb0"} {
			if !strings.Contains(got, fmt.Sprintf(`node_network_receive_bytes_total{device="%s"}`, dev)) {
				t.Errorf("tick %d: no series of %s", tick, dev)
			}
			if !strings.Contains(string(nl.AppendText(nil)), fmt.Sprintf(`node_network_receive_nohandler_total{device="%s"} 0`, dev)) {
				t.Errorf("tick %d: no rx_nohandler of %s", tick, dev)
			}
		}
		if strings.Contains(got, "vetha0") {
			t.Errorf("tick %d: an excluded veth is served", tick)
		}
		snap := func(c *netdevCollector) []metrics.InterfaceMetrics {
			var m metrics.ResourceMetrics
			c.Fill(&m)
			slices.SortFunc(m.Network.Interfaces, func(a, b metrics.InterfaceMetrics) int { return strings.Compare(a.Name, b.Name) })
			return m.Network.Interfaces
		}
		gotSnap, wantSnap := snap(nl), snap(file)
		if d := cmp.Diff(wantSnap, gotSnap); d != "" {
			t.Errorf("tick %d: snapshot (-/proc/net/dev +rtnetlink):\n%s", tick, d)
		}
		if len(gotSnap) != 7 {
			t.Errorf("tick %d: %d interfaces in the snapshot, want all 7", tick, len(gotSnap))
		}
	}
}

// BenchmarkNetdevSources is one netdev tick with n veths (node_exporter's
// default exclusion of none, crmon's of "^veth"), reading the namespace's
// /proc/net/dev or by rtnetlink, every interface each tick or, as the
// agent does, the quiet ones (here all but lo's) every 10 ticks.
//
//	go test -run '^$' -bench NetdevSources ./internal/host/
func BenchmarkNetdevSources(b *testing.B) {
	for _, n := range []int{150, 1000} {
		ns := testenv.NewNetns(b)
		ns.Veths(b, "veth", n/2)
		for _, src := range []string{"procfs", "rtnl", "rtnl-quiet"} {
			b.Run(fmt.Sprintf("devices=%d/%s", n+1, src), func(b *testing.B) {
				var c *netdevCollector
				var err error
				o := collect.Options{Paths: collect.Paths{ProcFS: strings.TrimSuffix(ns.Path, "ns/net"), SysFS: b.TempDir()}}
				ho := Options{NetdevDeviceExclude: "^veth"}
				if src != "procfs" {
					o.Paths.ProcFS = "/proc"
				}
				if src == "rtnl-quiet" {
					ho.NetdevIdleRefresh = 10 * time.Second
				}
				ns.Do(func() {
					c, err = newNetdevCollector(o, ho, &shared{speeds: map[string]uint64{}})
				})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				if (c.nl != nil) != (src != "procfs") {
					b.Fatalf("reading by rtnetlink: %v", c.nl != nil)
				}
				now := time.Now()
				b.ReportAllocs()
				for b.Loop() {
					now = now.Add(time.Second)
					if err := c.Update(context.Background(), now); err != nil {
						b.Fatal(err)
					}
				}
				if len(c.ifaces) != n+1 {
					b.Fatalf("%d interfaces", len(c.ifaces))
				}
			})
		}
	}
}

// TestNetdevQuietInterfaces checks that an interface whose counters stop
// moving is read only with every interface, every NetdevIdleRefresh, and
// is read every tick again once it moves: a frame sent out of a quiet veth
// is not seen at the next tick, is seen at the refresh (10 s after the
// last reading of every interface), with its rate over the time since the
// veth's last read, and the next frame at the next tick. An interface
// made meanwhile is read at once.
func TestNetdevQuietInterfaces(t *testing.T) {
	ns := testenv.NewNetns(t)
	// No IPv6: its address configuration sends now and then on every
	// interface that comes up.
	ns.Do(func() {
		for _, f := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/disable_ipv6", []byte("1"), 0); err != nil {
				t.Error(err)
			}
		}
	})
	ns.IP(t, "link", "set", "lo", "up")
	ns.Veths(t, "veth", 20)
	nl, file := netdevPair(t, ns, Options{NetdevIdleRefresh: 10 * time.Second})
	tx := func(c *netdevCollector, dev string) string {
		for _, l := range strings.Split(string(c.AppendText(nil)), "\n") {
			if strings.HasPrefix(l, `node_network_transmit_bytes_total{device="`+dev+`"}`) {
				return l
			}
		}
		t.Fatalf("no transmit_bytes of %s", dev)
		return ""
	}
	send := func() {
		ns.Do(func() {
			ifc, err := net.InterfaceByName("vetha3")
			if err != nil {
				t.Fatal(err)
			}
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			frame := make([]byte, 60)
			copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
			frame[12], frame[13] = 0x88, 0xb5 // local experimental EtherType
			if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifc.Index, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}); err != nil {
				t.Fatal(err)
			}
		})
	}
	now := time.Now()
	tick := func() {
		t.Helper()
		now = now.Add(time.Second)
		for _, c := range []*netdevCollector{nl, file} {
			if err := c.Update(context.Background(), now); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 4 {
		tick()
	}
	before := tx(nl, "vetha3")
	if before != tx(file, "vetha3") {
		t.Fatalf("before the frame: %q by rtnetlink, %q in /proc/net/dev", before, tx(file, "vetha3"))
	}
	send()
	// The third reading found every interface as the first two: from the
	// fourth tick on, none is read until the refresh.
	tick()
	if got := tx(nl, "vetha3"); got != before {
		t.Errorf("a quiet interface was read before its refresh: %q, want %q", got, before)
	}
	if tx(file, "vetha3") == before {
		t.Fatal("the frame was not counted")
	}
	for range 7 {
		tick()
	}
	if got := tx(nl, "vetha3"); got != before {
		t.Errorf("9 s after the third reading: %q, want %q", got, before)
	}
	tick() // the refresh, 10 s after the third reading
	if got, want := tx(nl, "vetha3"), tx(file, "vetha3"); got != want {
		t.Errorf("at the refresh: %q, want %q", got, want)
	}
	var m metrics.ResourceMetrics
	nl.Fill(&m)
	for _, i := range m.Network.Interfaces {
		// 60 bytes since its last read.
		if i.Name == "vetha3" && i.BandwidthBytesPerSec != 6 {
			t.Errorf("vetha3's rate at the refresh: %d bytes/s, want 60 in 10 s", i.BandwidthBytesPerSec)
		}
	}
	send()
	tick()
	if got, want := tx(nl, "vetha3"), tx(file, "vetha3"); got != want {
		t.Errorf("the tick after it moved: %q, want %q", got, want)
	}
	if len(nl.hot) == 0 || len(nl.hot)*dumpCost > len(nl.order) {
		t.Errorf("%d interfaces read alone of %d: the test no longer covers reading alone", len(nl.hot), len(nl.order))
	}
	ns.Veths(t, "vethn", 1)
	tick()
	if got, want := tx(nl, "vethna0"), tx(file, "vethna0"); got != want {
		t.Errorf("a new interface: %q, want %q", got, want)
	}
}
