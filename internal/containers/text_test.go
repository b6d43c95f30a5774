// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// checkText checks that AppendText writes exactly the series Collect
// emits, both parsed back by Prometheus' own text parser. (Not byte for
// byte: within a family, AppendText keeps container order where
// client_golang sorts by label values.)
func checkText(t testing.TB, c *Collector) {
	t.Helper()
	mfs, want := testenv.GatherText(t, c)
	if len(mfs) < 2 {
		t.Fatalf("Collect emitted %d families, want the containers' too", len(mfs))
	}
	got := c.AppendText(nil)
	if diff := cmp.Diff(testenv.ParseText(t, want), testenv.ParseText(t, got)); diff != "" {
		t.Errorf("AppendText differs from Collect (-collect +text):\n%s", diff)
	}
	checkSeries(t, c)
}

// fixtureCollector is a containers collector with no engine, and add,
// which puts a container with devices, interfaces and a container label
// in it (the caller holds c.mu); now is its containers' read time.
func fixtureCollector(t *testing.T) (c *Collector, add func(id, name, image, team, state string) *container, now time.Time) {
	t.Helper()
	var err error
	c, err = New(Options{
		DockerHost:      "unix://" + t.TempDir() + "/none.sock",
		ContainerLabels: []string{"team"},
		EnableMetrics:   []string{"pressure", "memory_detail", "spec_detail"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	now = time.Unix(1_700_000_000, 0)
	add = func(id, name, image, team, state string) *container {
		ct := newContainer(id)
		ct.name, ct.image, ct.state = name, image, state
		ct.labelValues = []string{team}
		ct.cgroupPath = "/docker/" + id
		ct.paths.V2 = ct.cgroupPath
		ct.haveStats = true
		ct.lastRead, ct.started, ct.created = now, now.Add(-time.Minute), now.Add(-2*time.Minute)
		ct.sizeRw = 4096
		ct.stats.CPU = cgroups.CPUStats{UsageNanos: 1_234_567_890, UserNanos: 1e9, SystemNanos: 234_567_890, Periods: 10, ThrottledPeriods: 2, ThrottledNanos: 5e6, QuotaMicros: 50000, PeriodMicros: 100000, Shares: 1024}
		ct.stats.Memory.Usage, ct.stats.Memory.WorkingSet, ct.stats.Memory.Limit = 3<<20, 2<<20, 1<<62
		ct.stats.IO.Devices = []cgroups.IODevice{{Major: 8, Minor: 0, ReadBytes: 1, WriteBytes: 33554432, Reads: 1, Writes: 8}, {Major: 253, Minor: 1, WriteBytes: 7}}
		ct.net = []netIface{{name: "eth0", rxBytes: 10, txBytes: 20}, {name: "eth1", rxPackets: 1}}
		c.byID[id] = ct
		c.members++
		c.updateLabels(ct)
		c.scrapeOrder = append(c.scrapeOrder, ct)
		return ct
	}
	return c, add, now
}

// TestAppendText covers what real containers rarely have: label values
// that need escaping or are not UTF-8, several devices and interfaces, a
// container label, a stopped container still lingering.
func TestAppendText(t *testing.T) {
	c, add, now := fixtureCollector(t)
	c.mu.Lock()
	add("a1", "plain", "busybox:latest", "ci", "running")
	add("b2", `quote"back\slash`+"\nnewline", "img\xffbad", "", "running")
	add("c3", "stopped", "busybox", "ci", "exited").goneAt = now
	c.lastUpdate = now
	c.mu.Unlock()
	checkText(t, c)
	if got := string(c.AppendText(nil)); !strings.Contains(got, `name="quote\"back\\slash\nnewline"`) {
		t.Errorf("escaped name not found in\n%s", got)
	}
	if n := testing.AllocsPerRun(20, func() { c.AppendText(make([]byte, 0, 1<<16)) }); n > 1 && !testenv.Race {
		t.Errorf("AppendText allocates %v times per call, want at most 1", n)
	}
}
