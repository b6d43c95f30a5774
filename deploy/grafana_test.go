// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Schema     int     `json:"schemaVersion"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			AllValue   string          `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr    string `json:"expr"`
		RefID   string `json:"refId"`
		Format  string `json:"format"`
		Instant bool   `json:"instant"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "deploy", "grafana", "crmon.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("crmon.json: %v", err)
	}
	return d
}

// TestDashboardShape checks what Grafana needs to load the dashboard and
// the provisioning files, and what the issue asks of its panels.
func TestDashboardShape(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" || d.Schema < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d: want both, and a schema Grafana 10+ reads", d.UID, d.Title, d.Schema)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type == "query" && v.AllValue != ".+" {
			t.Errorf("variable %s: allValue %q, want \".+\" (the queries match it with =~)", v.Name, v.AllValue)
		}
	}
	for _, v := range []string{"datasource", "instance", "container"} {
		if !vars[v] {
			t.Errorf("no $%s variable", v)
		}
	}
	ids := map[int]bool{}
	heatmaps := map[string]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v outside Grafana's 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the $datasource variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if p.Type == "heatmap" {
				if tg.Format != "heatmap" || !strings.Contains(tg.Expr, "_bucket") || !strings.Contains(tg.Expr, "by (le)") {
					t.Errorf("heatmap %q: format %q, %q: want buckets summed by le, format heatmap", p.Title, tg.Format, tg.Expr)
				}
				heatmaps[metricOf(tg.Expr)] = true
			}
			if p.Type != "row" && !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: %q does not follow $instance", p.Title, tg.Expr)
			}
		}
	}
	for _, h := range []string{"crmon_container_runqueue_latency_seconds_bucket", "crmon_container_block_io_latency_seconds_bucket"} {
		if !heatmaps[h] {
			t.Errorf("no heatmap of %s", h)
		}
	}

	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Type string
			Options    struct{ Path string }
		}
	}
	b, err := os.ReadFile(filepath.Join(root(t), "deploy", "grafana", "provisioning", "dashboards", "crmon.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &prov); err != nil && !strings.Contains(err.Error(), "not found in type") {
		t.Fatalf("dashboards provisioning: %v", err)
	}
	if prov.APIVersion != 1 || len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || prov.Providers[0].Options.Path == "" {
		t.Errorf("dashboards provisioning: %+v, want one file provider with a path", prov)
	}
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct{ Name, Type, URL string }
	}
	if b, err = os.ReadFile(filepath.Join(root(t), "deploy", "grafana", "provisioning", "datasources", "prometheus.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &ds); err != nil || len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Errorf("datasources provisioning: %+v, %v: want one prometheus data source", ds, err)
	}
}

var metricRE = regexp.MustCompile(`[a-z_:]+_(bucket|total|bytes|seconds|info|up|load1|load5|load15)\b`)

func metricOf(expr string) string { return metricRE.FindString(expr) }

// absentHere are the panels that may return nothing on a healthy host,
// and why: they are listed, not queried into passing.
var absentHere = map[string]string{
	"Probes down, and why": "no probe is down: crmon_probe_down_info has a series only for a probe that is",
}

// TestDashboardQueriesReturnData runs every panel's query, its variables
// substituted as Grafana does, against Debian's Prometheus scraping a live
// crmon beside a burner, a writer and a sender container, and wants data
// from each (but the panels of absentHere, which are named in the log).
// The variables' own queries must offer the agent and the containers.
func TestDashboardQueriesReturnData(t *testing.T) {
	testenv.RequireRoot(t)
	dockertest.Require(t)
	prom := testenv.RequireCommand(t, "prometheus")
	d := readDashboard(t)

	// The agent, built from this tree.
	bin := filepath.Join(t.TempDir(), "crmon")
	command(t, filepath.Join(root(t), "cmd", "crmon"), "go", "build", "-o", bin, ".")
	agent := testenv.FreePort(t)
	testenv.StartServer(t, "http://"+agent+"/healthz", bin, "run", "--web.listen-address", agent,
		"--control.socket", "", "--collection-interval", "1s", "--ebpf", "required")

	// The containers: CPU, block I/O, and socket traffic to a listener of
	// the test's on the bridge.
	ln, err := net.Listen("tcp", dockertest.BridgeIP(t)+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	names := []string{"crmon-graf-burn-" + tag, "crmon-graf-write-" + tag, "crmon-graf-send-" + tag}
	dockertest.Run(t, []string{"--name", names[0]}, "sh", "-c", "yes >/dev/null & yes >/dev/null & yes >/dev/null")
	dockertest.Run(t, []string{"--name", names[1]}, "sh", "-c", "while :; do dd if=/dev/zero of=/f bs=64k count=64 oflag=direct 2>/dev/null; sleep 0.2; done")
	dockertest.Run(t, []string{"--name", names[2]}, "sh", "-c", fmt.Sprintf("while :; do dd if=/dev/zero bs=64k count=16 2>/dev/null | nc %s %d; sleep 0.2; done", dockertest.BridgeIP(t), ln.Addr().(*net.TCPAddr).Port))

	// Prometheus, scraping the agent every second.
	dir := t.TempDir()
	promAddr := testenv.FreePort(t)
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: crmon\n    static_configs:\n      - targets: [%q]\n", agent)), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.StartServer(t, "http://"+promAddr+"/-/ready", prom, "--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr)

	query := func(q string) (n int, errMsg string) {
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		testenv.GetJSON(t, "http://"+promAddr+"/api/v1/query?query="+url.QueryEscape(q), &r)
		return len(r.Data.Result), r.Error
	}
	// 15 s of scrapes: enough for the rates over 10 s, and for every
	// container's first samples.
	deadline := time.Now().Add(90 * time.Second)
	for {
		n, _ := query(`count_over_time(crmon_build_info[1m]) >= 15`)
		w, _ := query(`crmon_container_block_io_latency_seconds_count{name="` + names[1] + `"}`)
		if n == 1 && w > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not get 15 scrapes with the writer's block latency within 90 s")
		}
		time.Sleep(time.Second)
	}

	// The variables, as Grafana resolves them: label_values(metric, label).
	values := func(def string) []string {
		m := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`).FindStringSubmatch(def)
		if m == nil {
			t.Fatalf("variable query %q is not label_values(series, label)", def)
		}
		sel := strings.ReplaceAll(m[1], "$instance", ".+")
		var r struct {
			Data []map[string]string `json:"data"`
		}
		testenv.GetJSON(t, "http://"+promAddr+"/api/v1/series?match[]="+url.QueryEscape(sel), &r)
		var vs []string
		for _, s := range r.Data {
			vs = append(vs, s[m[2]])
		}
		return vs
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		got := strings.Join(values(v.Definition), " ")
		want := map[string][]string{"instance": {agent}, "container": names}[v.Name]
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("$%s (%s) offers %q, not %s", v.Name, v.Definition, got, w)
			}
		}
	}

	// Every panel, with $instance the agent and $container the three
	// containers, as Grafana writes a multi-value selection (regexp
	// metacharacters escaped, the backslash doubled in a PromQL string).
	subst := strings.NewReplacer(
		"$__rate_interval", "10s",
		"$instance", strings.ReplaceAll(regexp.QuoteMeta(agent), `\`, `\\`),
		"$container", "("+strings.Join(names, "|")+")",
	)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			q := subst.Replace(tg.Expr)
			n, e := query(q)
			switch {
			case e != "":
				t.Errorf("panel %q: %s: %s", p.Title, q, e)
			case n == 0 && absentHere[p.Title] != "":
				t.Logf("panel %q returns nothing here, as expected: %s", p.Title, absentHere[p.Title])
			case n == 0:
				t.Errorf("panel %q returns no data: %s", p.Title, q)
			default:
				t.Logf("panel %q: %d series", p.Title, n)
			}
		}
	}
}
