// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package live turns the agent's samples into what a person watches: the
// host's figures and one row per container (or cgroup), with the rates
// between two consecutive samples. The page at / and `crmon top` show the
// same rows, computed by View.
package live

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/crmon-dev/crmon/internal/probe"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// Host is the host's part of the view.
type Host struct {
	Time          time.Time  `json:"t"`
	CPUPercent    float64    `json:"cpu"` // of all cores, 0-100
	Cores         uint32     `json:"cores"`
	Load          [3]float64 `json:"load"`
	MemUsed       uint64     `json:"mem_used"`
	MemTotal      uint64     `json:"mem_total"`
	DiskUsed      uint64     `json:"disk_used"`
	DiskTotal     uint64     `json:"disk_total"`
	DiskRead      float64    `json:"disk_read"`  // bytes/s
	DiskWrite     float64    `json:"disk_write"` // bytes/s
	NetRx         float64    `json:"net_rx"`     // bytes/s; 0 on the first sample
	NetTx         float64    `json:"net_tx"`     // bytes/s
	UptimeSeconds uint64     `json:"uptime"`
	Processes     uint32     `json:"procs"`
	Containers    uint32     `json:"containers"`
	Running       uint32     `json:"running"`
}

// Row is one container, or with all, one cgroup the probes count. Figures
// the agent did not measure (no probes: run-queue wait, block I/O,
// latency) are nil, shown as n/a, never as 0.
type Row struct {
	// Key identifies the row from sample to sample: the container's ID,
	// or the cgroup's path.
	Key   string `json:"key"`
	Name  string `json:"name"`
	Image string `json:"image,omitempty"`
	State string `json:"state,omitempty"`
	// CPU is in percent of one core, as docker stats shows it.
	CPU *float64 `json:"cpu"`
	// RunqWait is the time the cgroup's tasks spent runnable but waiting
	// for a CPU, in percent of wall time (summed over tasks, so it can
	// pass 100, as CPU can).
	RunqWait *float64 `json:"runq"`
	// Mem is the working set in bytes; nil for a cgroup without a
	// container.
	Mem *uint64 `json:"mem"`
	// BlkRead, BlkWrite, NetRx and NetTx are bytes per second.
	BlkRead  *float64 `json:"blk_r"`
	BlkWrite *float64 `json:"blk_w"`
	// IOLatP99 is the p99 of the block requests' latency between the two
	// samples, in seconds (within a factor of two: log2 buckets); nil when
	// there was no block I/O.
	IOLatP99 *float64 `json:"lat_p99"`
	NetRx    *float64 `json:"net_rx"`
	NetTx    *float64 `json:"net_tx"`
	// Started is when the container started (else was created); zero for
	// a cgroup.
	Started time.Time `json:"started,omitzero"`
	// Gone is set on rows kept for a while after their container went
	// away, so that a viewer fades them out rather than dropping them.
	Gone bool `json:"gone,omitempty"`
}

// Age is how long the container has run at now.
func (r *Row) Age(now time.Time) time.Duration {
	if r.Started.IsZero() {
		return 0
	}
	return max(now.Sub(r.Started), 0)
}

// View is the host and its rows at one sample.
type View struct {
	Host Host  `json:"host"`
	Rows []Row `json:"rows"`
	// EBPF is whether the sample carries the eBPF probes' counts.
	EBPF bool `json:"ebpf"`
}

