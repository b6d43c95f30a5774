// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package metrics is crmon's data model: one sample of the host and its
// containers, in the shape of ADR-006's ResourceMetrics. It is what
// `crmon snapshot --json` and /api/v1/snapshot print, and what other Go
// programs import. JSON names are the ADR's snake_case names; times are
// RFC 3339.
//
// Rates and percentages (usage_percent, *_per_sec) are computed between two
// consecutive samples; counters (context_switches, bytes_sent, ...) are
// cumulative since boot or since the object appeared.
package metrics

import "time"

// ResourceMetrics is one sample of everything crmon watches.
type ResourceMetrics struct {
	CPU        CPUMetrics       `json:"cpu"`
	Memory     MemoryMetrics    `json:"memory"`
	Disk       DiskMetrics      `json:"disk"`
	Network    NetworkMetrics   `json:"network"`
	Containers ContainerMetrics `json:"containers"`
	System     SystemMetrics    `json:"system"`
	// Cgroups holds what the eBPF probes counted per cgroup, for every
	// exported cgroup (containers included). Empty when the probes are off.
	Cgroups []CgroupMetrics `json:"cgroups"`
	// Alerts are the active alerts (pending and firing) when the sample
	// was served: the agent's, or in `crmon snapshot` the config's rules
	// whose condition holds on this sample.
	Alerts    []ActiveAlert `json:"alerts"`
	Timestamp time.Time     `json:"timestamp"`
}

// ActiveAlert is an alert instance that is pending or firing: ADR-006's
// alert fields plus its labels and times.
type ActiveAlert struct {
	Name      string            `json:"name"`
	Severity  string            `json:"severity"`
	Resource  string            `json:"resource"`
	Message   string            `json:"message"`
	Value     float64           `json:"value"`
	Threshold float64           `json:"threshold"`
	Timestamp time.Time         `json:"timestamp"`
	Labels    map[string]string `json:"labels"`
	// State is "pending" (the condition holds, for less than the rule's
	// `for`) or "firing".
	State    string    `json:"state"`
	ActiveAt time.Time `json:"active_at"`
	// StartsAt is when it began to fire; null while pending.
	StartsAt *time.Time `json:"starts_at"`
}

// CPUMetrics is the host's CPU.
type CPUMetrics struct {
	// UsagePercent is the share of all CPUs not idle (idle+iowait) between
	// the previous sample and this one, 0-100.
	UsagePercent float64    `json:"usage_percent"`
	LoadAverage  [3]float64 `json:"load_average"`
	Cores        uint32     `json:"cores"`
	// FrequencyMHz is the mean current frequency over online CPUs; 0 when the
	// host exposes none (no cpufreq and no "cpu MHz" in /proc/cpuinfo).
	FrequencyMHz float64 `json:"frequency_mhz"`
	// TemperatureCelsius is the hottest CPU package or core sensor; null
	// when the host has no sensor.
	TemperatureCelsius *float64            `json:"temperature_celsius"`
	Processes          []ProcessCPUMetrics `json:"processes"`
}

// ProcessCPUMetrics is one of the top processes by CPU.
type ProcessCPUMetrics struct {
	PID     int    `json:"pid"`
	Name    string `json:"name"`
	Command string `json:"command"`
	// UsagePercent is of one core, so a process using two full cores
	// shows 200, as top does.
	UsagePercent float64 `json:"usage_percent"`
	CPUSeconds   float64 `json:"cpu_seconds"`
}

// MemoryMetrics is the host's memory, as free(1) reports it.
type MemoryMetrics struct {
	TotalBytes uint64 `json:"total_bytes"`
	// UsedBytes is total - available, what free(1) calls used since
	// procps-ng 4.
	UsedBytes      uint64                 `json:"used_bytes"`
	FreeBytes      uint64                 `json:"free_bytes"`
	AvailableBytes uint64                 `json:"available_bytes"`
	CachedBytes    uint64                 `json:"cached_bytes"`
	BuffersBytes   uint64                 `json:"buffers_bytes"`
	UsagePercent   float64                `json:"usage_percent"`
	SwapTotalBytes uint64                 `json:"swap_total_bytes"`
	SwapUsedBytes  uint64                 `json:"swap_used_bytes"`
	SwapFreeBytes  uint64                 `json:"swap_free_bytes"`
	Processes      []ProcessMemoryMetrics `json:"processes"`
}

