// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// nohandler updates c and returns node_network_receive_nohandler_total by
// device.
func nohandler(t *testing.T, c collect.Collector) map[string]float64 {
	t.Helper()
	if err := c.Update(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range gatherFamilies(t, c) {
		if mf.GetName() == "node_network_receive_nohandler_total" {
			for _, m := range mf.GetMetric() {
				out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// TestNohandlerFollowsTheFile checks that rx_nohandler is read afresh each
// tick from the file kept open, and that the file of an interface that
// went away is closed.
func TestNohandlerFollowsTheFile(t *testing.T) {
	dir := t.TempDir()
	paths := collect.Paths{ProcFS: filepath.Join(dir, "proc"), SysFS: filepath.Join(dir, "sys"), RootFS: dir}
	netDev := filepath.Join(paths.ProcFS, "net", "dev")
	stat := filepath.Join(paths.SysFS, "class", "net", "eth9", "statistics", "rx_nohandler")
	for _, d := range []string{filepath.Dir(netDev), filepath.Dir(stat)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const header = "Inter-|   Receive                                                |  Transmit\n" +
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(netDev, header+"  eth9: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n")
	write(stat, "3\n")
	c := build(t, "netdev", paths, Options{})
	nd := c.(*netdevCollector)
	defer nd.Close()

	if got := nohandler(t, c)["eth9"]; got != 3 {
		t.Errorf("first tick: %v, want 3", got)
	}
	write(stat, "10\n") // same inode, as sysfs
	if got := nohandler(t, c)["eth9"]; got != 10 {
		t.Errorf("second tick: %v, want 10 (read afresh)", got)
	}
	if nd.open != 1 {
		t.Errorf("%d files open, want 1", nd.open)
	}
	write(netDev, header)
	if got, ok := nohandler(t, c)["eth9"]; ok {
		t.Errorf("gone interface still served: %v", got)
	}
	if nd.open != 0 {
		t.Errorf("%d files open after the interface went, want 0", nd.open)
	}
}

// TestNohandlerMatchesSysfs compares node_network_receive_nohandler_total
// with what this machine's sysfs says before and after the tick.
func TestNohandlerMatchesSysfs(t *testing.T) {
	ifs, _ := filepath.Glob("/sys/class/net/*/statistics/rx_nohandler")
	if len(ifs) == 0 {
		testenv.Unavailable(t, "no /sys/class/net/*/statistics/rx_nohandler")
	}
	readAll := func() map[string]float64 {
		out := map[string]float64{}
		for _, p := range ifs {
			b, err := os.ReadFile(p)
			if err != nil {
				continue // gone meanwhile
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			out[filepath.Base(filepath.Dir(filepath.Dir(p)))] = v
		}
		return out
	}
	c := build(t, "netdev", collect.DefaultPaths(), Options{})
	defer c.(*netdevCollector).Close()
	nohandler(t, c)
	before := readAll()
	got := nohandler(t, c)
	after := readAll()
	for dev, b := range before {
		a, ok := after[dev]
		if !ok {
			continue
		}
		g, ok := got[dev]
		if !ok {
			t.Errorf("no node_network_receive_nohandler_total{device=%q}", dev)
			continue
		}
		if g < b || g > a {
			t.Errorf("node_network_receive_nohandler_total{device=%q} = %v, sysfs %v before and %v after", dev, g, b, a)
		}
	}
}
