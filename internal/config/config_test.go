// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/crmon-dev/crmon/pkg/session"
)

const testdata = "../../testdata/config"

var ignoreSource = cmpopts.IgnoreUnexported(Config{})

// noEnv is an environment with nothing in it, so tests never depend on
// the one they run in.
func noEnv(string) (string, bool) { return "", false }

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	got, err := Load("")
	if err != nil {
		t.Fatalf(`Load("") = %v`, err)
	}
	if diff := cmp.Diff(Default(), got, ignoreSource); diff != "" {
		t.Errorf(`Load("") is not Default() (-want +got):`+"\n%s", diff)
	}
	// An empty file is no file.
	got, err = Parse("empty.toml", nil, ParseOptions{LookupEnv: noEnv})
	if err != nil {
		t.Fatalf("Parse(empty) = %v", err)
	}
	if diff := cmp.Diff(Default(), got, ignoreSource); diff != "" {
		t.Errorf("an empty file is not Default() (-want +got):\n%s", diff)
	}
}

func TestDefaultValues(t *testing.T) {
	d := Default()
	// The documented defaults (README.md), one by one, so that a
	// change to one is a deliberate change to the docs too.
	for _, c := range []struct {
		key       string
		got, want any
	}{
		{"enable_monitoring", d.Monitoring.EnableMonitoring, true},
		{"collection_interval", d.Monitoring.CollectionInterval.Std(), 10 * time.Second},
		{"retention_period", d.Monitoring.RetentionPeriod.Std(), 7 * 24 * time.Hour},
		{"top_processes", d.Monitoring.TopProcesses, 10},
		{"thresholds.cpu_usage_percent", d.Monitoring.Thresholds.CPUUsagePercent, 80.0},
		{"thresholds.memory_usage_percent", d.Monitoring.Thresholds.MemoryUsagePercent, 85.0},
		{"thresholds.disk_usage_percent", d.Monitoring.Thresholds.DiskUsagePercent, 90.0},
		{"thresholds.network_bandwidth_percent", d.Monitoring.Thresholds.NetworkBandwidthPercent, 80.0},
		{"thresholds.container_count", d.Monitoring.Thresholds.ContainerCount, 50},
		{"thresholds.process_count", d.Monitoring.Thresholds.ProcessCount, 5000},
		{"alerting.enable_alerting", d.Monitoring.Alerting.EnableAlerting, true},
		{"alerting.cooldown_period", d.Monitoring.Alerting.CooldownPeriod.Std(), 5 * time.Minute},
		{"ebpf.mode", d.Monitoring.EBPF.Mode, "auto"},
		{"ebpf.sched", d.Monitoring.EBPF.Sched, true},
		{"ebpf.block", d.Monitoring.EBPF.Block, true},
		{"ebpf.net", d.Monitoring.EBPF.Net, true},
		{"ebpf.max_series", d.Monitoring.EBPF.MaxSeries, 2000},
		{"ebpf.map_max_entries", d.Monitoring.EBPF.MapMaxEntries, 10240},
		{"containers.enabled", d.Monitoring.Containers.Enabled, true},
		{"containers.docker_host", d.Monitoring.Containers.DockerHost, "unix:///var/run/docker.sock"},
		{"containers.disk_usage_interval", d.Monitoring.Containers.DiskUsageInterval.Std(), time.Minute},
		{"containers.idle_refresh", d.Monitoring.Containers.IdleRefresh.Std(), 10 * time.Second},
		{"containers.removed_retention", d.Monitoring.Containers.RemovedRetention.Std(), time.Minute},
		{"store.enabled", d.Monitoring.Store.Enabled, true},
		{"store.path", d.Monitoring.Store.Path, "/var/lib/crmon"},
		{"process_command_lines", d.Monitoring.ProcessCommandLines, false},
		{"sessions.socket", d.Monitoring.Sessions.Socket, "/run/crmon/crmon.sock"},
		{"sessions.socket_group", d.Monitoring.Sessions.SocketGroup, ""},
		{"sessions.max_sessions", d.Monitoring.Sessions.MaxSessions, 32},
		{"sessions.max_sessions_per_user", d.Monitoring.Sessions.MaxSessionsPerUser, 8},
		{"sessions.abandoned_after", d.Monitoring.Sessions.AbandonedAfter.Std(), 30 * time.Second},
		{"resource_limits.max_cpu_usage_percent", d.ResourceLimits.MaxCPUUsagePercent, 0.0},
	} {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("default %s (-want +got):\n%s", c.key, diff)
		}
	}
}