// ProcessMemoryMetrics is one of the top processes by resident memory.
type ProcessMemoryMetrics struct {
	PID          int     `json:"pid"`
	Name         string  `json:"name"`
	Command      string  `json:"command"`
	RSSBytes     uint64  `json:"rss_bytes"`
	VirtualBytes uint64  `json:"virtual_bytes"`
	UsagePercent float64 `json:"usage_percent"`
}

// DiskMetrics sums the host's partitions (capacity) and disks (I/O).
type DiskMetrics struct {
	TotalBytes       uint64             `json:"total_bytes"`
	UsedBytes        uint64             `json:"used_bytes"`
	FreeBytes        uint64             `json:"free_bytes"`
	UsagePercent     float64            `json:"usage_percent"`
	ReadBytesPerSec  uint64             `json:"read_bytes_per_sec"`
	WriteBytesPerSec uint64             `json:"write_bytes_per_sec"`
	ReadOpsPerSec    uint64             `json:"read_ops_per_sec"`
	WriteOpsPerSec   uint64             `json:"write_ops_per_sec"`
	Partitions       []PartitionMetrics `json:"partitions"`
}

// PartitionMetrics is one mounted filesystem and, where it sits on a block
// device, that device's I/O rates.
type PartitionMetrics struct {
	Device           string  `json:"device"`
	MountPoint       string  `json:"mount_point"`
	FSType           string  `json:"fs_type"`
	TotalBytes       uint64  `json:"total_bytes"`
	UsedBytes        uint64  `json:"used_bytes"`
	FreeBytes        uint64  `json:"free_bytes"`
	AvailableBytes   uint64  `json:"available_bytes"`
	UsagePercent     float64 `json:"usage_percent"`
	ReadOnly         bool    `json:"read_only"`
	ReadBytesPerSec  uint64  `json:"read_bytes_per_sec"`
	WriteBytesPerSec uint64  `json:"write_bytes_per_sec"`
	ReadOpsPerSec    uint64  `json:"read_ops_per_sec"`
	WriteOpsPerSec   uint64  `json:"write_ops_per_sec"`
}

// NetworkMetrics sums the host's physical NICs, so that a container's
// traffic, which also crosses its veth and a bridge, counts once; where no
// interface has a device behind it (a network namespace of its own), every
// interface but loopback. Interfaces lists them all.
type NetworkMetrics struct {
	BytesSent       uint64 `json:"bytes_sent"`
	BytesReceived   uint64 `json:"bytes_received"`
	PacketsSent     uint64 `json:"packets_sent"`
	PacketsReceived uint64 `json:"packets_received"`
	ErrorsSent      uint64 `json:"errors_sent"`
	ErrorsReceived  uint64 `json:"errors_received"`
	// BandwidthBytesPerSec is received + sent bytes per second between the
	// previous sample and this one.
	BandwidthBytesPerSec uint64             `json:"bandwidth_bytes_per_sec"`
	Interfaces           []InterfaceMetrics `json:"interfaces"`
}

// InterfaceMetrics is one network interface.
type InterfaceMetrics struct {
	Name                 string `json:"name"`
	BytesSent            uint64 `json:"bytes_sent"`
	BytesReceived        uint64 `json:"bytes_received"`
	PacketsSent          uint64 `json:"packets_sent"`
	PacketsReceived      uint64 `json:"packets_received"`
	ErrorsSent           uint64 `json:"errors_sent"`
	ErrorsReceived       uint64 `json:"errors_received"`
	BandwidthBytesPerSec uint64 `json:"bandwidth_bytes_per_sec"`
	// SpeedBytesPerSec is the link speed when the driver reports one.
	SpeedBytesPerSec uint64 `json:"speed_bytes_per_sec,omitempty"`
}

// ContainerMetrics is every container the runtime knows.
type ContainerMetrics struct {
	TotalContainers   uint32                   `json:"total_containers"`
	RunningContainers uint32                   `json:"running_containers"`
	StoppedContainers uint32                   `json:"stopped_containers"`
	ContainerDetails  []ContainerDetailMetrics `json:"container_details"`
}

