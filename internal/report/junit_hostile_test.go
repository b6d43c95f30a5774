// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestJUnitHostileNames: names with markup, entities, CDATA ends and
// bytes XML 1.0 cannot carry (NUL, ESC, invalid UTF-8) still give a JUnit
// file that validates, whose names read back as text.
func TestJUnitHostileNames(t *testing.T) {
	xmllint := testenv.RequireCommand(t, "xmllint")
	names := []string{
		`</testcase><testcase name="injected">`,
		`]]><!-- x --><![CDATA[ &amp; &#0; "'`,
		"nul\x00 esc\x1b[31m bell\x07 bad\xff utf-8",
	}
	r := sample()
	r.Name = names[0]
	r.Command = []string{"sh", "-c", names[2]}
	c := r.Containers[0]
	r.Containers = nil
	for _, n := range names {
		c.Name, c.Image = n, n
		r.Containers = append(r.Containers, c)
	}
	for i := range r.Limits {
		r.Limits[i].Scope, r.Limits[i].Reason = "container:"+names[i%len(names)], names[(i+1)%len(names)]
	}
	r.Findings[0].Message = names[1]
	var b bytes.Buffer
	if err := JUnit(&b, r, names[2]); err != nil {
		t.Fatal(err)
	}
	validateJUnit(t, xmllint, b.Bytes())
	var doc struct {
		Cases []struct {
			Name string `xml:"name,attr"`
		} `xml:"testsuite>testcase"`
	}
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if len(doc.Cases) < 2 {
		t.Fatalf("%d test cases read back:\n%s", len(doc.Cases), b.String())
	}
	for _, tc := range doc.Cases {
		if tc.Name == "injected" {
			t.Errorf("a name became a test case:\n%s", b.String())
		}
	}
	if !strings.Contains(b.String(), "&lt;/testcase&gt;&lt;testcase name=&#34;injected&#34;&gt;") {
		t.Errorf("the name is not written as text:\n%s", b.String())
	}
}
