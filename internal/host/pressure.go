// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// PSI is the cumulative stall time of one /proc/pressure file, in
// microseconds.
type PSI struct {
	Some, Full       uint64
	HasSome, HasFull bool
}

// parsePSI parses the total= fields of a /proc/pressure/<resource> file.
func parsePSI(b []byte) (PSI, error) {
	var p PSI
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		kind, rest := nextField(line)
		if len(kind) == 0 {
			continue
		}
		i := bytes.Index(rest, []byte("total="))
		if i < 0 {
			return p, fmt.Errorf("parsing pressure: no total in %q", line)
		}
		f, _ := nextField(rest[i+len("total="):])
		v, ok := parseUint(f)
		if !ok {
			return p, fmt.Errorf("parsing pressure: bad total %q", f)
		}
		switch string(kind) {
		case "some":
			p.Some, p.HasSome = v, true
		case "full":
			p.Full, p.HasFull = v, true
		}
	}
	return p, nil
}

type pressureCollector struct {
	metricSet
	log                      *slog.Logger
	r                        *reader
	cpu, io, mem             openFile
	cpuWait, ioWait, ioStall *metricDesc
	memWait, memStall        *metricDesc
}

func newPressureCollector(o collect.Options) (*pressureCollector, error) {
	return &pressureCollector{
		log:      logger(o),
		r:        newReader(512),
		cpu:      openFile{path: mkpath(o.Paths.ProcFS, "pressure/cpu")},
		io:       openFile{path: mkpath(o.Paths.ProcFS, "pressure/io")},
		mem:      openFile{path: mkpath(o.Paths.ProcFS, "pressure/memory")},
		cpuWait:  newDesc("pressure", "cpu_waiting_seconds_total", "Total time in seconds that processes have waited for CPU time"),
		ioWait:   newDesc("pressure", "io_waiting_seconds_total", "Total time in seconds that processes have waited due to IO congestion"),
		ioStall:  newDesc("pressure", "io_stalled_seconds_total", "Total time in seconds no process could make progress due to IO congestion"),
		memWait:  newDesc("pressure", "memory_waiting_seconds_total", "Total time in seconds that processes have waited for memory"),
		memStall: newDesc("pressure", "memory_stalled_seconds_total", "Total time in seconds no process could make progress due to memory congestion"),
	}, nil
}

func (c *pressureCollector) Name() string { return "pressure" }

func (c *pressureCollector) Close() error {
	return errors.Join(c.cpu.Close(), c.io.Close(), c.mem.Close())
}

func (c *pressureCollector) read(f *openFile) (PSI, error) {
	b, err := f.read(c.r)
	if err != nil {
		return PSI{}, err
	}
	return parsePSI(b)
}

func (c *pressureCollector) Update(_ context.Context, _ time.Time) error {
	c.begin()
	for _, res := range [...]struct {
		file       *openFile
		some, full *metricDesc
	}{{&c.cpu, c.cpuWait, nil}, {&c.io, c.ioWait, c.ioStall}, {&c.mem, c.memWait, c.memStall}} {
		p, err := c.read(res.file)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.EOPNOTSUPP) {
			// No CONFIG_PSI, or booted with psi=0.
			c.clear()
			return noData(c.log, "pressure", fmt.Errorf("reading pressure: %w", fs.ErrNotExist))
		}
		if err != nil {
			return fmt.Errorf("reading pressure: %w", err)
		}
		if p.HasSome {
			c.add(res.some, prometheus.CounterValue, float64(p.Some)/1e6, nil)
		}
		if res.full != nil && p.HasFull {
			c.add(res.full, prometheus.CounterValue, float64(p.Full)/1e6, nil)
		}
	}
	c.publish(nil)
	return nil
}

func (c *pressureCollector) Fill(*metrics.ResourceMetrics) {}