// ContainerDetailMetrics is one container.
type ContainerDetailMetrics struct {
	ContainerID   string `json:"container_id"`
	ContainerName string `json:"container_name"`
	Image         string `json:"image"`
	State         string `json:"state"`
	// CgroupPath is the container's cgroup in the cgroup2 hierarchy, the
	// `id` label of its metrics.
	CgroupPath string `json:"cgroup_path,omitempty"`
	// CPUUsagePercent is of one core between the previous sample and this
	// one; a container limited with --cpus 0.5 and busy shows about 50.
	CPUUsagePercent float64 `json:"cpu_usage_percent"`
	// MemoryUsageBytes is the working set: usage minus inactive file cache,
	// what cAdvisor and the kubelet report.
	MemoryUsageBytes uint64 `json:"memory_usage_bytes"`
	// DiskUsageBytes is the size of the writable layer, refreshed on a slower
	// interval than the rest.
	DiskUsageBytes       uint64 `json:"disk_usage_bytes"`
	NetworkBytesSent     uint64 `json:"network_bytes_sent"`
	NetworkBytesReceived uint64 `json:"network_bytes_received"`
	// NetworkBytesPerSec is received + sent bytes per second between the
	// container's last two reads, 0 when it is not running.
	NetworkBytesPerSec uint64     `json:"network_bytes_per_sec"`
	CreatedAt          time.Time  `json:"created_at"`
	StartedAt          *time.Time `json:"started_at"`
	// Cgroup is what the eBPF probes counted for this container's cgroup,
	// when they run.
	Cgroup *CgroupMetrics `json:"cgroup,omitempty"`
}

// SystemMetrics is the host as a whole.
type SystemMetrics struct {
	UptimeSeconds uint64    `json:"uptime_seconds"`
	BootTime      time.Time `json:"boot_time"`
	// Users is the number of login sessions in utmp, as who(1) counts them.
	Users     uint32 `json:"users"`
	Processes uint32 `json:"processes"`
	Threads   uint32 `json:"threads"`
	// OpenFiles is the number of allocated file handles (/proc/sys/fs/file-nr).
	OpenFiles       uint32 `json:"open_files"`
	ContextSwitches uint64 `json:"context_switches"`
}

// CgroupMetrics is what the eBPF probes counted for one cgroup, cumulative
// since crmon started watching it.
type CgroupMetrics struct {
	// ID is the cgroup's path in the cgroup2 hierarchy ("/docker/<id>",
	// "/system.slice/x.service"), cAdvisor's `id`.
	ID       string `json:"id"`
	CgroupID uint64 `json:"cgroup_id"`

	CPUSeconds                 float64 `json:"cpu_seconds"`
	RunqueueWaitSeconds        float64 `json:"runqueue_wait_seconds"`
	VoluntaryContextSwitches   uint64  `json:"voluntary_context_switches"`
	InvoluntaryContextSwitches uint64  `json:"involuntary_context_switches"`

	BlockReadBytes       uint64 `json:"block_read_bytes"`
	BlockWriteBytes      uint64 `json:"block_write_bytes"`
	BlockReadOperations  uint64 `json:"block_read_operations"`
	BlockWriteOperations uint64 `json:"block_write_operations"`

	// BlockLatencyBuckets is the latency histogram of the block I/O
	// (reads and writes, every device), cumulative: element b counts
	// requests that took from 2^(b-1) ns up to 2^b ns (element 0 those
	// that took none; the 34th everything from about 4.3 s up). Trailing
	// empty buckets are left out, so it is empty for a cgroup that did
	// no block I/O. Two samples' difference gives the latency
	// distribution between them (the live view's p99).
	BlockLatencyBuckets []uint64 `json:"block_latency_buckets,omitempty"`

	NetworkReceiveBytes    uint64 `json:"network_receive_bytes"`
	NetworkTransmitBytes   uint64 `json:"network_transmit_bytes"`
	NetworkReceivePackets  uint64 `json:"network_receive_packets"`
	NetworkTransmitPackets uint64 `json:"network_transmit_packets"`
}