// Compute builds the view of cur, with the rates since prev (nil for the
// first sample: rates are then absent, except those the sample carries
// itself). With all, every cgroup the probes count is a row, named by its
// container when it has one; otherwise the containers are.
func Compute(prev, cur *metrics.ResourceMetrics, all bool) View {
	v := View{Host: host(prev, cur), EBPF: len(cur.Cgroups) > 0}
	dt := 0.0
	if prev != nil {
		dt = cur.Timestamp.Sub(prev.Timestamp).Seconds()
	}
	var prevCg map[string]*metrics.CgroupMetrics
	var prevCt map[string]*metrics.ContainerDetailMetrics
	if prev != nil && dt > 0 {
		prevCg = make(map[string]*metrics.CgroupMetrics, len(prev.Cgroups))
		for i := range prev.Cgroups {
			prevCg[prev.Cgroups[i].ID] = &prev.Cgroups[i]
		}
		prevCt = make(map[string]*metrics.ContainerDetailMetrics, len(prev.Containers.ContainerDetails))
		for i := range prev.Containers.ContainerDetails {
			d := &prev.Containers.ContainerDetails[i]
			prevCt[d.ContainerID] = d
		}
	}
	if all {
		byCgroup := make(map[string]*metrics.ContainerDetailMetrics, len(cur.Containers.ContainerDetails))
		for i := range cur.Containers.ContainerDetails {
			d := &cur.Containers.ContainerDetails[i]
			if d.CgroupPath != "" {
				byCgroup[d.CgroupPath] = d
			}
		}
		v.Rows = make([]Row, 0, len(cur.Cgroups))
		for i := range cur.Cgroups {
			cg := &cur.Cgroups[i]
			r := Row{Key: cg.ID, Name: cg.ID}
			if d := byCgroup[cg.ID]; d != nil {
				r = containerRow(d, prevCt[d.ContainerID], dt)
				r.Key = cg.ID
			}
			cgroupRates(&r, cg, prevCg[cg.ID], dt)
			v.Rows = append(v.Rows, r)
		}
		return v
	}
	v.Rows = make([]Row, 0, len(cur.Containers.ContainerDetails))
	for i := range cur.Containers.ContainerDetails {
		d := &cur.Containers.ContainerDetails[i]
		pd := prevCt[d.ContainerID]
		r := containerRow(d, pd, dt)
		switch {
		case d.State != "running" || pd == nil:
		case d.Cgroup != nil:
			cgroupRates(&r, d.Cgroup, prevCg[d.Cgroup.ID], dt)
		case v.EBPF:
			// The probes export a cgroup once they counted something
			// for it: this one has done nothing since they loaded.
			r.RunqWait, r.BlkRead, r.BlkWrite = ptr(0.0), ptr(0.0), ptr(0.0)
		}
		v.Rows = append(v.Rows, r)
	}
	return v
}

func host(prev, cur *metrics.ResourceMetrics) Host {
	h := Host{
		Time:          cur.Timestamp,
		CPUPercent:    cur.CPU.UsagePercent,
		Cores:         cur.CPU.Cores,
		Load:          cur.CPU.LoadAverage,
		MemUsed:       cur.Memory.UsedBytes,
		MemTotal:      cur.Memory.TotalBytes,
		DiskUsed:      cur.Disk.UsedBytes,
		DiskTotal:     cur.Disk.TotalBytes,
		DiskRead:      float64(cur.Disk.ReadBytesPerSec),
		DiskWrite:     float64(cur.Disk.WriteBytesPerSec),
		UptimeSeconds: cur.System.UptimeSeconds,
		Processes:     cur.System.Processes,
		Containers:    cur.Containers.TotalContainers,
		Running:       cur.Containers.RunningContainers,
	}
	if prev != nil {
		if dt := cur.Timestamp.Sub(prev.Timestamp).Seconds(); dt > 0 {
			h.NetRx = rate(prev.Network.BytesReceived, cur.Network.BytesReceived, dt)
			h.NetTx = rate(prev.Network.BytesSent, cur.Network.BytesSent, dt)
		}
	}
	return h
}

func containerRow(d, prev *metrics.ContainerDetailMetrics, dt float64) Row {
	r := Row{Key: d.ContainerID, Name: d.ContainerName, Image: d.Image, State: d.State, Gone: d.State == "removed"}
	if r.Name == "" {
		r.Name = short(d.ContainerID)
	}
	if d.StartedAt != nil {
		r.Started = *d.StartedAt
	} else {
		r.Started = d.CreatedAt
	}
	if d.State != "running" {
		return r
	}
	r.CPU = ptr(d.CPUUsagePercent)
	r.Mem = ptr(d.MemoryUsageBytes)
	if prev != nil {
		r.NetRx = ptr(rate(prev.NetworkBytesReceived, d.NetworkBytesReceived, dt))
		r.NetTx = ptr(rate(prev.NetworkBytesSent, d.NetworkBytesSent, dt))
	}
	return r
}

