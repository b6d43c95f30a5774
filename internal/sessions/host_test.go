// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/sessions"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/session"
)

// TestHostNotMeasured checks that host peaks no sample could read are not
// reported as 0% and do not pass a host limit: with no /proc/stat,
// /proc/meminfo or filesystem to read, max_cpu_usage_percent = 90 is not
// measured, not "0.0% of 90.0% ok".
func TestHostNotMeasured(t *testing.T) {
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		testenv.Unavailable(t, "no cgroups: %v", err)
	}
	empty := t.TempDir()
	tr, err := sessions.NewTracker(sessions.TrackerOptions{
		Hierarchy: h, ProcFS: empty, DiskPath: filepath.Join(empty, "no-such-fs"),
	}, sessions.Target{Name: "host-test"})
	if err != nil {
		t.Fatal(err)
	}
	r := tr.Stop()
	for _, f := range []string{"cpu_usage_percent", "memory_usage_percent", "disk_usage_percent"} {
		if r.Host.Measured(f) {
			t.Errorf("host %s reported as measured", f)
		}
	}
	err = r.Check(session.Limits{{Name: "max_cpu_usage_percent", Value: 90}}, session.UnmeasuredError)
	if err == nil || len(r.Limits) != 1 || r.Limits[0].Status != session.StatusNotMeasured {
		t.Errorf("Check = %v, results %+v, want not measured", err, r.Limits)
	}

	// A readable /proc: every host figure is measured. CPU usage is a
	// difference of /proc/stat's jiffies (USER_HZ, 100 per second), so
	// the run lasts a few of them.
	tr, err = sessions.NewTracker(sessions.TrackerOptions{Hierarchy: h}, sessions.Target{Name: "host-test"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	r = tr.Stop()
	if len(r.Host.Unmeasured) != 0 {
		t.Errorf("host figures not measured from /proc: %v", r.Host.Unmeasured)
	}
}
