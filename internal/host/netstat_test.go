// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
)

// TestNetstatNoAllocs checks a steady-state tick allocates nothing and
// reads the files it keeps open.
func TestNetstatNoAllocs(t *testing.T) {
	for name, paths := range map[string]collect.Paths{"fixture": fixturePaths(t), "host": collect.DefaultPaths()} {
		t.Run(name, func(t *testing.T) {
			c, err := newNetstatCollector(collect.Options{Paths: paths}, Options{}.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, now := context.Background(), time.Now()
			// Every Linux has /proc/net/netstat and snmp, and so does the
			// fixture tree: an error is a failure, never a skip.
			if err := c.Update(ctx, now); err != nil {
				t.Fatal(err)
			}
			fds := c.files
			if n := testing.AllocsPerRun(100, func() { _ = c.Update(ctx, now) }); n != 0 {
				t.Errorf("Update: %v allocs, want 0", n)
			}
			for i, f := range c.files {
				if f.open && f.fd != fds[i].fd {
					t.Errorf("%s reopened", f.path)
				}
			}
			if !c.files[0].open {
				t.Errorf("%s not kept open", c.files[0].path)
			}
		})
	}
}

// TestVmstatFieldOrder rewrites a vmstat file between ticks, as a kernel
// that adds, drops or moves counters would print it: every exported field
// keeps its own value whatever its place, and a steady file costs no
// allocation. Only exported fields' values are parsed.
func TestVmstatFieldOrder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vmstat")
	c, err := newVmstatCollector(collect.Options{Paths: collect.Paths{ProcFS: dir}}, Options{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, now := context.Background(), time.Now()
	for i, tc := range []struct {
		file string
		want map[string]float64
	}{
		{"nr_free_pages 5\npgfault 10\npgmajfault 2\noom_kill 0\n",
			map[string]float64{"pgfault": 10, "pgmajfault": 2, "oom_kill": 0}},
		{"nr_free_pages 5\npgfault 11\npgmajfault 2\noom_kill 1\n",
			map[string]float64{"pgfault": 11, "pgmajfault": 2, "oom_kill": 1}},
		// A new counter before the others, one gone, two swapped.
		{"nr_new 1\nnr_free_pages 6\npgmajfault 3\npgfault 12\npgpgin 7\n",
			map[string]float64{"pgfault": 12, "pgmajfault": 3, "pgpgin": 7}},
		// An unexported field's value is not parsed.
		{"nr_new x\nnr_free_pages 6\npgmajfault 4\npgfault 13\npgpgin 8\n",
			map[string]float64{"pgfault": 13, "pgmajfault": 4, "pgpgin": 8}},
	} {
		if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := c.Update(ctx, now); err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		got := untypedValues(t, c, "node_vmstat_")
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("file %d (-want +got):\n%s", i, diff)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = c.Update(ctx, now) }); n != 0 {
		t.Errorf("Update of an unchanged file: %v allocs, want 0", n)
	}
	if err := os.WriteFile(path, []byte("pgfault 1x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Update(ctx, now); err == nil {
		t.Error("an exported field's bad value: no error")
	}
}

// TestNetstatFieldOrder does the same over netstat's three files, one
// selector across all of them: a field that moves to another line pair
// keeps its value.
func TestNetstatFieldOrder(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := newNetstatCollector(collect.Options{Paths: collect.Paths{ProcFS: dir}}, Options{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "net", name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, now := context.Background(), time.Now()
	for i, tc := range []struct {
		netstat, snmp, snmp6 string
		want                 map[string]float64
	}{
		{"TcpExt: SyncookiesSent ListenDrops\nTcpExt: 1 2\n", "Tcp: RtoAlgorithm InSegs\nTcp: 1 30\nUdp: InDatagrams\nUdp: 4\n", "Ip6InReceives 5\nIp6InOctets 6\n",
			map[string]float64{"TcpExt_SyncookiesSent": 1, "TcpExt_ListenDrops": 2, "Tcp_InSegs": 30, "Udp_InDatagrams": 4, "Ip6_InOctets": 6}},
		{"TcpExt: SyncookiesSent ListenDrops\nTcpExt: 1 3\n", "Tcp: RtoAlgorithm InSegs\nTcp: 1 31\nUdp: InDatagrams\nUdp: 5\n", "Ip6InReceives 5\nIp6InOctets 7\n",
			map[string]float64{"TcpExt_SyncookiesSent": 1, "TcpExt_ListenDrops": 3, "Tcp_InSegs": 31, "Udp_InDatagrams": 5, "Ip6_InOctets": 7}},
		// A new field in the first pair, Udp before Tcp, snmp6's lines swapped.
		{"TcpExt: New SyncookiesSent ListenDrops\nTcpExt: 9 1 4\n", "Udp: InDatagrams\nUdp: 6\nTcp: RtoAlgorithm InSegs\nTcp: 1 32\n", "Ip6InOctets 8\nIp6InReceives 5\n",
			map[string]float64{"TcpExt_SyncookiesSent": 1, "TcpExt_ListenDrops": 4, "Tcp_InSegs": 32, "Udp_InDatagrams": 6, "Ip6_InOctets": 8}},
	} {
		write("netstat", tc.netstat)
		write("snmp", tc.snmp)
		write("snmp6", tc.snmp6)
		if err := c.Update(ctx, now); err != nil {
			t.Fatalf("files %d: %v", i, err)
		}
		got := untypedValues(t, c, "node_netstat_")
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("files %d (-want +got):\n%s", i, diff)
		}
	}
}

// untypedValues gathers c alone: family name without prefix → value.
func untypedValues(t *testing.T, c prometheus.Collector, prefix string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, mf := range gatherFamilies(t, c) {
		out[strings.TrimPrefix(mf.GetName(), prefix)] = mf.GetMetric()[0].GetUntyped().GetValue()
	}
	return out
}
