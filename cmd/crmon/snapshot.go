// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/alert"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

func snapshotCommand() *cli.Command {
	flags := []cli.Flag{
		configFlag(),
		&cli.BoolFlag{Name: "json", Usage: "print the sample as JSON (the schema of /api/v1/snapshot)"},
		// /proc/stat counts CPU time in ticks of 10 ms: over a shorter
		// window one tick is more than a tenth of a core.
		&cli.DurationFlag{Name: "window", Value: time.Second, Usage: "time between the two reads that rates and percentages are computed over", Action: durationIn(100*time.Millisecond, time.Hour)},
	}
	flags = append(flags, sourceFlags()...)
	return &cli.Command{
		Name:  "snapshot",
		Usage: "take one sample of the host and its containers and print it",
		Description: `snapshot reads everything twice, --window apart, and prints one sample: as a
readable table, or with --json as the JSON of /api/v1/snapshot (pkg/metrics.ResourceMetrics). eBPF probes
are off unless --ebpf=auto or --ebpf=required: then the per-cgroup counts cover the window.`,
		Flags:  flags,
		Action: snapshot,
	}
}

func snapshot(c *cli.Context) error {
	logger, err := newLogger(c)
	if err != nil {
		return err
	}
	if !c.IsSet("ebpf") {
		// Loading the probes costs a few hundred milliseconds and the
		// counts would cover only the window: opt in.
		if err := c.Set("ebpf", "disabled"); err != nil {
			return err
		}
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	src, err := newSources(c, cfg, logger)
	if err != nil {
		return err
	}
	defer src.Close()
	a := agent.New(src.Collectors(), c.Duration("window"), logger)
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	a.Tick(ctx)
	select {
	case <-time.After(c.Duration("window")):
	case <-ctx.Done():
		return ctx.Err()
	}
	s := a.Tick(ctx)
	// The config's rules on this one sample: what holds now is firing
	// for a rule without `for`, pending for the others. Nothing is sent.
	m := *s.Metrics
	m.Alerts = alert.Snapshot(alert.New(alert.Rules(cfg), alert.Options{}).Active(&m))
	if c.Bool("json") {
		return writeJSON(c.App.Writer, &m)
	}
	return writeTable(c.App.Writer, &m)
}

// writeTable prints a sample for people: the host first, then the
// containers and the cgroups the probes saw.
func writeTable(out io.Writer, m *metrics.ResourceMetrics) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }

	s := m.System
	p("HOST\t%s\n", m.Timestamp.Format(time.RFC3339))
	p("  uptime\t%s (booted %s)\n", time.Duration(s.UptimeSeconds)*time.Second, s.BootTime.Format(time.RFC3339))
	p("  users / processes / threads\t%d / %d / %d\n", s.Users, s.Processes, s.Threads)
	p("  open files / context switches\t%d / %d\n", s.OpenFiles, s.ContextSwitches)

	cpu := m.CPU
	temp := "n/a"
	if cpu.TemperatureCelsius != nil {
		temp = fmt.Sprintf("%.1f °C", *cpu.TemperatureCelsius)
	}
	p("CPU\t%.1f %% of %d cores\n", cpu.UsagePercent, cpu.Cores)
	p("  load\t%.2f %.2f %.2f\n", cpu.LoadAverage[0], cpu.LoadAverage[1], cpu.LoadAverage[2])
	p("  frequency / temperature\t%.0f MHz / %s\n", cpu.FrequencyMHz, temp)

	mem := m.Memory
	p("MEMORY\t%s used of %s (%.1f %%)\n", bytes(mem.UsedBytes), bytes(mem.TotalBytes), mem.UsagePercent)
	p("  free / available / cached / buffers\t%s / %s / %s / %s\n", bytes(mem.FreeBytes), bytes(mem.AvailableBytes), bytes(mem.CachedBytes), bytes(mem.BuffersBytes))
	p("  swap\t%s used of %s\n", bytes(mem.SwapUsedBytes), bytes(mem.SwapTotalBytes))

	d := m.Disk
	p("DISK\t%s used of %s (%.1f %%)\n", bytes(d.UsedBytes), bytes(d.TotalBytes), d.UsagePercent)
	p("  read / write\t%s/s %d op/s / %s/s %d op/s\n", bytes(d.ReadBytesPerSec), d.ReadOpsPerSec, bytes(d.WriteBytesPerSec), d.WriteOpsPerSec)
	n := m.Network
	p("NETWORK\t%s/s\n", bytes(n.BandwidthBytesPerSec))
	p("  received / sent\t%s %d pkts %d errs / %s %d pkts %d errs\n", bytes(n.BytesReceived), n.PacketsReceived, n.ErrorsReceived, bytes(n.BytesSent), n.PacketsSent, n.ErrorsSent)
	if err := w.Flush(); err != nil {
		return err
	}

	if len(d.Partitions) > 0 {
		fmt.Fprintln(out)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "MOUNT\tDEVICE\tTYPE\tSIZE\tUSED\tAVAIL\tUSE%\tREAD/s\tWRITE/s")
		for _, pt := range d.Partitions {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\n", pt.MountPoint, pt.Device, pt.FSType,
				bytes(pt.TotalBytes), bytes(pt.UsedBytes), bytes(pt.AvailableBytes), pt.UsagePercent,
				bytes(pt.ReadBytesPerSec), bytes(pt.WriteBytesPerSec))
		}
		w.Flush()
	}
	if len(n.Interfaces) > 0 {
		fmt.Fprintln(out)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "INTERFACE\tRX\tTX\tRX PKTS\tTX PKTS\tERRS\tBANDWIDTH")
		for _, in := range n.Interfaces {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%s/s\n", in.Name, bytes(in.BytesReceived), bytes(in.BytesSent),
				in.PacketsReceived, in.PacketsSent, in.ErrorsReceived+in.ErrorsSent, bytes(in.BandwidthBytesPerSec))
		}
		w.Flush()
	}
	if len(cpu.Processes) > 0 {
		fmt.Fprintln(out)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "TOP CPU\tPID\tCPU%\tCPU TIME\tCOMMAND")
		for _, pr := range cpu.Processes {
			fmt.Fprintf(w, "%s\t%d\t%.1f\t%.2fs\t%s\n", pr.Name, pr.PID, pr.UsagePercent, pr.CPUSeconds, trim(pr.Command, 60))
		}
		w.Flush()
	}
	if len(mem.Processes) > 0 {
		fmt.Fprintln(out)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "TOP MEMORY\tPID\tRSS\tMEM%\tCOMMAND")
		for _, pr := range mem.Processes {
			fmt.Fprintf(w, "%s\t%d\t%s\t%.1f\t%s\n", pr.Name, pr.PID, bytes(pr.RSSBytes), pr.UsagePercent, trim(pr.Command, 60))
		}
		w.Flush()
	}

	ct := m.Containers
	fmt.Fprintf(out, "\nCONTAINERS  %d total, %d running, %d stopped\n", ct.TotalContainers, ct.RunningContainers, ct.StoppedContainers)
	if len(ct.ContainerDetails) > 0 {
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tID\tIMAGE\tSTATE\tCPU%\tMEMORY\tDISK\tNET RX\tNET TX\tSTARTED")
		for _, cd := range ct.ContainerDetails {
			started := "-"
			if cd.StartedAt != nil {
				started = cd.StartedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\n", cd.ContainerName, short(cd.ContainerID), cd.Image, cd.State,
				cd.CPUUsagePercent, bytes(cd.MemoryUsageBytes), bytes(cd.DiskUsageBytes),
				bytes(cd.NetworkBytesReceived), bytes(cd.NetworkBytesSent), started)
		}
		w.Flush()
	}
	if len(m.Alerts) > 0 {
		fmt.Fprintf(out, "\nALERTS  %d active\n", len(m.Alerts))
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ALERT\tSTATE\tSEVERITY\tMESSAGE")
		for _, a := range m.Alerts {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", a.Name, a.State, a.Severity, a.Message)
		}
		w.Flush()
	}
	if len(m.Cgroups) > 0 {
		fmt.Fprintln(out)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CGROUP (eBPF)\tCPU s\tRUNQ WAIT s\tCTX SW\tBLK READ\tBLK WRITE\tNET RX\tNET TX")
		for _, cg := range m.Cgroups {
			fmt.Fprintf(w, "%s\t%.3f\t%.3f\t%d\t%s\t%s\t%s\t%s\n", trim(cg.ID, 50), cg.CPUSeconds, cg.RunqueueWaitSeconds,
				cg.VoluntaryContextSwitches+cg.InvoluntaryContextSwitches,
				bytes(cg.BlockReadBytes), bytes(cg.BlockWriteBytes), bytes(cg.NetworkReceiveBytes), bytes(cg.NetworkTransmitBytes))
		}
		w.Flush()
	}
	return nil
}

// bytes prints a size in IEC units, as free -h and df -h do.
func bytes(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func trim(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}
