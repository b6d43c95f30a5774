// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"golang.org/x/net/http/httpguts"

	"github.com/crmon-dev/crmon/internal/suggest"
)

// MinCollectionInterval is the shortest collection_interval: below it the
// agent's own reads would be a visible share of a core.
const MinCollectionInterval = 100 * time.Millisecond

// Limits that keep a typo from costing memory.
const (
	maxTopProcesses  = 1000
	maxMapMaxEntries = 1 << 20
	maxSeries        = 1 << 20
)

// Validate checks the configuration as a whole and returns every problem
// at once (errors.Join of *Error), or nil. Values that came from the file
// are reported at their line.
func (c *Config) Validate() error {
	p := &problems{src: c.src}
	c.validate(p)
	return p.err()
}

func (c *Config) validate(p *problems) {
	m := &c.Monitoring
	mp := monitoringPath

	if d := m.CollectionInterval.Std(); d < MinCollectionInterval {
		p.add(mp+".collection_interval", "collection_interval = %q: must be at least %s; e.g. collection_interval = \"10s\"", m.CollectionInterval, Duration(MinCollectionInterval))
	}
	if m.RetentionPeriod <= 0 {
		p.add(mp+".retention_period", "retention_period = %q: must be more than 0; e.g. retention_period = \"7d\"", m.RetentionPeriod)
	}
	if m.TopProcesses < 0 || m.TopProcesses > maxTopProcesses {
		p.add(mp+".top_processes", "top_processes = %d: must be between 0 (no process lists) and %d", m.TopProcesses, maxTopProcesses)
	}

	t := &m.Thresholds
	tp := mp + ".thresholds."
	percent(p, tp+"cpu_usage_percent", t.CPUUsagePercent, "")
	percent(p, tp+"memory_usage_percent", t.MemoryUsagePercent, "")
	percent(p, tp+"disk_usage_percent", t.DiskUsagePercent, "")
	percent(p, tp+"network_bandwidth_percent", t.NetworkBandwidthPercent, "")
	nonNegative(p, tp+"container_count", t.ContainerCount, "")
	nonNegative(p, tp+"process_count", t.ProcessCount, "")

	c.validateAlerting(p)
	c.validateExporters(p)
	c.validateEBPF(p)
	c.validateContainers(p)

	s := &m.Store
	if s.Enabled && s.Path == "" {
		p.add(mp+".store.path", "path = \"\": the store is enabled and needs a directory; e.g. path = \"/var/lib/crmon\"")
	}
	if s.MaxBytes < 0 {
		p.add(mp+".store.max_bytes", "max_bytes = %d: must be 0 (no size limit) or more", s.MaxBytes)
	}
	if d := s.QueryTimeout.Std(); d < time.Second || d > maxQueryTimeout {
		p.add(mp+".store.query_timeout", "query_timeout = %q: must be between 1s and %s", s.QueryTimeout, Duration(maxQueryTimeout))
	}
	if s.QueryMaxSamples < minQuerySamples || s.QueryMaxSamples > maxQuerySamples {
		p.add(mp+".store.query_max_samples", "query_max_samples = %d: must be between %d and %d (about 16 bytes each; 5000000 is 80 MB)", s.QueryMaxSamples, minQuerySamples, maxQuerySamples)
	}
	if s.QueryConcurrency < 1 || s.QueryConcurrency > maxQueryConcurrency {
		p.add(mp+".store.query_concurrency", "query_concurrency = %d: must be between 1 and %d; each running query may take a core", s.QueryConcurrency, maxQueryConcurrency)
	}

	c.validateSessions(p)
	c.ResourceLimits.validateLimits(p)
}

// Bounds of the store's query limits: a query may hold up to
// query_max_samples × 16 bytes, and query_concurrency of them run at once.
const (
	maxQueryTimeout     = 10 * time.Minute
	minQuerySamples     = 1000
	maxQuerySamples     = 100_000_000
	maxQueryConcurrency = 64
)

