// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

var update = flag.Bool("update", false, "rewrite testdata/fixture-output.txt from the fixture trees")

// hostDependent are the collectors whose output comes from the running
// kernel or clock rather than the fixture tree.
var hostDependent = []string{"time", "timex"}

var fixtureTime = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func gatherText(t *testing.T, reg prometheus.Gatherer) []byte {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encoding %s: %v", mf.GetName(), err)
		}
	}
	return buf.Bytes()
}

// TestFixtureOutput runs every default collector on the fixture trees and
// compares /metrics with the golden file (go test -update rewrites it).
func TestFixtureOutput(t *testing.T) {
	s := newHostSet(t, fixturePaths(t), Options{FilesystemNoStatfs: true}, hostDependent...)
	for name, err := range s.update(fixtureTime) {
		t.Errorf("%s: Update: %v", name, err)
	}
	got := gatherText(t, s.registry(t))

	golden := filepath.Join("testdata", "fixture-output.txt")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (go test -update writes it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("/metrics from the fixture trees (-want +got):\n%s", diff)
	}

	// A second tick over unchanged files must give the same output: no
	// state leaks between the double buffers.
	s.update(fixtureTime.Add(time.Second))
	if again := gatherText(t, s.registry(t)); !bytes.Equal(again, got) {
		t.Errorf("second tick differs:\n%s", cmp.Diff(string(got), string(again)))
	}
}

// TestFixtureLint lints the output of every collector, the host-dependent
// and the default-off ones included, with client_golang's linter and with
// promtool when it is installed.
func TestFixtureLint(t *testing.T) {
	s := newFullSet(t, fixturePaths(t), Options{FilesystemNoStatfs: true})
	for name, err := range s.update(fixtureTime) {
		t.Errorf("%s: Update: %v", name, err)
	}
	reg := s.registry(t)
	paths := fixturePaths(t)
	inherited, err := testenv.InheritedLintNames(filepath.Join(paths.ProcFS, "meminfo"))
	if err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatalf("linting: %v", err)
	}
	for _, p := range problems {
		if !inherited[p.Metric] {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
	testenv.CheckPromtool(t, gatherText(t, reg), filepath.Join(paths.ProcFS, "meminfo"))
}

// TestFixtureFill checks the snapshot from one tick of the fixture
// trees: rates are zero on a first tick, everything else comes from the
// files.
func TestFixtureFill(t *testing.T) {
	s := newHostSetWith(t, collect.Options{Paths: fixturePaths(t), CommandLines: true}, Options{FilesystemNoStatfs: true})
	s.update(fixtureTime)
	got := s.fill(fixtureTime)

	const kB = 1024
	// RSS in /proc/PID/stat is in pages of this machine's size.
	page := uint64(os.Getpagesize())
	memTotal := uint64(24684092 * kB)
	temp := 54.0
	want := metrics.ResourceMetrics{
		Timestamp: fixtureTime,
		CPU: metrics.CPUMetrics{
			LoadAverage:        [3]float64{1.22, 0.89, 0.50},
			Cores:              2,
			FrequencyMHz:       2700,
			TemperatureCelsius: &temp,
			Processes: []metrics.ProcessCPUMetrics{
				{PID: 1234, Name: "my (weird) prog", Command: "python3 -m http.server", CPUSeconds: 20},
				{PID: 1, Name: "systemd", Command: "/sbin/init splash", CPUSeconds: 4},
				{PID: 77, Name: "kworker/1:1H-kblockd", Command: "[kworker/1:1H-kblockd]", CPUSeconds: 0.56},
				{PID: 4321, Name: "defunct", Command: "[defunct]", CPUSeconds: 0.1},
				{PID: 2, Name: "kthreadd", Command: "[kthreadd]", CPUSeconds: 0.03},
			},
		},
		Memory: metrics.MemoryMetrics{
			TotalBytes:     memTotal,
			UsedBytes:      memTotal - 24097304*kB,
			FreeBytes:      23032368 * kB,
			AvailableBytes: 24097304 * kB,
			CachedBytes:    (1192824 + 137304) * kB,
			BuffersBytes:   27112 * kB,
			UsagePercent:   float64(24684092-24097304) / 24684092 * 100,
			SwapTotalBytes: 2097148 * kB,
			SwapUsedBytes:  (2097148 - 2000000) * kB,
			SwapFreeBytes:  2000000 * kB,
			Processes: []metrics.ProcessMemoryMetrics{
				{PID: 1234, Name: "my (weird) prog", Command: "python3 -m http.server", RSSBytes: 25600 * page, VirtualBytes: 1073741824, UsagePercent: float64(25600*page) / float64(memTotal) * 100},
				{PID: 1, Name: "systemd", Command: "/sbin/init splash", RSSBytes: 3000 * page, VirtualBytes: 173322240, UsagePercent: float64(3000*page) / float64(memTotal) * 100},
				{PID: 2, Name: "kthreadd", Command: "[kthreadd]"},
				{PID: 77, Name: "kworker/1:1H-kblockd", Command: "[kworker/1:1H-kblockd]"},
				{PID: 4321, Name: "defunct", Command: "[defunct]"},
			},
		},
		// Statfs is off for fixtures: no partition has a capacity.
		Disk: metrics.DiskMetrics{Partitions: []metrics.PartitionMetrics{}},
		Network: metrics.NetworkMetrics{
			BytesSent:       772899 + 395372 + 1546,
			BytesReceived:   355079216 + 8740772,
			PacketsSent:     7964 + 5988 + 19,
			PacketsReceived: 11818 + 6773,
			ErrorsSent:      1,
			ErrorsReceived:  3,
			Interfaces: []metrics.InterfaceMetrics{
				{Name: "lo", BytesSent: 20808, BytesReceived: 20808, PacketsSent: 185, PacketsReceived: 185},
				{Name: "eth0", BytesSent: 772899, BytesReceived: 355079216, PacketsSent: 7964, PacketsReceived: 11818, ErrorsSent: 1, ErrorsReceived: 3, SpeedBytesPerSec: 125000000},
				{Name: "docker0", BytesSent: 395372, BytesReceived: 8740772, PacketsSent: 5988, PacketsReceived: 6773, SpeedBytesPerSec: 1250000000},
				{Name: "veth2692324", BytesSent: 1546, PacketsSent: 19},
			},
		},
		System: metrics.SystemMetrics{
			UptimeSeconds:   754,
			BootTime:        time.Unix(1795723570, 0).UTC(),
			Users:           2,
			Processes:       5,
			Threads:         8,
			OpenFiles:       1139,
			ContextSwitches: 2188170,
		},
	}
	if diff := cmp.Diff(want, got, cmp.Transformer("nilEmpty", nilToEmpty)); diff != "" {
		t.Errorf("snapshot of the fixture trees (-want +got):\n%s", diff)
	}
}

// nilToEmpty lets the comparison treat a nil and an empty partition list
// alike: both mean the host reported no partition.
func nilToEmpty(p []metrics.PartitionMetrics) []metrics.PartitionMetrics {
	if p == nil {
		return []metrics.PartitionMetrics{}
	}
	return p
}

// TestTemperature covers a host with sensors (the fixture tree) and one
// without (an empty sysfs): the snapshot's temperature is then null.
func TestTemperature(t *testing.T) {
	fx := fixturePaths(t)
	empty := fx
	empty.SysFS = t.TempDir()
	hot := 54.0
	for _, tc := range []struct {
		name  string
		paths collect.Paths
		want  *float64
	}{
		{"sensors", fx, &hot},
		{"no sensor", empty, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m metrics.ResourceMetrics
			for _, name := range []string{"hwmon", "thermal_zone"} {
				c := build(t, name, tc.paths, Options{})
				err := c.Update(t.Context(), fixtureTime)
				if tc.want == nil && !errors.Is(err, collect.ErrNoData) {
					t.Errorf("%s: Update = %v, want ErrNoData", name, err)
				}
				c.Fill(&m)
			}
			if diff := cmp.Diff(tc.want, m.CPU.TemperatureCelsius); diff != "" {
				t.Errorf("temperature (-want +got):\n%s", diff)
			}
		})
	}
}

