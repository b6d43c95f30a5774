// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/internal/timerslack"
)

// promtoolJSON runs `promtool query ARGS -o json` and decodes its answer.
func promtoolJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	bin := testenv.RequireCommand(t, "promtool")
	args = append([]string{"query", args[0], "-o", "json"}, args[1:]...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// reading is a cgroup's CPU counter at a time.
type reading struct {
	t time.Time
	v float64
}

// at interpolates the counter at t between the readings around it.
func at(rs []reading, t time.Time) (float64, bool) {
	i := sort.Search(len(rs), func(i int) bool { return !rs[i].t.Before(t) })
	if i == 0 || i == len(rs) {
		return 0, false
	}
	a, b := rs[i-1], rs[i]
	f := float64(t.Sub(a.t)) / float64(b.t.Sub(a.t))
	return a.v + f*(b.v-a.v), true
}

// TestStoreQueriesMatchScrapeAndCgroup runs the agent with a burner
// container and asks its query API with promtool, Prometheus' own client:
// the values at the ticks' times are the ones /metrics served then (or,
// for a scrape during a tick's collection, the next tick's), and
// the container's CPU rate over a range query matches its cgroup's own
// counter, read by the test every 100 ms, within 2 %.
func TestStoreQueriesMatchScrapeAndCgroup(t *testing.T) {
	dockertest.Require(t)
	testenv.RequireCommand(t, "promtool")
	p := startAgent(t, "--collection-interval", "1s", "--ebpf", "disabled")
	url := "http://" + p.addr
	name := fmt.Sprintf("crmon-store-burn-%d", os.Getpid())
	dockertest.Run(t, []string{"--name", name, "--network", "none", "--label", "crmon.test=store"}, "sh", "-c", "while :; do :; done")
	sel := fmt.Sprintf(`container_cpu_usage_seconds_total{name=%q}`, name)

	// Wait until the agent serves the container, then find its cgroup.
	var id string
	deadline := time.Now().Add(30 * time.Second)
	for id == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no %s on /metrics within 30 s", sel)
		}
		if ms := matching(parseMetrics(t, p.get(t, "/metrics")), "container_cpu_usage_seconds_total", map[string]string{"name": name}); len(ms) == 1 {
			id = labelValue(ms[0], "id")
		}
		time.Sleep(200 * time.Millisecond)
	}
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		t.Fatal(err)
	}

	// The cgroup's counter every 100 ms, while the agent ticks.
	var mu sync.Mutex
	var truth []reading
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			v := cgroupCPUSeconds(t, h, id)
			mu.Lock()
			truth = append(truth, reading{time.Now(), v})
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()

	// Scrapes: each value must be what the store holds at its tick. A
	// scrape is kept when the tick did not change under it.
	type scraped struct {
		tick float64
		v    float64
	}
	var scrapes []scraped
	start := time.Now()
	for time.Since(start) < 25*time.Second {
		f1 := parseMetrics(t, p.get(t, "/metrics"))
		f2 := parseMetrics(t, p.get(t, "/metrics"))
		t1 := value(f1, "crmon_last_collection_timestamp_seconds", nil)
		if t2 := value(f2, "crmon_last_collection_timestamp_seconds", nil); t1 == t2 {
			scrapes = append(scrapes, scraped{t1, value(f1, "container_cpu_usage_seconds_total", map[string]string{"name": name})})
		}
		time.Sleep(1300 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // the last tick reaches the store
	close(stop)
	<-done
	end := time.Now()

	bin := testenv.RequireCommand(t, "promtool")
	for _, args := range [][]string{{"series", "--match", sel, url}, {"labels", url, "name"}} {
		out, err := exec.Command(bin, append([]string{"query"}, args...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), name) {
			t.Errorf("promtool query %s: %v: no %s in\n%s", strings.Join(args, " "), err, name, out)
		}
	}
	if len(scrapes) < 5 {
		t.Fatalf("only %d consistent scrapes in 25 s", len(scrapes))
	}

	// What the store holds: the container's raw samples, and the ticks it
	// wrote (each tick's crmon_last_collection_timestamp_seconds sample is
	// at that tick's time).
	span := fmt.Sprintf("[%ds]", int(end.Sub(start).Seconds())+40)
	rawOf := func(expr string) (times []int64, vals map[int64]float64) {
		var raw []struct {
			Values [][2]any `json:"values"`
		}
		promtoolJSON(t, &raw, "instant", "--time", strconv.FormatInt(end.Unix()+1, 10), url, expr+span)
		if len(raw) != 1 {
			t.Fatalf("%s%s: %d series, want 1", expr, span, len(raw))
		}
		vals = map[int64]float64{}
		for _, p := range raw[0].Values {
			ms := int64(math.Round(p[0].(float64) * 1000))
			times = append(times, ms)
			vals[ms], _ = strconv.ParseFloat(p[1].(string), 64)
		}
		return times, vals
	}
	ctimes, cvals := rawOf(sel)
	ticks, _ := rawOf("crmon_last_collection_timestamp_seconds")
	if len(ctimes) < 20 {
		t.Fatalf("%d raw samples of %s", len(ctimes), sel)
	}
	fams := parseMetrics(t, p.get(t, "/metrics"))
	lost := value(fams, "crmon_store_ticks_skipped_total", nil) + value(fams, "crmon_store_append_failures_total", nil) +
		value(fams, "crmon_samples_dropped_total", map[string]string{"subscriber": "store"})

	// Each scrape against the store at its tick. /metrics serves the
	// collectors' current values and the last finished tick's time: a
	// scrape during a tick's collection serves that tick's container
	// values under the previous tick's time (the tick's time changes when
	// it is published). So a scrape's value is the store's at its tick, or
	// at the next one. A new container is read as soon as the engine tells
	// of it, between ticks, and served from then on: a scrape before its
	// first tick serves that read under a tick whose stored series do not
	// have it yet (no series at that time, a value up to the first stored
	// one). A tick the store did not write at all must be one it counted
	// as lost.
	var atTick, during, early, missing int
	for _, s := range scrapes {
		// The store's time of the tick is its ms; the gauge is within a µs
		// of it.
		i := sort.Search(len(ticks), func(i int) bool { return float64(ticks[i]) > s.tick*1000-1.5 })
		if i == len(ticks) || float64(ticks[i]) > s.tick*1000+0.5 {
			missing++
			t.Logf("tick %.3f: not in the store", s.tick)
			continue
		}
		tm := ticks[i]
		ts := strconv.FormatFloat(float64(tm)/1e3, 'f', 3, 64)
		var vec []struct {
			Value [2]any `json:"value"`
		}
		promtoolJSON(t, &vec, "instant", "--time", ts, url, sel)
		j := sort.Search(len(ctimes), func(j int) bool { return ctimes[j] > tm }) // the sample after the tick
		stored, ok := cvals[tm]
		switch {
		case !ok && j == 0 && s.v > 0 && s.v <= cvals[ctimes[0]]:
			// Served before any tick read it: the engine's start event
			// has the collector read a new container at once.
			early++
			if len(vec) != 0 {
				t.Errorf("promtool query instant --time %s: %d series before the container's first sample at %d", ts, len(vec), ctimes[0])
			}
			continue
		case !ok:
			t.Errorf("tick %s: the store holds the tick but no %s sample at it (scraped %v)", ts, sel, s.v)
			continue
		case s.v == stored:
			atTick++
		case j < len(ctimes) && s.v == cvals[ctimes[j]]:
			during++
		default:
			t.Errorf("at %s the store holds %v (next %v), /metrics served %v", ts, stored, cvals[ctimes[min(j, len(ctimes)-1)]], s.v)
		}
		if len(vec) != 1 {
			t.Errorf("promtool query instant --time %s: %d series, want 1", ts, len(vec))
			continue
		}
		if got, _ := strconv.ParseFloat(vec[0].Value[1].(string), 64); got != stored {
			t.Errorf("promtool query instant --time %s: %v, the store's sample at %d is %v", ts, got, tm, stored)
		}
	}
	if float64(missing) > lost {
		t.Errorf("%d scraped ticks are not in the store, which counted %v lost", missing, lost)
	}
	if atTick < len(scrapes)/2 {
		t.Errorf("only %d of %d scrapes served their own tick's value", atTick, len(scrapes))
	}

	// A range query of the rate over 10 s windows; each point against the
	// cgroup's own counter between the first and last sample of its window
	// (what rate() measures over).
	var times []time.Time
	vals := map[int64]float64{}
	for _, ms := range ctimes {
		times = append(times, time.UnixMilli(ms))
		vals[ms] = cvals[ms]
	}

	var rng []struct {
		Values [][2]any `json:"values"`
	}
	rs := start.Add(12 * time.Second).Truncate(time.Second)
	re := end.Add(-2 * time.Second).Truncate(time.Second)
	promtoolJSON(t, &rng, "range", "--start", strconv.FormatInt(rs.Unix(), 10), "--end", strconv.FormatInt(re.Unix(), 10), "--step", "5s", url, fmt.Sprintf("rate(%s[10s])", sel))
	if len(rng) != 1 || len(rng[0].Values) < 2 {
		t.Fatalf("range: %+v", rng)
	}
	mu.Lock()
	defer mu.Unlock()
	checked := 0
	for _, pt := range rng[0].Values {
		T := time.UnixMilli(int64(math.Round(pt[0].(float64) * 1000)))
		rate, _ := strconv.ParseFloat(pt[1].(string), 64)
		var in []time.Time
		for _, st := range times {
			if st.After(T.Add(-10*time.Second)) && !st.After(T) {
				in = append(in, st)
			}
		}
		if len(in) < 2 {
			t.Errorf("at %s: %d samples in the window", T, len(in))
			continue
		}
		first, last := in[0], in[len(in)-1]
		a, ok1 := at(truth, first)
		b, ok2 := at(truth, last)
		if !ok1 || !ok2 {
			continue
		}
		want := (b - a) / last.Sub(first).Seconds()
		stored := (vals[last.UnixMilli()] - vals[first.UnixMilli()]) / last.Sub(first).Seconds()
		checked++
		if relErr(rate, want) > 0.02 {
			t.Errorf("at %s: rate %.4f (samples say %.4f), the cgroup %.4f: off by %.1f %%", T.Format(time.RFC3339), rate, stored, want, 100*relErr(rate, want))
		}
	}
	if checked < 2 {
		t.Fatalf("only %d range points checked", checked)
	}
	t.Logf("%d scrapes: %d equal to the store at their ticks, %d taken during the next tick's collection, %d before the container's first tick, %d of ticks the store lost; %d rate points within 2 %% of the cgroup", len(scrapes), atTick, during, early, missing, checked)
}

// rawSamples is a series' samples between two times, from the agent's
// query API: timestamps in ms and values.
func rawSamples(t *testing.T, p *agentProc, expr string, end time.Time, span time.Duration) (ts []int64, vs []float64) {
	t.Helper()
	var m []struct {
		Values [][2]any `json:"values"`
	}
	promtoolJSON(t, &m, "instant", "--time", strconv.FormatFloat(float64(end.UnixMilli())/1e3, 'f', 3, 64), "http://"+p.addr, fmt.Sprintf("%s[%dms]", expr, span.Milliseconds()))
	if len(m) != 1 {
		t.Fatalf("%s: %d series, want 1", expr, len(m))
	}
	for _, v := range m[0].Values {
		ts = append(ts, int64(math.Round(v[0].(float64)*1000)))
		f, _ := strconv.ParseFloat(v[1].(string), 64)
		vs = append(vs, f)
	}
	return ts, vs
}

// TestStoreSurvivesKill9 kills the agent with SIGKILL while it appends
// every 100 ms, starts it again on the same store, and checks that every
// tick the store had committed before the kill is there: crmon's own tick
// counter, one sample per tick from the first, with no gap, up to the
// newest committed tick.
func TestStoreSurvivesKill9(t *testing.T) {
	testenv.RequireLong(t, "a crmon agent killed and restarted")
	testenv.RequireCommand(t, "promtool")
	t.Setenv("CRMON_STORE_PATH", t.TempDir())
	args := []string{"--collection-interval", "100ms", "--ebpf", "disabled", "--collector.containers=false"}
	p := startAgent(t, args...)
	first := time.Now()
	time.Sleep(4 * time.Second)

	fams := parseMetrics(t, p.get(t, "/metrics"))
	newest := value(fams, "crmon_store_newest_timestamp_seconds", nil)
	lost := value(fams, "crmon_store_ticks_skipped_total", nil) + value(fams, "crmon_samples_dropped_total", map[string]string{"subscriber": "store"}) + value(fams, "crmon_store_append_failures_total", nil)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	if newest == 0 {
		t.Fatal("the store had committed nothing before the kill")
	}
	committed := time.UnixMilli(int64(math.Round(newest * 1000)))

	p2 := startAgent(t, args...)
	ts, vs := rawSamples(t, p2, "crmon_collections_total", committed, committed.Sub(first)+time.Second)
	if len(ts) == 0 || ts[len(ts)-1] != committed.UnixMilli() {
		t.Fatalf("after the restart the newest committed tick (%d) is missing; the samples end at %v", committed.UnixMilli(), ts[max(0, len(ts)-3):])
	}
	gaps := 0
	for i := 1; i < len(vs); i++ {
		if vs[i] != vs[i-1]+1 {
			gaps++
		}
	}
	if float64(gaps) > lost {
		t.Errorf("%d gaps among %d ticks kept, %v ticks lost before the kill by the store's own count", gaps, len(vs), lost)
	}
	if int(vs[len(vs)-1]) != len(vs)+int(lost) && gaps == 0 {
		t.Errorf("tick %v at the newest committed time, but %d samples", vs[len(vs)-1], len(vs))
	}
	t.Logf("%d ticks kept up to the kill, %d gaps (%v lost before it)", len(vs), gaps, lost)
}

// TestStoreUnwritable runs the agent with its store on a read-only file
// system and on one that fills up after the store opened: the agent
// collects and serves /metrics, the failures are counted and logged once,
// and the store is closed (on the full disk, once its write-ahead log
// failed to take a tick, so that the next open repairs the log before
// anything is written after a torn record), its history API answering
// unavailable until it opens again.
func TestStoreUnwritable(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireLong(t, "mounting tmpfs")
	for _, c := range []struct {
		name, opts string
		open       bool // the TSDB opens, then the disk fills up
	}{
		{"read-only", "ro,size=1m", false},
		{"full", "size=1m", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", c.opts, "crmon-test", dir).CombinedOutput(); err != nil {
				t.Fatalf("mount: %v: %s", err, out)
			}
			t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
			t.Setenv("CRMON_STORE_PATH", dir)
			p := startAgent(t, "--collection-interval", "200ms", "--ebpf", "disabled", "--collector.containers=false")
			if c.open {
				// The store opened; now the disk fills up.
				time.Sleep(time.Second)
				fill, err := os.Create(filepath.Join(dir, "fill"))
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 4096)
				for {
					if _, err := fill.Write(buf); err != nil {
						break
					}
				}
				fill.Close()
			}
			f0 := value(parseMetrics(t, p.get(t, "/metrics")), "crmon_store_append_failures_total", nil)
			time.Sleep(2 * time.Second)
			fams := parseMetrics(t, p.get(t, "/metrics"))
			if f := value(fams, "crmon_store_append_failures_total", nil) - f0; f < 5 {
				t.Errorf("crmon_store_append_failures_total rose by %v in 2 s at 200 ms, want every tick", f)
			}
			if up := value(fams, "crmon_store_up", nil); up != 0 {
				t.Errorf("crmon_store_up = %v, want 0: the store closed", up)
			}
			if n := value(fams, "crmon_collections_total", nil); n < 5 {
				t.Errorf("crmon_collections_total = %v: collection stopped", n)
			}
			if logs := p.logs(); strings.Count(logs, "crmon_store_append_failures_total") > 1 {
				t.Errorf("the failure logged more than once a minute:\n%s", logs)
			}
			resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=up")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("a query while the store is not open: %s, want 503", resp.Status)
			}
		})
	}
}

