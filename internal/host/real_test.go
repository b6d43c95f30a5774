// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// realField returns the first number after key in a /proc file.
func realField(t *testing.T, path, key string) float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, key); ok {
			v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("%s: no %q", path, key)
	return 0
}

// TestRealHost reads this machine's /proc and /sys and checks the snapshot
// against the kernel's own files.
func TestRealHost(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		testenv.Unavailable(t, "needs a Linux /proc: %v", err)
	}
	s := newHostSet(t, collect.DefaultPaths(), Options{})
	for name, err := range s.update(time.Now()) {
		if !errors.Is(err, collect.ErrNoData) {
			t.Errorf("%s: Update: %v", name, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	now := time.Now()
	s.update(now)
	m := s.fill(now)
	uptime := realField(t, "/proc/uptime", "")

	if want := uint64(realField(t, "/proc/meminfo", "MemTotal:")) * 1024; m.Memory.TotalBytes != want {
		t.Errorf("memory total = %d, /proc/meminfo says %d", m.Memory.TotalBytes, want)
	}
	if m.Memory.UsedBytes+m.Memory.AvailableBytes != m.Memory.TotalBytes {
		t.Errorf("used %d + available %d != total %d", m.Memory.UsedBytes, m.Memory.AvailableBytes, m.Memory.TotalBytes)
	}

	online, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		t.Fatal(err)
	}
	n, err := parseCPUList(online)
	if err != nil {
		t.Fatal(err)
	}
	if int(m.CPU.Cores) != n {
		t.Errorf("cores = %d, online CPUs = %d", m.CPU.Cores, n)
	}
	// runtime.NumCPU counts the CPUs this process may run on; it equals the
	// online count unless crmon runs under a narrower affinity.
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil && set.Count() == n && runtime.NumCPU() != int(m.CPU.Cores) {
		t.Errorf("cores = %d, runtime.NumCPU = %d", m.CPU.Cores, runtime.NumCPU())
	}
	if m.CPU.UsagePercent < 0 || m.CPU.UsagePercent > 100 {
		t.Errorf("cpu usage = %v", m.CPU.UsagePercent)
	}

	if d := math.Abs(float64(m.System.UptimeSeconds) - uptime); d > 1 {
		t.Errorf("uptime = %d, /proc/uptime says %.2f", m.System.UptimeSeconds, uptime)
	}
	if want := time.Unix(int64(realField(t, "/proc/stat", "btime")), 0).UTC(); !m.System.BootTime.Equal(want) {
		t.Errorf("boot time = %v, want %v", m.System.BootTime, want)
	}

	ents, _ := os.ReadDir("/proc")
	pids := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			pids++
		}
	}
	if m.System.Processes == 0 || math.Abs(float64(m.System.Processes)-float64(pids)) > float64(pids)/5+5 {
		t.Errorf("processes = %d, /proc lists %d", m.System.Processes, pids)
	}
	if m.System.Threads < m.System.Processes {
		t.Errorf("threads %d < processes %d", m.System.Threads, m.System.Processes)
	}
	self := false
	for _, p := range m.Memory.Processes {
		if p.PID == os.Getpid() {
			self = true
		}
	}
	if len(m.CPU.Processes) == 0 || len(m.Memory.Processes) == 0 {
		t.Errorf("no top processes: cpu %d, memory %d", len(m.CPU.Processes), len(m.Memory.Processes))
	}
	t.Logf("test process among the top %d by memory: %v", len(m.Memory.Processes), self)

	// The root filesystem's size is what statfs says.
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range m.Disk.Partitions {
		if p.MountPoint == "/" {
			found = true
			if want := st.Blocks * uint64(st.Bsize); p.TotalBytes != want {
				t.Errorf("/ size = %d, statfs says %d", p.TotalBytes, want)
			}
		}
	}
	if !found {
		t.Errorf("no / among partitions %+v", m.Disk.Partitions)
	}

	// This machine's kernel exposes no sensor: temperature must be null.
	if !hasSensor() && m.CPU.TemperatureCelsius != nil {
		t.Errorf("temperature = %v on a host without sensors, want null", *m.CPU.TemperatureCelsius)
	}

	if len(m.Network.Interfaces) == 0 {
		t.Error("no network interfaces")
	}
	if b, err := os.ReadFile("/proc/sys/fs/file-nr"); err == nil {
		a, _, _ := parseFileNr(b)
		if d := math.Abs(float64(m.System.OpenFiles) - float64(a)); d > float64(a)/10 {
			t.Errorf("open files = %d, file-nr says %d", m.System.OpenFiles, a)
		}
	}
}