// Bounds of [cleanroom.monitoring.sessions].
const (
	maxSessions       = 1024
	minAbandonedAfter = time.Second
	maxAbandonedAfter = 24 * time.Hour
	// maxSocketPath is sun_path's size less its terminating NUL.
	maxSocketPath = 107
)

func (c *Config) validateSessions(p *problems) {
	s := &c.Monitoring.Sessions
	sp := monitoringPath + ".sessions."
	if s.Socket != "" && (!path.IsAbs(s.Socket) || path.Clean(s.Socket) != s.Socket || len(s.Socket) > maxSocketPath) {
		p.add(sp+"socket", "socket = %q: want an absolute, clean path of at most %d bytes, e.g. socket = %q, or \"\" for no session API", s.Socket, maxSocketPath, DefaultControlSocket)
	}
	if g := s.SocketGroup; g != "" && (strings.ContainsAny(g, ":\n\x00 ") || len(g) > 256) {
		p.add(sp+"socket_group", "socket_group = %q: want a group name or number, e.g. socket_group = \"crmon\"", g)
	}
	if s.MaxSessions < 1 || s.MaxSessions > maxSessions {
		p.add(sp+"max_sessions", "max_sessions = %d: must be between 1 and %d", s.MaxSessions, maxSessions)
	}
	if s.MaxSessionsPerUser < 1 || s.MaxSessionsPerUser > s.MaxSessions {
		p.add(sp+"max_sessions_per_user", "max_sessions_per_user = %d: must be between 1 and max_sessions (%d)", s.MaxSessionsPerUser, s.MaxSessions)
	}
	if d := s.AbandonedAfter.Std(); d < minAbandonedAfter || d > maxAbandonedAfter {
		p.add(sp+"abandoned_after", "abandoned_after = %q: must be between %s and %s", s.AbandonedAfter, Duration(minAbandonedAfter), Duration(maxAbandonedAfter))
	}
}

// channelKeys are the keys that only some channel types take.
var channelKeys = map[string][]string{
	"smtp_host": {ChannelEmail}, "smtp_port": {ChannelEmail}, "from": {ChannelEmail}, "to": {ChannelEmail},
	"username": {ChannelEmail}, "password": {ChannelEmail}, "password_file": {ChannelEmail}, "password_env": {ChannelEmail},
	"webhook_url": {ChannelSlack}, "webhook_url_file": {ChannelSlack}, "webhook_url_env": {ChannelSlack}, "channel": {ChannelSlack},
	"url": {ChannelWebhook, ChannelAlertmanager}, "url_file": {ChannelWebhook, ChannelAlertmanager}, "url_env": {ChannelWebhook, ChannelAlertmanager},
	"headers": {ChannelWebhook, ChannelAlertmanager}, "headers_file": {ChannelWebhook, ChannelAlertmanager}, "headers_env": {ChannelWebhook, ChannelAlertmanager},
}

