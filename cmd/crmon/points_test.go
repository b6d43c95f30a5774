// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/store"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestPointsAreTheGatheredSeries checks, for real ticks of the agent's
// full collector set (the host collectors, the containers collector
// watching a real container that wrote to its disk, the eBPF probes, the
// store's metrics), that the flat points the store appends are exactly the
// series client_golang gathers for /metrics — names, labels and values,
// both ways — and that the container's series keep their identity from
// one tick to the next.
func TestPointsAreTheGatheredSeries(t *testing.T) {
	dockertest.Require(t)
	testenv.RequireRoot(t)
	name := fmt.Sprintf("crmon-test-points-%d", os.Getpid())
	dockertest.Run(t, []string{"--name", name}, "sh", "-c", "while :; do dd if=/dev/zero of=/f bs=64k count=16 conv=fsync 2>/dev/null; sleep 0.2; done")

	cmd := runCommand()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	for _, f := range cmd.Flags {
		if err := f.Apply(fs); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.Parse([]string{"--ebpf", "required"}); err != nil {
		t.Fatal(err)
	}
	c := cli.NewContext(newApp(), fs, nil)
	cfg, err := loadConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Monitoring.EBPF.Mode = config.EBPFRequired
	// This test's container only: others come and go beside it.
	cfg.Monitoring.Containers.Include = []string{name}
	logger := slog.New(slog.DiscardHandler)
	src, err := newSources(c, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	st, err := store.New(store.Options{Dir: t.TempDir(), Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := agent.New(src.Collectors(), time.Second, logger)
	a.SetExtra([]prometheus.Collector{st})

	// ours are the container's series among pts, by name and labels.
	ours := func(pts []collect.Point) map[string]*collect.Series {
		m := map[string]*collect.Series{}
		for _, p := range pts {
			for _, l := range p.Series.Labels {
				if l.Name == "name" && l.Value == name {
					m[fmt.Sprint(p.Series.Name, p.Series.Labels)] = p.Series
				}
			}
		}
		return m
	}
	// The containers collector learns of the container from the engine's
	// events, between ticks, and the probes export it once they saw it
	// run: wait for both, then compare.
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := a.Tick(context.Background())
		pts, err := a.Points(s)
		if err != nil {
			t.Fatal(err)
		}
		m := ours(pts)
		if hasSeries(m, "container_cpu_usage_seconds_total") && hasSeries(m, "crmon_container_cpu_seconds_total") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's series did not come within 30 s: %d points of it", len(m))
		}
		time.Sleep(200 * time.Millisecond)
	}
	var last map[string]*collect.Series
	for tick := range 3 {
		time.Sleep(200 * time.Millisecond)
		s := a.Tick(context.Background())
		pts, err := a.Points(s)
		if err != nil {
			t.Fatalf("tick %d: %v", tick, err)
		}
		fams, err := a.Series(s)
		if err != nil {
			t.Fatalf("tick %d: %v", tick, err)
		}
		testenv.ComparePoints(t, pts, fams)
		st.Append(a, s)

		m := ours(pts)
		for _, f := range []string{"container_cpu_usage_seconds_total", "container_fs_writes_bytes_total", "crmon_container_cpu_seconds_total", "crmon_container_runqueue_latency_seconds_bucket"} {
			if !hasSeries(m, f) {
				t.Errorf("tick %d: no %s of the container among %d of its points", tick, f, len(m))
			}
		}
		for k, s := range m {
			// The probes' families come through the gather and are
			// interned: the same series too, while they last.
			if old, ok := last[k]; ok && old != s {
				t.Errorf("tick %d: %s has a new *collect.Series", tick, k)
			}
		}
		if tick > 0 && len(m) != len(last) {
			t.Errorf("tick %d: %d series of the container, %d at the last tick", tick, len(m), len(last))
		}
		last = m
	}
}

func hasSeries(m map[string]*collect.Series, name string) bool {
	for _, s := range m {
		if s.Name == name {
			return true
		}
	}
	return false
}
