// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/internal/collect"
)

// TestNetclassExcluded checks that interfaces left out of /metrics are read
// for their link speed only, on a full read and when they appear, and that
// the snapshot still gets that speed.
func TestNetclassExcluded(t *testing.T) {
	sys := t.TempDir()
	props := func(speed string) map[string]string {
		return map[string]string{"mtu": "1500", "operstate": "up", "flags": "0x1003", "speed": speed}
	}
	addIface(t, sys, "eth0", props("1000"))
	addIface(t, sys, "lo", map[string]string{"mtu": "65536", "operstate": "unknown", "flags": "0x9"}) // no speed
	addIface(t, sys, "veth0", props("10000"))
	addIface(t, sys, "veth1", props("-1"))                                                            // down
	addIface(t, sys, "veth2", map[string]string{"mtu": "1500", "operstate": "up", "flags": "0x1003"}) // no speed

	c := build(t, "netclass", collect.Paths{ProcFS: t.TempDir(), SysFS: sys, RootFS: t.TempDir()},
		Options{NetclassDeviceExclude: "^veth"}).(*netclassCollector)
	check := func(when string, wantSpeeds map[string]uint64) {
		t.Helper()
		if diff := cmp.Diff(wantSpeeds, c.sh.speeds); diff != "" {
			t.Errorf("%s: speeds (-want +got):\n%s", when, diff)
		}
		series := map[string]int{}
		for _, s := range c.cur {
			series[s.lv[0]]++
		}
		if series["eth0"] == 0 || series["lo"] == 0 || len(series) != 2 {
			t.Errorf("%s: series by device = %v, want eth0 and lo only", when, series)
		}
		for n, i := range c.cache {
			if c.ex.MatchString(n) && (i.MTU != nil || i.OperState != "") {
				t.Errorf("%s: excluded %s read in full: %+v", when, n, i)
			}
		}
	}
	if err := c.Update(t.Context(), fixtureTime); err != nil {
		t.Fatal(err)
	}
	check("full read", map[string]uint64{"eth0": 125000000, "veth0": 1250000000})

	addIface(t, sys, "veth3", props("25000"))
	c.sh.ifaceGen++ // as netdev does when it sees veth3
	if err := c.Update(t.Context(), fixtureTime.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	check("new interface", map[string]uint64{"eth0": 125000000, "veth0": 1250000000, "veth3": 3125000000})
}

// addIface makes sys/class/net/name with files, each holding its value
// and a newline as sysfs gives it; an existing one's files are rewritten.
func addIface(t *testing.T, sys, name string, files map[string]string) {
	t.Helper()
	dir := filepath.Join(sys, "class/net", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNetclassExcludedSpeedKept checks that a full read keeps an excluded
// interface's speed from the read before, and reads it again every
// excludedRefreshes full reads.
func TestNetclassExcludedSpeedKept(t *testing.T) {
	sys := t.TempDir()
	addIface(t, sys, "eth0", map[string]string{"speed": "1000"})
	addIface(t, sys, "veth0", map[string]string{"speed": "10000"})
	c := build(t, "netclass", collect.Paths{ProcFS: t.TempDir(), SysFS: sys, RootFS: t.TempDir()},
		Options{NetclassDeviceExclude: "^veth"}).(*netclassCollector)
	now := fixtureTime
	if err := c.Update(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"eth0", "veth0"} {
		addIface(t, sys, name, map[string]string{"speed": "25000"})
	}
	for n := 1; n <= excludedRefreshes; n++ {
		now = now.Add(c.refresh)
		if err := c.Update(t.Context(), now); err != nil {
			t.Fatal(err)
		}
		want := map[string]uint64{"eth0": 3125000000, "veth0": 1250000000}
		if n == excludedRefreshes {
			want["veth0"] = 3125000000
		}
		if diff := cmp.Diff(want, c.sh.speeds); diff != "" {
			t.Errorf("full read %d: speeds (-want +got):\n%s", n+1, diff)
		}
	}
}

// TestNetclassReadProps compares readProps with procfs' NetClassByIface,
// which it stands in for, on every interface of the fixture's sysfs and of
// this host's.
func TestNetclassReadProps(t *testing.T) {
	for _, sys := range []string{fixturePaths(t).SysFS, "/sys"} {
		if _, err := os.Stat(filepath.Join(sys, "class/net")); err != nil {
			if sys == "/sys" {
				t.Logf("no %s/class/net: %v", sys, err)
				continue
			}
			t.Fatal(err)
		}
		c := build(t, "netclass", collect.Paths{ProcFS: t.TempDir(), SysFS: sys, RootFS: t.TempDir()}, Options{}).(*netclassCollector)
		devs, err := c.fs.NetClassDevices()
		if err != nil {
			t.Fatal(err)
		}
		if len(devs) == 0 {
			t.Fatalf("no interfaces in %s", sys)
		}
		for _, d := range devs {
			want, err := c.fs.NetClassByIface(d)
			if err != nil {
				t.Fatalf("%s: NetClassByIface(%s): %v", sys, d, err)
			}
			got, err := c.readProps(d)
			if err != nil {
				t.Fatalf("%s: readProps(%s): %v", sys, d, err)
			}
			if diff := cmp.Diff(*want, got); diff != "" {
				t.Errorf("%s: %s (-NetClassByIface +readProps):\n%s", sys, d, diff)
			}
		}
	}
	if _, err := build(t, "netclass", fixturePaths(t), Options{}).(*netclassCollector).readProps("nosuch0"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("readProps of an absent interface: %v, want not exist", err)
	}
}

// BenchmarkNetclassFullRead is one full re-read of /sys/class/net on the
// real /sys, with the agent's default "^veth" exclusion.
func BenchmarkNetclassFullRead(b *testing.B) {
	if _, err := os.Stat("/sys/class/net"); err != nil {
		b.Skipf("needs a Linux /sys: %v", err)
	}
	c := build(b, "netclass", collect.DefaultPaths(), Options{NetclassDeviceExclude: "^veth"}).(*netclassCollector)
	now := time.Now()
	if err := c.Update(b.Context(), now); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	n := 0
	for ; b.Loop(); n++ {
		now = now.Add(c.refresh)
		if err := c.Update(b.Context(), now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/op")
}
