// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestAgentExportsContainerCPU runs `crmon run` with two exporters,
// remote write to Debian's Prometheus and line protocol to Debian's
// InfluxDB, beside a burner container; once the burner has stopped
// burning, its CPU as each receiver holds it matches its cgroup's own
// counter within 2 %.
func TestAgentExportsContainerCPU(t *testing.T) {
	dockertest.Require(t)
	prom := testenv.StartPrometheus(t)
	influx := testenv.InfluxDB(t, "crmon")
	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	name := "crmon-export-burn-" + tag
	cfg := filepath.Join(t.TempDir(), "crmon.toml")
	body := fmt.Sprintf(`[cleanroom.monitoring]
collection_interval = "1s"

`+thresholdsOff+`
[cleanroom.monitoring.containers]
include = ["crmon-export-*-%[1]s"]
idle_refresh = "0s"

[[cleanroom.monitoring.exporters]]
name = "prometheus"
exporter_type = "Prometheus"
endpoint = %[2]q
flush_interval = "1s"
labels = { instance = "export-test-%[1]s" }

[[cleanroom.monitoring.exporters]]
name = "influx"
exporter_type = "InfluxDB"
endpoint = %[3]q
database = "crmon"
flush_interval = "1s"
labels = { instance = "export-test-%[1]s" }
`, tag, prom.WriteURL(), "http://"+influx)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, "--config", cfg, "--ebpf", "disabled")
	id := dockertest.Run(t, []string{"--name", name, "--cpus", "0.5"}, "sh", "-c", "yes >/dev/null & sleep 4; kill $!; echo done; sleep 600")
	deadline := time.Now().Add(2 * time.Minute)
	for dockertest.Docker(t, "logs", id) != "done" {
		if time.Now().After(deadline) {
			t.Fatal("the burner did not finish within 2 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		t.Fatal(err)
	}
	fams := parseMetrics(t, p.get(t, "/metrics"))
	ms := matching(fams, "container_cpu_usage_seconds_total", map[string]string{"name": name})
	if len(ms) != 1 {
		t.Fatalf("container_cpu_usage_seconds_total{name=%q}: %d series, want 1", name, len(ms))
	}
	truth := cgroupCPUSeconds(t, h, labelValue(ms[0], "id"))
	if truth <= 0 {
		t.Fatalf("the burner's cgroup counted %v CPU-seconds", truth)
	}

	fromProm := func() float64 {
		q := url.Values{"query": {fmt.Sprintf(`container_cpu_usage_seconds_total{name=%q,instance="export-test-%s"}`, name, tag)}}
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		testenv.GetJSON(t, "http://"+prom.Addr+"/api/v1/query?"+q.Encode(), &r)
		if len(r.Data.Result) != 1 {
			return -1
		}
		v, _ := strconv.ParseFloat(r.Data.Result[0].Value[1].(string), 64)
		return v
	}
	fromInflux := func() float64 {
		q := url.Values{"db": {"crmon"}, "epoch": {"ms"}, "q": {fmt.Sprintf(`SELECT last("value") FROM "container_cpu_usage_seconds_total" WHERE "name" = '%s' AND "instance" = 'export-test-%s'`, name, tag)}}
		var r struct {
			Results []struct {
				Series []struct {
					Values [][2]json.Number `json:"values"`
				} `json:"series"`
			} `json:"results"`
		}
		testenv.GetJSON(t, "http://"+influx+"/query?"+q.Encode(), &r)
		if len(r.Results) != 1 || len(r.Results[0].Series) != 1 || len(r.Results[0].Series[0].Values) != 1 {
			return -1
		}
		v, _ := r.Results[0].Series[0].Values[0][1].Float64()
		return v
	}
	// The burner is done: a tick and a flush later, both receivers hold
	// its final counter.
	for _, rc := range []struct {
		name string
		get  func() float64
	}{{"Prometheus", fromProm}, {"InfluxDB", fromInflux}} {
		var got float64
		deadline := time.Now().Add(30 * time.Second)
		for {
			got = rc.get()
			if relErr(got, truth) <= 0.02 || time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if relErr(got, truth) > 0.02 {
			t.Errorf("%s holds %.4f CPU-seconds for the burner, its cgroup %.4f: want within 2%%\n%s", rc.name, got, truth, p.logs())
		} else {
			t.Logf("%s: %.4f CPU-seconds, cgroup %.4f", rc.name, got, truth)
		}
	}
}
