// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv/browser"
)

// htmlPage is what the test reads off the report in the browser.
type htmlPage struct {
	Verdict     string   `json:"verdict"`
	Cards       []string `json:"cards"`
	Checks      int      `json:"checks"`
	FailedRows  int      `json:"failedChecks"`
	Scopes      []string `json:"scopes"`
	Processes   int      `json:"processes"`
	Findings    []string `json:"findings"`
	Charts      int      `json:"charts"`
	ChartsDrawn int      `json:"chartsDrawn"`
	HoverTips   int      `json:"hoverTips"`
	AxisTitles  int      `json:"axisTitles"`
	Bars        int      `json:"bars"`
	External    int      `json:"external"`
}

const htmlPageJS = `(() => {
	const q = s => [...document.querySelectorAll(s)];
	return {
		verdict: document.querySelector(".verdict").textContent,
		cards: q(".card .label").map(e => e.textContent),
		checks: q("#checks tr").length - 1,
		failedChecks: q("#checks tr.failed").length,
		scopes: q("#scopes tr td:first-child").map(e => e.firstChild.textContent),
		processes: q("#processes tr").length - 1,
		findings: q(".finding .code").map(e => e.textContent),
		charts: q("svg.chart").length,
		chartsDrawn: q("svg.chart").filter(s => s.querySelector("polyline") && s.getBoundingClientRect().width > 300).length,
		hoverTips: q("svg.chart rect.hover title").length,
		axisTitles: q("svg.chart text").filter(t => t.textContent === "time since the start").length,
		bars: q("svg.timeline rect title").length,
		external: performance.getEntriesByType("resource").length,
	};
})()`

// TestExecHTMLInBrowser: the HTML report of a real run with two
// containers (one OOM-killed), a limit and a regression, opened in
// headless Chromium: the verdict, the cards, the checks table, the run and
// containers table, the processes, the findings, the timeline and the
// charts with their axes and hover values are all there, and the page
// loads nothing. The screenshot is left as an artifact.
func TestExecHTMLInBrowser(t *testing.T) {
	requireRootRun(t)
	dockertest.Require(t)
	dir := t.TempDir()
	base, h := filepath.Join(dir, "base.json"), filepath.Join(dir, "r.html")
	if _, stderr, code := run(t, "exec", "-q", noAgent, "--json", base, "--", "sh", "-c", burner); code != 0 {
		t.Fatalf("baseline: exit %d\n%s", code, stderr)
	}
	ok, oom := fmt.Sprintf("crmon-html-%d", os.Getpid()), fmt.Sprintf("crmon-html-oom-%d", os.Getpid())
	t.Cleanup(func() { dockertest.Remove(ok, oom) })
	// Only this test's containers: other tests may start theirs meanwhile.
	label := fmt.Sprintf("crmon.test=html-%d", os.Getpid())
	_, stderr, code := run(t, "exec", "-q", noAgent, "--html", h, "--limit", "cpu_seconds=0.1", "--limit", "peak_memory_bytes=1GiB",
		"--baseline", base, "--max-regression", "cpu_seconds=10%", "--containers", label, "--", "sh", "-c",
		"docker run --rm --label "+label+" --name "+ok+" "+dockertest.Image+" sh -c 'i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done'; "+
			"docker run --rm --label "+label+" --name "+oom+" --memory 16m --memory-swap 16m "+dockertest.Image+" sh -c '"+oomAfterStart+"'; "+
			burner+"; "+burner)
	if code != 3 {
		t.Fatalf("exit %d, want 3 (over the limit)\n%s", code, stderr)
	}

	bctx := browser.New(t)
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1300, 900), chromedp.Navigate("file://"+h)); err != nil {
		t.Fatal(err)
	}
	pg, err := chromedp.Run(ctx, chromedp.Evaluate[htmlPage](htmlPageJS))
	if err != nil {
		t.Fatal(err)
	}
	browser.Screenshot(t, bctx, "exec-report.png")
	t.Logf("page: %+v", pg)
	if pg.Verdict != "FAILED" {
		t.Errorf("verdict %q, want FAILED", pg.Verdict)
	}
	if len(pg.Cards) < 7 {
		t.Errorf("cards %q: want duration, exit, CPU, memory, I/O, network, processes, checks, findings", pg.Cards)
	}
	if pg.Checks != 3 || pg.FailedRows != 2 {
		t.Errorf("checks table: %d rows, %d failed; want 3 (2 limits, 1 regression), 2 failed", pg.Checks, pg.FailedRows)
	}
	if len(pg.Scopes) != 3 || pg.Scopes[0] != "run" {
		t.Errorf("run and containers table: %q", pg.Scopes)
	}
	if pg.Processes < 2 {
		t.Errorf("processes table: %d rows", pg.Processes)
	}
	var oomFound bool
	for _, f := range pg.Findings {
		oomFound = oomFound || f == "oom_kill"
	}
	if !oomFound {
		t.Errorf("findings %q: want oom_kill", pg.Findings)
	}
	if pg.Charts != 12 || pg.ChartsDrawn < 8 || pg.AxisTitles != 12 || pg.HoverTips < 12*5 {
		t.Errorf("charts: %d, %d drawn, %d time axes, %d hover values; want 12 charts (run and 2 containers), time on each, values on hover",
			pg.Charts, pg.ChartsDrawn, pg.AxisTitles, pg.HoverTips)
	}
	if pg.Bars != 2 {
		t.Errorf("timeline: %d container bars, want 2", pg.Bars)
	}
	if pg.External != 0 {
		t.Errorf("the page loaded %d resources", pg.External)
	}
}