func (c *Config) validateAlerting(p *problems) {
	a := &c.Monitoring.Alerting
	ap := monitoringPath + ".alerting."
	if a.CooldownPeriod < 0 {
		p.add(ap+"cooldown_period", "cooldown_period = %q: must be 0 or more", a.CooldownPeriod)
	}
	if g := a.DeliveryGracePeriod; g < 0 || g.Std() > MaxDeliveryGracePeriod {
		p.add(ap+"delivery_grace_period", "delivery_grace_period = %q: must be 0 to %s: the agent's stop waits this long for slow alert channels (keep it below the stop timeout of systemd or Docker)", g, Duration(MaxDeliveryGracePeriod))
	}

	names := make([]string, 0, len(a.AlertChannels))
	for i := range a.AlertChannels {
		ch := &a.AlertChannels[i]
		cp := fmt.Sprintf("%salert_channels[%d]", ap, i)
		what := entryName("alert channel", ch.Name, i)
		if ch.Name == "" {
			p.add(cp+".name", "%s has no name; add name = \"…\" (alert rules name their channels)", what)
		} else if slices.Contains(names, ch.Name) {
			p.add(cp+".name", "name = %q: another alert channel has this name; names must be unique", ch.Name)
		}
		names = append(names, ch.Name)

		if !slices.Contains(ChannelTypes, ch.Type) {
			if ch.Type == "" {
				p.add(cp+".type", "%s has no type; add type = one of %s", what, quoteList(ChannelTypes))
			} else {
				p.add(cp+".type", "type = %q: unknown channel type (%s); use one of %s", ch.Type, what, quoteList(ChannelTypes))
			}
			continue
		}
		if c.src != nil {
			for _, k := range sortedKeys(channelKeys) {
				if types := channelKeys[k]; c.src.has(cp+"."+k) && !slices.Contains(types, ch.Type) {
					p.addAt(cp+"."+k, "%s: %s only applies to type = %s, and %s is type = %q; remove it", k, k, strings.ReplaceAll(quoteList(types), ", ", " or "), what, ch.Type)
				}
			}
		}
		switch ch.Type {
		case ChannelEmail:
			if ch.SMTPHost == "" {
				p.add(cp+".smtp_host", "%s: smtp_host is required; e.g. smtp_host = \"smtp.example.com\"", what)
			}
			if ch.SMTPPort < 1 || ch.SMTPPort > 65535 {
				p.add(cp+".smtp_port", "smtp_port = %d: must be a port, 1-65535 (%s); 587 is the submission port", ch.SMTPPort, what)
			}
			if ch.From == "" {
				p.add(cp+".from", "%s: from is required; e.g. from = \"crmon@example.com\"", what)
			} else if _, err := mail.ParseAddress(ch.From); err != nil {
				p.add(cp+".from", "from = %q: not an email address (%s)", ch.From, what)
			}
			if len(ch.To) == 0 {
				p.add(cp+".to", "%s: to is required; e.g. to = [\"oncall@example.com\"]", what)
			}
			for _, to := range ch.To {
				if _, err := mail.ParseAddress(to); err != nil {
					p.add(cp+".to", "to: %q is not an email address (%s)", to, what)
				}
			}
			if ch.Username != "" && ch.Password == "" {
				p.add(cp+".password", "%s: username is set but password is not; add password, password_file or password_env", what)
			}
		case ChannelSlack:
			secretURL(p, cp+".webhook_url", ch.WebhookURL, what, "https://hooks.slack.com/services/…")
		case ChannelWebhook:
			secretURL(p, cp+".url", ch.URL, what, "https://ci.example.com/hooks/crmon")
			headerNames(p, cp+".headers", ch.Headers)
		case ChannelAlertmanager:
			secretURL(p, cp+".url", ch.URL, what, "http://alertmanager:9093")
			headerNames(p, cp+".headers", ch.Headers)
		}
	}

	rules := make([]string, 0, len(a.AlertRules))
	for i := range a.AlertRules {
		r := &a.AlertRules[i]
		rp := fmt.Sprintf("%salert_rules[%d]", ap, i)
		what := entryName("alert rule", r.Name, i)
		if r.Name == "" {
			p.add(rp+".name", "%s has no name; add name = \"…\" (alerts are named after their rule)", what)
		} else if slices.Contains(rules, r.Name) {
			p.add(rp+".name", "name = %q: another alert rule has this name; names must be unique", r.Name)
		}
		rules = append(rules, r.Name)
		if r.Expr != "" {
			validateExpr(p, rp, what, r, c.Monitoring.Store.Enabled)
		} else if !slices.Contains(RuleResources, r.Resource) && !p.bad[rp+".expr"] {
			hint := ""
			if s, ok := suggest.Nearest(r.Resource, RuleResources); ok && r.Resource != "" {
				hint = fmt.Sprintf("did you mean %q? ", s)
			}
			p.add(rp+".resource", "resource = %q: unknown resource (%s); %suse one of %s", r.Resource, what, hint, quoteList(RuleResources))
		}
		if r.Expr == "" && !slices.Contains(RuleConditions, r.Condition) {
			p.add(rp+".condition", "condition = %q: unknown condition (%s); use one of %s", r.Condition, what, quoteList(RuleConditions))
		}
		if !slices.Contains(Severities, r.Severity) {
			p.add(rp+".severity", "severity = %q: unknown severity (%s); use one of %s", r.Severity, what, quoteList(Severities))
		}
		switch {
		case r.Expr != "":
		case math.IsNaN(r.Threshold) || math.IsInf(r.Threshold, 0):
			p.add(rp+".threshold", "threshold = %v: must be a finite number (%s)", r.Threshold, what)
		case isPercentResource(r.Resource) && (r.Threshold < 0 || r.Threshold > 100):
			p.add(rp+".threshold", "threshold = %v: %s is a percentage, so the threshold must be 0-100 (%s)", r.Threshold, r.Resource, what)
		case r.Threshold < 0:
			p.add(rp+".threshold", "threshold = %v: must be 0 or more (%s)", r.Threshold, what)
		}
		if r.For < 0 {
			p.add(rp+".for", "for = %q: must be 0 or more (%s)", r.For, what)
		} else if r.For > 0 && r.For < c.Monitoring.CollectionInterval {
			p.add(rp+".for", "for = %q: shorter than collection_interval = %q, so it cannot be checked (%s); use \"0s\" or at least %q", r.For, c.Monitoring.CollectionInterval, what, c.Monitoring.CollectionInterval)
		}
		if rt := r.ResolveThreshold; rt != nil && r.Expr == "" {
			switch {
			case math.IsNaN(*rt) || math.IsInf(*rt, 0):
				p.add(rp+".resolve_threshold", "resolve_threshold = %v: must be a finite number (%s)", *rt, what)
			case (r.Condition == ">" || r.Condition == ">=") && *rt > r.Threshold:
				p.add(rp+".resolve_threshold", "resolve_threshold = %v: with condition %q it must be at most threshold = %v, or the alert could never resolve (%s)", *rt, r.Condition, r.Threshold, what)
			case (r.Condition == "<" || r.Condition == "<=") && *rt < r.Threshold:
				p.add(rp+".resolve_threshold", "resolve_threshold = %v: with condition %q it must be at least threshold = %v, or the alert could never resolve (%s)", *rt, r.Condition, r.Threshold, what)
			}
		}
		for _, n := range r.Channels {
			if slices.Contains(names, n) {
				continue
			}
			hint := ""
			if s, ok := suggest.Nearest(n, names); ok {
				hint = fmt.Sprintf("; did you mean %q?", s)
			}
			if len(names) == 0 {
				p.add(rp+".channels", "channels: %s names channel %q, but no [[cleanroom.monitoring.alerting.alert_channels]] is defined", what, n)
			} else {
				p.add(rp+".channels", "channels: %s names channel %q, which is not defined; the channels are %s%s", what, n, quoteList(names), hint)
			}
		}
		for k := range r.Labels {
			if !isLabelName(k) {
				p.add(rp+".labels", "labels: %q is not a valid label name (%s); use letters, digits and _, not starting with a digit", k, what)
			}
		}
	}
}