// TestExprAlertRule runs the agent with an alert rule whose PromQL expr
// is evaluated against the store: it returns two series (one per
// collector named), each is an alert that goes pending, then firing after
// for, notified to the webhook with the series' labels; when the
// expression stops returning them (the threshold passes the tick count),
// they resolve.
func TestExprAlertRule(t *testing.T) {
	hook := newHookReceiver(t)
	data := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "crmon.toml")
	body := fmt.Sprintf(`[cleanroom.monitoring]
collection_interval = "200ms"

`+thresholdsOff+`
[cleanroom.monitoring.store]
path = %q

[[cleanroom.monitoring.alerting.alert_channels]]
name = "hook"
type = "webhook"
url = %q

[[cleanroom.monitoring.alerting.alert_rules]]
name = "Ticking"
expr = 'crmon_collector_success{collector=~"cpu|meminfo"} * on() group_left() (crmon_collections_total > 3 < 25)'
for = "1s"
labels = { team = "ci" }
`, data, hook.URL)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, "--config", cfg, "--ebpf", "disabled", "--collector.containers=false")

	firing := func() map[string]map[string]string {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		out := map[string]map[string]string{}
		for _, m := range hook.msgs {
			for _, a := range m.Alerts {
				if a.Status == "firing" {
					out[a.Labels["collector"]] = a.Labels
				}
			}
		}
		return out
	}
	waitFor(t, func() bool { return len(firing()) >= 2 })
	got := firing()
	for c, l := range got {
		if l["alertname"] != "Ticking" || l["team"] != "ci" || l["resource"] != "expr" || l["severity"] != "warning" {
			t.Errorf("%s: labels %v", c, l)
		}
	}
	if len(got) != 2 || got["cpu"] == nil || got["meminfo"] == nil {
		t.Errorf("series alerted on: %v, want cpu and meminfo", got)
	}
	waitFor(t, func() bool {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		for _, m := range hook.msgs {
			for _, a := range m.Alerts {
				if a.Status == "resolved" {
					return true
				}
			}
		}
		return false
	})
	if out := p.get(t, "/api/v1/alerts"); strings.Contains(out, "Ticking") {
		t.Errorf("resolved alerts still active: %s", out)
	}
}

