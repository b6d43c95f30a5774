// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package cgroups

import (
	"bytes"
	"errors"
)

// Stats is one read of a cgroup's counters, the same shape for v1 and v2.
type Stats struct {
	CPU    CPUStats
	Memory MemoryStats
	Pids   PidsStats
	IO     IOStats
	// Processes is the number of processes (cgroup.procs lines).
	Processes uint64
	// Pressure is the cgroup's PSI (cgroup2 only, also on hybrid hosts).
	Pressure PressureStats
}

// PressureStats are PSI stall totals in microseconds: Some is time at
// least one task waited on the resource, Full time all of them did.
type PressureStats struct {
	CPUSome, CPUFull       uint64
	MemorySome, MemoryFull uint64
	IOSome, IOFull         uint64
}

// CPUStats are cumulative CPU counters and the CFS settings.
type CPUStats struct {
	UsageNanos uint64 // cpuacct.usage (v1) or cpu.stat usage_usec (v2)
	// UserNanos and SystemNanos are tick-sampled on v1 (cpuacct.stat).
	UserNanos   uint64
	SystemNanos uint64

	Periods          uint64 // nr_periods
	ThrottledPeriods uint64 // nr_throttled
	ThrottledNanos   uint64 // throttled_time (v1) or throttled_usec (v2)

	// QuotaMicros is the CFS quota per period, 0 when unlimited.
	QuotaMicros  uint64
	PeriodMicros uint64
	// Shares is cpu.shares, or on v2 cpu.weight converted to shares as
	// the kubelet and cAdvisor do.
	Shares uint64
}

// MemoryStats are in bytes except the event counts.
type MemoryStats struct {
	Usage uint64 // memory.usage_in_bytes (v1), memory.current (v2)
	// WorkingSet is Usage minus inactive file pages, what the kubelet
	// evicts on and cAdvisor reports.
	WorkingSet   uint64
	RSS          uint64 // total_rss (v1), anon (v2)
	Cache        uint64 // total_cache (v1), file (v2)
	MappedFile   uint64
	ActiveFile   uint64
	InactiveFile uint64
	Swap         uint64
	// Limit, ReservationLimit (memory.soft_limit_in_bytes, memory.low)
	// and SwapLimit (memory.memsw.limit_in_bytes, memory.swap.max) are 0
	// when unlimited.
	Limit            uint64
	ReservationLimit uint64
	SwapLimit        uint64
	MaxUsage         uint64 // memory.max_usage_in_bytes (v1), memory.peak (v2)
	Failcnt          uint64 // memory.failcnt (v1), memory.events "max" (v2)
	// OOMEvents counts OOM kills in the cgroup.
	OOMEvents uint64
	// MajorFaults counts page faults that read from disk
	// (total_pgmajfault in v1, pgmajfault in v2 memory.stat).
	MajorFaults uint64
}

// PidsStats counts tasks (threads); Limit is 0 when unlimited.
type PidsStats struct {
	Current uint64
	Limit   uint64
}

// IOStats are block I/O counters per device as the cgroup accounts them.
type IOStats struct {
	Devices []IODevice
}

// IODevice is one block device's counters.
type IODevice struct {
	Major, Minor uint32
	ReadBytes    uint64
	WriteBytes   uint64
	Reads        uint64
	Writes       uint64
}

// ErrMalformed is returned when a cgroup file does not parse.
var ErrMalformed = errors.New("malformed cgroup file")

// unlimitedV1 is above any real limit: v1 reports "unlimited" as
// PAGE_COUNTER_MAX pages, 0x7FFFFFFFFFFFF000 with 4 KiB pages.
const unlimitedV1 = 1 << 62

// parseUint parses a decimal unsigned integer without allocating. "max"
// (v2's unlimited) parses as 0, ok.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 3 && b[0] == 'm' && b[1] == 'a' && b[2] == 'x' {
		return 0, true
	}
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// parseSingle parses a file holding one number ("123\n", "max\n", "-1\n"
// is 0 too: v1's cfs_quota_us for no quota).
func parseSingle(b []byte) (uint64, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 2 && b[0] == '-' && b[1] == '1' {
		return 0, nil
	}
	n, ok := parseUint(b)
	if !ok {
		return 0, ErrMalformed
	}
	return n, nil
}

