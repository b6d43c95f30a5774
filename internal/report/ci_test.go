// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// mdTables parses md as GitHub-flavoured Markdown and returns each table
// as rows of cell texts, the header first.
func mdTables(t *testing.T, md []byte) ([][][]string, string) {
	t.Helper()
	gm := goldmark.New(goldmark.WithExtensions(extension.GFM))
	doc := gm.Parser().Parse(text.NewReader(md))
	var tables [][][]string
	err := ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		if tbl, ok := n.(*east.Table); ok {
			var rows [][]string
			for r := tbl.FirstChild(); r != nil; r = r.NextSibling() {
				var cells []string
				for c := r.FirstChild(); c != nil; c = c.NextSibling() {
					cells = append(cells, nodeText(c, md))
				}
				rows = append(rows, cells)
			}
			tables = append(tables, rows)
			return ast.WalkSkipChildren, nil
		}
		return ast.WalkContinue, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var html bytes.Buffer
	if err := gm.Convert(md, &html); err != nil {
		t.Fatal(err)
	}
	return tables, html.String()
}

// nodeText is the text a reader sees in n.
func nodeText(n ast.Node, src []byte) string {
	var b strings.Builder
	_ = ast.Walk(n, func(c ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch v := c.(type) {
		case *ast.Text:
			b.Write(util.UnescapePunctuations(v.Segment.Value(src)))
		case *ast.String:
			b.Write(v.Value)
		}
		return ast.WalkContinue, nil
	})
	return b.String()
}

// TestMarkdown reads the Markdown summary back with a real GFM parser:
// the totals table has the run and each container with the figures in
// the right cells, findings and limits follow, and a command full of
// Markdown and HTML stays text.
func TestMarkdown(t *testing.T) {
	r := sample()
	r.Command = []string{"sh", "-c", "echo '| *x* <script>alert(1)</script>' [a](b)"}
	var b bytes.Buffer
	if err := Markdown(&b, r); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.md", b.Bytes())
	tables, html := mdTables(t, b.Bytes())
	if len(tables) != 3 {
		t.Fatalf("%d tables, want totals, processes and limits:\n%s", len(tables), b.String())
	}
	if procs := tables[1]; len(procs) != 3 || !slicesEqual(procs[1], []string{"procfs.test", "1", "400.0ms", "1.0ms", "0B", "1.0MiB", "0B", "0B", "40.0MiB"}) {
		t.Errorf("processes table %q", procs)
	}
	tot := tables[0]
	if len(tot) != 3 || len(tot[0]) != 10 {
		t.Fatalf("totals table %q: want a header and 2 rows of 10 cells", tot)
	}
	for _, want := range [][]string{
		{"", "cpu", "run-queue p99", "context switches", "block read", "block write", "net rx", "net tx", "peak memory", "processes"},
		{"run", "610.0ms", "1.0ms", "30", "0B", "32.0MiB", "100B", "8.0MiB", "12.0MiB", "3"},
		{"container db-1", "2.010s", "0s", "0", "0B", "0B", "n/a", "n/a", "1.0MiB", "n/a"},
	} {
		if !slicesEqual(tot[0], want) && !slicesEqual(tot[1], want) && !slicesEqual(tot[2], want) {
			t.Errorf("no row %q in %q", want, tot)
		}
	}
	lim := tables[2]
	if len(lim) != 1+len(r.Limits) || lim[1][0] != "cpu_seconds" || lim[1][4] != "❌ EXCEEDED" {
		t.Errorf("limits table %q", lim)
	}
	if strings.Contains(html, "<script>") || strings.Contains(html, "<em>") || strings.Contains(html, "<a href") {
		t.Errorf("the command became markup:\n%s", html)
	}
	if !strings.Contains(html, "echo '| *x* &lt;script&gt;alert(1)&lt;/script&gt;' [a](b)") {
		t.Errorf("the command is not shown as written:\n%s", html)
	}
	if !strings.Contains(html, "<strong>cpu_starved</strong>") {
		t.Errorf("findings not listed:\n%s", html)
	}
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// TestMarkdownNoFindings: an empty findings list says so.
func TestMarkdownNoFindings(t *testing.T) {
	r := sample()
	r.Findings = nil
	var b bytes.Buffer
	if err := Markdown(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "None: nothing slowed the run down or failed it.") {
		t.Errorf("no word on findings:\n%s", b.String())
	}
}

// TestGitLabMetrics parses the metrics report as the Prometheus text
// format it is: every line a sample, the totals unlabelled, the
// containers labelled, what was not measured absent.
func TestGitLabMetrics(t *testing.T) {
	r := sample()
	r.Containers[0].Name = `we"ird name`
	var b bytes.Buffer
	if err := GitLabMetrics(&b, r); err != nil {
		t.Fatal(err)
	}
	golden(t, "metrics.txt", b.Bytes())
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l != "# EOF" && len(strings.Fields(l)) != 2 {
			t.Errorf("line %q is not `name value`", l)
		}
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) float64 {
		f := fams[name]
		if f == nil || len(f.Metric) != 1 {
			t.Fatalf("%s: %v", name, f)
		}
		return f.Metric[0].GetUntyped().GetValue()
	}
	if get("crmon_cpu_seconds") != 0.61 || get("crmon_duration_seconds") != 1.5 || get("crmon_findings") != 1 || get("crmon_exit_code") != 0 {
		t.Errorf("totals wrong:\n%s", b.String())
	}
	if f := fams["crmon_container_cpu_seconds"]; f == nil || f.Metric[0].Label[0].GetValue() != "we_ird_name" {
		t.Errorf("container metric: %v", f)
	}
	if _, ok := fams["crmon_container_net_rx_bytes"]; ok {
		t.Error("a figure not measured is in the report")
	}
}