// cgroupRates fills what the probes count. A cgroup's own network
// counters (cgroup_skb) stand in for a container's only where the
// container has none.
func cgroupRates(r *Row, cg, prev *metrics.CgroupMetrics, dt float64) {
	if prev == nil {
		return
	}
	if r.CPU == nil {
		r.CPU = ptr(100 * max(cg.CPUSeconds-prev.CPUSeconds, 0) / dt)
	}
	r.RunqWait = ptr(100 * max(cg.RunqueueWaitSeconds-prev.RunqueueWaitSeconds, 0) / dt)
	r.BlkRead = ptr(rate(prev.BlockReadBytes, cg.BlockReadBytes, dt))
	r.BlkWrite = ptr(rate(prev.BlockWriteBytes, cg.BlockWriteBytes, dt))
	if r.NetRx == nil {
		r.NetRx = ptr(rate(prev.NetworkReceiveBytes, cg.NetworkReceiveBytes, dt))
		r.NetTx = ptr(rate(prev.NetworkTransmitBytes, cg.NetworkTransmitBytes, dt))
	}
	var h probe.Histogram
	for b, n := range cg.BlockLatencyBuckets {
		if b >= len(h.Buckets) {
			break
		}
		h.Buckets[b] = n
		if b < len(prev.BlockLatencyBuckets) && prev.BlockLatencyBuckets[b] <= n {
			h.Buckets[b] -= prev.BlockLatencyBuckets[b]
		}
	}
	if q := h.Quantile(0.99); q > 0 {
		r.IOLatP99 = ptr(q.Seconds())
	}
}

// Complete reports whether every running container of cur was in prev
// too, so that each has its rates.
func Complete(prev, cur *metrics.ResourceMetrics) bool {
	if prev == nil {
		return false
	}
	seen := make(map[string]bool, len(prev.Containers.ContainerDetails))
	for i := range prev.Containers.ContainerDetails {
		seen[prev.Containers.ContainerDetails[i].ContainerID] = true
	}
	for i := range cur.Containers.ContainerDetails {
		d := &cur.Containers.ContainerDetails[i]
		if d.State == "running" && !seen[d.ContainerID] {
			return false
		}
	}
	return true
}

// rate is the per-second rate of a counter; a counter that went back (a
// container restarted) counts from zero.
func rate(prev, cur uint64, dt float64) float64 {
	if cur < prev {
		return float64(cur) / dt
	}
	return float64(cur-prev) / dt
}

func ptr[T any](v T) *T { return &v }

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// SortKeys are the columns rows sort by, in the order of the columns.
var SortKeys = []string{"name", "image", "cpu", "runq", "mem", "blk_r", "blk_w", "lat_p99", "net_rx", "net_tx", "age"}

// Sort orders rows by key: figures largest first (absent ones last),
// names and images alphabetically, age oldest first. Ties go by name.
func Sort(rows []Row, key string, now time.Time) {
	f := func(r *Row) *float64 {
		switch key {
		case "cpu":
			return r.CPU
		case "runq":
			return r.RunqWait
		case "mem":
			if r.Mem == nil {
				return nil
			}
			return ptr(float64(*r.Mem))
		case "blk_r":
			return r.BlkRead
		case "blk_w":
			return r.BlkWrite
		case "lat_p99":
			return r.IOLatP99
		case "net_rx":
			return r.NetRx
		case "net_tx":
			return r.NetTx
		case "age":
			return ptr(r.Age(now).Seconds())
		}
		return nil
	}
	slices.SortStableFunc(rows, func(a, b Row) int {
		var c int
		switch key {
		case "name":
			c = strings.Compare(a.Name, b.Name)
		case "image":
			c = strings.Compare(a.Image, b.Image)
		default:
			fa, fb := f(&a), f(&b)
			switch {
			case fa == nil && fb == nil:
			case fa == nil:
				c = 1
			case fb == nil:
				c = -1
			default:
				c = cmp.Compare(*fb, *fa)
			}
		}
		if c == 0 {
			c = strings.Compare(a.Name, b.Name)
		}
		return c
	})
}