func hasSensor() bool {
	for _, g := range []string{"/sys/class/hwmon/*/temp*_input", "/sys/class/thermal/thermal_zone*/temp"} {
		if m, _ := filepath.Glob(g); len(m) > 0 {
			return true
		}
	}
	return false
}

// TestRealScrape gathers the real host's metrics and checks a few core
// families are there.
func TestRealScrape(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		testenv.Unavailable(t, "needs a Linux /proc: %v", err)
	}
	s := newHostSet(t, collect.DefaultPaths(), Options{})
	s.update(time.Now())
	out := gatherText(t, s.registry(t))
	for _, name := range []string{
		"node_cpu_seconds_total", "node_load1", "node_memory_MemTotal_bytes", "node_filesystem_avail_bytes",
		"node_disk_read_bytes_total", "node_network_receive_bytes_total", "node_boot_time_seconds",
		"node_context_switches_total", "node_procs_running", "node_uname_info", "node_os_info",
	} {
		if !bytes.Contains(out, []byte("\n"+name)) {
			t.Errorf("no %s in the scrape", name)
		}
	}
}

// TestRealAgainstFreeAndDF compares the snapshot with free(1) and df(1),
// whose numbers users know: memory total exact, available and
// buffers+cache close (memory moves between the two reads); root
// filesystem size exact, used and available close, and df's Use%.
func TestRealAgainstFreeAndDF(t *testing.T) {
	freeBin := testenv.RequireCommand(t, "free")
	dfBin := testenv.RequireCommand(t, "df")
	s := newHostSet(t, collect.DefaultPaths(), Options{})
	now := time.Now()
	s.update(now)
	m := s.fill(now)

	out, err := exec.Command(freeBin, "-b").Output()
	if err != nil {
		t.Fatal(err)
	}
	var mem []float64
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 7 && f[0] == "Mem:" {
			for _, v := range f[1:] {
				x, _ := strconv.ParseFloat(v, 64)
				mem = append(mem, x)
			}
		}
	}
	if len(mem) != 6 {
		t.Fatalf("cannot parse free -b:\n%s", out)
	}
	// total used free shared buff/cache available
	if float64(m.Memory.TotalBytes) != mem[0] {
		t.Errorf("memory total = %d, free says %.0f", m.Memory.TotalBytes, mem[0])
	}
	near := func(name string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol*want+1<<20 {
			t.Errorf("%s = %.0f, want about %.0f", name, got, want)
		}
	}
	near("memory available", float64(m.Memory.AvailableBytes), mem[5], 0.02)
	near("memory buffers+cache", float64(m.Memory.BuffersBytes+m.Memory.CachedBytes), mem[4], 0.05)

	out, err = exec.Command(dfBin, "-B1", "/").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 6 {
		t.Fatalf("cannot parse df:\n%s", out)
	}
	size, _ := strconv.ParseFloat(f[1], 64)
	used, _ := strconv.ParseFloat(f[2], 64)
	avail, _ := strconv.ParseFloat(f[3], 64)
	pct, _ := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
	for _, p := range m.Disk.Partitions {
		if p.MountPoint != "/" {
			continue
		}
		if float64(p.TotalBytes) != size {
			t.Errorf("/ size = %d, df says %.0f", p.TotalBytes, size)
		}
		near("/ used", float64(p.UsedBytes), used, 0.01)
		near("/ available", float64(p.AvailableBytes), avail, 0.01)
		// df rounds Use% up.
		if p.UsagePercent > pct || p.UsagePercent < pct-1.5 {
			t.Errorf("/ usage = %.2f%%, df says %.0f%%", p.UsagePercent, pct)
		}
		return
	}
	t.Errorf("no / among partitions %+v", m.Disk.Partitions)
}
