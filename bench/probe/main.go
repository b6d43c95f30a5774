// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Command probe-bench holds crmon's eBPF probes loaded, reading them once
// per interval as the agent does, until stdin closes or it is signalled.
// It prints what loading cost and, on exit, each program's run count and
// mean cost per run (BPF run-time statistics) and its own CPU and RSS, so
// that bench/probe/run.sh can measure the probes' overhead.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/crmon-dev/crmon/internal/probe"
)

func main() {
	interval := flag.Duration("interval", time.Second, "how often to read the maps")
	stats := flag.Bool("stats", false, "enable BPF run-time statistics (the agent leaves them off unless ebpf.stats = true)")
	probes := flag.String("probes", "sched,block,net", "probes to load")
	flag.Parse()

	rssBefore := rss()
	start := time.Now()
	opts := probe.Options{
		Sched:    strings.Contains(*probes, "sched"),
		Block:    strings.Contains(*probes, "block"),
		Net:      strings.Contains(*probes, "net"),
		Required: true,
	}
	opts.NoStats = !*stats
	p, err := probe.New(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer p.Close()
	loaded := time.Since(start)
	if _, err := p.Read(time.Now()); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	fmt.Printf("loaded in %v, first read after %v; RSS before load %d KiB, peak during load %d KiB, after load %d KiB\n",
		loaded.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), rssBefore, status("VmHWM:"), rss())
	fmt.Println("ready")

	done := make(chan struct{})
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		close(done)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	cpu0 := cpuTime()
	t0 := time.Now()
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	var snap *probe.Snapshot
	reads := 0
loop:
	for {
		select {
		case now := <-tick.C:
			if snap, err = p.Read(now); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
			reads++
		case <-done:
			break loop
		case <-sig:
			break loop
		}
	}
	elapsed := time.Since(t0)
	cpu := cpuTime() - cpu0
	if snap == nil {
		snap, _ = p.Read(time.Now())
	}
	fmt.Printf("reads %d over %v: agent CPU %.3f%% of one core, RSS %d KiB, %d cgroups, Go heap %d KiB\n",
		reads, elapsed.Round(time.Millisecond), 100*cpu.Seconds()/elapsed.Seconds(), rss(), len(snap.Cgroups), heap()/1024)
	for _, ps := range snap.Programs {
		per := 0.0
		if ps.RunCount > 0 {
			per = float64(ps.RunTime.Nanoseconds()) / float64(ps.RunCount)
		}
		fmt.Printf("program %-20s runs %10d  time %12v  %7.1f ns/run\n", ps.Name, ps.RunCount, ps.RunTime, per)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rss reads VmRSS in KiB from /proc/self/status.
func rss() int { return status("VmRSS:") }

// status reads a KiB field of /proc/self/status.
func status(field string) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			var kb int
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	return 0
}

func heap() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
