// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIsBareDuration(t *testing.T) {
	for tok, want := range map[string]bool{
		"30s": true, "7d": true, "1h30m": true, "500ms": true, "2w": true, "1.5h": true, "1y": true,
		"30": false, "30.5": false, "1e5": false, "0x1f": false, "true": false, "inf": false,
		"1979-05-27": false, "07:32:00": false, "s": false, "30sec": false, "5M": false, "": false,
	} {
		if got := isBareDuration(tok); got != want {
			t.Errorf("isBareDuration(%q) = %v, want %v", tok, got, want)
		}
	}
}

func TestScanDurations(t *testing.T) {
	doc := `# collection_interval = 30s in a comment is fine
[cleanroom.monitoring]
collection_interval = 30s # and after a value
name = "retention_period = 7d"
lit = 'x = 5m'
multi = """
cooldown_period = 2m
"""
multilit = '''
y = 1h
'''
escaped = "a \" b = 3s"
inline = { for = 1m, name = "z = 4s" }
list = [10s, "20s",
  30s]
float = 1e5
date = 1979-05-27
n = 30
`
	type found struct {
		Line       int
		Key, Token string
	}
	var got []found
	for _, d := range scanDoc([]byte(doc)).durations {
		got = append(got, found{d.line, d.key, d.token})
	}
	want := []found{
		{3, "collection_interval", "30s"},
		{13, "for", "1m"},
		{14, "list", "10s"},
		{15, "list", "30s"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bare durations (-want +got):\n%s", diff)
	}
}

func TestScanHeaders(t *testing.T) {
	doc := `[cleanroom.monitoring]
x = "[not.a.header]"
[ cleanroom . "monitoring" . exporters ]
[[cleanroom.monitoring.exporters]]
name = "a"
`
	type found struct {
		Line    int
		Array   bool
		Key     string
		HasKeys bool
	}
	var got []found
	for _, h := range scanDoc([]byte(doc)).headers {
		got = append(got, found{h.line, h.array, h.key, h.hasKeys})
	}
	want := []found{
		{1, false, "cleanroom.monitoring", true},
		{3, false, "cleanroom.monitoring.exporters", false},
		{4, true, "cleanroom.monitoring.exporters", true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
}

// The repaired document keeps every line where it was, so that the
// errors found after the repair still point at the right lines.
func TestPrescanRepairKeepsLines(t *testing.T) {
	doc := `[cleanroom.monitoring]
collection_interval = 30s

[cleanroom.monitoring.exporters]
[[cleanroom.monitoring.exporters]]
name = "p"
flush_interval = 30s
batch_size = 0
`
	p := &problems{src: &source{name: "x.toml"}}
	fixed := prescan(p, []byte(doc))
	want := `[cleanroom.monitoring]
collection_interval = "30s"


[[cleanroom.monitoring.exporters]]
name = "p"
flush_interval = "30s"
batch_size = 0
`
	if diff := cmp.Diff(want, string(fixed)); diff != "" {
		t.Errorf("repaired (-want +got):\n%s", diff)
	}
	if len(p.errs) != 3 {
		t.Errorf("got %d problems, want 3: %v", len(p.errs), p.err())
	}
	// And decoding goes on to find the rest.
	_, err := Parse("x.toml", []byte(doc), ParseOptions{LookupEnv: noEnv})
	wantErr := []string{
		`x.toml:2: collection_interval = 30s: durations are strings; write collection_interval = "30s"`,
		`x.toml:4: [cleanroom.monitoring.exporters] declares a single table, but line 5 starts a list with [[cleanroom.monitoring.exporters]]; delete the single-bracket header [cleanroom.monitoring.exporters] on line 4`,
		`x.toml:5: exporter "p" has no exporter_type; add exporter_type = one of "Prometheus", "InfluxDB", "Elasticsearch", "Custom"`,
		`x.toml:5: exporter "p": endpoint is required; e.g. endpoint = "http://prometheus:9090/api/v1/write"`,
		`x.toml:7: flush_interval = 30s: durations are strings; write flush_interval = "30s"`,
		`x.toml:8: batch_size = 0: must be at least 1 (exporter "p"); the default is 2000`,
	}
	var got []string
	for _, e := range Problems(err) {
		got = append(got, e.Error())
	}
	if diff := cmp.Diff(wantErr, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

// A bare duration where a number belongs gets one message, not a second
// one about the quoted value the repair made of it.
func TestBareDurationForNumber(t *testing.T) {
	doc := "[cleanroom.monitoring]\ntop_processes = 10s\n"
	_, err := Parse("t.toml", []byte(doc), ParseOptions{LookupEnv: noEnv})
	want := `t.toml:2: top_processes = 10s: top_processes takes a whole number, not a duration`
	if err == nil || err.Error() != want {
		t.Errorf("Parse = %v, want %s", err, want)
	}
}
