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
//	err = r.Check(limits, session.UnmeasuredError) // lists every limit exceeded or not measured
//
// The Report is the JSON document `crmon exec --json` writes; its schema is
// documented in docs/report.md and versioned by SchemaVersion.
package session

import "time"

// SchemaVersion is the version of the Report JSON schema. It changes only
// when a field is removed or changes meaning; new fields are added freely.
// Version 2: a measure no source measured is null (was 0), a limit on it
// has no actual, exit_code is absent when no exit was seen.
const SchemaVersion = 2

// Report is what one run or session consumed.
type Report struct {
	SchemaVersion int `json:"schema_version"`
	// Name names the report: the name given with --name, else the
	// session's name, "exec" for `crmon exec`. It names the JUnit suite,
	// so it stays the same from one run of a job to the next.
	Name string `json:"name,omitempty"`
	// Command is CMD and its arguments for `crmon exec`; empty for sessions.
	Command []string `json:"command,omitempty"`
	// ExitCode is CMD's exit code (128+signal when a signal killed it, as a
	// shell reports it); nil when no exit was seen (sessions).
	ExitCode        *int      `json:"exit_code,omitempty"`
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
	// BlockLostCompletions counts the block requests on the host whose
	// completion the eBPF probes did not see during the run: when it is
	// not 0, the block operation counts and latencies are a lower bound
	// (bytes are counted as requests are issued, and are complete).
	BlockLostCompletions uint64 `json:"block_lost_completions,omitempty"`

	// TotalsOf says what Totals measured: TotalsCgroup, the run's own
	// cgroup subtree (CMD and every process it started, containers
	// excluded: a container's processes are children of the container
	// runtime, not of CMD), or TotalsContainers, the sum of the containers
	// (a session without a cgroup, which saw no process of its own).
	TotalsOf   string            `json:"totals_of"`
	Totals     Measures          `json:"totals"`
	Containers []ContainerReport `json:"containers"`
	// Processes are the run's own processes (not its containers'),
	// grouped by command, most CPU first; nil (absent in JSON) when they
	// were not counted: a session without a cgroup, or without the probes.
	Processes []ProcessReport `json:"processes,omitempty"`
	// ProcessesDropped counts processes of the run not in Processes: the
	// kernel's table of them was full.
	ProcessesDropped uint64 `json:"processes_dropped,omitempty"`
	// Host is the host's peak usage during the run; ADR-006's
	// max_*_usage_percent limits are checked against it.
	Host HostPeaks `json:"host"`
	// Stragglers are the processes CMD left running when it exited
	// (exec only), nil when there were none.
	Stragglers *Stragglers   `json:"stragglers,omitempty"`
	Limits     []LimitResult `json:"limits"`
	// Findings say why the run was slow or failed, from what it
	// measured; empty when nothing was found.
	Findings []Finding `json:"findings"`
	// Baselines name the reports this one was compared with
	// (--baseline), and Regressions are the figures compared: each
	// against the median of the baselines.
	Baselines   []string           `json:"baselines,omitempty"`
	Regressions []RegressionResult `json:"regressions,omitempty"`
	// Series are the samples taken during the run, for plots. Omitted from
	// the JSON unless asked for.
	Series *Series `json:"series,omitempty"`
}

// What Report.Totals measured.
const (
	TotalsCgroup     = "cgroup"
	TotalsContainers = "containers"
)

// Exit returns code as a Report.ExitCode.
func Exit(code int) *int { return &code }

// Measures is what one cgroup subtree consumed between the start and the
// end of a run. All counters are deltas over the run. Fields listed in
// Unmeasured were not measured: they are 0 here and null in JSON.
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
	// Unmeasured lists the JSON names of the fields no source measured.
	Unmeasured []string `json:"-"`
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
	Lifecycle
	Measures
}

// Lifecycle is when a container was created, started and finished, and
// how it ended; times the run did not see are zero (absent in JSON).
type Lifecycle struct {
	CreatedAt  time.Time `json:"created_at,omitzero"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// ExitCode is the container's exit code, nil while it runs or when
	// the run did not see it end.
	ExitCode  *int `json:"exit_code,omitempty"`
	OOMKilled bool `json:"oom_killed,omitempty"`
}

// Stragglers are the processes still running in a run's cgroup when CMD
// exited: the run waited for them, or killed them.
type Stragglers struct {
	// Processes lists up to 20 of them.
	Processes []Process `json:"processes"`
	// Killed says why they were killed: "kill-stragglers" (asked for),
	// "max-wait" (still running at the end of --max-wait); "" when the
	// run waited for them to exit.
	Killed string `json:"killed,omitempty"`
}

// Process is one process.
type Process struct {
	PID int `json:"pid"`
	// Command is its command line, cut at 200 bytes.
	Command string `json:"command"`
}

// HostPeaks is the host's highest usage seen during the run, sampled at
// the session's sample interval.
type HostPeaks struct {
	CPUUsagePercent    float64 `json:"cpu_usage_percent"`
	MemoryUsagePercent float64 `json:"memory_usage_percent"`
	DiskUsagePercent   float64 `json:"disk_usage_percent"`
	// Unmeasured lists the JSON names of the figures no sample read:
	// 0 here, null in JSON.
	Unmeasured []string `json:"-"`
}

// LimitResult is one limit checked against one scope.
type LimitResult struct {
	// Name is the limit's name, e.g. "cpu_seconds".
	Name string `json:"name"`
	// Scope is "run", "containers" (a report whose totals are its
	// containers'), "host" or "container:NAME"; "container:PATTERN" for
	// a container limit that matched no container.
	Scope string `json:"scope"`
	// Pattern is a container limit's pattern.
	Pattern string  `json:"pattern,omitempty"`
	Limit   float64 `json:"limit"`
	// Actual is 0, and null in JSON, when Status is StatusNotMeasured or
	// StatusSkipped.
	Actual float64 `json:"actual"`
	// Unit is "seconds", "bytes" or "percent".
	Unit string `json:"unit"`
	// OK is Status == StatusOK.
	OK     bool   `json:"ok"`
	Status string `json:"status"`
	// Reason says why a limit was not checked.
	Reason string `json:"reason,omitempty"`
}

// LimitResult.Status values.
const (
	StatusOK       = "ok"
	StatusExceeded = "exceeded"
	// StatusNotMeasured fails the run: nothing measured what the limit
	// bounds, so nothing says it held.
	StatusNotMeasured = "not_measured"
	// StatusSkipped does not: not measured and the caller said to skip
	// such limits, or a container limit that matched no container.
	StatusSkipped = "skipped"
)

// Measured reports whether the limit was checked against a measurement.
func (l LimitResult) Measured() bool {
	return l.Status == StatusOK || l.Status == StatusExceeded
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
