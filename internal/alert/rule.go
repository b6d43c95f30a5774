// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// Rule is one alert rule: fire when the resource's value compares with
// Threshold by Condition for at least For.
type Rule struct {
	Name string
	// Expr, when set, is a PromQL expression over the local store that
	// replaces Resource, Condition and Threshold: an instance per series
	// it returns, holding while it returns it.
	Expr      string
	Resource  string
	Condition string
	Threshold float64
	// ResolveThreshold, when set, is where a firing instance resolves.
	ResolveThreshold *float64
	For              time.Duration
	Severity         string
	Channels         []string
	Labels           map[string]string
}

// key identifies a rule across reloads: an instance's state carries over
// only to a rule with the same key.
func (r *Rule) key() string {
	rt := "-"
	if r.ResolveThreshold != nil {
		rt = strconv.FormatFloat(*r.ResolveThreshold, 'g', -1, 64)
	}
	return fmt.Sprintf("%s|%s|%s|%g|%s|%s|%s|%s|%s", r.Name, r.Resource, r.Condition, r.Threshold, rt, r.For, r.Severity, fingerprint(r.Labels), r.Expr)
}

// thresholdRules are the built-in rules of [cleanroom.monitoring.thresholds].
var thresholdRules = []struct {
	name, resource string
	value          func(config.Thresholds) float64
}{
	{"HostCPUUsageHigh", config.ResourceCPU, func(t config.Thresholds) float64 { return t.CPUUsagePercent }},
	{"HostMemoryUsageHigh", config.ResourceMemory, func(t config.Thresholds) float64 { return t.MemoryUsagePercent }},
	{"HostDiskUsageHigh", config.ResourceDisk, func(t config.Thresholds) float64 { return t.DiskUsagePercent }},
	{"HostNetworkBandwidthHigh", config.ResourceNetwork, func(t config.Thresholds) float64 { return t.NetworkBandwidthPercent }},
	{"TooManyContainers", config.ResourceContainers, func(t config.Thresholds) float64 { return float64(t.ContainerCount) }},
	{"TooManyProcesses", config.ResourceProcesses, func(t config.Thresholds) float64 { return float64(t.ProcessCount) }},
}

// Rules are the rules of cfg: a warning per non-zero threshold, then the
// alert rules. With enable_alerting = false there are none.
func Rules(cfg *config.Config) []Rule {
	a := cfg.Monitoring.Alerting
	if !a.EnableAlerting {
		return nil
	}
	var rules []Rule
	for _, t := range thresholdRules {
		if v := t.value(cfg.Monitoring.Thresholds); v > 0 {
			rules = append(rules, Rule{Name: t.name, Resource: t.resource, Condition: ">", Threshold: v, Severity: config.SeverityWarning})
		}
	}
	for _, r := range a.AlertRules {
		if r.Expr != "" {
			rules = append(rules, Rule{
				Name: r.Name, Expr: r.Expr, Resource: ResourceExpr, For: r.For.Std(), Severity: r.Severity,
				Channels: r.Channels, Labels: r.Labels,
			})
			continue
		}
		rules = append(rules, Rule{
			Name: r.Name, Resource: r.Resource, Condition: r.Condition, Threshold: r.Threshold,
			ResolveThreshold: r.ResolveThreshold, For: r.For.Std(), Severity: r.Severity,
			Channels: r.Channels, Labels: r.Labels,
		})
	}
	return rules
}

// ResourceExpr is the resource label of an expr rule's alerts.
const ResourceExpr = "expr"

// perContainer reports whether the resource is evaluated per container.
func perContainer(resource string) bool {
	switch resource {
	case config.ResourceContainerCPU, config.ResourceContainerMemory, config.ResourceContainerDisk, config.ResourceContainerNet:
		return true
	}
	return false
}

