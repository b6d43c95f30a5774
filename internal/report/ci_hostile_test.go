// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package report

import (
	"bytes"
	"strings"
	"testing"
)

// TestMarkdownHostileNames: container names, images, process commands and
// finding texts with table pipes, line breaks, backticks, links, images,
// autolinks, entities and HTML stay one cell of text each in the job
// summary, and GitLab's metrics stay one line per figure.
func TestMarkdownHostileNames(t *testing.T) {
	names := []string{
		"a|b\n| injected | row |\n",
		"`code` ``x`` <b>bold</b>",
		"![img](http://attacker.example/x.png) <http://attacker.example> [l](javascript:alert(1)) WWW.attacker.example https://x.example",
		"&lt;script&gt; &#60;script&#62; \r\n# heading\n- item",
		"~~struck~~ **bold** _em_ $x^2$ \\| <!-- comment",
	}
	r := sample()
	r.Containers = nil
	for i, n := range names {
		c := sample().Containers[0]
		c.Name, c.Image = n, names[(i+1)%len(names)]
		r.Containers = append(r.Containers, c)
	}
	for i := range r.Processes {
		r.Processes[i].Command = names[i%len(names)]
	}
	r.Findings[0].Scope, r.Findings[0].Message = "container "+names[0], names[2]
	var b bytes.Buffer
	if err := Markdown(&b, r); err != nil {
		t.Fatal(err)
	}
	tables, html := mdTables(t, b.Bytes())
	if len(tables) < 2 {
		t.Fatalf("%d tables:\n%s", len(tables), b.String())
	}
	tot := tables[0]
	if len(tot) != 2+len(names) {
		t.Errorf("totals table has %d rows, want a header, the run and %d containers:\n%s", len(tot), len(names), b.String())
	}
	for i, row := range tot {
		if len(row) != 10 {
			t.Errorf("totals row %d has %d cells, want 10: %q", i, len(row), row)
		}
	}
	// Each name is one cell, as written but for its line breaks.
	for _, n := range names {
		want := "container " + strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(n)), " ")
		found := false
		for _, row := range tot {
			found = found || strings.Join(strings.Fields(row[0]), " ") == want
		}
		if !found {
			t.Errorf("no cell %q in the totals table", want)
		}
	}
	if procs := tables[1]; len(procs) != 1+len(r.Processes) {
		t.Errorf("processes table has %d rows, want %d", len(procs), 1+len(r.Processes))
	}
	for _, tag := range []string{"<img", "<a ", "<code", "<b>", "<del", "<strong>bold", "<em>", "<h1", "<!--", "<script"} {
		if strings.Contains(html, tag) {
			t.Errorf("a name became markup (%s):\n%s", tag, html)
		}
	}

	b.Reset()
	if err := GitLabMetrics(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if l == "# EOF" {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 2 || strings.ContainsAny(f[0], "\"\\") && !strings.HasSuffix(f[0], "\"}") {
			t.Errorf("GitLab metrics line %q: want `name{container=\"…\"} value`", l)
		}
	}
}
