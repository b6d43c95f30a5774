// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package config is crmon's TOML configuration, in the shape of ADR-006:
// [cleanroom.monitoring] with its thresholds, alerting and exporters, plus
// the sections crmon adds (ebpf, containers, store) and
// [cleanroom.resource_limits].
//
// Every value has a default, so no file at all is a valid configuration.
// The order is Default() → file (Load) → flags (the caller) → Validate().
// Errors name the file, the line, the key and the fix, and Validate reports
// every problem at once.
package config

import (
	"time"

	"github.com/crmon-dev/crmon/pkg/session"
)

// Config is the whole configuration. Its TOML form nests everything under
// [cleanroom], as the ADR's examples do.
type Config struct {
	Monitoring     Monitoring     `toml:"monitoring"`
	ResourceLimits ResourceLimits `toml:"resource_limits"`

	// src is where the values came from, so that Validate can name lines.
	src *source
}

// Monitoring is [cleanroom.monitoring].
type Monitoring struct {
	// EnableMonitoring false keeps the agent up (health, the API) but
	// collects nothing.
	EnableMonitoring   bool     `toml:"enable_monitoring"`
	CollectionInterval Duration `toml:"collection_interval"`
	// RetentionPeriod is how long the local store keeps samples.
	RetentionPeriod Duration `toml:"retention_period"`
	// TopProcesses is how many processes the per-process CPU and memory
	// lists of the snapshot keep.
	TopProcesses int `toml:"top_processes"`
	// ProcessCommandLines shows those processes' full command lines
	// instead of their names. The agent reads every user's
	// /proc/PID/cmdline whatever hidepid says, and argv often carries
	// tokens, so it is off unless asked for.
	ProcessCommandLines bool `toml:"process_command_lines"`

	Thresholds Thresholds `toml:"thresholds"`
	Alerting   Alerting   `toml:"alerting"`
	Exporters  []Exporter `toml:"exporters"`
	EBPF       EBPF       `toml:"ebpf"`
	Containers Containers `toml:"containers"`
	Store      Store      `toml:"store"`
	Sessions   Sessions   `toml:"sessions"`
}

// Thresholds is [cleanroom.monitoring.thresholds]: the ADR's built-in
// warnings, checked on every sample. Zero turns a threshold off.
type Thresholds struct {
	CPUUsagePercent         float64 `toml:"cpu_usage_percent"`
	MemoryUsagePercent      float64 `toml:"memory_usage_percent"`
	DiskUsagePercent        float64 `toml:"disk_usage_percent"`
	NetworkBandwidthPercent float64 `toml:"network_bandwidth_percent"`
	ContainerCount          int     `toml:"container_count"`
	ProcessCount            int     `toml:"process_count"`
}

// Alerting is [cleanroom.monitoring.alerting].
type Alerting struct {
	EnableAlerting bool `toml:"enable_alerting"`
	// CooldownPeriod is the least time between two notifications of the
	// same alert.
	CooldownPeriod Duration `toml:"cooldown_period"`
	// DeliveryGracePeriod is how long notifications still queued are
	// delivered when the agent stops, or when a reload removes their
	// channel; what is left then is counted as dropped and logged.
	DeliveryGracePeriod Duration       `toml:"delivery_grace_period"`
	AlertChannels       []AlertChannel `toml:"alert_channels"`
	AlertRules          []AlertRule    `toml:"alert_rules"`
}

// MaxDeliveryGracePeriod bounds delivery_grace_period: a stop that waits
// longer would outlast systemd's default stop timeout (90 s) with what
// else a stop takes; Docker's (10 s) asks for less, which the operator
// sets.
const MaxDeliveryGracePeriod = time.Minute

// Channel types.
const (
	ChannelEmail        = "email"
	ChannelSlack        = "slack"
	ChannelWebhook      = "webhook"
	ChannelAlertmanager = "alertmanager"
)

// ChannelTypes lists the valid alert channel types.
var ChannelTypes = []string{ChannelEmail, ChannelSlack, ChannelWebhook, ChannelAlertmanager}