func TestLoadExamples(t *testing.T) {
	development := Default()
	development.Monitoring.CollectionInterval = Duration(30 * time.Second)
	development.Monitoring.Thresholds.ContainerCount = 10
	development.Monitoring.Thresholds.ProcessCount = 1000

	production := Default()
	production.Monitoring.RetentionPeriod = Duration(30 * 24 * time.Hour)
	production.Monitoring.Thresholds = Thresholds{
		CPUUsagePercent: 70, MemoryUsagePercent: 80, DiskUsagePercent: 85,
		NetworkBandwidthPercent: 70, ContainerCount: 50, ProcessCount: 5000,
	}
	production.Monitoring.Alerting.CooldownPeriod = Duration(2 * time.Minute)
	production.Monitoring.Exporters = []Exporter{{
		Name:                "prometheus",
		ExporterType:        ExporterPrometheus,
		Endpoint:            "http://prometheus:9090/api/v1/write",
		BatchSize:           100,
		FlushInterval:       Duration(30 * time.Second),
		Timeout:             Duration(10 * time.Second),
		MaxRetries:          DefaultMaxRetries,
		QueueSize:           DefaultQueueSize,
		QueueMaxBytes:       DefaultQueueMaxBytes,
		RemoteWriteVersion:  RemoteWriteAuto,
		DeliveryGracePeriod: Duration(DefaultExporterGrace),
	}}

	for _, c := range []struct {
		file string
		want *Config
	}{
		{"development.toml", development},
		{"production.toml", production},
		{"full.toml", fullConfig()},
	} {
		t.Run(c.file, func(t *testing.T) {
			got, err := Load(filepath.Join(testdata, c.file))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(c.want, got, ignoreSource); diff != "" {
				t.Errorf("Load(%s) (-want +got):\n%s", c.file, diff)
			}
		})
	}
}

