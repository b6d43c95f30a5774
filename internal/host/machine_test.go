// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
)

func gatherMachine(t *testing.T, c collect.Collector) map[string]*dto.Metric {
	t.Helper()
	if err := c.Update(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.Metric{}
	for _, mf := range gatherFamilies(t, c) {
		out[mf.GetName()] = mf.GetMetric()[0]
	}
	return out
}

// TestMachineMatchesHost compares the machine_* families with what this
// machine's kernel and lscpu say: logical CPUs as /proc/cpuinfo lists
// them, physical cores and sockets as lscpu counts (socket, core) pairs,
// MemTotal and SwapTotal, and the boot id.
func TestMachineMatchesHost(t *testing.T) {
	if _, err := os.Stat("/sys/devices/system/cpu/online"); err != nil {
		testenv.Unavailable(t, "needs sysfs: %v", err)
	}
	lscpu := testenv.RequireCommand(t, "lscpu")
	c := build(t, "machine", collect.DefaultPaths(), Options{})
	got := gatherMachine(t, c)

	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Fatal(err)
	}
	logical := 0
	for _, l := range strings.Split(string(cpuinfo), "\n") {
		if strings.HasPrefix(l, "processor") {
			logical++
		}
	}
	out, err := exec.Command(lscpu, "-p=SOCKET,CORE").Output()
	if err != nil {
		t.Fatal(err)
	}
	cores, sockets := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		cores[l] = true
		sockets[strings.Split(l, ",")[0]] = true
	}
	bootID, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"machine_cpu_cores":          float64(logical),
		"machine_cpu_physical_cores": float64(len(cores)),
		"machine_cpu_sockets":        float64(len(sockets)),
		"machine_memory_bytes":       realField(t, "/proc/meminfo", "MemTotal:") * 1024,
		"machine_swap_bytes":         realField(t, "/proc/meminfo", "SwapTotal:") * 1024,
		"machine_scrape_error":       0,
	} {
		m := got[name]
		if m == nil {
			t.Errorf("%s missing", name)
			continue
		}
		if v := m.GetGauge().GetValue(); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
		for _, l := range m.GetLabel() {
			if l.GetName() == "boot_id" && l.GetValue() != strings.TrimSpace(string(bootID)) {
				t.Errorf("%s: boot_id %q, want %q", name, l.GetValue(), bootID)
			}
		}
	}
}

// TestMachineScrapeError: without /proc/meminfo the memory families go
// and machine_scrape_error says so; the CPU families stay.
func TestMachineScrapeError(t *testing.T) {
	paths := fixturePaths(t)
	paths.ProcFS = t.TempDir()
	c := build(t, "machine", paths, Options{})
	if err := c.Update(context.Background(), time.Now()); err == nil {
		t.Error("Update without meminfo: no error")
	}
	got := gatherValues(t, c)
	if got["machine_scrape_error"] != 1 || got["machine_cpu_cores"] != 2 {
		t.Errorf("got %v, want machine_scrape_error 1 and machine_cpu_cores 2", got)
	}
	if _, ok := got["machine_memory_bytes"]; ok {
		t.Error("machine_memory_bytes served without meminfo")
	}
}