// AlertChannel is one [[cleanroom.monitoring.alerting.alert_channels]].
// Which keys apply depends on Type; a key of another type is an error.
type AlertChannel struct {
	Name string `toml:"name"`
	// Type is one of ChannelTypes, lower case after loading.
	Type string `toml:"type"`

	// email
	SMTPHost     string   `toml:"smtp_host,omitempty"`
	SMTPPort     int      `toml:"smtp_port,omitempty"`
	From         string   `toml:"from,omitempty"`
	To           []string `toml:"to,omitempty"`
	Username     string   `toml:"username,omitempty"`
	Password     Secret   `toml:"password,omitempty"`
	PasswordFile string   `toml:"password_file,omitempty"`
	PasswordEnv  string   `toml:"password_env,omitempty"`

	// slack
	WebhookURL     Secret `toml:"webhook_url,omitempty"`
	WebhookURLFile string `toml:"webhook_url_file,omitempty"`
	WebhookURLEnv  string `toml:"webhook_url_env,omitempty"`
	Channel        string `toml:"channel,omitempty"`

	// webhook and alertmanager. A webhook URL often carries a token, so
	// URL is a secret for both.
	URL         Secret            `toml:"url,omitempty"`
	URLFile     string            `toml:"url_file,omitempty"`
	URLEnv      string            `toml:"url_env,omitempty"`
	Headers     map[string]Secret `toml:"headers,omitempty"`
	HeadersFile map[string]string `toml:"headers_file,omitempty"`
	HeadersEnv  map[string]string `toml:"headers_env,omitempty"`
}

// Alert rule resources. The container_* ones are checked per container.
const (
	ResourceCPU             = "cpu"
	ResourceMemory          = "memory"
	ResourceDisk            = "disk"
	ResourceNetwork         = "network"
	ResourceContainers      = "containers"
	ResourceProcesses       = "processes"
	ResourceContainerCPU    = "container_cpu"
	ResourceContainerMemory = "container_memory"
	ResourceContainerDisk   = "container_disk"
	ResourceContainerNet    = "container_network"
)

// RuleResources lists the valid alert rule resources; README.md says
// what each measures and in which unit.
var RuleResources = []string{
	ResourceCPU, ResourceMemory, ResourceDisk, ResourceNetwork,
	ResourceContainers, ResourceProcesses,
	ResourceContainerCPU, ResourceContainerMemory, ResourceContainerDisk, ResourceContainerNet,
}

// RuleConditions lists the valid alert rule conditions.
var RuleConditions = []string{">", ">=", "<", "<="}

// Severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Severities lists the valid alert severities.
var Severities = []string{SeverityInfo, SeverityWarning, SeverityCritical}

// AlertRule is one [[cleanroom.monitoring.alerting.alert_rules]]: fire when
// Resource Condition Threshold has held for For, or, with Expr, while the
// PromQL expression returns a series (one alert per series).
type AlertRule struct {
	Name string `toml:"name"`
	// Expr is a PromQL expression evaluated against the local store at
	// each tick, instead of Resource, Condition and Threshold.
	Expr      string   `toml:"expr,omitempty"`
	Resource  string   `toml:"resource"`
	Condition string   `toml:"condition"`
	Threshold float64  `toml:"threshold"`
	For       Duration `toml:"for"`
	// ResolveThreshold, when set, is where a firing alert resolves
	// (hysteresis): with condition ">" and threshold 90, a resolve
	// threshold of 80 keeps it firing until the value is 80 or less.
	// Unset, it resolves when the condition stops holding.
	ResolveThreshold *float64 `toml:"resolve_threshold,omitempty"`
	Severity         string   `toml:"severity"`
	// Channels names alert_channels; empty means all of them.
	Channels []string          `toml:"channels"`
	Labels   map[string]string `toml:"labels,omitempty"`
}

// Exporter types, as the ADR spells them. The file may use any case.
const (
	ExporterPrometheus    = "Prometheus"    // remote write 1.0 or 2.0
	ExporterInfluxDB      = "InfluxDB"      // line protocol
	ExporterElasticsearch = "Elasticsearch" // bulk API
	ExporterCustom        = "Custom"        // the snapshot as JSON over HTTP
)

// ExporterTypes lists the valid exporter types.
var ExporterTypes = []string{ExporterPrometheus, ExporterInfluxDB, ExporterElasticsearch, ExporterCustom}

