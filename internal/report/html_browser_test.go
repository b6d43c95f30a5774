// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package report

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/crmon-dev/crmon/internal/testenv/browser"
	"github.com/crmon-dev/crmon/pkg/session"
)

// hostile are names a process, a container or an image may have, each
// of which runs script if the page writes it as markup: every one sets
// window.pwned.
var hostile = []string{
	`</script><script>window.pwned="script"</script>`,
	`<img src=x onerror="window.pwned='img'">`,
	`"><svg onload="window.pwned='svg'">`,
	`'><iframe srcdoc="<script>parent.pwned='iframe'</script>">`,
	"]]><title><style/onload=window.pwned='title'>",
}

// TestHTMLRunsNoInjectedScript opens, in Chromium, the report of a run
// whose command, containers, images, cgroups, processes, findings and
// limits are named to inject markup: nothing runs, every name shows as
// text, and a script that got in anyway would not run (the report's
// Content-Security-Policy allows none).
func TestHTMLRunsNoInjectedScript(t *testing.T) {
	bctx := browser.New(t)
	r := sample()
	r.Name = hostile[0]
	r.Command = []string{"sh", "-c", hostile[1]}
	r.Cgroup = "/ci/" + hostile[2]
	r.SourcesMissing = []session.MissingSource{{Source: "ebpf", Reason: hostile[3]}}
	r.Containers[0].Name, r.Containers[0].Image, r.Containers[0].Cgroup = hostile[0], hostile[1], "/docker/"+hostile[2]
	r.Containers = append(r.Containers, r.Containers[0])
	r.Containers[1].Name = hostile[4]
	r.Series.Containers = map[string][]session.Point{hostile[0]: {{T: 0}, {T: 0.2, CPUSeconds: 0.1}}, hostile[4]: {{T: 0}, {T: 0.2}}}
	for i := range r.Processes {
		r.Processes[i].Command = hostile[i%len(hostile)]
	}
	r.Findings[0].Scope, r.Findings[0].Message = "container "+hostile[3], hostile[4]
	r.Findings[0].Evidence[hostile[2]] = 1
	for i := range r.Limits {
		r.Limits[i].Scope, r.Limits[i].Reason = session.ScopeContainerPrefix+hostile[i%len(hostile)], hostile[(i+1)%len(hostile)]
	}
	var b bytes.Buffer
	if err := HTML(&b, r); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The same report with a script planted in it, as if a name had
	// slipped through unescaped.
	planted := filepath.Join(dir, "planted.html")
	withScript := strings.Replace(b.String(), "<main>", `<main><script>window.pwned="planted"</script><img src=x onerror="window.pwned='planted img'">`, 1)
	if err := os.WriteFile(planted, []byte(withScript), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(bctx, time.Minute)
	defer cancel()
	type state struct {
		Pwned    string `json:"pwned"`
		Elements int    `json:"elements"`
		Text     string `json:"text"`
	}
	const read = `({pwned: String(window.pwned ?? ""), elements: document.querySelectorAll("main script, main img, main iframe, main svg [onload], main style").length, text: document.body.innerText + [...document.querySelectorAll("title")].map(t => t.textContent).join("\n")})`
	for _, p := range []string{page, planted} {
		if err := chromedp.Do(ctx, chromedp.Navigate("file://"+p)); err != nil {
			t.Fatal(err)
		}
		// onerror and onload would have fired by now; give a failing
		// image load its time.
		time.Sleep(500 * time.Millisecond)
		st, err := chromedp.Run(ctx, chromedp.Evaluate[state](read))
		if err != nil {
			t.Fatal(err)
		}
		if st.Pwned != "" {
			t.Errorf("%s: injected script ran: window.pwned = %q", filepath.Base(p), st.Pwned)
		}
		if p != page {
			continue
		}
		browser.Screenshot(t, bctx, "hostile-report.png")
		if st.Elements != 0 {
			t.Errorf("the page has %d script, img, iframe, style or onload elements in its body: names became markup", st.Elements)
		}
		for _, h := range hostile {
			if !strings.Contains(st.Text, h) {
				t.Errorf("the page does not show %q as text", h)
			}
		}
	}
}
