// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
)

// TestAbsentSourcesRecheck starts the selinux, users, thermal_zone and
// hwmon collectors on a tree that has none of their sources, adds the
// sources, and checks that each collector sees them at its first tick a
// minute (absentRecheck) after the look that found them absent, not
// before, and at once when the clock goes back.
func TestAbsentSourcesRecheck(t *testing.T) {
	root := t.TempDir()
	paths := collect.Paths{ProcFS: filepath.Join(root, "proc"), SysFS: filepath.Join(root, "sys"), RootFS: root}
	o := collect.Options{Paths: paths}
	se, err := newSELinuxCollector(o)
	if err != nil {
		t.Fatal(err)
	}
	us, err := newUsersCollector(o)
	if err != nil {
		t.Fatal(err)
	}
	tz, err := newThermalZoneCollector(o)
	if err != nil {
		t.Fatal(err)
	}
	hw, err := newHwmonCollector(o)
	if err != nil {
		t.Fatal(err)
	}
	type probe struct {
		name    string
		c       collect.Collector
		present func() bool // the source's series are served
	}
	ps := []probe{
		{"selinux", se, func() bool { return untypedOrGauge(t, se)["node_selinux_enabled"] == 1 }},
		{"users", us, func() bool { return untypedOrGauge(t, us)["crmon_host_users"] == 1 }},
		{"thermal_zone", tz, func() bool { _, ok := untypedOrGauge(t, tz)["node_thermal_zone_temp"]; return ok }},
		{"hwmon", hw, func() bool { _, ok := untypedOrGauge(t, hw)["node_hwmon_temp_celsius"]; return ok }},
	}
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tick := func(now time.Time) {
		t.Helper()
		for _, p := range ps {
			if err := p.c.Update(ctx, now); err != nil && !errors.Is(err, collect.ErrNoData) {
				t.Fatalf("%s at %v: %v", p.name, now.Sub(t0), err)
			}
		}
	}
	want := func(when string, present bool) {
		t.Helper()
		for _, p := range ps {
			if got := p.present(); got != present {
				t.Errorf("%s %s: source served = %v, want %v", p.name, when, got, present)
			}
		}
	}

	tick(t0)
	want("with no source", false)

	write := func(rel string, b []byte) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sys/fs/selinux/enforce", []byte("1\n"))
	rec := make([]byte, nativeUtmpSize())
	binary.LittleEndian.PutUint16(rec, utUserProcess)
	copy(rec[utmpUserOff:], "root")
	write("run/utmp", rec)
	write("sys/class/thermal/thermal_zone0/type", []byte("x86_pkg_temp\n"))
	write("sys/class/thermal/thermal_zone0/temp", []byte("45000\n"))
	write("sys/class/hwmon/hwmon0/name", []byte("coretemp\n"))
	write("sys/class/hwmon/hwmon0/temp1_input", []byte("47000\n"))

	tick(t0.Add(30 * time.Second))
	want("30 s after a look found no source", false)
	tick(t0.Add(absentRecheck + time.Second))
	want("a minute after", true)

	// And with the sources gone again, then the clock set back.
	for _, rel := range []string{"sys/fs/selinux", "run", "sys/class/thermal", "sys/class/hwmon"} {
		if err := os.RemoveAll(filepath.Join(root, rel)); err != nil {
			t.Fatal(err)
		}
	}
	t1 := t0.Add(2 * absentRecheck)
	tick(t1)
	tick(t1.Add(time.Second)) // hwmon and thermal_zone rescan after a read failed
	tick(t1.Add(absentRecheck + 2*time.Second))
	want("gone", false)
	write("sys/fs/selinux/enforce", []byte("1\n"))
	write("run/utmp", rec)
	write("sys/class/thermal/thermal_zone0/type", []byte("x86_pkg_temp\n"))
	write("sys/class/thermal/thermal_zone0/temp", []byte("45000\n"))
	write("sys/class/hwmon/hwmon0/name", []byte("coretemp\n"))
	write("sys/class/hwmon/hwmon0/temp1_input", []byte("47000\n"))
	tick(t1.Add(absentRecheck + 3*time.Second))
	want("back, before a minute", false)
	tick(t0)
	want("back, the clock set back", true)
}

// untypedOrGauge gathers c alone: family name → the first series' value.
func untypedOrGauge(t *testing.T, c any) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, mf := range gatherFamilies(t, c.(prometheus.Collector)) {
		m := mf.GetMetric()[0]
		v := m.GetGauge().GetValue()
		if m.GetUntyped() != nil {
			v = m.GetUntyped().GetValue()
		}
		out[mf.GetName()] = v
	}
	return out
}