// TestStoreReload changes the store's section under a running agent:
// SIGHUP applies the query limits and the retention at once, and says in
// the log that a new path takes a restart.
func TestStoreReload(t *testing.T) {
	testenv.RequireLong(t, "a crmon agent with its store, reloaded")
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "crmon.toml")
	writeConfig := func(retention string, maxSamples int, path string) {
		t.Helper()
		c := fmt.Sprintf("[cleanroom.monitoring]\ncollection_interval = \"100ms\"\nretention_period = %q\n\n"+
			"[cleanroom.monitoring.store]\npath = %q\nquery_max_samples = %d\nquery_concurrency = 1\nquery_timeout = \"5s\"\n",
			retention, path, maxSamples)
		if err := os.WriteFile(cfgFile, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("7d", 1000, filepath.Join(dir, "a"))
	p := startAgent(t, "--config", cfgFile, "--ebpf", "disabled", "--collector.containers=false")
	retention := regexp.MustCompile(`(?m)^crmon_store_retention_seconds (\S+)$`)
	if v := retention.FindStringSubmatch(p.get(t, "/metrics")); v == nil || v[1] != "604800" {
		t.Fatalf("retention before the reload: %v, want 604800", v)
	}
	seconds := func(t time.Time) string { return fmt.Sprintf("%.3f", float64(t.UnixMilli())/1e3) }
	query := func() (int, string) {
		t.Helper()
		now := time.Now()
		resp, err := http.Get("http://" + p.addr + "/api/v1/query_range?" + url.Values{
			"query": {`{__name__=~".+"}`}, "start": {seconds(now.Add(-time.Second))}, "end": {seconds(now)}, "step": {"0.1"},
		}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Every series over the last second at 0.1 s steps is some ten
	// times the series, well over 1 000 once the store holds a second of
	// ticks: on a slow host the first ticks can take longer than that.
	var code int
	var body string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, body = query()
		if code == http.StatusUnprocessableEntity || time.Now().After(deadline) {
			break
		}
	}
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "too many samples") {
		t.Fatalf("every series over 1 s with query_max_samples = 1000: HTTP %d %.200s, want 422 too many samples", code, body)
	}

	writeConfig("1d", 5_000_000, filepath.Join(dir, "b"))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(p.logs(), "config reloaded") })
	if code, body := query(); code != http.StatusOK {
		t.Errorf("the same query with query_max_samples = 5000000: HTTP %d %.200s", code, body)
	}
	if v := retention.FindStringSubmatch(p.get(t, "/metrics")); v == nil || v[1] != "86400" {
		t.Errorf("retention after the reload: %v, want 86400", v)
	}
	if !strings.Contains(p.logs(), "change at the next start") {
		t.Errorf("a new store path was not said to need a restart:\n%s", p.logs())
	}
	if _, err := os.Stat(filepath.Join(dir, "b")); !os.IsNotExist(err) {
		t.Errorf("the new path was created before a restart: %v", err)
	}
}

