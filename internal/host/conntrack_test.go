// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
)

const (
	// Linux 6.18, two CPUs, copied from /proc/net/stat/nf_conntrack; the
	// kernel no longer counts most of these, so the values are 0.
	conntrackStat618 = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n" +
		"00000005  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000000\n" +
		"00000005  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000000\n"
	// The same layout with every column set, so a column taken from the
	// wrong place shows.
	conntrackStatCur = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n" +
		"00000005  00000001 00000010 00000002 00000020 00000030 00000003 00000004 00000040 00000050 00000060 00000070 00000005  00000006 00000007 00000008 00000080\n" +
		"00000005  00000001 00000100 00000002 00000200 00000300 00000003 00000004 00000400 00000500 00000600 00000700 00000005  00000006 00000007 00000008 00000800\n"
	// Older kernels (4.x, 5.4) named the second column "searched" and the
	// eighth "delete_list".
	conntrackStatOld = "entries  searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n" +
		"000000c8  0000beef 00000010 00000002 00000020 00000030 00000003 0000abcd 00000040 00000050 00000060 00000070 00000005  00000006 00000007 00000008 00000080\n" +
		"000000c8  0000beef 00000100 00000002 00000200 00000300 00000003 0000abcd 00000400 00000500 00000600 00000700 00000005  00000006 00000007 00000008 00000800\n"
	// Before Linux 2.6.35 there was no search_restart.
	conntrackStatNoRestart = "entries  searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete\n" +
		"000000c8  0000beef 00000010 00000002 00000020 00000030 00000003 0000abcd 00000040 00000050 00000060 00000070 00000005  00000006 00000007 00000008\n"
)

type conntrackSums = [len(conntrackStatNames)]uint64

func TestParseConntrackStat(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     conntrackSums
	}{
		{"linux-6.18", conntrackStat618, conntrackSums{}},
		{"current", conntrackStatCur, conntrackSums{0x110, 0x220, 0x330, 0x440, 0x550, 0x660, 0x770, 0x880}},
		{"searched,delete_list", conntrackStatOld, conntrackSums{0x110, 0x220, 0x330, 0x440, 0x550, 0x660, 0x770, 0x880}},
		{"before-2.6.35", conntrackStatNoRestart, conntrackSums{0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0}},
		// Only the names place a column.
		{"reordered", "search_restart drop found\n1 2 3\na b c\n", conntrackSums{0: 0xf, 5: 0xd, 7: 0xb}},
		{"empty", "", conntrackSums{}},
		{"header only", "entries found\n", conntrackSums{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s conntrackStat
			got, err := s.parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %x, want %x", got, tc.want)
			}
		})
	}
	for _, in := range []string{
		"entries found\n1 x\n", // bad value in an exported column
		"entries found\n1\n",   // missing column
		"entries found\n1 2 3\n",
	} {
		var s conntrackStat
		if got, err := s.parse([]byte(in)); err == nil {
			t.Errorf("%q parsed as %x", in, got)
		}
	}
}

// TestConntrackStatMatchesProcfs checks the sums against procfs, which
// node_exporter uses, on the files both can parse.
func TestConntrackStatMatchesProcfs(t *testing.T) {
	files := map[string]string{
		"linux-6.18":           conntrackStat618,
		"current":              conntrackStatCur,
		"searched,delete_list": conntrackStatOld,
	}
	if b, err := os.ReadFile("/proc/net/stat/nf_conntrack"); err == nil {
		files["host"] = string(b)
	}
	if b, err := os.ReadFile(filepath.Join(fixturePaths(t).ProcFS, "net/stat/nf_conntrack")); err == nil {
		files["fixture"] = string(b)
	}
	for name, in := range files {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, "net", "stat", "nf_conntrack")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(in), 0o644); err != nil {
				t.Fatal(err)
			}
			pfs, err := procfs.NewFS(root)
			if err != nil {
				t.Fatal(err)
			}
			entries, err := pfs.ConntrackStat()
			if err != nil {
				t.Fatal(err)
			}
			var want conntrackSums
			for _, e := range entries {
				for i, v := range [...]uint64{e.Found, e.Invalid, e.Ignore, e.Insert, e.InsertFailed, e.Drop, e.EarlyDrop, e.SearchRestart} {
					want[i] += v
				}
			}
			var s conntrackStat
			got, err := s.parse([]byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("got %x, procfs %x", got, want)
			}
		})
	}
}

// TestConntrackNoAllocs checks a steady-state tick allocates nothing, on
// the fixture tree and on this host.
func TestConntrackNoAllocs(t *testing.T) {
	for name, paths := range map[string]collect.Paths{"fixture": fixturePaths(t), "host": collect.DefaultPaths()} {
		t.Run(name, func(t *testing.T) {
			c, err := newConntrackCollector(collect.Options{Paths: paths})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, now := context.Background(), time.Now()
			// The fixture tree has every file: there, nothing may be
			// missing. A host without nf_conntrack loaded is a host this
			// test cannot run on (CI runs Docker, which loads it).
			missing := t.Fatalf
			if name == "host" {
				missing = func(format string, args ...any) { testenv.Unavailable(t, format, args...) }
			}
			if err := c.Update(ctx, now); err != nil {
				missing("no conntrack: %v", err)
			}
			if !c.stat.f.open {
				missing("no nf_conntrack statistics")
			}
			if n := testing.AllocsPerRun(100, func() { _ = c.Update(ctx, now) }); n != 0 {
				t.Errorf("Update: %v allocs, want 0", n)
			}
			if len(c.next) != 2+len(conntrackStatNames) {
				t.Errorf("%d samples, want %d", len(c.next), 2+len(conntrackStatNames))
			}
		})
	}
}

// TestConntrackReopens checks the statistics file is opened again after
// it went away, as when nf_conntrack is reloaded.
func TestConntrackReopens(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "net", "stat", "nf_conntrack")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := newConntrackCollector(collect.Options{Paths: collect.Paths{ProcFS: root}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var m conntrackMetrics
	update := func() {
		t.Helper()
		c.begin()
		if err := c.stat.update(c.filesCollector); err != nil {
			t.Fatal(err)
		}
		m = conntrackMetrics(c.next)
	}

	update()
	if len(m) != 0 || c.stat.f.open {
		t.Fatalf("no file: %d samples, open %v", len(m), c.stat.f.open)
	}
	if err := os.WriteFile(p, []byte(conntrackStatCur), 0o644); err != nil {
		t.Fatal(err)
	}
	update()
	if got := m.value("found"); got != 0x110 {
		t.Errorf("found = %v, want %v", got, 0x110)
	}
	// The open file fails (procfs returns EIO once the entry is removed;
	// here it reads empty) and a new one is behind the path: it is reopened.
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(conntrackStatNoRestart), 0o644); err != nil {
		t.Fatal(err)
	}
	update()
	if got := m.value("found"); got != 0x10 {
		t.Errorf("after replacing the file: found = %v, want %v", got, 0x10)
	}
}

type conntrackMetrics []sample

func (m conntrackMetrics) value(stat string) float64 {
	for i, n := range conntrackStatNames {
		if n == stat {
			return m[i].value
		}
	}
	return -1
}