func build(t testing.TB, name string, paths collect.Paths, o Options) collect.Collector {
	t.Helper()
	for _, r := range RegistrationsWithOptions(o) {
		if r.Name == name {
			c, err := r.New(collect.Options{Paths: paths})
			if err != nil {
				t.Fatalf("building %s: %v", name, err)
			}
			return c
		}
	}
	t.Fatalf("no collector %q", name)
	return nil
}

// TestDeviceExclude leaves veths out of /metrics but not out of the
// snapshot.
func TestDeviceExclude(t *testing.T) {
	s := newHostSet(t, fixturePaths(t), Options{FilesystemNoStatfs: true, NetdevDeviceExclude: "^veth", NetclassDeviceExclude: "^(veth|docker)"})
	s.update(fixtureTime)
	out := string(gatherText(t, s.registry(t)))
	if strings.Contains(out, `device="veth2692324"`) {
		t.Error("excluded veth in /metrics")
	}
	if !strings.Contains(out, `node_network_receive_bytes_total{device="docker0"}`) || strings.Contains(out, `node_network_mtu_bytes{device="docker0"}`) {
		t.Error("docker0: want netdev families, no netclass families")
	}
	m := s.fill(fixtureTime)
	if len(m.Network.Interfaces) != 4 || m.Network.BytesSent != 772899+395372+1546 {
		t.Errorf("snapshot interfaces = %+v, want all four", m.Network.Interfaces)
	}
	if m.Network.Interfaces[2].SpeedBytesPerSec != 1250000000 {
		t.Errorf("docker0 speed = %d, want it although excluded from /metrics", m.Network.Interfaces[2].SpeedBytesPerSec)
	}
}

// TestProcessCommandLines checks that the snapshot names processes by
// comm unless command lines are asked for: the agent reads every user's
// /proc/PID/cmdline, and argv may carry a token.
func TestProcessCommandLines(t *testing.T) {
	const argv = "python3 -m http.server"
	for _, tc := range []struct {
		name         string
		commandLines bool
	}{
		{"default", false},
		{"command_lines", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newHostSetWith(t, collect.Options{Paths: fixturePaths(t), CommandLines: tc.commandLines}, Options{FilesystemNoStatfs: true})
			s.update(fixtureTime)
			got := s.fill(fixtureTime)
			if len(got.CPU.Processes) == 0 || len(got.Memory.Processes) == 0 {
				t.Fatal("no process lists in the snapshot")
			}
			var cmds []string
			for _, p := range got.CPU.Processes {
				cmds = append(cmds, p.Command)
				if !tc.commandLines && p.Command != p.Name {
					t.Errorf("cpu list: pid %d command %q, want its name %q", p.PID, p.Command, p.Name)
				}
			}
			for _, p := range got.Memory.Processes {
				cmds = append(cmds, p.Command)
				if !tc.commandLines && p.Command != p.Name {
					t.Errorf("memory list: pid %d command %q, want its name %q", p.PID, p.Command, p.Name)
				}
			}
			if has := strings.Contains(strings.Join(cmds, "\n"), argv); has != tc.commandLines {
				t.Errorf("command %q in the lists = %v, want %v: %q", argv, has, tc.commandLines, cmds)
			}
		})
	}
}