// fullConfig is testdata/config/full.toml, with its secrets read.
func fullConfig() *Config {
	c := Default()
	m := &c.Monitoring
	m.CollectionInterval = Duration(time.Second)
	m.Alerting.AlertChannels = []AlertChannel{
		{
			Name: "oncall-mail", Type: ChannelEmail,
			SMTPHost: "smtp.example.com", SMTPPort: 587,
			From: "crmon@example.com", To: []string{"ci-oncall@example.com", "build-team@example.com"},
			Username: "crmon", Password: "hunter2", PasswordFile: "secrets/smtp-password",
		},
		{
			Name: "ci-slack", Type: ChannelSlack,
			WebhookURL: "https://hooks.slack.com/services/T000/B000/XXXXXXXX", Channel: "#ci-alerts",
		},
		{
			Name: "ci-webhook", Type: ChannelWebhook,
			URL:     "https://ci.example.com/hooks/crmon",
			Headers: map[string]Secret{"Authorization": "Bearer 0123456789abcdef"},
		},
		{Name: "alertmanager", Type: ChannelAlertmanager, URL: "http://alertmanager:9093"},
	}
	resolveAt80 := 80.0
	m.Alerting.AlertRules = []AlertRule{
		{
			Name: "host-cpu-saturated", Resource: ResourceCPU, Condition: ">", Threshold: 90, ResolveThreshold: &resolveAt80,
			For: Duration(2 * time.Minute), Severity: SeverityCritical,
			Channels: []string{"ci-slack", "alertmanager"}, Labels: map[string]string{"team": "ci"},
		},
		{
			Name: "container-memory-high", Resource: ResourceContainerMemory, Condition: ">=", Threshold: 2147483648,
			For: Duration(30 * time.Second), Severity: SeverityWarning,
			Channels: []string{}, Labels: map[string]string{},
		},
		{
			Name: "container-cpu-saturated", Expr: "rate(container_cpu_usage_seconds_total[1m]) > 0.9", Condition: DefaultCondition,
			For: Duration(5 * time.Minute), Severity: SeverityWarning,
		},
	}
	m.Exporters = []Exporter{
		{
			Name: "prometheus", ExporterType: ExporterPrometheus, Endpoint: "http://prometheus:9090/api/v1/write",
			BatchSize: 100, FlushInterval: Duration(30 * time.Second), Timeout: Duration(10 * time.Second),
			MaxRetries: 3, QueueSize: 10000, QueueMaxBytes: 64 << 20, RemoteWriteVersion: RemoteWrite1, DeliveryGracePeriod: Duration(5 * time.Second),
			Labels:      map[string]string{"cluster": "ci-eu"},
			Headers:     map[string]Secret{"X-Scope-OrgID": "ci"},
			Credentials: Credentials{Username: "crmon", Password: "remote-write-password"},
		},
		{
			Name: "influx", ExporterType: ExporterInfluxDB, Endpoint: "http://influxdb:8086",
			BatchSize: 500, FlushInterval: Duration(10 * time.Second), Timeout: Duration(5 * time.Second),
			MaxRetries: 5, QueueSize: 5000, QueueMaxBytes: DefaultQueueMaxBytes, QueuePath: "/var/lib/crmon-queues/influx", DeliveryGracePeriod: Duration(DefaultExporterGrace),
			Org: "ci", Bucket: "crmon", Precision: "ms",
			Credentials: Credentials{Token: "s3cr3t-influx-token", TokenFile: "secrets/influx-token"},
		},
		{
			Name: "elastic", ExporterType: ExporterElasticsearch, Endpoint: "https://elasticsearch:9200",
			BatchSize: DefaultBatchSize, FlushInterval: Duration(30 * time.Second), Timeout: Duration(10 * time.Second),
			MaxRetries: DefaultMaxRetries, QueueSize: DefaultQueueSize, QueueMaxBytes: DefaultQueueMaxBytes, Index: "crmon", DeliveryGracePeriod: Duration(DefaultExporterGrace),
			Credentials: Credentials{Username: "crmon", Password: "elastic-password"},
		},
		{
			Name: "custom", ExporterType: ExporterCustom, Endpoint: "https://metrics.example.com/ingest",
			BatchSize: 60, FlushInterval: Duration(time.Minute), Timeout: Duration(10 * time.Second),
			MaxRetries: DefaultMaxRetries, QueueSize: 360, QueueMaxBytes: DefaultQueueMaxBytes, Format: CustomNDJSON, DeliveryGracePeriod: Duration(DefaultExporterGrace),
		},
	}
	m.EBPF.Include = []string{"/docker/*", "/system.slice/*"}
	m.EBPF.Exclude = []string{"/system.slice/crmon.service"}
	m.Containers.ContainerLabels = []string{"com.docker.compose.project", "com.docker.compose.service"}
	m.Containers.EnableMetrics = []string{"pressure"}
	m.Containers.Include = []string{}
	m.Containers.Exclude = []string{"buildx_buildkit_*"}
	m.Store = Store{Enabled: true, Path: "/var/lib/crmon", MaxBytes: 1 << 30,
		QueryTimeout: Duration(time.Minute), QueryMaxSamples: 10_000_000, QueryConcurrency: 4}
	c.ResourceLimits = ResourceLimits{
		Limits: session.Limits{
			{Name: "max_cpu_usage_percent", Value: 90},
			{Name: "max_memory_usage_percent", Value: 90},
			{Name: "max_disk_usage_percent", Value: 95},
			{Name: "cpu_seconds", Value: 900},
			{Name: "peak_memory_bytes", Value: 8 << 30},
			{Name: "block_read_bytes", Value: 20 << 30},
			{Name: "block_write_bytes", Value: 10 << 30},
			{Name: "net_rx_bytes", Value: 5e9},
			{Name: "net_tx_bytes", Value: 1e9},
			{Name: "runqueue_wait_p99_seconds", Value: 0.05},
			{Name: "cpu_seconds", Container: "db-*", Value: 300},
			{Name: "peak_memory_bytes", Container: "db-*", Value: 2 << 30},
			{Name: "block_read_bytes", Container: "db-*", Value: 4 << 30},
			{Name: "block_write_bytes", Container: "db-*", Value: 4 << 30},
			{Name: "net_rx_bytes", Container: "db-*", Value: 1e9},
			{Name: "net_tx_bytes", Container: "db-*", Value: 1e9},
			{Name: "runqueue_wait_p99_seconds", Container: "db-*", Value: 0.02},
		},
		MaxCPUUsagePercent: 90, MaxMemoryUsagePercent: 90, MaxDiskUsagePercent: 95,
	}
	return c
}

// The ADR's own examples, pasted as they are, are not TOML; each mistake
// is reported at its line with the fix, all in one run.
func TestADRExamplesAsPasted(t *testing.T) {
	for _, c := range []struct {
		file string
		want []string
	}{
		{"adr-development-as-pasted.toml", []string{
			`:3: collection_interval = 30s: durations are strings; write collection_interval = "30s"`,
			`:4: retention_period = 7d: durations are strings; write retention_period = "7d"`,
			`:16: cooldown_period = 5m: durations are strings; write cooldown_period = "5m"`,
		}},
		{"adr-production-as-pasted.toml", []string{
			`:3: collection_interval = 10s: durations are strings; write collection_interval = "10s"`,
			`:4: retention_period = 30d: durations are strings; write retention_period = "30d"`,
			`:16: cooldown_period = 2m: durations are strings; write cooldown_period = "2m"`,
			`:18: [cleanroom.monitoring.exporters] declares a single table, but line 19 starts a list with [[cleanroom.monitoring.exporters]]; delete the single-bracket header [cleanroom.monitoring.exporters] on line 18`,
			`:24: flush_interval = 30s: durations are strings; write flush_interval = "30s"`,
		}},
		{"unquoted-interval.toml", []string{
			`:3: collection_interval = 10s: durations are strings; write collection_interval = "10s"`,
		}},
	} {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join(testdata, c.file)
			cfg, err := Load(path)
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want an error", c.file, cfg)
			}
			want := make([]string, len(c.want))
			for i, w := range c.want {
				want[i] = path + w
			}
			if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("Load(%s) error (-want +got):\n%s", c.file, diff)
			}
		})
	}
}