// eachKV calls fn for every "key value" line of a flat keyed file
// (memory.stat, cpu.stat, memory.events).
func eachKV(b []byte, fn func(k []byte, v uint64)) error {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			return ErrMalformed
		}
		n, ok := parseUint(bytes.TrimSpace(v))
		if !ok {
			return ErrMalformed
		}
		fn(k, n)
	}
	return nil
}

// parseMemoryStatV1 reads the hierarchical total_* fields of v1
// memory.stat, which include the container's own sub-cgroups.
func parseMemoryStatV1(b []byte, m *MemoryStats) error {
	return eachKV(b, func(k []byte, v uint64) {
		switch string(k) {
		case "total_rss":
			m.RSS = v
		case "total_cache":
			m.Cache = v
		case "total_mapped_file":
			m.MappedFile = v
		case "total_active_file":
			m.ActiveFile = v
		case "total_inactive_file":
			m.InactiveFile = v
		case "total_swap":
			m.Swap = v
		case "total_pgmajfault":
			m.MajorFaults = v
		}
	})
}

// parseMemoryStatV2 reads v2 memory.stat, which is hierarchical already.
func parseMemoryStatV2(b []byte, m *MemoryStats) error {
	return eachKV(b, func(k []byte, v uint64) {
		switch string(k) {
		case "anon":
			m.RSS = v
		case "file":
			m.Cache = v
		case "file_mapped":
			m.MappedFile = v
		case "active_file":
			m.ActiveFile = v
		case "inactive_file":
			m.InactiveFile = v
		case "pgmajfault":
			m.MajorFaults = v
		}
	})
}

// parseMemoryEventsV2 reads memory.events: "max" counts hits of the limit
// (v1's failcnt), "oom_kill" the kills.
func parseMemoryEventsV2(b []byte, m *MemoryStats) error {
	return eachKV(b, func(k []byte, v uint64) {
		switch string(k) {
		case "max":
			m.Failcnt = v
		case "oom_kill":
			m.OOMEvents = v
		}
	})
}

// parseOOMControlV1 reads v1 memory.oom_control's oom_kill count.
func parseOOMControlV1(b []byte, m *MemoryStats) error {
	return eachKV(b, func(k []byte, v uint64) {
		if string(k) == "oom_kill" {
			m.OOMEvents = v
		}
	})
}

// parseCPUStat reads cpu.stat: v1's throttling counters (throttled_time in
// ns) or v2's usage and throttling (in µs).
func parseCPUStat(b []byte, c *CPUStats) error {
	return eachKV(b, func(k []byte, v uint64) {
		switch string(k) {
		case "nr_periods":
			c.Periods = v
		case "nr_throttled":
			c.ThrottledPeriods = v
		case "throttled_time":
			c.ThrottledNanos = v
		case "throttled_usec":
			c.ThrottledNanos = v * 1000
		case "usage_usec":
			c.UsageNanos = v * 1000
		case "user_usec":
			c.UserNanos = v * 1000
		case "system_usec":
			c.SystemNanos = v * 1000
		}
	})
}

// userHZ is the unit of cpuacct.stat, USER_HZ, 100 on every Linux ABI.
const userHZ = 100

// parseCPUAcctStat reads v1 cpuacct.stat, user and system time in USER_HZ
// ticks. On current kernels these (and cpuacct.usage_all's split) are sampled
// at ticks, while cpuacct.usage is exact; so the total comes from
// cpuacct.usage and only the split from here.
func parseCPUAcctStat(b []byte, c *CPUStats) error {
	return eachKV(b, func(k []byte, v uint64) {
		switch string(k) {
		case "user":
			c.UserNanos = v * (1e9 / userHZ)
		case "system":
			c.SystemNanos = v * (1e9 / userHZ)
		}
	})
}

