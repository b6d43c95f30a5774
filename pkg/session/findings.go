// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package session

// Finding is one reason a run was slow or failed, found in what the run
// measured: a code to act on, a severity, the numbers behind it and one
// sentence for people.
type Finding struct {
	// Code is one of the Finding* constants.
	Code string `json:"code"`
	// Severity is SeverityWarning or SeverityCritical.
	Severity string `json:"severity"`
	// Scope is "run", "containers" or "container:NAME".
	Scope string `json:"scope"`
	// Message says what happened, with the numbers, in one sentence.
	Message string `json:"message"`
	// Evidence are the numbers behind it, by name (units in the names:
	// _seconds, _bytes, _percent, or counts).
	Evidence map[string]float64 `json:"evidence"`
	// Others are, for FindingCPUStarved, the cgroups outside the run that
	// used the most CPU during it, most first.
	Others []CgroupCPU `json:"others,omitempty"`
}

// CgroupCPU is CPU time one cgroup used during a run.
type CgroupCPU struct {
	// Cgroup is its cgroup2 path.
	Cgroup     string  `json:"cgroup"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// Finding codes.
const (
	// FindingCPUStarved: the scope's tasks waited in the run queue for a
	// large share of the time they ran.
	FindingCPUStarved = "cpu_starved"
	// FindingCPUThrottled: the scope hit its CFS quota.
	FindingCPUThrottled = "cpu_throttled"
	// FindingMemoryNearLimit: the scope's peak memory came close to its
	// limit.
	FindingMemoryNearLimit = "memory_near_limit"
	// FindingOOMKill: the kernel's OOM killer killed a process of the
	// scope.
	FindingOOMKill = "oom_kill"
	// FindingMajorFaults: the scope's processes waited for many pages to
	// be read from disk.
	FindingMajorFaults = "major_faults"
	// FindingSlowIO: the scope's block I/O p99 latency was far above what
	// the same device showed before the run.
	FindingSlowIO = "slow_io"
	// FindingContainerFailed: a container of the run exited with a
	// non-zero code.
	FindingContainerFailed = "container_failed"
)

// Finding severities.
const (
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// ProcessReport is one command of the run: every process that ran the
// same command, summed. Its figures have the names of the totals';
// those the kernel does not count per process (context switches, block
// operations and latency, processes started) are null. Its network bytes
// are payload bytes of its sockets, where the totals' are packets.
type ProcessReport struct {
	// Command is the executable's name and, for an interpreter or a
	// launcher (sh -c, python, go, node…), the argument that says what it
	// ran: "procfs.test", "go test", "python3 setup.py".
	Command string `json:"command"`
	// PIDs are the first 32 processes' IDs; Count counts them all.
	PIDs  []int `json:"pids"`
	Count int   `json:"count"`
	Measures
}

// ProcessFields are the figures a ProcessReport measures.
var ProcessFields = []string{"cpu_seconds", "runqueue_wait_seconds", "block_read_bytes", "block_write_bytes", "net_rx_bytes", "net_tx_bytes", "peak_memory_bytes"}