// exporterKeys are the keys that only some exporter types take.
var exporterKeys = map[string]string{
	"database":  ExporterInfluxDB,
	"org":       ExporterInfluxDB,
	"bucket":    ExporterInfluxDB,
	"precision": ExporterInfluxDB,
	"index":     ExporterElasticsearch,

	"remote_write_version": ExporterPrometheus,
	"format":               ExporterCustom,
}

// InfluxPrecisions are the timestamp precisions of the line protocol.
var InfluxPrecisions = []string{"ns", "us", "ms", "s"}

func (c *Config) validateExporters(p *problems) {
	names := make([]string, 0, len(c.Monitoring.Exporters))
	var queuePaths []string
	for i := range c.Monitoring.Exporters {
		e := &c.Monitoring.Exporters[i]
		ep := fmt.Sprintf("%s.exporters[%d]", monitoringPath, i)
		what := entryName("exporter", e.Name, i)
		if e.Name == "" {
			p.add(ep+".name", "%s has no name; add name = \"…\" (it labels the exporter's own metrics)", what)
		} else if slices.Contains(names, e.Name) {
			p.add(ep+".name", "name = %q: another exporter has this name; names must be unique", e.Name)
		}
		names = append(names, e.Name)

		if !slices.Contains(ExporterTypes, e.ExporterType) {
			if e.ExporterType == "" {
				p.add(ep+".exporter_type", "%s has no exporter_type; add exporter_type = one of %s", what, quoteList(ExporterTypes))
			} else {
				p.add(ep+".exporter_type", "exporter_type = %q: unknown exporter type (%s); use one of %s (any case)", e.ExporterType, what, quoteList(ExporterTypes))
			}
		} else if c.src != nil {
			for _, k := range sortedKeys(exporterKeys) {
				if t := exporterKeys[k]; c.src.has(ep+"."+k) && t != e.ExporterType {
					p.addAt(ep+"."+k, "%s: %s only applies to exporter_type = %q, and %s is %q; remove it", k, k, t, what, e.ExporterType)
				}
			}
		}
		if e.Endpoint == "" {
			p.add(ep+".endpoint", "%s: endpoint is required; e.g. endpoint = %q", what, exampleEndpoint(e.ExporterType))
		} else if err := checkHTTPURL(e.Endpoint); err != "" {
			p.add(ep+".endpoint", "endpoint = %q: %s (%s); e.g. endpoint = %q", redactURL(e.Endpoint), err, what, exampleEndpoint(e.ExporterType))
		}
		if e.BatchSize < 1 {
			p.add(ep+".batch_size", "batch_size = %d: must be at least 1 (%s); the default is %d", e.BatchSize, what, DefaultBatchSize)
		}
		if e.QueueSize < e.BatchSize {
			p.add(ep+".queue_size", "queue_size = %d: must hold at least one batch, batch_size = %d (%s); the default is %d", e.QueueSize, e.BatchSize, what, DefaultQueueSize)
		}
		if e.QueueMaxBytes < MinQueueMaxBytes {
			p.add(ep+".queue_max_bytes", "queue_max_bytes = %d: must be at least %d (1 MiB) (%s); the default is %d (256 MiB)", e.QueueMaxBytes, MinQueueMaxBytes, what, DefaultQueueMaxBytes)
		}
		if e.QueuePath != "" {
			switch {
			case !filepath.IsAbs(e.QueuePath):
				p.add(ep+".queue_path", "queue_path = %q: must be an absolute path (%s), a directory of its own for this exporter's queue", e.QueuePath, what)
			case slices.Contains(queuePaths, filepath.Clean(e.QueuePath)):
				p.add(ep+".queue_path", "queue_path = %q: another exporter's queue is there; each exporter needs a directory of its own (%s)", e.QueuePath, what)
			}
			queuePaths = append(queuePaths, filepath.Clean(e.QueuePath))
		}
		if e.FlushInterval <= 0 {
			p.add(ep+".flush_interval", "flush_interval = %q: must be more than 0 (%s); the default is \"%s\"", e.FlushInterval, what, Duration(DefaultFlushInterval))
		}
		if e.Timeout <= 0 {
			p.add(ep+".timeout", "timeout = %q: must be more than 0 (%s); the default is \"%s\"", e.Timeout, what, Duration(DefaultTimeout))
		}
		if g := e.DeliveryGracePeriod; g < 0 || g.Std() > MaxDeliveryGracePeriod {
			p.add(ep+".delivery_grace_period", "delivery_grace_period = %q: must be 0 to %s (%s): the agent's stop waits this long for an exporter's queued samples (keep it below the stop timeout of systemd or Docker)", g, Duration(MaxDeliveryGracePeriod), what)
		}
		if e.MaxRetries < 0 {
			p.add(ep+".max_retries", "max_retries = %d: must be 0 (retry for as long as the queue keeps the batch) or more (%s)", e.MaxRetries, what)
		}
		for _, k := range sortedKeys(e.Labels) {
			if !isLabelName(k) {
				p.add(ep+".labels", "labels: %q is not a valid label name (%s); use letters, digits and _, not starting with a digit", k, what)
			}
		}
		cr := &e.Credentials
		cp := ep + ".credentials"
		switch {
		case cr.Token != "" && (cr.Username != "" || cr.Password != ""):
			p.add(cp+".token", "credentials: %s has both a token and a username/password; use one", what)
		case cr.Username != "" && cr.Password == "":
			p.add(cp+".password", "credentials: %s has a username but no password; add password, password_file or password_env", what)
		case cr.Password != "" && cr.Username == "":
			p.add(cp+".username", "credentials: %s has a password but no username; add username = \"…\"", what)
		}
		headerNames(p, ep+".headers", e.Headers)

		switch e.ExporterType {
		case ExporterInfluxDB:
			if !slices.Contains(InfluxPrecisions, e.Precision) {
				p.add(ep+".precision", "precision = %q: use one of %s (%s)", e.Precision, quoteList(InfluxPrecisions), what)
			}
			switch {
			case e.Database == "" && e.Bucket == "":
				p.add(ep, "%s: InfluxDB needs database = \"…\" (1.x) or org and bucket (2.x)", what)
			case e.Database != "" && e.Bucket != "":
				p.add(ep+".bucket", "%s: set database (InfluxDB 1.x) or bucket (2.x), not both", what)
			case e.Bucket != "" && e.Org == "":
				p.add(ep+".org", "%s: bucket is set, so InfluxDB 2.x needs org = \"…\" too", what)
			}
		case ExporterPrometheus:
			if e.RemoteWriteVersion != "" && !slices.Contains(RemoteWriteVersions, e.RemoteWriteVersion) {
				p.add(ep+".remote_write_version", "remote_write_version = %q: use one of %s (%s)", e.RemoteWriteVersion, quoteList(RemoteWriteVersions), what)
			}
		case ExporterCustom:
			if e.Format != "" && !slices.Contains(CustomFormats, e.Format) {
				p.add(ep+".format", "format = %q: use one of %s (%s)", e.Format, quoteList(CustomFormats), what)
			}
		case ExporterElasticsearch:
			if e.Index == "" || e.Index != strings.ToLower(e.Index) || strings.ContainsAny(e.Index, ` "*\<|,>/?#:`) || strings.HasPrefix(e.Index, "_") || strings.HasPrefix(e.Index, "-") {
				p.add(ep+".index", "index = %q: Elasticsearch index names are lower case, without spaces or any of \\/*?\"<>|,#:, and do not start with _ or - (%s)", e.Index, what)
			}
		}
	}
}

