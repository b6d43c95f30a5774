// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// What WriteEffective prints is a config file that loads back to the same
// configuration, secrets aside.
func TestWriteEffectiveRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  func(t *testing.T) *Config
	}{
		{"default", func(*testing.T) *Config { return Default() }},
		{"full.toml", func(t *testing.T) *Config {
			c, err := Load(filepath.Join(testdata, "full.toml"))
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"secrets", loadSecretsDoc},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg(t)
			var out bytes.Buffer
			if err := cfg.WriteEffective(&out); err != nil {
				t.Fatal(err)
			}
			// Masked secrets ("<secret>") stand in for the values; secrets
			// from files and the environment are read again.
			env := envOf(map[string]string{
				"CRMON_SLACK_URL": "https://x.invalid/", "CRMON_HOOK_AUTH": "x", "CRMON_INFLUX_TOKEN": "x",
			})
			dir := filepath.Join(testdata)
			if cfg.src != nil {
				dir = filepath.Dir(cfg.src.name)
			}
			// A masked secret is not a URL; any URL stands in for it.
			doc := bytes.ReplaceAll(out.Bytes(), []byte("'<secret>'"), []byte("'https://masked.invalid/'"))
			back, err := Parse("effective.toml", doc, ParseOptions{Dir: dir, LookupEnv: env})
			if err != nil {
				t.Fatalf("the effective config does not load: %v\n%s", err, out.String())
			}
			if diff := cmp.Diff(cfg.Masked(), back.Masked(), ignoreSource, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteEffectiveDefault(t *testing.T) {
	var out bytes.Buffer
	if err := Default().WriteEffective(&out); err != nil {
		t.Fatal(err)
	}
	want := `# crmon effective configuration; secrets are masked
[cleanroom]
  [cleanroom.monitoring]
    enable_monitoring = true
    collection_interval = '10s'
    retention_period = '7d'
    top_processes = 10
    process_command_lines = false
    exporters = []

    [cleanroom.monitoring.thresholds]
      cpu_usage_percent = 80.0
      memory_usage_percent = 85.0
      disk_usage_percent = 90.0
      network_bandwidth_percent = 80.0
      container_count = 50
      process_count = 5000

    [cleanroom.monitoring.alerting]
      enable_alerting = true
      cooldown_period = '5m'
      delivery_grace_period = '5s'
      alert_channels = []
      alert_rules = []

    [cleanroom.monitoring.ebpf]
      mode = 'auto'
      sched = true
      block = true
      net = true
      stats = false
      include = []
      exclude = []
      max_series = 2000
      map_max_entries = 10240
      lost_completion_after = '30s'

    [cleanroom.monitoring.containers]
      enabled = true
      docker_host = 'unix:///var/run/docker.sock'
      container_labels = []
      enable_metrics = []
      disk_usage_interval = '1m'
      idle_refresh = '10s'
      removed_retention = '1m'
      include = []
      exclude = []

    [cleanroom.monitoring.store]
      enabled = true
      path = '/var/lib/crmon'
      max_bytes = 0
      query_timeout = '30s'
      query_max_samples = 5000000
      query_concurrency = 2

    [cleanroom.monitoring.sessions]
      socket = '/run/crmon/crmon.sock'
      socket_group = ''
      max_sessions = 32
      max_sessions_per_user = 8
      abandoned_after = '30s'

  [cleanroom.resource_limits]
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("WriteEffective(Default()) (-want +got):\n%s", diff)
	}
}
