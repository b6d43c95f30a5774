// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"fmt"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// BenchmarkEval is one evaluation per tick of 20 rules (the 6 thresholds
// and 14 rules, 8 of them per container) over 50 running containers, a
// fifth of them over their thresholds and firing: what alerting adds to
// the agent's tick.
func BenchmarkEval(b *testing.B) {
	cfg := config.Default()
	resources := []string{config.ResourceContainerCPU, config.ResourceContainerMemory, config.ResourceContainerDisk, config.ResourceContainerNet,
		config.ResourceCPU, config.ResourceMemory, config.ResourceDisk}
	for i := range 14 {
		r := resources[i%len(resources)]
		cfg.Monitoring.Alerting.AlertRules = append(cfg.Monitoring.Alerting.AlertRules, config.AlertRule{
			Name: fmt.Sprintf("rule%d", i), Resource: r, Condition: ">", Threshold: 80, Severity: "warning",
			For: config.Duration(time.Minute), Labels: map[string]string{"team": "ci"},
		})
	}
	rules := Rules(cfg)
	if len(rules) != 20 {
		b.Fatalf("%d rules", len(rules))
	}
	e := New(rules, Options{Cooldown: 5 * time.Minute})
	m := &metrics.ResourceMetrics{CPU: metrics.CPUMetrics{UsagePercent: 50}, Memory: metrics.MemoryMetrics{TotalBytes: 1 << 34, UsagePercent: 40}}
	for i := range 50 {
		v := 10.0
		if i%5 == 0 {
			v = 95
		}
		m.Containers.ContainerDetails = append(m.Containers.ContainerDetails, metrics.ContainerDetailMetrics{
			ContainerID: fmt.Sprintf("%064x", i), ContainerName: fmt.Sprintf("ct-%d", i), Image: "crmon-test/busybox:latest",
			State: "running", CgroupPath: fmt.Sprintf("/docker/%064x", i), CPUUsagePercent: v, MemoryUsageBytes: uint64(v),
			DiskUsageBytes: uint64(v), NetworkBytesPerSec: uint64(v),
		})
	}
	t := time.Unix(1_700_000_000, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Timestamp = t.Add(time.Duration(i) * time.Second)
		e.Eval(m)
	}
}

// BenchmarkStateWrite is one write of the state file with 1 000 firing
// container instances: what churn costs at most once per
// StateWriteInterval.
func BenchmarkStateWrite(b *testing.B) {
	rule := Rule{Name: "Busy", Resource: config.ResourceContainerCPU, Condition: ">", Threshold: 50, Severity: "warning"}
	path := b.TempDir() + "/alerts.json"
	e := New([]Rule{rule}, Options{StatePath: path})
	m := &metrics.ResourceMetrics{Timestamp: time.Unix(1_700_000_000, 0)}
	for i := range 1000 {
		m.Containers.ContainerDetails = append(m.Containers.ContainerDetails, metrics.ContainerDetailMetrics{
			ContainerID: fmt.Sprintf("%064x", i), ContainerName: fmt.Sprintf("ct-%d", i), Image: "crmon-test/busybox:latest",
			State: "running", CgroupPath: fmt.Sprintf("/docker/%064x", i), CPUUsagePercent: 95,
		})
	}
	e.Eval(m)
	e.mu.Lock()
	sf := e.state()
	e.mu.Unlock()
	b.ReportAllocs()
	for b.Loop() {
		e.write(path, sf)
	}
}

// BenchmarkStateEncode is the CPU part of BenchmarkStateWrite: encoding
// the 1 000 instances, without the file.
func BenchmarkStateEncode(b *testing.B) {
	rule := Rule{Name: "Busy", Resource: config.ResourceContainerCPU, Condition: ">", Threshold: 50, Severity: "warning"}
	e := New([]Rule{rule}, Options{})
	m := &metrics.ResourceMetrics{Timestamp: time.Unix(1_700_000_000, 0)}
	for i := range 1000 {
		m.Containers.ContainerDetails = append(m.Containers.ContainerDetails, metrics.ContainerDetailMetrics{
			ContainerID: fmt.Sprintf("%064x", i), ContainerName: fmt.Sprintf("ct-%d", i), Image: "crmon-test/busybox:latest",
			State: "running", CgroupPath: fmt.Sprintf("/docker/%064x", i), CPUUsagePercent: 95,
		})
	}
	e.Eval(m)
	e.mu.Lock()
	sf := e.state()
	e.mu.Unlock()
	b.ReportAllocs()
	var n int
	for b.Loop() {
		out, _ := encodeState(sf, DefaultMaxStateBytes)
		n = len(out)
	}
	b.ReportMetric(float64(n), "bytes")
}