// hostValue is the host-wide resource's value in m; ok is false when the
// sample has none (no interface reports its link speed).
func hostValue(resource string, m *metrics.ResourceMetrics) (v float64, ok bool) {
	switch resource {
	case config.ResourceCPU:
		return m.CPU.UsagePercent, true
	case config.ResourceMemory:
		return m.Memory.UsagePercent, m.Memory.TotalBytes > 0
	case config.ResourceDisk:
		return m.Disk.UsagePercent, m.Disk.TotalBytes > 0
	case config.ResourceNetwork:
		// Throughput of the interfaces whose driver reports a speed, of
		// that speed. A NIC's speed is per direction; the ADR's
		// bandwidth percent is of the link, both directions counted.
		var rate, speed uint64
		for _, it := range m.Network.Interfaces {
			if it.SpeedBytesPerSec > 0 {
				rate += it.BandwidthBytesPerSec
				speed += it.SpeedBytesPerSec
			}
		}
		if speed == 0 {
			return 0, false
		}
		return float64(rate) / float64(speed) * 100, true
	case config.ResourceContainers:
		return float64(m.Containers.RunningContainers), true
	case config.ResourceProcesses:
		return float64(m.System.Processes), true
	}
	return 0, false
}

// containerValue is a per-container resource's value.
func containerValue(resource string, d *metrics.ContainerDetailMetrics) float64 {
	switch resource {
	case config.ResourceContainerCPU:
		return d.CPUUsagePercent
	case config.ResourceContainerMemory:
		return float64(d.MemoryUsageBytes)
	case config.ResourceContainerDisk:
		return float64(d.DiskUsageBytes)
	case config.ResourceContainerNet:
		return float64(d.NetworkBytesPerSec)
	}
	return 0
}

func compare(cond string, v, threshold float64) bool {
	switch cond {
	case ">":
		return v > threshold
	case ">=":
		return v >= threshold
	case "<":
		return v < threshold
	case "<=":
		return v <= threshold
	}
	return false
}

// units of the message, per resource.
func unit(resource string) string {
	switch resource {
	case config.ResourceCPU, config.ResourceMemory, config.ResourceDisk, config.ResourceNetwork:
		return " %"
	case config.ResourceContainerCPU:
		return " % of a core"
	case config.ResourceContainerMemory, config.ResourceContainerDisk:
		return " bytes"
	case config.ResourceContainerNet:
		return " bytes/s"
	}
	return ""
}

var resourceTitle = map[string]string{
	config.ResourceCPU:             "host CPU usage",
	config.ResourceMemory:          "host memory usage",
	config.ResourceDisk:            "host disk usage",
	config.ResourceNetwork:         "host network bandwidth",
	config.ResourceContainers:      "running containers",
	config.ResourceProcesses:       "processes",
	config.ResourceContainerCPU:    "CPU usage",
	config.ResourceContainerMemory: "memory usage",
	config.ResourceContainerDisk:   "writable layer size",
	config.ResourceContainerNet:    "network throughput",
}

// message says what the alert is about: "host CPU usage is 91.5 % (> 50
// %)", or resolved, "host CPU usage is 12 %, no longer > 50 %".
func message(resource, condition string, v, threshold float64, container string, resolved bool) string {
	if resource == ResourceExpr {
		return exprMessage(v, container, resolved)
	}
	what := resourceTitle[resource]
	if container != "" {
		// A container's name is the outside world's: it becomes a mail
		// subject, so no control character (no header injection).
		what = "container " + strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return '?'
			}
			return r
		}, container) + " " + what
	}
	u := unit(resource)
	if resolved {
		return fmt.Sprintf("%s is %s%s, no longer %s %s%s", what, num(v), u, condition, num(threshold), u)
	}
	return fmt.Sprintf("%s is %s%s (%s %s%s)", what, num(v), u, condition, num(threshold), u)
}

// exprMessage says what an expr rule's alert is about: its series' value,
// and the container the series names, if any.
func exprMessage(v float64, container string, resolved bool) string {
	what := "the expression"
	if container != "" {
		what += " for container " + strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return '?'
			}
			return r
		}, container)
	}
	if resolved {
		return fmt.Sprintf("%s no longer holds (last value %s)", what, num(v))
	}
	return fmt.Sprintf("%s holds: value %s", what, num(v))
}

// num prints a value with at most two decimals and no trailing zeros.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}