// Exporter is one [[cleanroom.monitoring.exporters]].
type Exporter struct {
	Name string `toml:"name"`
	// ExporterType is one of ExporterTypes, in that spelling after loading.
	ExporterType string      `toml:"exporter_type"`
	Endpoint     string      `toml:"endpoint"`
	Credentials  Credentials `toml:"credentials,omitempty"`
	// BatchSize is how many samples one request carries at most.
	BatchSize     int      `toml:"batch_size"`
	FlushInterval Duration `toml:"flush_interval"`
	// Timeout bounds one request.
	Timeout Duration `toml:"timeout"`
	// MaxRetries bounds the retries of one batch after retryable errors
	// (network, 5xx, 429); 0 retries for as long as the queue keeps it.
	MaxRetries int `toml:"max_retries"`
	// QueueSize bounds the samples waiting to be sent; the oldest are
	// dropped (and counted) beyond it.
	QueueSize int `toml:"queue_size"`
	// QueuePath is the directory of the exporter's queue on disk; ""
	// is <store path>/exporters/<name> while the store is enabled, and
	// a queue in memory otherwise.
	QueuePath string `toml:"queue_path,omitempty"`
	// QueueMaxBytes bounds the queue on disk; the oldest segments are
	// dropped (and counted) beyond it.
	QueueMaxBytes int64 `toml:"queue_max_bytes"`
	// DeliveryGracePeriod is how long the exporter goes on sending what
	// it has queued when the agent stops, or when a reload removes or
	// changes it; what is left then is counted as dropped and logged.
	DeliveryGracePeriod Duration `toml:"delivery_grace_period"`
	// Labels are added to every series sent (the series' own win), after
	// job="crmon" and instance=<hostname>, which they may replace ("" to
	// drop one).
	Labels      map[string]string `toml:"labels,omitempty"`
	Headers     map[string]Secret `toml:"headers,omitempty"`
	HeadersFile map[string]string `toml:"headers_file,omitempty"`
	HeadersEnv  map[string]string `toml:"headers_env,omitempty"`

	// InfluxDB: database for 1.x, org and bucket for 2.x.
	Database  string `toml:"database,omitempty"`
	Org       string `toml:"org,omitempty"`
	Bucket    string `toml:"bucket,omitempty"`
	Precision string `toml:"precision,omitempty"`

	// Elasticsearch.
	Index string `toml:"index,omitempty"`

	// Prometheus: RemoteWriteAuto, RemoteWrite1 or RemoteWrite2.
	RemoteWriteVersion string `toml:"remote_write_version,omitempty"`

	// Custom: CustomJSON or CustomNDJSON.
	Format string `toml:"format,omitempty"`
}

// Custom exporter formats.
const (
	CustomJSON   = "json"   // one POST per tick, the snapshot as a JSON object
	CustomNDJSON = "ndjson" // batches of snapshots, one JSON object a line
)

// CustomFormats lists the valid format values.
var CustomFormats = []string{CustomJSON, CustomNDJSON}

// Remote write versions.
const (
	RemoteWriteAuto = "auto" // 2.0, and 1.0 from the first sign the receiver takes 1.0 only
	RemoteWrite1    = "1.0"
	RemoteWrite2    = "2.0"
)

// RemoteWriteVersions lists the valid remote_write_version values.
var RemoteWriteVersions = []string{RemoteWriteAuto, RemoteWrite1, RemoteWrite2}

// Credentials authenticate an exporter: basic auth (Username, Password) or
// a bearer Token.
type Credentials struct {
	Username     string `toml:"username,omitempty"`
	Password     Secret `toml:"password,omitempty"`
	PasswordFile string `toml:"password_file,omitempty"`
	PasswordEnv  string `toml:"password_env,omitempty"`
	Token        Secret `toml:"token,omitempty"`
	TokenFile    string `toml:"token_file,omitempty"`
	TokenEnv     string `toml:"token_env,omitempty"`
}

// eBPF modes.
const (
	EBPFAuto     = "auto"     // probes when the kernel allows, else procfs/cgroupfs only
	EBPFRequired = "required" // no probes is a start-up error
	EBPFDisabled = "disabled" // never load probes
)

// EBPFModes lists the valid eBPF modes.
var EBPFModes = []string{EBPFAuto, EBPFRequired, EBPFDisabled}

// EBPF is [cleanroom.monitoring.ebpf].
type EBPF struct {
	Mode  string `toml:"mode"`
	Sched bool   `toml:"sched"`
	Block bool   `toml:"block"`
	Net   bool   `toml:"net"`
	// Stats turns on the kernel's BPF run-time statistics, for
	// crmon_bpf_program_run_*: two clock reads per program run, which on a
	// context-switch-heavy workload costs more than the probes themselves.
	Stats bool `toml:"stats"`
	// Include and Exclude are glob patterns (path.Match) on the cgroup's
	// path in the cgroup2 hierarchy, e.g. "/docker/*". Empty Include
	// means every cgroup; Exclude wins.
	Include []string `toml:"include"`
	Exclude []string `toml:"exclude"`
	// MaxSeries caps the cgroups exported per family.
	MaxSeries     int `toml:"max_series"`
	MapMaxEntries int `toml:"map_max_entries"`
	// LostCompletionAfter is how long a block request may stay in flight
	// before its completion counts as lost (lost_completion drops).
	LostCompletionAfter Duration `toml:"lost_completion_after"`
}