func (c *Config) validateEBPF(p *problems) {
	b := &c.Monitoring.EBPF
	bp := monitoringPath + ".ebpf."
	if !slices.Contains(EBPFModes, b.Mode) {
		p.add(bp+"mode", "mode = %q: use one of %s", b.Mode, quoteList(EBPFModes))
	}
	globs(p, bp+"include", b.Include, true)
	globs(p, bp+"exclude", b.Exclude, true)
	if b.MaxSeries < 1 || b.MaxSeries > maxSeries {
		p.add(bp+"max_series", "max_series = %d: must be between 1 and %d", b.MaxSeries, maxSeries)
	}
	if b.MapMaxEntries < 1 || b.MapMaxEntries > maxMapMaxEntries {
		p.add(bp+"map_max_entries", "map_max_entries = %d: must be between 1 and %d", b.MapMaxEntries, maxMapMaxEntries)
	}
	if d := b.LostCompletionAfter.Std(); d < time.Second || d > time.Hour {
		p.add(bp+"lost_completion_after", "lost_completion_after = %q: must be from 1s to 1h", b.LostCompletionAfter)
	}
}

func (c *Config) validateContainers(p *problems) {
	ct := &c.Monitoring.Containers
	cp := monitoringPath + ".containers."
	if ct.Enabled {
		if err := checkDockerHost(ct.DockerHost); err != "" {
			p.add(cp+"docker_host", "docker_host = %q: %s; e.g. docker_host = \"unix:///var/run/docker.sock\" or \"tcp://127.0.0.1:2375\"", ct.DockerHost, err)
		}
	}
	seen := map[string]bool{}
	for _, l := range ct.ContainerLabels {
		switch {
		case strings.TrimSpace(l) == "":
			p.add(cp+"container_labels", "container_labels: an empty label name; list Docker label keys, e.g. [\"com.docker.compose.project\"]")
		case seen[l]:
			p.add(cp+"container_labels", "container_labels: %q is listed twice", l)
		}
		seen[l] = true
	}
	for _, g := range ct.EnableMetrics {
		if !slices.Contains(ContainerMetricGroups, g) {
			p.add(cp+"enable_metrics", "enable_metrics: unknown group %q; use any of %s", g, quoteList(ContainerMetricGroups))
		}
	}
	if ct.DiskUsageInterval < 0 {
		p.add(cp+"disk_usage_interval", "disk_usage_interval = %q: must be 0 (never) or more", ct.DiskUsageInterval)
	}
	if ct.IdleRefresh < 0 {
		p.add(cp+"idle_refresh", "idle_refresh = %q: must be 0 (read every tick) or more", ct.IdleRefresh)
	}
	if ct.RemovedRetention < 0 {
		p.add(cp+"removed_retention", "removed_retention = %q: must be 0 (until the next tick) or more; e.g. removed_retention = \"1m\"", ct.RemovedRetention)
	}
	globs(p, cp+"include", ct.Include, false)
	globs(p, cp+"exclude", ct.Exclude, false)
}