// badFiles are testdata/config/bad/*, with every line of the error each
// must give. TestBadFiles fails on a file missing from this table.
var badFiles = map[string][]string{
	"channel-email.toml": {
		`:1: alert channel "mail": smtp_host is required; e.g. smtp_host = "smtp.example.com"`,
		`:1: alert channel "mail": username is set but password is not; add password, password_file or password_env`,
		`:4: smtp_port = 70000: must be a port, 1-65535 (alert channel "mail"); 587 is the submission port`,
		`:5: from = "crmon at example dot com": not an email address (alert channel "mail")`,
		`:6: alert channel "mail": to is required; e.g. to = ["oncall@example.com"]`,
	},
	"channel-keys.toml": {
		`:5: smtp_host: smtp_host only applies to type = "email", and alert channel "slack" is type = "slack"; remove it`,
		`:6: url: url only applies to type = "webhook" or "alertmanager", and alert channel "slack" is type = "slack"; remove it`,
	},
	"channel-names.toml": {
		`:7: name = "am": another alert channel has this name; names must be unique`,
		`:11: alert channel #3 has no name; add name = "…" (alert rules name their channels)`,
	},
	"channel-type.toml": {
		`:3: type = "pagerduty": unknown channel type (alert channel "pager"); use one of "email", "slack", "webhook", "alertmanager"`,
		`:5: alert channel "untyped" has no type; add type = one of "email", "slack", "webhook", "alertmanager"`,
	},
	"channel-urls.toml": {
		`:4: alert channel "slack": webhook_url must be an http:// or https:// URL (the value is secret, so it is not shown); e.g. "https://hooks.slack.com/services/…"`,
		`:6: alert channel "hook": url is required (or url_file, url_env); e.g. url = "https://ci.example.com/hooks/crmon"`,
		`:13: alert channel "am": url must be an http:// or https:// URL (the value is secret, so it is not shown); e.g. "http://alertmanager:9093"`,
	},
	"containers.toml": {
		`:2: docker_host = "/var/run/docker.sock": must be unix://PATH or tcp://HOST:PORT; e.g. docker_host = "unix:///var/run/docker.sock" or "tcp://127.0.0.1:2375"`,
		`:3: container_labels: "team" is listed twice`,
		`:3: container_labels: an empty label name; list Docker label keys, e.g. ["com.docker.compose.project"]`,
		`:4: include: "[unclosed" is not a valid glob pattern (unbalanced [ or a trailing \)`,
	},
	"duplicates.toml": {
		`:3: top_processes = 10: top_processes is already set on line 2; TOML allows each key once, so delete one`,
		`:8: [cleanroom.monitoring.thresholds] appears twice (first on line 5); TOML allows each table once, so merge the two`,
	},
	"ebpf.toml": {
		`:2: mode = "sometimes": use one of "auto", "required", "disabled"`,
		`:3: include: "docker/*": cgroup patterns match paths in the cgroup2 hierarchy and start with /; e.g. "/docker/*"`,
		`:3: include: "/x/[" is not a valid glob pattern (unbalanced [ or a trailing \)`,
		`:4: max_series = 0: must be between 1 and 1048576`,
		`:5: map_max_entries = 0: must be between 1 and 1048576`,
		`:6: lost_completion_after = "500ms": must be from 1s to 1h`,
	},
	"exporter-batching.toml": {
		`:5: batch_size = 0: must be at least 1 (exporter "prometheus"); the default is 2000`,
		`:6: flush_interval = "0s": must be more than 0 (exporter "prometheus"); the default is "30s"`,
		`:7: timeout = "0s": must be more than 0 (exporter "prometheus"); the default is "10s"`,
		`:8: max_retries = -1: must be 0 (retry for as long as the queue keeps the batch) or more (exporter "prometheus")`,
		`:9: delivery_grace_period = "1m30s": must be 0 to 1m (exporter "prometheus"): the agent's stop waits this long for an exporter's queued samples (keep it below the stop timeout of systemd or Docker)`,
		`:16: queue_size = 100: must hold at least one batch, batch_size = 500 (exporter "small-queue"); the default is 400000`,
		`:17: queue_max_bytes = 4096: must be at least 1048576 (1 MiB) (exporter "small-queue"); the default is 268435456 (256 MiB)`,
		`:18: queue_path = "queues/small": must be an absolute path (exporter "small-queue"), a directory of its own for this exporter's queue`,
		`:25: unknown key queu_path in [cleanroom.monitoring.exporters]; did you mean queue_path?`,
		`:31: queue_path = "/var/lib/q/a/": another exporter's queue is there; each exporter needs a directory of its own (exporter "same-queue-2")`,
	},
	"exporter-headers.toml": {
		`:5: headers: the value of "X-Api-Key" has a control character (a line break?), which HTTP does not allow in a header`,
		`:5: headers: "X-Bad(Name)" is not a valid HTTP header name`,
		`:14: headers: the value of "Authorization" has a control character (a line break?), which HTTP does not allow in a header`,
	},
	"exporter-credentials.toml": {
		`:5: credentials: exporter "both" has both a token and a username/password; use one`,
		`:11: credentials: exporter "no-password" has a username but no password; add password, password_file or password_env`,
	},
	"alerting-grace.toml": {
		`:3: delivery_grace_period = "2m": must be 0 to 1m: the agent's stop waits this long for slow alert channels (keep it below the stop timeout of systemd or Docker)`,
	},
	"exporter-elasticsearch.toml": {
		`:5: index = "CRMON metrics": Elasticsearch index names are lower case, without spaces or any of \/*?"<>|,#:, and do not start with _ or - (exporter "elastic")`,
		`:6: database: database only applies to exporter_type = "InfluxDB", and exporter "elastic" is "Elasticsearch"; remove it`,
	},
	"exporter-endpoint.toml": {
		`:4: endpoint = "prometheus:9090/api/v1/write": must be an http:// or https:// URL (exporter "no-scheme"); e.g. endpoint = "http://prometheus:9090/api/v1/write"`,
		`:9: endpoint = "ftp://example.com/upload": must be an http:// or https:// URL (exporter "ftp"); e.g. endpoint = "https://metrics.example.com/ingest"`,
		`:11: exporter "none": endpoint is required; e.g. endpoint = "http://prometheus:9090/api/v1/write"`,
	},
	"exporter-influx.toml": {
		`:1: exporter "influx": InfluxDB needs database = "…" (1.x) or org and bucket (2.x)`,
		`:5: precision = "h": use one of "ns", "us", "ms", "s" (exporter "influx")`,
		`:6: index: index only applies to exporter_type = "Elasticsearch", and exporter "influx" is "InfluxDB"; remove it`,
		`:8: exporter "influx2": bucket is set, so InfluxDB 2.x needs org = "…" too`,
	},
	"exporter-names.toml": {
		`:1: exporter #1 has no name; add name = "…" (it labels the exporter's own metrics)`,
		`:11: name = "custom": another exporter has this name; names must be unique`,
	},
	"exporter-prometheus.toml": {
		`:5: remote_write_version = "3": use one of "auto", "1.0", "2.0" (exporter "rw")`,
		`:6: labels: "1st" is not a valid label name (exporter "rw"); use letters, digits and _, not starting with a digit`,
		`:13: remote_write_version: remote_write_version only applies to exporter_type = "Prometheus", and exporter "influx" is "InfluxDB"; remove it`,
		`:19: format = "xml": use one of "json", "ndjson" (exporter "custom")`,
	},
	"exporter-type.toml": {
		`:3: exporter_type = "Graphite": unknown exporter type (exporter "graphite"); use one of "Prometheus", "InfluxDB", "Elasticsearch", "Custom" (any case)`,
		`:6: exporter "untyped" has no exporter_type; add exporter_type = one of "Prometheus", "InfluxDB", "Elasticsearch", "Custom"`,
	},
	"exporters-single-bracket.toml": {
		`:1: [cleanroom.monitoring.exporters] is a list: write [[cleanroom.monitoring.exporters]] (double brackets), one such header per exporter`,
	},
	"interval-bare-number.toml": {
		`:2: collection_interval = 30: durations are strings with a unit; write collection_interval = "30s" (or "m", "h", "d")`,
	},
	"interval-not-duration.toml": {
		`:2: collection_interval = "30 seconds": not a duration; write a number with a unit (ms, s, m, h, d, w), largest first, e.g. "30s", "1h30m", "7d"`,
	},
	"interval-too-short.toml": {
		`:2: collection_interval = "50ms": must be at least 100ms; e.g. collection_interval = "10s"`,
	},
	"resource-limits.toml": {
		`:2: max_cpu_usage_percent = 150.0: must be a percentage, 0-100`,
		`:3: max_memory_usage_percent = -1.0: must be a percentage, 0-100`,
	},
	"retention-zero.toml": {
		`:2: retention_period = "0s": must be more than 0; e.g. retention_period = "7d"`,
		`:3: top_processes = -1: must be between 0 (no process lists) and 1000`,
	},
	"rule-channels.toml": {
		`:12: channels: alert rule "cpu" names channel "mial", which is not defined; the channels are "mail"; did you mean "mail"?`,
		`:12: channels: alert rule "cpu" names channel "pager", which is not defined; the channels are "mail"`,
	},
	"rule-fields.toml": {
		`:6: resource = "cpuu": unknown resource (alert rule "cpu"); did you mean "cpu"? use one of "cpu", "memory", "disk", "network", "containers", "processes", "container_cpu", "container_memory", "container_disk", "container_network"`,
		`:7: condition = "=>": unknown condition (alert rule "cpu"); use one of ">", ">=", "<", "<="`,
		`:9: severity = "fatal": unknown severity (alert rule "cpu"); use one of "info", "warning", "critical"`,
		`:12: name = "cpu": another alert rule has this name; names must be unique`,
		`:14: threshold = 150: memory is a percentage, so the threshold must be 0-100 (alert rule "cpu")`,
		`:15: labels: "bad-label" is not a valid label name (alert rule "cpu"); use letters, digits and _, not starting with a digit`,
		`:17: alert rule #3 has no name; add name = "…" (alerts are named after their rule)`,
		`:19: threshold = -1: must be 0 or more (alert rule #3)`,
	},
	"rule-expr.toml": {
		`:7: expr = "node_load1 > 4": an expr rule fires while its expression returns a series, so it takes no resource, condition, threshold or resolve_threshold (alert rule "both"); put the comparison in the expression, e.g. expr = "node_load1 > 4"`,
		`:12: expr = "rate(node_load1[1m]": 1:20: parse error: unclosed left parenthesis (alert rule "parse")`,
		`:16: expr = "node_load1[5m]": gives a range vector; an alert needs an instant vector or a scalar, e.g. rate(x[1m]) > 0.5 rather than x[1m] (alert rule "range")`,
	},
	"rule-expr-nostore.toml": {
		`:6: expr = "node_load1 > 4": expr rules are evaluated against the local store, which is off; set enabled = true in [cleanroom.monitoring.store] (alert rule "load")`,
	},
	"rule-timing.toml": {
		`:8: resolve_threshold = 95: with condition ">" it must be at most threshold = 90, or the alert could never resolve (alert rule "cpu")`,
		`:9: for = "5s": shorter than collection_interval = "10s", so it cannot be checked (alert rule "cpu"); use "0s" or at least "10s"`,
		`:16: resolve_threshold = 5: with condition "<" it must be at least threshold = 10, or the alert could never resolve (alert rule "free")`,
	},
	"secret-missing.toml": {
		`:7: token_file = "../secrets/no-such-token": cannot read the secret: no such file or directory`,
		`:13: headers_env.Authorization = "CRMON_TEST_UNSET_VARIABLE": the environment variable CRMON_TEST_UNSET_VARIABLE is not set or is empty`,
	},
	"secret-twice.toml": {
		`:8: password and password_file are both set; they are alternatives, keep one`,
	},
	"store.toml": {
		`:3: path = "": the store is enabled and needs a directory; e.g. path = "/var/lib/crmon"`,
		`:4: max_bytes = -1: must be 0 (no size limit) or more`,
		`:5: query_timeout = "0s": must be between 1s and 10m`,
		`:6: query_max_samples = 10: must be between 1000 and 100000000 (about 16 bytes each; 5000000 is 80 MB)`,
		`:7: query_concurrency = 0: must be between 1 and 64; each running query may take a core`,
		`:8: unknown key query_concurency in [cleanroom.monitoring.store]; did you mean query_concurrency?`,
	},
	"syntax.toml": {
		`:3: [cleanroom.monitoring.thresholds: expected ']' to close table name; this is not valid TOML`,
	},
	"thresholds.toml": {
		`:2: cpu_usage_percent = 120: must be a percentage, 0-100`,
		`:3: memory_usage_percent = -5: must be a percentage, 0-100`,
		`:5: network_bandwidth_percent = 100.5: must be a percentage, 0-100`,
		`:6: container_count = -1: must be 0 (off) or more`,
		`:7: process_count = -1: must be 0 (off) or more`,
	},
	"unknown-keys.toml": {
		`:2: unknown key colection_interval in [cleanroom.monitoring]; did you mean collection_interval?`,
		`:4: unknown key monitorin in [cleanroom]; did you mean monitoring?`,
		`:8: unknown key frobnicate in [cleanroom.monitoring.store]; the keys there are enabled, max_bytes, path, query_concurrency, query_max_samples, query_timeout`,
	},
	"wrong-types.toml": {
		`:2: enable_monitoring = "yes": enable_monitoring takes true or false`,
		`:3: top_processes = "10": top_processes takes a whole number; write top_processes = 10`,
		`:4: retention_period = 7: durations are strings with a unit; write retention_period = "7s" (or "m", "h", "d")`,
		`:7: cpu_usage_percent = "80": cpu_usage_percent takes a number; write cpu_usage_percent = 80`,
	},
}