// ContainerMetricGroups are the optional cAdvisor metric groups that
// enable_metrics turns on; each adds series to every container.
var ContainerMetricGroups = []string{"pressure", "memory_detail", "spec_detail"}

// Containers is [cleanroom.monitoring.containers].
type Containers struct {
	Enabled    bool   `toml:"enabled"`
	DockerHost string `toml:"docker_host"`
	// ContainerLabels are the Docker labels exported as container_label_*.
	ContainerLabels []string `toml:"container_labels"`
	// EnableMetrics adds optional cAdvisor metric groups: "pressure",
	// "memory_detail", "spec_detail".
	EnableMetrics []string `toml:"enable_metrics"`
	// DiskUsageInterval is how often the writable layer's size is
	// measured (it walks a tree, so it is slower than a tick); 0 never.
	DiskUsageInterval Duration `toml:"disk_usage_interval"`
	// IdleRefresh is how often what moves while a container is idle
	// (memory, block I/O, its interfaces) is read again: how stale its
	// counters may get. Idle is what the eBPF probes saw of its
	// cgroup since the last tick (nothing ran, no block I/O, no packets,
	// no task on a CPU), else an unchanged CPU total; a container that
	// wakes is read in full at the next tick. 0 reads everything every
	// tick.
	IdleRefresh Duration `toml:"idle_refresh"`
	// RemovedRetention is how long a container or cgroup that is gone
	// keeps serving its counters, with their final values and its last
	// name and image, so that a scraper at a slower interval still sees
	// them; its gauges go at once. 0 serves them until the next tick.
	RemovedRetention Duration `toml:"removed_retention"`
	// Include and Exclude are glob patterns (path.Match) on container
	// names. Empty Include means every container; Exclude wins.
	Include []string `toml:"include"`
	Exclude []string `toml:"exclude"`
}

// Store is [cleanroom.monitoring.store], the local history.
type Store struct {
	Enabled bool   `toml:"enabled"`
	Path    string `toml:"path"`
	// MaxBytes bounds the store on disk; 0 leaves only retention_period.
	MaxBytes int64 `toml:"max_bytes"`
	// QueryTimeout ends a query (and a report) that runs longer, waiting
	// for a slot included.
	QueryTimeout Duration `toml:"query_timeout"`
	// QueryMaxSamples bounds the samples one query holds in memory at
	// once (about 16 bytes each).
	QueryMaxSamples int `toml:"query_max_samples"`
	// QueryConcurrency is how many queries run at once; more wait.
	QueryConcurrency int `toml:"query_concurrency"`
}

// Sessions is [cleanroom.monitoring.sessions]: the test-run session API,
// served on a unix socket only, so that the kernel tells the agent who
// asks (SO_PEERCRED).
type Sessions struct {
	// Socket is the control socket's path; "" serves no session API.
	Socket string `toml:"socket"`
	// SocketGroup is the group, by name or number, whose members may use
	// the socket (mode 0660); "" leaves it to root's group.
	SocketGroup string `toml:"socket_group"`
	// MaxSessions bounds the sessions running at once, all users together;
	// root may use all of them.
	MaxSessions int `toml:"max_sessions"`
	// MaxSessionsPerUser bounds the sessions of one non-root user.
	MaxSessionsPerUser int `toml:"max_sessions_per_user"`
	// AbandonedAfter is how long a session outlives its owner: the process
	// that started it (crmon exec) or the lease its client renews.
	AbandonedAfter Duration `toml:"abandoned_after"`
}

// ResourceLimits is [cleanroom.resource_limits]: the budgets of a run
// that crmon exec and test sessions check (ADR-006's
// check_resource_limits and the per-run limits of docs/report.md). The
// table is pkg/session's: its keys are session.LimitNames, and
// session.ParseLimitsTOML reads the same file to the same Limits.
type ResourceLimits struct {
	// Limits is every limit in the file, in the order
	// session.ParseLimitsTOML gives them; no key, no limit. Pass them to
	// session.Report.Check.
	Limits session.Limits `toml:"-"`

	// The host limits of Limits, 0 when not set. They mirror Limits for
	// the code that reads them; set Limits to change a limit.
	MaxCPUUsagePercent    float64 `toml:"-"`
	MaxMemoryUsagePercent float64 `toml:"-"`
	MaxDiskUsagePercent   float64 `toml:"-"`
}