// percent checks a 0-100 percentage.
func percent(p *problems, key string, v float64, what string) {
	if v >= 0 && v <= 100 {
		return
	}
	p.add(key, "%s = %v: must be a percentage, 0-100%s", lastKey(key), v, suffix(what))
}

func nonNegative(p *problems, key string, v int, what string) {
	if v < 0 {
		p.add(key, "%s = %d: must be 0 (off) or more%s", lastKey(key), v, suffix(what))
	}
}

func suffix(what string) string {
	if what == "" {
		return ""
	}
	return " (" + what + ")"
}

// secretURL checks a URL that is a secret: the message never shows it.
func secretURL(p *problems, key string, u Secret, what, example string) {
	k := lastKey(key)
	if u == "" {
		p.add(key, "%s: %s is required (or %s_file, %s_env); e.g. %s = %q", what, k, k, k, k, example)
		return
	}
	if err := checkHTTPURL(u.Reveal()); err != "" {
		p.add(key, "%s: %s %s (the value is secret, so it is not shown); e.g. %q", what, k, err, example)
	}
}

// checkHTTPURL returns why s is not an absolute http(s) URL, or "".
func checkHTTPURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "is not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an http:// or https:// URL"
	case u.Host == "":
		return "has no host"
	}
	return ""
}

