// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package session measures what one test run consumed, on a running crmon
// agent, and checks it against limits.
//
// A test framework that does not run its tests as a child of `crmon exec`
// starts a session before the run and stops it after:
//
//	s, err := session.Start(ctx, session.Options{Name: "integration"})
//	...                              // run the tests
//	r, err := s.Stop(ctx)
//	err = r.Check(limits)            // lists every limit exceeded
//
// The Report is the JSON document `crmon exec --json` writes; its schema is
// documented in docs/report.md and versioned by SchemaVersion.
package session

import "time"

// SchemaVersion is the version of the Report JSON schema. It changes only
// when a field is removed or changes meaning; new fields are added freely.
const SchemaVersion = 1

// Report is what one run or session consumed.
type Report struct {
	SchemaVersion int `json:"schema_version"`
	// Name is the session's name; for `crmon exec` it is generated.
	Name string `json:"name,omitempty"`
	// Command is CMD and its arguments for `crmon exec`; empty for sessions.
	Command []string `json:"command,omitempty"`
	// ExitCode is CMD's exit code (128+signal when a signal killed it, as a
	// shell reports it); 0 for sessions.
	ExitCode        int       `json:"exit_code"`
	StartedAt       time.Time `json:"started_at"`
	EndedAt         time.Time `json:"ended_at"`
	DurationSeconds float64   `json:"duration_seconds"`
	// Cgroup is the cgroup2 path the run was measured in, when there was one.
	Cgroup string `json:"cgroup,omitempty"`
	// Sources says where the measures came from: "ebpf" when the probes
	// counted, "cgroupfs" for what the cgroup files gave. Measures no
	// source could give are 0 and listed in Unavailable.
	Sources     []string `json:"sources"`
	Unavailable []string `json:"unavailable,omitempty"`
	// SourcesMissing names the sources that could not be used for this
	// report, and why: "ebpf" when the probes did not count, "docker"
	// when containers could not be looked up (some may be missing).
	SourcesMissing []MissingSource `json:"sources_missing,omitempty"`
	// ContainersOmitted counts the containers created during the run that
	// were not measured because the session already measured
	// ContainersLimit of them.
	ContainersOmitted int `json:"containers_omitted,omitempty"`
	ContainersLimit   int `json:"containers_limit,omitempty"`

	// Totals is the run's own cgroup subtree: CMD and every process it
	// started, containers excluded (a container's processes are children
	// of the container runtime, not of CMD).
	Totals     Measures          `json:"totals"`
	Containers []ContainerReport `json:"containers"`
	// Host is the host's peak usage during the run; ADR-006's
	// max_*_usage_percent limits are checked against it.
	Host   HostPeaks     `json:"host"`
	Limits []LimitResult `json:"limits"`
	// Series are the samples taken during the run, for plots. Omitted from
	// the JSON unless asked for.
	Series *Series `json:"series,omitempty"`
}

// Measures is what one cgroup subtree consumed between the start and the
// end of a run. All counters are deltas over the run.
type Measures struct {
	CPUSeconds                 float64 `json:"cpu_seconds"`
	RunqueueWaitSeconds        float64 `json:"runqueue_wait_seconds"`
	RunqueueWaitP50Seconds     float64 `json:"runqueue_wait_p50_seconds"`
	RunqueueWaitP99Seconds     float64 `json:"runqueue_wait_p99_seconds"`
	ContextSwitches            uint64  `json:"context_switches"`
	VoluntaryContextSwitches   uint64  `json:"voluntary_context_switches"`
	InvoluntaryContextSwitches uint64  `json:"involuntary_context_switches"`
	BlockReadBytes             uint64  `json:"block_read_bytes"`
	BlockWriteBytes            uint64  `json:"block_write_bytes"`
	BlockReadOperations        uint64  `json:"block_read_operations"`
	BlockWriteOperations       uint64  `json:"block_write_operations"`
	BlockIOLatencyP99Seconds   float64 `json:"block_io_latency_p99_seconds"`
	NetRxBytes                 uint64  `json:"net_rx_bytes"`
	NetTxBytes                 uint64  `json:"net_tx_bytes"`
	PeakMemoryBytes            uint64  `json:"peak_memory_bytes"`
	ProcessesStarted           uint64  `json:"processes_started"`
}

// MissingSource is a source a report lacks, and why.
type MissingSource struct {
	// Source is "ebpf" or "docker".
	Source string `json:"source"`
	Reason string `json:"reason"`
}

// ContainerReport is one container created during the run.
type ContainerReport struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Image string `json:"image"`
	// Cgroup is the container's cgroup2 path ("/docker/<id>").
	Cgroup string `json:"cgroup,omitempty"`
	Measures
}

// HostPeaks is the host's highest usage seen during the run, sampled at
// the session's sample interval.
type HostPeaks struct {
	CPUUsagePercent    float64 `json:"cpu_usage_percent"`
	MemoryUsagePercent float64 `json:"memory_usage_percent"`
	DiskUsagePercent   float64 `json:"disk_usage_percent"`
}

// LimitResult is one limit checked against one scope.
type LimitResult struct {
	// Name is the limit's name, e.g. "cpu_seconds".
	Name string `json:"name"`
	// Scope is "run", "host" or "container:NAME".
	Scope  string  `json:"scope"`
	Limit  float64 `json:"limit"`
	Actual float64 `json:"actual"`
	// Unit is "seconds", "bytes" or "percent".
	Unit string `json:"unit"`
	OK   bool   `json:"ok"`
}

// Series are samples taken during a run; every point's values are
// cumulative since the start (CPU, I/O, network) or current (memory).
// IntervalSeconds is the sampling interval; a long run keeps at most about
// a thousand points per scope, so its points are spaced by a multiple of
// it: plot against each point's T.
type Series struct {
	IntervalSeconds float64 `json:"interval_seconds"`
	Run             []Point `json:"run"`
	// Containers are keyed by container name. When several containers of
	// the run had the same name (one name reused by containers run one
	// after the other), each of them is keyed "NAME@SHORTID", SHORTID
	// being the first 12 hex digits of its ID, so that none hides another.
	Containers map[string][]Point `json:"containers,omitempty"`
}

// Point is one sample.
type Point struct {
	// T is seconds since the start of the run.
	T               float64 `json:"t"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	MemoryBytes     uint64  `json:"memory_bytes"`
	BlockReadBytes  uint64  `json:"block_read_bytes"`
	BlockWriteBytes uint64  `json:"block_write_bytes"`
	NetRxBytes      uint64  `json:"net_rx_bytes"`
	NetTxBytes      uint64  `json:"net_tx_bytes"`
}