func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testdata, "bad", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, path := range files {
		name := filepath.Base(path)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			lines, ok := badFiles[name]
			if !ok {
				t.Fatalf("%s has no entry in badFiles", name)
			}
			doc, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(name, doc, ParseOptions{Dir: filepath.Dir(path), LookupEnv: noEnv})
			if err == nil {
				t.Fatalf("Parse(%s) = %+v, want an error", name, cfg)
			}
			want := make([]string, len(lines))
			for i, l := range lines {
				want[i] = name + l
			}
			if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("Parse(%s) error (-want +got):\n%s", name, diff)
			}
			// Every problem is an *Error with the file and a line.
			for _, e := range Problems(err) {
				if e.File != name || e.Line == 0 || e.Key == "" && e.Line == 0 {
					t.Errorf("problem %+v does not name the file and line", e)
				}
			}
		})
	}
	for name := range badFiles {
		if !seen[name] {
			t.Errorf("badFiles has %s, which is not in %s/bad", name, testdata)
		}
	}
}

// Validate after the caller changed values (flags) names the table when
// there is no line to point at.
func TestValidateWithoutFile(t *testing.T) {
	c := Default()
	c.Monitoring.CollectionInterval = Duration(50 * time.Millisecond)
	c.Monitoring.EBPF.Mode = "sometimes"
	c.Monitoring.Exporters = []Exporter{defaultExporter()}
	c.Monitoring.Exporters[0].ExporterType = ExporterCustom
	c.Monitoring.Exporters[0].Name = "x"
	want := []string{
		`[cleanroom.monitoring] collection_interval = "50ms": must be at least 100ms; e.g. collection_interval = "10s"`,
		`[cleanroom.monitoring.exporters[0]] exporter "x": endpoint is required; e.g. endpoint = "https://metrics.example.com/ingest"`,
		`[cleanroom.monitoring.ebpf] mode = "sometimes": use one of "auto", "required", "disabled"`,
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("Validate() (-want +got):\n%s", diff)
	}
}