// TestRuntimeSettings checks what crmon run sets in the Go runtime and
// the kernel for its own cost: the garbage collector's target
// (gcPercent) unless GOGC is in the environment, GOMAXPROCS
// (maxProcs) unless GOMAXPROCS is, and the timer slack of every thread
// (timerSlack), which --timer-slack 0 leaves alone.
func TestRuntimeSettings(t *testing.T) {
	testenv.RequireRoot(t) // the slack of another thread needs CAP_SYS_NICE
	off := filepath.Join(t.TempDir(), "off.toml")
	if err := os.WriteFile(off, []byte("[cleanroom.monitoring.store]\nenabled = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Without --timer-slack the threads keep what they inherit.
	inherited, err := timerslack.Get("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		env   string
		args  []string
		gogc  float64
		slack time.Duration
		procs float64
	}{
		{"store on", "", nil, gcPercent, timerSlack, maxProcs},
		{"GOGC set", "GOGC=80", nil, 80, timerSlack, maxProcs},
		{"store off", "", []string{"--config", off}, gcPercent, timerSlack, maxProcs},
		{"no slack", "", []string{"--timer-slack", "0"}, gcPercent, inherited, maxProcs},
		{"GOMAXPROCS set", "GOMAXPROCS=2", nil, gcPercent, timerSlack, 2},
		{"max procs", "", []string{"--max-procs", "2"}, gcPercent, timerSlack, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				k, v, _ := strings.Cut(c.env, "=")
				t.Setenv(k, v)
			}
			p := startAgent(t, append([]string{"--ebpf", "disabled", "--collector.containers=false"}, c.args...)...)
			fams := parseMetrics(t, p.get(t, "/metrics"))
			if got := value(fams, "go_gc_gogc_percent", nil); got != c.gogc {
				t.Errorf("go_gc_gogc_percent = %v, want %v", got, c.gogc)
			}
			if got := value(fams, "go_sched_gomaxprocs_threads", nil); got != c.procs {
				t.Errorf("go_sched_gomaxprocs_threads = %v, want %v", got, c.procs)
			}
			pid := p.cmd.Process.Pid
			tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
			if err != nil {
				t.Fatal(err)
			}
			for _, task := range tasks {
				tid, _ := strconv.Atoi(task.Name())
				got, err := timerslack.Get("/proc", tid)
				if errors.Is(err, os.ErrNotExist) {
					continue // exited
				}
				if err != nil {
					t.Fatal(err)
				}
				if got != c.slack {
					t.Errorf("thread %d: timer slack %v, want %v", tid, got, c.slack)
				}
			}
		})
	}
}
