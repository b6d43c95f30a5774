// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/internal/testenv/browser"
)

// pageRow is a row of the live page's container table, as a person reads it.
type pageRow struct {
	Key   string `json:"key"`
	Name  string `json:"name"`
	Image string `json:"image"`
	CPU   string `json:"cpu"`
	Runq  string `json:"runq"`
	Mem   string `json:"mem"`
	BlkW  string `json:"blk_w"`
	Age   string `json:"age"`
	Gone  bool   `json:"gone"`
}

const pageRowsJS = `[...document.querySelectorAll("#rows tbody tr")].map(tr => ({
	key: tr.dataset.key, name: tr.children[0].textContent, image: tr.children[1].textContent,
	cpu: tr.children[2].textContent, runq: tr.children[4].textContent, mem: tr.children[5].textContent,
	blk_w: tr.children[7].textContent, age: tr.children[11].textContent, gone: tr.classList.contains("gone")}))`

// percent parses "97 %" or "3.2 %"; n/a is -1.
func percent(t *testing.T, s string) float64 {
	t.Helper()
	if s == "n/a" {
		return -1
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, " %"), 64)
	if err != nil {
		t.Fatalf("CPU cell %q: %v", s, err)
	}
	return v
}

// TestLivePage opens the agent's page in headless Chromium with ten real
// containers, one burning CPU and one writing to disk: the table lists
// them with plausible figures (the burner first, at no more than the one
// core its quota allows; the writer's block writes), the host charts
// fill, a running test session is listed, a container's row opens its
// charts, a container started later appears and a removed one fades out
// and goes. Screenshots of the page
// are written to the artifact directory.
func TestLivePage(t *testing.T) {
	dockertest.Require(t)
	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	name := func(role string) string { return "crmon-live-" + role + "-" + tag }
	cfg := filepath.Join(t.TempDir(), "crmon.toml")
	body := fmt.Sprintf(`[cleanroom.monitoring]
collection_interval = "1s"

[cleanroom.monitoring.containers]
include = ["crmon-live-*-%s"]
idle_refresh = "0s"
removed_retention = "0s"
`, tag)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, "--config", cfg, "--ebpf", "required")

	// The burner's quota of one core is the one thing the kernel
	// guarantees about its share on a busy machine: a ceiling.
	dockertest.Run(t, []string{"--name", name("burn"), "--cpus", "1"}, "sh", "-c", "yes >/dev/null")
	dockertest.Run(t, []string{"--name", name("write")}, "sh", "-c",
		"while true; do dd if=/dev/zero of=/tmp/f bs=1M count=4 oflag=direct 2>/dev/null; sleep 0.2; done")
	var idle []string
	for i := range 8 {
		idle = append(idle, dockertest.Run(t, []string{"--name", name("idle" + strconv.Itoa(i))}, "sleep", "600"))
	}

	bctx := browser.New(t)
	ctx, cancel := context.WithTimeout(bctx, 4*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+p.addr+"/")); err != nil {
		t.Fatal(err)
	}
	rows := func() []pageRow {
		t.Helper()
		rs, err := chromedp.Run(ctx, chromedp.Evaluate[[]pageRow](pageRowsJS))
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	poll := func(what, expr string, timeout time.Duration) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(timeout))); err != nil {
			t.Fatalf("%s: %v\nrows: %+v\nagent:\n%s", what, err, rows(), p.logs())
		}
	}
	// Ten rows, each with a CPU figure (it needs two samples), then a few
	// more ticks so that every container's start is behind the window.
	poll("ten rows with CPU figures", `(() => { const r = [...document.querySelectorAll("#rows tbody tr")];
		return r.length === 10 && r.every(tr => tr.children[2].textContent !== "n/a"); })()`, time.Minute)
	poll("five more ticks", `window.crmonStats.ticks >= 5 + (window.crmonStats.t0 ??= window.crmonStats.ticks)`, time.Minute)
	poll("the writer's block writes", `[...document.querySelectorAll("#rows tbody tr")].some(tr =>
		tr.children[0].textContent === "`+name("write")+`" && !/^(0 B\/s|n\/a)$/.test(tr.children[7].textContent))`, time.Minute)
	poll("host charts with points", `["c-cpu","c-mem","c-disk","c-net"].every(id => +document.getElementById(id).dataset.points >= 5)`, time.Minute)

	// A test session running on the agent is listed, and so is the
	// alert a busy host raises (HostCPUUsageHigh, when it is busy).
	url := "--agent-url=unix://" + p.sock
	if _, stderr, code := run(t, "session", "start", url, "live-page-"+tag); code != 0 {
		t.Fatalf("session start: exit %d\n%s", code, stderr)
	}
	t.Cleanup(func() { run(t, "session", "stop", "-q", url, "live-page-"+tag) })
	poll("the running session", `!document.getElementById("sessions").hidden && document.querySelector("#sessions tbody").textContent.includes("live-page-`+tag+`")`, 30*time.Second)

	rs := rows()
	if len(rs) != 10 {
		t.Fatalf("%d rows, want 10: %+v", len(rs), rs)
	}
	// Sorted by CPU, largest first: the burner leads.
	if rs[0].Name != name("burn") {
		t.Errorf("first row is %s (CPU %s), want the burner %s: %+v", rs[0].Name, rs[0].CPU, name("burn"), rs)
	}
	if c := percent(t, rs[0].CPU); c <= 0 || c > 110 {
		t.Errorf("burner CPU %s, want more than 0 and at most its quota of one core (100 %%, +10 %% for one interval's jitter)", rs[0].CPU)
	}
	for _, r := range rs {
		if r.Image != dockertest.Image || !strings.HasSuffix(r.Mem, "iB") && !strings.HasSuffix(r.Mem, " B") || r.Runq == "n/a" || r.Age == "" {
			t.Errorf("row %+v: want the image, memory in binary units, a run-queue figure and an age", r)
		}
		if strings.HasPrefix(r.Name, "crmon-live-idle") && percent(t, r.CPU) > 5 {
			t.Errorf("idle container %s at CPU %s", r.Name, r.CPU)
		}
	}
	browser.Screenshot(t, bctx, "ten-containers.png")

	// A row opens the container's charts.
	if err := chromedp.Do(ctx, chromedp.Click(`#rows tbody tr[data-key="`+rs[0].Key+`"] td.name`)); err != nil {
		t.Fatal(err)
	}
	poll("the burner's charts", `!document.getElementById("detail").hidden && document.getElementById("d-name").textContent === "`+name("burn")+`" && +document.getElementById("d-cpu").dataset.points >= 2`, 30*time.Second)
	// The charts scrolled into view; a full-page shot starts at the top.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		t.Fatal(err)
	}
	browser.Screenshot(t, bctx, "container-charts.png")

	// A container started now appears; a removed one fades, then goes.
	dockertest.Run(t, []string{"--name", name("late")}, "sleep", "600")
	poll("the late container's row", `[...document.querySelectorAll("#rows tbody tr td.name")].some(td => td.textContent === "`+name("late")+`")`, time.Minute)
	dockertest.Remove(idle[0])
	gone := `[...document.querySelectorAll("#rows tbody tr")].find(tr => tr.dataset.key === "` + idle[0] + `")`
	poll("the removed container fading", gone+`?.classList.contains("gone")`, time.Minute)
	poll("the removed container gone", `!`+gone, 2*time.Minute)

	stats, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
		Ticks     int       `json:"ticks"`
		RenderMs  []float64 `json:"renderMs"`
		LastBytes int       `json:"lastBytes"`
		InitBytes int       `json:"initBytes"`
	}](`window.crmonStats`))
	if err != nil {
		t.Fatal(err)
	}
	if stats.Ticks < 10 {
		t.Errorf("the page applied %d ticks, want it to keep updating", stats.Ticks)
	}
	slices.Sort(stats.RenderMs)
	t.Logf("%d ticks; render median %.1f ms; tick %d B, init %d B", stats.Ticks, stats.RenderMs[len(stats.RenderMs)/2], stats.LastBytes, stats.InitBytes)
}