// DefaultStorePath is the store's directory: root's to write, so an
// unprivileged agent runs without the store unless its config names one.
const DefaultStorePath = "/var/lib/crmon"

// DefaultControlSocket is where the agent serves the session API, as
// Docker serves its API on /run/docker.sock.
const DefaultControlSocket = "/run/crmon/crmon.sock"

// Defaults of values that live in list entries, applied to each entry for
// the keys it leaves out.
const (
	DefaultBatchSize     = 2000
	DefaultFlushInterval = 30 * time.Second
	DefaultTimeout       = 10 * time.Second
	DefaultMaxRetries    = 0
	DefaultQueueSize     = 400000
	// DefaultQueueMaxBytes bounds an exporter's queue on disk: far more
	// than queue_size's samples take (about 10 bytes each), so that
	// queue_size is the bound a user sees, and the bytes a bound on what
	// a Custom exporter's snapshots take.
	DefaultQueueMaxBytes = 256 << 20
	// MinQueueMaxBytes is a few segments of the smallest size.
	MinQueueMaxBytes = 1 << 20
	// DefaultExporterGrace is an exporter's delivery_grace_period, the
	// alert channels' default.
	DefaultExporterGrace   = 5 * time.Second
	DefaultSMTPPort        = 587
	DefaultSeverity        = SeverityWarning
	DefaultCondition       = ">"
	DefaultInfluxPrecision = "ms"
	DefaultElasticIndex    = "crmon"
)

// Default is the configuration with no file: what the ADR's examples use
// where they agree, and documented choices where they differ (see
// README.md).
func Default() *Config {
	return &Config{
		Monitoring: Monitoring{
			EnableMonitoring:   true,
			CollectionInterval: Duration(10 * time.Second),
			RetentionPeriod:    Duration(7 * 24 * time.Hour),
			TopProcesses:       10,
			Thresholds: Thresholds{
				// The development example's percentages: a CI host that
				// is busy is doing its job, so warn late.
				CPUUsagePercent:         80,
				MemoryUsagePercent:      85,
				DiskUsagePercent:        90,
				NetworkBandwidthPercent: 80,
				// The production example's counts: CI hosts run dozens
				// of containers and thousands of processes.
				ContainerCount: 50,
				ProcessCount:   5000,
			},
			Alerting: Alerting{
				EnableAlerting:      true,
				CooldownPeriod:      Duration(5 * time.Minute),
				DeliveryGracePeriod: Duration(5 * time.Second),
			},
			EBPF: EBPF{
				Mode:          EBPFAuto,
				Sched:         true,
				Block:         true,
				Net:           true,
				MaxSeries:     2000,
				MapMaxEntries: 10240,
				// No real request is in flight for this long; a
				// completion still missing then was not seen.
				LostCompletionAfter: Duration(30 * time.Second),
			},
			Containers: Containers{
				Enabled:           true,
				DockerHost:        "unix:///var/run/docker.sock",
				DiskUsageInterval: Duration(time.Minute),
				IdleRefresh:       Duration(10 * time.Second),
				RemovedRetention:  Duration(time.Minute),
			},
			Store: Store{
				Enabled:          true,
				Path:             DefaultStorePath,
				QueryTimeout:     Duration(30 * time.Second),
				QueryMaxSamples:  5_000_000,
				QueryConcurrency: 2,
			},
			Sessions: Sessions{
				Socket:             DefaultControlSocket,
				MaxSessions:        32,
				MaxSessionsPerUser: 8,
				AbandonedAfter:     Duration(30 * time.Second),
			},
		},
	}
}

// defaultExporter is what an [[exporters]] entry holds before its keys
// are applied.
func defaultExporter() Exporter {
	return Exporter{
		BatchSize:           DefaultBatchSize,
		FlushInterval:       Duration(DefaultFlushInterval),
		Timeout:             Duration(DefaultTimeout),
		MaxRetries:          DefaultMaxRetries,
		QueueSize:           DefaultQueueSize,
		QueueMaxBytes:       DefaultQueueMaxBytes,
		DeliveryGracePeriod: Duration(DefaultExporterGrace),
	}
}

// defaultChannel is what an [[alert_channels]] entry holds before its keys
// are applied.
func defaultChannel() AlertChannel { return AlertChannel{} }

// defaultRule is what an [[alert_rules]] entry holds before its keys are
// applied.
func defaultRule() AlertRule {
	return AlertRule{Condition: DefaultCondition, Severity: DefaultSeverity}
}