func checkDockerHost(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "is not a URL"
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" {
			return "a unix:// address needs the socket's path"
		}
	case "tcp", "http", "https":
		if u.Host == "" {
			return "has no host"
		}
	default:
		return "must be unix://PATH or tcp://HOST:PORT"
	}
	return ""
}

// globs checks path.Match patterns; cgroup patterns are absolute paths.
func globs(p *problems, key string, pats []string, cgroup bool) {
	k := lastKey(key)
	for _, pat := range pats {
		if _, err := path.Match(pat, ""); err != nil {
			p.add(key, "%s: %q is not a valid glob pattern (unbalanced [ or a trailing \\)", k, pat)
			continue
		}
		if cgroup && !strings.HasPrefix(pat, "/") && !strings.HasPrefix(pat, "*") {
			p.add(key, "%s: %q: cgroup patterns match paths in the cgroup2 hierarchy and start with /; e.g. \"/docker/*\"", k, pat)
		}
	}
}

// headerNames checks headers' names and values as net/http will, which
// refuses to send a request with a control character in a value: without
// this, a value with a line break (a pasted token, a file's last line)
// would fail every request, retried without end. The value is a secret:
// the problem names its header only.
func headerNames(p *problems, key string, h map[string]Secret) {
	for _, n := range sortedKeys(h) {
		if !httpguts.ValidHeaderFieldName(n) {
			p.add(key, "headers: %q is not a valid HTTP header name", n)
		}
		if !httpguts.ValidHeaderFieldValue(h[n].Reveal()) {
			p.add(key, "headers: the value of %q has a control character (a line break?), which HTTP does not allow in a header", n)
		}
	}
}

