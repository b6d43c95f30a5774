// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// checkText checks that AppendText writes the series Collect emits, with
// the same values, both parsed by Prometheus' own text parser (the order
// of series within a family differs: client_golang sorts them by label
// values), and that promtool accepts it; and that AppendSeries gives
// those series too, the same *collect.Series when asked again. It
// returns the text.
func checkText(t *testing.T, c *collector) string {
	t.Helper()
	mfs, want := testenv.GatherText(t, c)
	got := c.AppendText(nil)
	if diff := cmp.Diff(testenv.ParseText(t, want), testenv.ParseText(t, got)); diff != "" {
		t.Errorf("AppendText differs from Collect (-collect +text):\n%s", diff)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(got)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else if testenv.InCI() {
		t.Error("promtool not installed")
	}
	testenv.CheckPoints(t, c, mfs)
	return string(got)
}

// nopCloser stands for the run-time statistics being on.
type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// TestAppendText: the text of an update with what real hosts rarely
// have: cgroup and container names that need escaping or are not UTF-8,
// two devices, both histograms, a probe down, a removed cgroup, program
// statistics; then without probes at all.
func TestAppendText(t *testing.T) {
	p := &Probes{status: []Status{
		{Probe: ProbeSched, Up: true}, {Probe: ProbeBlock, Up: true},
		{Probe: ProbeNet, Up: false, Reason: `needs "CAP_NET_ADMIN"`}, {Probe: ProbeCgroups, Up: true},
	}, stats: nopCloser{}}
	var lat Histogram
	lat.Buckets[3], lat.Buckets[12], lat.Buckets[NumBuckets-1] = 4, 2, 1
	lat.Count, lat.Sum = 7, 5*time.Second
	now := time.Unix(1_700_000_000, 0)
	snap := &Snapshot{Time: now,
		Maps:     []MapStats{{Name: "sched_cgroups", MemoryBytes: 4096}},
		Programs: []ProgramStats{{Probe: ProbeSched, Name: "sched_switch", RunCount: 9, RunTime: time.Millisecond}},
		Drops:    []Drop{{Probe: ProbeSched, Reason: "cgroup_map_full", Count: 2}},
		Cgroups: []CgroupStats{
			{Path: "/docker/a", CPU: 1500 * time.Millisecond, RunqueueWait: time.Millisecond, RunqueueLatency: lat,
				VoluntarySwitches: 3, InvoluntarySwitches: 1, NetReceiveBytes: 10, NetReceivePackets: 1,
				Block: []BlockStats{
					{Device: "vda", Major: 254, Minor: 0, Op: OpRead, Bytes: 4096, Ops: 1, Latency: lat},
					{Device: "vdb", Major: 254, Minor: 16, Op: OpWrite, Bytes: 8192, Ops: 2},
				}},
			{Path: "/odd \"q\" \\ \n\xff", CPU: time.Second, VoluntarySwitches: 1},
			{Path: "/gone", CPU: time.Second, VoluntarySwitches: 1, Removed: true, RemovedAt: now},
		},
	}
	lookup := staticLookup{"/docker/a": {ID: "a", Name: "web \"1\"", Image: "img\\x\xfe"}}
	c := NewCollector(p, CollectorOptions{Lookup: lookup, RemovedRetention: time.Minute}).(*collector)
	c.export(snap, now)
	text := checkText(t, c)
	for _, want := range []string{
		`crmon_container_runqueue_latency_seconds_bucket{id="/docker/a",image="img\\x` + "\uFFFD" + `",name="web \"1\"",le="1.024e-06"} 4`,
		`crmon_container_runqueue_latency_seconds_bucket{id="/docker/a",image="img\\x` + "\uFFFD" + `",name="web \"1\"",le="+Inf"} 7`,
		`crmon_container_block_io_bytes_total{device="vdb",id="/docker/a",image="img\\x` + "\uFFFD" + `",name="web \"1\"",op="write"} 8192`,
		`crmon_container_block_io_latency_seconds_count{id="/docker/a",image="img\\x` + "\uFFFD" + `",name="web \"1\"",op="read"} 7`,
		`crmon_container_cpu_seconds_total{id="/odd \"q\" \\ \n` + "\uFFFD" + `",image="",name=""} 1`,
		`crmon_container_cpu_seconds_total{id="/gone",image="",name=""} 1`,
		`crmon_probe_down_info{probe="net",reason="needs \"CAP_NET_ADMIN\""} 1`,
		`crmon_bpf_program_run_seconds_total{program="sched_switch"} 0.001`,
		"crmon_cgroups_exported 3\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %s", want)
		}
	}
	if strings.Contains(text, "crmon_container_network_bytes_total") {
		t.Error("network series served with the net probe down")
	}

	// A steady read of the series allocates the enumeration's series and
	// a copy of the probes' status, nothing per series.
	buf := make([]collect.Point, 0, 4096)
	if n := testing.AllocsPerRun(20, func() { c.AppendSeries(buf[:0]) }); n > 2 && !testenv.Race {
		t.Errorf("AppendSeries allocates %v times per steady call", n)
	}

	// A later update keeps a cgroup's rendered labels, and so its series,
	// while its name and image stay, and renders them again when they
	// change.
	before := c.cgroups[0].cgroupLabels
	pts := c.AppendSeries(nil)
	c.export(snap, now.Add(time.Second))
	if c.cgroups[0].cgroupLabels != before {
		t.Error("labels rendered again for an unchanged container")
	}
	if again := c.AppendSeries(nil); len(again) != len(pts) || again[len(again)-1].Series != pts[len(pts)-1].Series {
		t.Error("a container's series made again after an update that changed nothing")
	}
	lookup["/docker/a"] = collect.ContainerRef{ID: "a", Name: "web-2", Image: "img"}
	c.export(snap, now.Add(2*time.Second))
	if l := c.cgroups[0].cgroupLabels; l == before || l.text != `id="/docker/a",image="img",name="web-2"` {
		t.Errorf("labels after a rename: %q", l.text)
	}
	checkText(t, c)

	none := NewCollector(nil, CollectorOptions{}).(*collector)
	if got := checkText(t, none); !strings.Contains(got, `crmon_probe_up{probe="net"} 0`) {
		t.Errorf("without probes:\n%s", got)
	}
}
