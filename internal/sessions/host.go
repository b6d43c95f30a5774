// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/pkg/metrics"
)

// hostSampler reads the host's CPU, memory and disk usage for ADR-006's
// max_*_usage_percent limits, with one reused buffer.
type hostSampler struct {
	procFS   string
	diskPath string
	buf      []byte
	// prevBusy and prevTotal are /proc/stat's jiffies at the last read.
	prevBusy, prevTotal uint64
	primed              bool
}

func newHostSampler(procFS, diskPath string) *hostSampler {
	return &hostSampler{procFS: procFS, diskPath: diskPath, buf: make([]byte, 8192)}
}

func (h *hostSampler) read(name string) ([]byte, error) {
	f, err := os.Open(filepath.Join(h.procFS, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := f.Read(h.buf)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return h.buf[:n], nil
}

// Host figures a sample read (hostSampler.sample's got).
const (
	gotCPU uint8 = 1 << iota
	gotMem
	gotDisk
)

// sample returns the CPU usage since the previous sample (0 on the first),
// the memory usage and the disk usage, in percent, and which of them it
// read: CPU usage needs two readable samples.
func (h *hostSampler) sample() (cpu, mem, disk float64, got uint8, err error) {
	var errs []error
	if b, err := h.read("stat"); err == nil {
		busy, total, err := parseStatCPU(b)
		if err == nil {
			if h.primed && total > h.prevTotal {
				cpu = 100 * float64(busy-min(busy, h.prevBusy)) / float64(total-h.prevTotal)
				got |= gotCPU
			}
			h.prevBusy, h.prevTotal, h.primed = busy, total, true
		}
		errs = append(errs, err)
	} else {
		errs = append(errs, err)
	}
	if b, err := h.read("meminfo"); err == nil {
		mem, err = parseMeminfoUsage(b)
		if err == nil {
			got |= gotMem
		}
		errs = append(errs, err)
	} else {
		errs = append(errs, err)
	}
	if h.diskPath != "" {
		var st unix.Statfs_t
		if err := unix.Statfs(h.diskPath, &st); err == nil && st.Blocks > 0 {
			// As df(1): used / (used + available to users).
			used := st.Blocks - st.Bfree
			if d := used + st.Bavail; d > 0 {
				disk = 100 * float64(used) / float64(d)
				got |= gotDisk
			}
		} else if err != nil {
			errs = append(errs, fmt.Errorf("statfs %s: %w", h.diskPath, err))
		}
	}
	return cpu, mem, disk, got, errors.Join(errs...)
}

// parseStatCPU reads the aggregate "cpu" line of /proc/stat (proc(5)) and
// returns busy and total jiffies; idle and iowait are not busy.
func parseStatCPU(b []byte) (busy, total uint64, err error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, fmt.Errorf("reading /proc/stat: malformed cpu line %q", line)
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("reading /proc/stat: %w", err)
		}
		// guest and guest_nice (fields 9, 10) are already in user and nice.
		if i >= 8 {
			break
		}
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total, nil
}

// parseMeminfoUsage returns (MemTotal - MemAvailable) / MemTotal in percent,
// what free(1) calls used.
func parseMeminfoUsage(b []byte) (float64, error) {
	var total, avail uint64
	var haveT, haveA bool
	for len(b) > 0 && !(haveT && haveA) {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		f := bytes.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch string(k) {
		case "MemTotal":
			total, _ = strconv.ParseUint(string(f[0]), 10, 64)
			haveT = true
		case "MemAvailable":
			avail, _ = strconv.ParseUint(string(f[0]), 10, 64)
			haveA = true
		}
	}
	if !haveT || !haveA || total == 0 {
		return 0, errors.New("reading /proc/meminfo: no MemTotal or MemAvailable")
	}
	return 100 * float64(total-min(avail, total)) / float64(total), nil
}

// hostTick is the host's part of one agent sample, as a session takes it.
type hostTick struct {
	// time is the sample's; since the previous sample's, the start of
	// the interval the CPU usage covers (zero for the agent's first).
	time, since    time.Time
	cpu, mem, disk float64
	got            uint8
}

// hostFromSample takes the figures hostSampler reads from the agent's
// sample: CPU usage since the previous tick, memory usage as free(1)
// counts it, and the usage of the filesystem mounted at / (under the
// agent's rootfs), as df(1) counts it. A figure the agent's collectors
// did not give (one turned off, / left out by the filesystem
// collector's excludes) is not got.
func hostFromSample(m *metrics.ResourceMetrics, at, since time.Time) hostTick {
	t := hostTick{time: at, since: since}
	if m == nil {
		return t
	}
	if m.CPU.Cores > 0 {
		t.cpu, t.got = m.CPU.UsagePercent, t.got|gotCPU
	}
	if m.Memory.TotalBytes > 0 {
		t.mem, t.got = m.Memory.UsagePercent, t.got|gotMem
	}
	for _, p := range m.Disk.Partitions {
		if p.MountPoint == "/" && p.TotalBytes > 0 {
			t.disk, t.got = p.UsagePercent, t.got|gotDisk
			break
		}
	}
	return t
}