func isPercentResource(r string) bool {
	switch r {
	case ResourceCPU, ResourceMemory, ResourceDisk, ResourceNetwork:
		return true
	}
	return false
}

// isLabelName is Prometheus's classic label name syntax, which every
// Alertmanager accepts.
func isLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return !strings.HasPrefix(s, "__")
}

func entryName(kind, name string, i int) string {
	if name != "" {
		return fmt.Sprintf("%s %q", kind, name)
	}
	return fmt.Sprintf("%s #%d", kind, i+1)
}

func exampleEndpoint(t string) string {
	switch t {
	case ExporterInfluxDB:
		return "http://influxdb:8086"
	case ExporterElasticsearch:
		return "http://elasticsearch:9200"
	case ExporterCustom:
		return "https://metrics.example.com/ingest"
	}
	return "http://prometheus:9090/api/v1/write"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// promQL parses alert rules' expressions as the store's engine does.
var promQL = parser.NewParser(parser.Options{})

// validateExpr checks an alert rule that gives a PromQL expr: it parses,
// gives an instant vector or a scalar, reads the store, and leaves the
// threshold keys out.
func validateExpr(p *problems, rp, what string, r *AlertRule, store bool) {
	if r.Resource != "" || r.Condition != DefaultCondition || r.Threshold != 0 || r.ResolveThreshold != nil {
		p.add(rp+".expr", "expr = %q: an expr rule fires while its expression returns a series, so it takes no resource, condition, threshold or resolve_threshold (%s); put the comparison in the expression, e.g. expr = \"node_load1 > 4\"", r.Expr, what)
	}
	e, err := promQL.ParseExpr(r.Expr)
	if err != nil {
		p.add(rp+".expr", "expr = %q: %v (%s)", r.Expr, err, what)
		return
	}
	if t := e.Type(); t != parser.ValueTypeVector && t != parser.ValueTypeScalar {
		kind := map[parser.ValueType]string{parser.ValueTypeMatrix: "range vector", parser.ValueTypeString: "string"}[t]
		p.add(rp+".expr", "expr = %q: gives a %s; an alert needs an instant vector or a scalar, e.g. rate(x[1m]) > 0.5 rather than x[1m] (%s)", r.Expr, kind, what)
	}
	if !store {
		p.add(rp+".expr", "expr = %q: expr rules are evaluated against the local store, which is off; set enabled = true in [cleanroom.monitoring.store] (%s)", r.Expr, what)
	}
}
