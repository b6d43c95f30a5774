// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// copyProc copies the fixture procfs tree (plain files only) to a
// temporary directory the test may change between ticks.
func copyProc(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(fixturePaths(t).ProcFS)); err != nil {
		t.Fatalf("copying procfs fixture: %v", err)
	}
	return dst
}

func rewrite(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRates takes two ticks two seconds apart while the counters move by
// known amounts, and checks every rate of the snapshot.
func TestRates(t *testing.T) {
	proc := copyProc(t)
	root := t.TempDir() // "/" of the mounts below resolves here and statfs works
	if err := os.WriteFile(filepath.Join(proc, "1/mountinfo"),
		[]byte("27 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	paths := collect.Paths{ProcFS: proc, SysFS: fixturePaths(t).SysFS, RootFS: root}
	s := newHostSet(t, paths, Options{}, hostDependent...)
	t0 := fixtureTime
	for name, err := range s.update(t0) {
		if !errors.Is(err, collect.ErrNoData) { // the empty rootfs has no os-release, no utmp
			t.Fatalf("%s: first Update: %v", name, err)
		}
	}

	// 2 s later: 200 more ticks on the host, half of them idle: 50 %.
	rewrite(t, filepath.Join(proc, "stat"), "cpu  26654 0 13057 109137 501", "cpu  26754 0 13057 109237 501")
	// vda: +200 reads of 4000 sectors, +50 writes of 1000 sectors; its
	// partition vda1 sees the same reads only.
	rewrite(t, filepath.Join(proc, "diskstats"), "vda 42400 6270 2462458 22937 20345 33660 5120128", "vda 42600 6270 2466458 22937 20395 33660 5121128")
	rewrite(t, filepath.Join(proc, "diskstats"), "vda1 41900 6270 2440000", "vda1 42100 6270 2444000")
	// nvme0n1 counts in the totals too: +20 writes of 800 sectors.
	rewrite(t, filepath.Join(proc, "diskstats"), "nvme0n1 9000 12 720000 3100 4000 300 640000", "nvme0n1 9000 12 720000 3100 4020 300 640800")
	// dm-0 is stacked on another disk and loop1 is excluded: neither adds.
	rewrite(t, filepath.Join(proc, "diskstats"), "dm-0 8800 0 700000", "dm-0 9800 0 800000")
	rewrite(t, filepath.Join(proc, "diskstats"), "loop1 112 0 2234", "loop1 1112 0 102234")
	// eth0: +1000 bytes in, +3000 out; lo moves too but is not counted.
	rewrite(t, filepath.Join(proc, "net/dev"), "eth0: 355079216   11818    3    0    0     1          0        12   772899", "eth0: 355080216   11818    3    0    0     1          0        12   775899")
	rewrite(t, filepath.Join(proc, "net/dev"), "lo:   20808     185    0    0    0     0          0         0    20808", "lo:   30808     185    0    0    0     0          0         0    30808")
	// pid 1234 used 150 ticks (0.75 of a core); pid 5555 is new with 20.
	rewrite(t, filepath.Join(proc, "1234/stat"), "0 1500 500 0", "0 1600 550 0")
	if err := os.MkdirAll(filepath.Join(proc, "5555"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "5555/stat"), []byte("5555 (burner) R 1 5555 5555 0 -1 4194304 0 0 0 0 20 0 0 0 20 0 1 0 75000 4096000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "5555/cmdline"), []byte("burner\x00--hot\x00"), 0o644); err != nil {
		t.Fatal(err)
	}

	t1 := t0.Add(2 * time.Second)
	for name, err := range s.update(t1) {
		if !errors.Is(err, collect.ErrNoData) {
			t.Fatalf("%s: second Update: %v", name, err)
		}
	}
	m := s.fill(t1)

	if m.CPU.UsagePercent != 50 {
		t.Errorf("cpu usage = %v, want 50", m.CPU.UsagePercent)
	}
	wantDisk := [4]uint64{100, 4000 * 512 / 2, 25 + 10, (1000 + 800) * 512 / 2}
	gotDisk := [4]uint64{m.Disk.ReadOpsPerSec, m.Disk.ReadBytesPerSec, m.Disk.WriteOpsPerSec, m.Disk.WriteBytesPerSec}
	if diff := cmp.Diff(wantDisk, gotDisk); diff != "" {
		t.Errorf("disk rates [read ops, read B, write ops, write B]/s (-want +got):\n%s", diff)
	}
	if len(m.Disk.Partitions) != 1 {
		t.Fatalf("partitions = %+v, want the root", m.Disk.Partitions)
	}
	p := m.Disk.Partitions[0]
	wantPart := [4]uint64{100, 4000 * 512 / 2, 0, 0}
	gotPart := [4]uint64{p.ReadOpsPerSec, p.ReadBytesPerSec, p.WriteOpsPerSec, p.WriteBytesPerSec}
	if diff := cmp.Diff(wantPart, gotPart); diff != "" {
		t.Errorf("partition %s rates (-want +got):\n%s", p.Device, diff)
	}
	if p.TotalBytes == 0 || p.TotalBytes != m.Disk.TotalBytes || p.UsedBytes+p.FreeBytes != p.TotalBytes {
		t.Errorf("partition capacity %+v, disk totals %+v", p, m.Disk)
	}

	if m.Network.BandwidthBytesPerSec != 2000 {
		t.Errorf("bandwidth = %d B/s, want 2000 (loopback excluded)", m.Network.BandwidthBytesPerSec)
	}
	for _, i := range m.Network.Interfaces {
		want := map[string]uint64{"eth0": 2000, "lo": 10000}[i.Name]
		if i.BandwidthBytesPerSec != want {
			t.Errorf("%s bandwidth = %d, want %d", i.Name, i.BandwidthBytesPerSec, want)
		}
	}

	wantTop := []metrics.ProcessCPUMetrics{
		{PID: 1234, Name: "my (weird) prog", Command: "my (weird) prog", UsagePercent: 75, CPUSeconds: 21.5},
		{PID: 5555, Name: "burner", Command: "burner", UsagePercent: 10, CPUSeconds: 0.2},
	}
	if diff := cmp.Diff(wantTop, m.CPU.Processes[:2]); diff != "" {
		t.Errorf("top processes by CPU (-want +got):\n%s", diff)
	}
	if m.System.Processes != 6 || m.System.Threads != 9 {
		t.Errorf("processes, threads = %d, %d, want 6, 9", m.System.Processes, m.System.Threads)
	}

	// A process that exits is forgotten; one that reuses its PID is new.
	if err := os.RemoveAll(filepath.Join(proc, "5555")); err != nil {
		t.Fatal(err)
	}
	s.update(t1.Add(time.Second))
	m = s.fill(t1.Add(time.Second))
	for _, p := range m.CPU.Processes {
		if p.PID == 5555 {
			t.Errorf("exited process still listed: %+v", p)
		}
	}
	if m.System.Processes != 5 {
		t.Errorf("processes = %d after an exit, want 5", m.System.Processes)
	}
}

// TestCPUCounterDip checks that a per-CPU counter going backwards (idle on
// NO_HZ kernels) is exported as its previous value, never decreasing.
func TestCPUCounterDip(t *testing.T) {
	proc := copyProc(t)
	c := build(t, "cpu", collect.Paths{ProcFS: proc, SysFS: fixturePaths(t).SysFS}, Options{})
	if err := c.Update(t.Context(), fixtureTime); err != nil {
		t.Fatal(err)
	}
	rewrite(t, filepath.Join(proc, "stat"), "cpu0 12810 0 6252 55534", "cpu0 12810 0 6252 55530")
	if err := c.Update(t.Context(), fixtureTime.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	cc := c.(*cpuCollector)
	for _, s := range cc.metricSet.cur {
		if s.lv[0] == "0" && s.lv[1] == "idle" && s.desc == cc.cpuDesc {
			if s.value != 555.34 {
				t.Errorf("cpu0 idle = %v, want 555.34 (previous value kept)", s.value)
			}
			return
		}
	}
	t.Error("no cpu0 idle sample")
}

// TestCPUOnlineFollows: the online CPU list, kept open between ticks, is
// read anew at each.
func TestCPUOnlineFollows(t *testing.T) {
	sys := t.TempDir()
	online := filepath.Join(sys, "devices/system/cpu/online")
	if err := os.MkdirAll(filepath.Dir(online), 0o755); err != nil {
		t.Fatal(err)
	}
	c := build(t, "cpu", collect.Paths{ProcFS: copyProc(t), SysFS: sys}, Options{})
	for i, list := range []string{"0-1\n", "0-3\n", "0\n"} {
		if err := os.WriteFile(online, []byte(list), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := c.Update(t.Context(), fixtureTime.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
		var m metrics.ResourceMetrics
		c.Fill(&m)
		if want := []uint32{2, 4, 1}[i]; m.CPU.Cores != want {
			t.Errorf("online %q: %d cores, want %d", strings.TrimSpace(list), m.CPU.Cores, want)
		}
	}
}

// TestProcessesScanInterval checks the ticks between two full scans: the
// thread count follows /proc/loadavg, the process count and the top list
// are the last scan's until the next one drops the exited process, and the
// next scan's CPU percentages cover the whole interval.
func TestProcessesScanInterval(t *testing.T) {
	proc := copyProc(t)
	c := build(t, "processes", collect.Paths{ProcFS: proc}, Options{ProcessesScanInterval: 10 * time.Second})
	tick := func(d time.Duration) metrics.ResourceMetrics {
		t.Helper()
		if err := c.Update(t.Context(), fixtureTime.Add(d)); err != nil {
			t.Fatal(err)
		}
		var m metrics.ResourceMetrics
		c.Fill(&m)
		return m
	}
	tick(0)
	tick(time.Second) // the first two ticks always scan, for a first rate
	rewrite(t, filepath.Join(proc, "1234/stat"), "0 1500 500 0", "0 2500 500 0")
	if err := os.RemoveAll(filepath.Join(proc, "4321")); err != nil {
		t.Fatal(err)
	}
	m := tick(2 * time.Second)
	if m.System.Processes != 5 || m.System.Threads != 218 {
		t.Errorf("between scans: processes, threads = %d, %d, want 5 (last scan), 218 (loadavg)", m.System.Processes, m.System.Threads)
	}
	for _, p := range m.CPU.Processes {
		if p.PID == 1234 && p.UsagePercent != 0 {
			t.Errorf("pid 1234 usage = %v between scans, want the last scan's 0", p.UsagePercent)
		}
	}
	m = tick(11 * time.Second) // 10 s after the second scan: 1000 ticks = 100 %
	if p := m.CPU.Processes[0]; p.PID != 1234 || p.UsagePercent != 100 {
		t.Errorf("after the interval, top = %+v, want pid 1234 at 100%%", p)
	}
	if m.System.Processes != 4 {
		t.Errorf("after the next scan: processes = %d, want 4", m.System.Processes)
	}
	for _, p := range m.CPU.Processes {
		if p.PID == 4321 {
			t.Error("exited process still in the top list after the next scan")
		}
	}
	if m.System.Threads != 7 {
		t.Errorf("threads after a scan = %d, want 7", m.System.Threads)
	}
}

// TestNetclassRefresh checks that interface properties are re-read as soon
// as an interface appears, not only every NetclassRefresh.
func TestNetclassRefresh(t *testing.T) {
	proc, sys := copyProc(t), t.TempDir()
	up := func(mtu string) map[string]string {
		return map[string]string{"mtu": mtu, "operstate": "up", "flags": "0x1003"}
	}
	addIface(t, sys, "eth0", up("1500"))
	s := newHostSet(t, collect.Paths{ProcFS: proc, SysFS: sys, RootFS: t.TempDir()}, Options{})
	var nc, nd collect.Collector
	for i, n := range s.names {
		switch n {
		case "netclass":
			nc = s.cs[i]
		case "netdev":
			nd = s.cs[i]
		}
	}
	tick := func(d time.Duration) {
		for _, c := range []collect.Collector{nc, nd} {
			if err := c.Update(t.Context(), fixtureTime.Add(d)); err != nil {
				t.Fatalf("%s: %v", c.Name(), err)
			}
		}
	}
	mtus := func() map[string]float64 {
		out := map[string]float64{}
		c := nc.(*netclassCollector)
		for _, s := range c.metricSet.cur {
			if s.desc == c.props[11] { // mtu_bytes
				out[s.lv[0]] = s.value
			}
		}
		return out
	}
	tick(0)
	addIface(t, sys, "eth1", up("9000"))
	tick(time.Second) // sysfs changed, /proc/net/dev did not: no re-read
	if diff := cmp.Diff(map[string]float64{"eth0": 1500}, mtus()); diff != "" {
		t.Errorf("before netdev sees eth1 (-want +got):\n%s", diff)
	}
	rewrite(t, filepath.Join(proc, "net/dev"), "    lo:", "  eth1: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n    lo:")
	tick(2 * time.Second) // netdev sees eth1
	tick(3 * time.Second) // netclass re-reads
	if diff := cmp.Diff(map[string]float64{"eth0": 1500, "eth1": 9000}, mtus()); diff != "" {
		t.Errorf("after eth1 appeared (-want +got):\n%s", diff)
	}

	// Only new interfaces are read between full reads: eth0's change waits
	// for the next full read, eth1's removal does not.
	if err := os.WriteFile(filepath.Join(sys, "class/net/eth0/mtu"), []byte("1400\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(sys, "class/net/eth1")); err != nil {
		t.Fatal(err)
	}
	rewrite(t, filepath.Join(proc, "net/dev"), "  eth1: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n", "")
	tick(4 * time.Second)
	tick(5 * time.Second)
	if diff := cmp.Diff(map[string]float64{"eth0": 1500}, mtus()); diff != "" {
		t.Errorf("after eth1 left (-want +got):\n%s", diff)
	}
	tick(61 * time.Second) // full read
	if diff := cmp.Diff(map[string]float64{"eth0": 1400}, mtus()); diff != "" {
		t.Errorf("after a full read (-want +got):\n%s", diff)
	}
}

// TestCPUFreqRefresh checks that current frequencies are read every tick
// and the limits once a minute.
func TestCPUFreqRefresh(t *testing.T) {
	sys := t.TempDir()
	cpuDir := filepath.Join(sys, "devices/system/cpu")
	if err := os.CopyFS(cpuDir, os.DirFS(filepath.Join(fixturePaths(t).SysFS, "devices/system/cpu"))); err != nil {
		t.Fatal(err)
	}
	c := build(t, "cpufreq", collect.Paths{ProcFS: fixturePaths(t).ProcFS, SysFS: sys}, Options{})
	// values maps cpu0's samples by cpufreqFiles name.
	values := func() map[string]float64 {
		out := map[string]float64{}
		cc := c.(*cpufreqCollector)
		for _, s := range cc.metricSet.cur {
			for i, d := range cc.descs {
				if s.desc == d && s.lv[0] == "0" {
					out[cpufreqFiles[i]] = s.value
				}
			}
		}
		return out
	}
	tick := func(d time.Duration) metrics.ResourceMetrics {
		t.Helper()
		if err := c.Update(t.Context(), fixtureTime.Add(d)); err != nil {
			t.Fatal(err)
		}
		var m metrics.ResourceMetrics
		c.Fill(&m)
		return m
	}
	tick(0)
	for f, v := range map[string]string{"scaling_cur_freq": "3600000", "scaling_max_freq": "3000000"} {
		if err := os.WriteFile(filepath.Join(cpuDir, "cpu0/cpufreq", f), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := tick(time.Second)
	if m.CPU.FrequencyMHz != 3300 {
		t.Errorf("frequency = %v MHz, want 3300 (mean of 3600 and 3000)", m.CPU.FrequencyMHz)
	}
	got := values()
	if got["scaling_cur_freq"] != 3.6e9 || got["scaling_max_freq"] != 4.2e9 {
		t.Errorf("after 1 s: %v, want current 3.6e9 and the old limit 4.2e9", got)
	}
	tick(61 * time.Second)
	if got := values(); got["scaling_max_freq"] != 3e9 {
		t.Errorf("after a minute: max = %v, want 3e9", got["scaling_max_freq"])
	}
}

// TestCPUFreqFromCPUInfo covers hosts without cpufreq (most VMs): the mean
// "cpu MHz" of /proc/cpuinfo, and no frequency families.
func TestCPUFreqFromCPUInfo(t *testing.T) {
	c := build(t, "cpufreq", collect.Paths{ProcFS: fixturePaths(t).ProcFS, SysFS: t.TempDir()}, Options{})
	if err := c.Update(t.Context(), fixtureTime); err != nil {
		t.Fatal(err)
	}
	var m metrics.ResourceMetrics
	c.Fill(&m)
	if m.CPU.FrequencyMHz != 2596.142 {
		t.Errorf("frequency = %v MHz, want 2596.142 from cpuinfo", m.CPU.FrequencyMHz)
	}
	if n := len(c.(*cpufreqCollector).metricSet.cur); n != 0 {
		t.Errorf("%d samples without cpufreq, want none", n)
	}
}

// ownProcScanner copies the procfs fixture, taken as this process's PID
// namespace's procfs, and builds a processes collector over it; scan runs
// a scan a second after the last and returns the snapshot.
func ownProcScanner(t *testing.T) (proc string, c *processesCollector, scan func() metrics.ResourceMetrics) {
	t.Helper()
	proc = copyProc(t)
	if err := os.Symlink(strconv.Itoa(os.Getpid()), filepath.Join(proc, "self")); err != nil {
		t.Fatal(err)
	}
	c = build(t, "processes", collect.Paths{ProcFS: proc}, Options{}).(*processesCollector)
	n := 0
	return proc, c, func() metrics.ResourceMetrics {
		t.Helper()
		n++
		if err := c.Update(t.Context(), fixtureTime.Add(time.Duration(n)*time.Second)); err != nil {
			t.Fatal(err)
		}
		var m metrics.ResourceMetrics
		c.Fill(&m)
		return m
	}
}

// TestProcessesListOnlyWhenMade checks that a scan lists the procfs root
// only every relistEvery scans or when more than maxNewPIDs PIDs were
// given out since the last scan (/proc/loadavg's last field), and
// otherwise asks for the new PIDs alone: a process directory that shows
// while the last PID stays is not read, one whose PID was given out since
// is, a thread's is not, and one outside the new PIDs is found by the next
// listing.
func TestProcessesListOnlyWhenMade(t *testing.T) {
	proc, _, snap := ownProcScanner(t)
	scan := func() uint32 {
		t.Helper()
		return snap().System.Processes
	}
	// mk makes a process directory pid of thread group tgid.
	mk := func(pid, tgid int) {
		t.Helper()
		dir := filepath.Join(proc, strconv.Itoa(pid))
		if err := os.CopyFS(dir, os.DirFS(filepath.Join(proc, "1234"))); err != nil {
			t.Fatal(err)
		}
		rewrite(t, filepath.Join(dir, "stat"), "1234 (", strconv.Itoa(pid)+" (")
		status := fmt.Sprintf("Name:\tx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%d\nNgid:\t0\nPid:\t%d\n", tgid, pid)
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := scan(); got != 5 {
		t.Fatalf("first scan: %d processes, want the fixture's 5", got)
	}
	mk(1999, 1999) // below the last PID, 2161
	for i := 1; i < relistEvery; i++ {
		if got := scan(); got != 5 {
			t.Fatalf("scan %d, last PID as before: %d processes, want 5 (no listing)", i+1, got)
		}
	}
	if got := scan(); got != 6 {
		t.Errorf("scan %d: %d processes, want 6 (listed every %d scans)", relistEvery+1, got, relistEvery)
	}
	mk(2170, 2170)
	mk(2180, 2170) // a thread of 2170
	mk(3000, 3000) // not given out since the last scan
	rewrite(t, filepath.Join(proc, "loadavg"), "2/218 2161", "2/218 2190")
	if got := scan(); got != 7 {
		t.Errorf("after PIDs 2162-2190 were given out: %d processes, want 7 (2170 only)", got)
	}
	rewrite(t, filepath.Join(proc, "loadavg"), "2/218 2190", "2/218 2400")
	if got := scan(); got != 9 {
		t.Errorf("after %d PIDs were given out: %d processes, want 9 (listed: 3000 and the thread's directory, which a real procfs does not list)", 2400-2190, got)
	}
}

// TestProcessesLiveStartAndExit checks, on the live procfs, that a process
// started between two scans is in the second and one that exited is not in
// the next, whether the scan listed /proc or only read the processes it
// knew.
func TestProcessesLiveStartAndExit(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		testenv.Unavailable(t, "needs procfs: %v", err)
	}
	c := build(t, "processes", collect.Paths{ProcFS: "/proc"}, Options{}).(*processesCollector)
	now := time.Now()
	has := func(pid int) bool {
		t.Helper()
		now = now.Add(time.Second)
		if err := c.Update(t.Context(), now); err != nil {
			t.Fatal(err)
		}
		return slices.Contains(c.pids, int32(pid))
	}
	has(0)
	if c.ownPIDNS != 1 {
		t.Fatal("the live /proc is not taken as this process's PID namespace's")
	}
	if ns, err := os.Readlink("/proc/self/ns/cgroup"); err == nil && c.hostCgroupNS() != (ns == "cgroup:[4026531835]") {
		t.Errorf("in the host's cgroup namespace: %v, but this process's is %s", c.hostCgroupNS(), ns)
	}
	for range 3 {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if !has(cmd.Process.Pid) {
			t.Errorf("process %d not found at the scan after it started", cmd.Process.Pid)
		}
		cmd.Process.Kill()
		cmd.Wait()
		if has(cmd.Process.Pid) {
			t.Errorf("process %d still there at the scan after it exited", cmd.Process.Pid)
		}
	}
}

// fakeActivity is the probes' per-cgroup activity as a test sets it.
type fakeActivity struct{ act collect.Activity }

func (f *fakeActivity) CgroupActivity(time.Time) (collect.Activity, bool) { return f.act, true }

// TestProcessesIdleCgroups checks that a scan leaves out the processes of
// cgroups the probes saw do nothing since their last read, serving what
// that read found, and reads them again once their cgroup moves, one of
// its tasks is on a CPU, or at the next listing of /proc.
func TestProcessesIdleCgroups(t *testing.T) {
	proc, c, snap := ownProcScanner(t)
	for pid, cg := range map[string]string{"1234": "/idle", "1": "/", "2": "/", "77": "/", "4321": "/idle"} {
		if err := os.WriteFile(filepath.Join(proc, pid, "cgroup"), []byte("3:memory:/x\n0::"+cg+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.cgroupNS = 1 // the fixture has no namespaces: its paths are the probes'
	fa := &fakeActivity{act: collect.Activity{Counts: collect.CountsOf(map[string]uint64{"/": 100, "/idle": 5}), OnCPU: map[string]bool{}}}
	c.SetCgroupActivity(fa)
	usage := func() float64 {
		t.Helper()
		m := snap()
		if m.System.Processes != 5 {
			t.Errorf("scan %d: %d processes, want 5", c.scans, m.System.Processes)
		}
		for _, p := range m.CPU.Processes {
			if p.PID == 1234 {
				return p.UsagePercent
			}
		}
		return 0
	}
	usage()
	usage()
	if e := c.procs[1234]; e == nil || e.cgroup != "/idle" || !e.haveAct || e.actCount != 5 {
		t.Fatalf("pid 1234's entry %+v, want cgroup /idle at count 5", e)
	}
	rewrite(t, filepath.Join(proc, "1234/stat"), "0 1500 500 0", "0 1550 500 0")
	if u := usage(); u != 0 {
		t.Errorf("its cgroup idle: usage %v, want 0 (not read)", u)
	}
	fa.act.OnCPU["/idle"] = true
	if u := usage(); u != 50 {
		t.Errorf("a task of its cgroup on a CPU: usage %v, want 50 (read: 50 ticks in 1 s)", u)
	}
	fa.act.OnCPU = map[string]bool{}
	rewrite(t, filepath.Join(proc, "1234/stat"), "0 1550 500 0", "0 1600 500 0")
	if u := usage(); u != 0 {
		t.Errorf("idle again: usage %v, want 0", u)
	}
	fa.act.Counts = collect.CountsOf(map[string]uint64{"/": 100, "/idle": 6})
	if u := usage(); u != 50 {
		t.Errorf("its cgroup moved: usage %v, want 50", u)
	}
	if !c.procs[4321].haveAct || c.procs[4321].state != 'Z' {
		t.Fatalf("the zombie 4321: %+v", c.procs[4321])
	}
	if c.procs[4321].idle(&fa.act) {
		t.Error("a zombie is left out: its parent may reap it from anywhere")
	}
	rewrite(t, filepath.Join(proc, "1234/stat"), "0 1600 500 0", "0 1650 500 0")
	for c.unlisted+1 < relistEvery {
		if u := usage(); u != 0 {
			t.Fatalf("scan %d, its cgroup idle: usage %v, want 0", c.scans, u)
		}
	}
	if u := usage(); u == 0 {
		t.Errorf("the listing every %d scans: usage 0, want it read", relistEvery)
	}
}