// parseCPUMax reads v2 cpu.max: "max 100000" or "50000 100000".
func parseCPUMax(b []byte, c *CPUStats) error {
	q, p, ok := bytes.Cut(bytes.TrimSpace(b), []byte{' '})
	qv, ok2 := parseUint(q)
	pv, ok3 := parseUint(p)
	if !ok || !ok2 || !ok3 {
		return ErrMalformed
	}
	c.QuotaMicros, c.PeriodMicros = qv, pv
	return nil
}

// WeightToShares converts cgroup2 cpu.weight [1, 10000] to v1 cpu.shares
// [2, 262144], the inverse of the kubelet's and runc's mapping.
func WeightToShares(w uint64) uint64 {
	if w == 0 {
		return 0
	}
	return 2 + ((w-1)*262142)/9999
}

// parseBlkioV1 reads blkio.throttle.io_service_bytes_recursive or
// io_serviced_recursive: "8:0 Read 4096\n8:0 Write 0\n...\nTotal 4096".
// bytes selects which counters of each device it fills.
func parseBlkioV1(b []byte, io *IOStats, bytesFile bool) error {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		dev, rest, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			continue // "Total N" has one space, blank lines none
		}
		op, val, ok := bytes.Cut(rest, []byte{' '})
		if !ok {
			continue
		}
		maj, min, ok := parseDev(dev)
		if !ok {
			return ErrMalformed
		}
		v, ok := parseUint(val)
		if !ok {
			return ErrMalformed
		}
		d := io.device(maj, min)
		switch string(op) {
		case "Read":
			if bytesFile {
				d.ReadBytes = v
			} else {
				d.Reads = v
			}
		case "Write":
			if bytesFile {
				d.WriteBytes = v
			} else {
				d.Writes = v
			}
		}
	}
	return nil
}

// parseIOStatV2 reads v2 io.stat:
// "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0".
func parseIOStatV2(b []byte, io *IOStats) error {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		dev, rest, _ := bytes.Cut(line, []byte{' '})
		maj, min, ok := parseDev(dev)
		if !ok {
			return ErrMalformed
		}
		d := io.device(maj, min)
		for len(rest) > 0 {
			var f []byte
			f, rest, _ = bytes.Cut(rest, []byte{' '})
			k, v, ok := bytes.Cut(f, []byte{'='})
			if !ok {
				continue
			}
			n, ok := parseUint(v)
			if !ok {
				return ErrMalformed
			}
			switch string(k) {
			case "rbytes":
				d.ReadBytes = n
			case "wbytes":
				d.WriteBytes = n
			case "rios":
				d.Reads = n
			case "wios":
				d.Writes = n
			}
		}
	}
	return nil
}

func parseDev(b []byte) (uint32, uint32, bool) {
	ma, mi, ok := bytes.Cut(b, []byte{':'})
	a, ok2 := parseUint(ma)
	i, ok3 := parseUint(mi)
	return uint32(a), uint32(i), ok && ok2 && ok3
}

// device returns the entry for maj:min, appending one if needed. Devices
// stays in first-seen order and reuses its backing array across reads.
func (io *IOStats) device(maj, min uint32) *IODevice {
	for i := range io.Devices {
		if io.Devices[i].Major == maj && io.Devices[i].Minor == min {
			return &io.Devices[i]
		}
	}
	io.Devices = append(io.Devices, IODevice{Major: maj, Minor: min})
	return &io.Devices[len(io.Devices)-1]
}

// parsePressure reads a PSI file (cpu.pressure, memory.pressure,
// io.pressure): "some avg10=0.00 avg60=0.00 avg300=0.00 total=123".
func parsePressure(b []byte, some, full *uint64) error {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		i := bytes.Index(line, []byte("total="))
		if i < 0 {
			return ErrMalformed
		}
		v, ok := parseUint(line[i+len("total="):])
		if !ok {
			return ErrMalformed
		}
		switch {
		case bytes.HasPrefix(line, []byte("some ")):
			*some = v
		case bytes.HasPrefix(line, []byte("full ")):
			*full = v
		}
	}
	return nil
}