// TestLivePageHistoryFromStore checks that a page opened on an agent that
// had no page open gets the host's last seconds from the store: its first
// event carries points from before it connected.
func TestLivePageHistoryFromStore(t *testing.T) {
	testenv.RequireLong(t, "an agent whose store fills for seconds")
	p := startAgent(t, "--collection-interval", "1s", "--ebpf", "disabled", "--collector.containers=false")
	time.Sleep(6 * time.Second)
	opened := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/api/v1/live/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var init struct {
		History struct {
			T   []int64    `json:"t"`
			CPU []*float64 `json:"cpu"`
			Mem []*float64 `json:"mem"`
		} `json:"history"`
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			if err := json.Unmarshal([]byte(data), &init); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	h := init.History
	if len(h.T) < 3 || len(h.CPU) != len(h.T) || len(h.Mem) != len(h.T) {
		t.Fatalf("history of %d points (cpu %d, mem %d), want at least 3 from the store", len(h.T), len(h.CPU), len(h.Mem))
	}
	for i, ts := range h.T {
		if ts > opened.UnixMilli() {
			t.Errorf("point %d at %v, after the page opened at %v", i, time.UnixMilli(ts), opened)
		}
		if c := h.CPU[i]; c == nil || *c < 0 || *c > 100 {
			t.Errorf("point %d: CPU %v, want 0 to 100 %%", i, c)
		}
		if m := h.Mem[i]; m == nil || *m <= 0 {
			t.Errorf("point %d: memory used %v", i, m)
		}
	}
}
