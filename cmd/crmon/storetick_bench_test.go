// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/host"
	"github.com/crmon-dev/crmon/internal/store"
)

// BenchmarkStoreTick is the agent's work per tick with the store, on this
// host as `crmon run` sees it (defaults; start 50 idle containers first,
// and run as root for the probes, to reproduce the README's figures;
// CRMON_BENCH_INCLUDE, comma-separated patterns, watches only the
// containers whose names match, as the containers include key does):
// a tick alone; a tick and the store's append of its points
// (agent.Points); a tick and the gather of its series as client_golang's
// families (agent.Series, what the exporters read). The store's share of
// a tick is the second less the first. CPU time, not wall time: what it
// takes of a core on a busy machine.
//
//	CRMON_BENCH_INCLUDE='bench-*' go test -run '^$' -bench StoreTick -benchmem -benchtime 200x ./cmd/crmon
func BenchmarkStoreTick(b *testing.B) {
	cmd := runCommand()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	for _, f := range cmd.Flags {
		if err := f.Apply(fs); err != nil {
			b.Fatal(err)
		}
	}
	if err := fs.Parse(nil); err != nil {
		b.Fatal(err)
	}
	c := cli.NewContext(newApp(), fs, nil)
	cfg, err := loadConfig(c)
	if err != nil {
		b.Fatal(err)
	}
	if p := os.Getenv("CRMON_BENCH_INCLUDE"); p != "" {
		cfg.Monitoring.Containers.Include = strings.Split(p, ",")
	}
	logger := slog.New(slog.DiscardHandler)
	src, err := newSources(c, cfg, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	st, err := store.New(store.Options{Dir: b.TempDir(), Retention: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	a := agent.New(src.Collectors(), time.Second, logger)
	a.SetExtra([]prometheus.Collector{
		collectors.NewGoCollector(),
		host.NewSelfCollector("crmon"),
		st,
	})
	ctx := context.Background()
	a.Tick(ctx)
	time.Sleep(time.Second)
	pts, err := a.Points(a.Tick(ctx))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		read func(*agent.Sample)
	}{
		{"tick", func(*agent.Sample) {}},
		{"tick+store", func(s *agent.Sample) { st.Append(a, s) }},
		{"tick+series", func(s *agent.Sample) {
			if _, err := a.Series(s); err != nil {
				b.Fatal(err)
			}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cpu0 := cpuTime(b)
			for b.Loop() {
				bc.read(a.Tick(ctx))
			}
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/1e3/float64(b.N), "cpu-ms/tick")
			b.ReportMetric(float64(len(pts)), "series")
		})
	}
}

// cpuTime is the process' user and system CPU time.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