// The session API's keys are bounded, each problem named at its line.
func TestValidateSessions(t *testing.T) {
	doc := `[cleanroom.monitoring.sessions]
socket = "run/crmon.sock"
socket_group = "a b"
max_sessions = 2000
max_sessions_per_user = 0
abandoned_after = "10ms"
`
	want := []string{
		`t.toml:2: socket = "run/crmon.sock": want an absolute, clean path of at most 107 bytes, e.g. socket = "/run/crmon/crmon.sock", or "" for no session API`,
		`t.toml:3: socket_group = "a b": want a group name or number, e.g. socket_group = "crmon"`,
		`t.toml:4: max_sessions = 2000: must be between 1 and 1024`,
		`t.toml:5: max_sessions_per_user = 0: must be between 1 and max_sessions (2000)`,
		`t.toml:6: abandoned_after = "10ms": must be between 1s and 1d`,
	}
	_, err := Parse("t.toml", []byte(doc), ParseOptions{})
	if err == nil {
		t.Fatal("Parse() = nil, want errors")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("Parse() (-want +got):\n%s", diff)
	}
	ok := "[cleanroom.monitoring.sessions]\nsocket = \"\"\nsocket_group = \"996\"\nmax_sessions = 4\nmax_sessions_per_user = 4\nabandoned_after = \"1d\"\n"
	if _, err := Parse("t.toml", []byte(ok), ParseOptions{}); err != nil {
		t.Errorf("Parse(%q) = %v", ok, err)
	}
}

// A loaded config that a flag then breaks still points at the file.
func TestValidateAfterLoad(t *testing.T) {
	path := filepath.Join(testdata, "production.toml")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Monitoring.Exporters[0].BatchSize = 0
	want := path + `:25: batch_size = 0: must be at least 1 (exporter "prometheus"); the default is 2000`
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want %s", err, want)
	}
}

// Entries of lists get the defaults of the keys they leave out, not zero.
func TestEntryDefaults(t *testing.T) {
	doc := `
[[cleanroom.monitoring.exporters]]
name = "a"
exporter_type = "prometheus"
endpoint = "http://p:9090/api/v1/write"
max_retries = 0

[[cleanroom.monitoring.exporters]]
name = "b"
exporter_type = "INFLUXDB"
endpoint = "http://i:8086"
database = "crmon"

[[cleanroom.monitoring.exporters]]
name = "c"
exporter_type = "elasticsearch"
endpoint = "http://e:9200"

[[cleanroom.monitoring.alerting.alert_channels]]
name = "m"
type = "EMAIL"
smtp_host = "smtp"
from = "a@example.com"
to = ["b@example.com"]

[[cleanroom.monitoring.alerting.alert_rules]]
name = "r"
resource = "CPU"
threshold = 50.0
`
	c, err := Parse("entries.toml", []byte(doc), ParseOptions{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	base := defaultExporter()
	a, b, e := base, base, base
	a.Name, a.ExporterType, a.Endpoint, a.MaxRetries, a.RemoteWriteVersion = "a", ExporterPrometheus, "http://p:9090/api/v1/write", 0, RemoteWriteAuto
	b.Name, b.ExporterType, b.Endpoint, b.Database, b.Precision = "b", ExporterInfluxDB, "http://i:8086", "crmon", "ms"
	e.Name, e.ExporterType, e.Endpoint, e.Index = "c", ExporterElasticsearch, "http://e:9200", "crmon"
	if diff := cmp.Diff([]Exporter{a, b, e}, c.Monitoring.Exporters); diff != "" {
		t.Errorf("exporters (-want +got):\n%s", diff)
	}
	wantCh := []AlertChannel{{Name: "m", Type: ChannelEmail, SMTPHost: "smtp", SMTPPort: 587, From: "a@example.com", To: []string{"b@example.com"}}}
	if diff := cmp.Diff(wantCh, c.Monitoring.Alerting.AlertChannels); diff != "" {
		t.Errorf("channels (-want +got):\n%s", diff)
	}
	wantRule := []AlertRule{{Name: "r", Resource: ResourceCPU, Condition: ">", Threshold: 50, Severity: SeverityWarning}}
	if diff := cmp.Diff(wantRule, c.Monitoring.Alerting.AlertRules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
}

// Lists of tables may also be written inline; lines still resolve.
func TestInlineArrayOfTables(t *testing.T) {
	doc := `[cleanroom.monitoring]
exporters = [
  { name = "a", exporter_type = "Custom", endpoint = "http://a/" },
  { name = "b", exporter_type = "Custom", endpoint = "http://b/", batch_size = 0 },
]
`
	_, err := Parse("inline.toml", []byte(doc), ParseOptions{LookupEnv: noEnv})
	want := `inline.toml:4: batch_size = 0: must be at least 1 (exporter "b"); the default is 2000`
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want %s", err, want)
	}
}

func TestCloneIsDeep(t *testing.T) {
	c := fullConfig()
	n := c.Clone()
	n.Monitoring.Exporters[0].Headers["X-Scope-OrgID"] = "other"
	n.Monitoring.Alerting.AlertChannels[0].To[0] = "other@example.com"
	n.Monitoring.Alerting.AlertRules[0].Labels["team"] = "other"
	n.Monitoring.EBPF.Include[0] = "/other"
	if diff := cmp.Diff(fullConfig(), c, ignoreSource); diff != "" {
		t.Errorf("changing a clone changed the original (-want +got):\n%s", diff)
	}
}

func BenchmarkLoadFull(b *testing.B) {
	path := filepath.Join(testdata, "full.toml")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}

// A wrong or hostile file is refused quickly, and the error stays
// readable.
func TestLimits(t *testing.T) {
	var many strings.Builder
	many.WriteString("[cleanroom.monitoring]\n")
	for i := range 300 {
		fmt.Fprintf(&many, "unknown_%d = 1\n", i)
	}
	var huge strings.Builder
	huge.WriteString("[cleanroom.monitoring]\n")
	for i := range maxKeys + 1 {
		fmt.Fprintf(&huge, "k%d = 1\n", i)
	}
	for _, c := range []struct {
		name, doc string
		want      []string // first and last line
	}{
		{"many problems", many.String(), []string{
			"t.toml:2: unknown key unknown_0 in [cleanroom.monitoring]; the keys there are alerting, collection_interval, containers, ebpf, enable_monitoring, exporters, process_command_lines, retention_period, sessions, store, thresholds, top_processes",
			"t.toml: … and 100 more problems",
		}},
		{"too many keys", huge.String(), []string{
			"t.toml: the file has more than 4096 keys, tables and list items, more than crmon reads; a full configuration has about 150, so is this the right file?",
		}},
		{"too big", "# " + strings.Repeat("x", maxDocBytes), []string{
			"t.toml: the file is 1048578 bytes, more than crmon reads (1048576); a full configuration is a few KiB, so is this the right file?",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(c.doc), ParseOptions{LookupEnv: noEnv})
			if err == nil {
				t.Fatal("Parse = nil error")
			}
			lines := strings.Split(err.Error(), "\n")
			got := []string{lines[0]}
			if len(lines) > 1 {
				got = append(got, lines[len(lines)-1])
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
