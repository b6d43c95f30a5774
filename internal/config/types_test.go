// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A value of the wrong type says what the key takes; all of them are
// reported in one run.
func TestWrongTypes(t *testing.T) {
	doc := `[cleanroom.monitoring]
thresholds = 5
exporters = "prometheus"

[cleanroom.monitoring.ebpf]
include = "/docker/*"
sched = 1

[cleanroom.monitoring.store]
max_bytes = 1.5
path = 7

[[cleanroom.monitoring.alerting.alert_rules]]
name = "r"
resource = "cpu"
labels = "team=ci"
threshold = "90"
for = 30
`
	_, err := Parse("t.toml", []byte(doc), ParseOptions{LookupEnv: noEnv})
	want := []string{
		`t.toml:2: thresholds = 5: thresholds takes a table`,
		`t.toml:3: exporters = "prometheus": exporters takes a list of tables`,
		`t.toml:6: include = "/docker/*": include takes a list of strings; e.g. include = ["a", "b"]`,
		`t.toml:7: sched = 1: sched takes true or false`,
		`t.toml:10: max_bytes = 1.5: max_bytes takes a whole number`,
		`t.toml:11: path = 7: path takes a string in quotes; e.g. path = "…"`,
		`t.toml:16: labels = "team=ci": labels takes a table; e.g. labels = { key = "value" }`,
		`t.toml:17: threshold = "90": threshold takes a number; write threshold = 90`,
		`t.toml:18: for = 30: durations are strings with a unit; write for = "30s" (or "m", "h", "d")`,
	}
	if err == nil {
		t.Fatal("Parse = nil error")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestURLChecks(t *testing.T) {
	for _, c := range []struct {
		in         string
		http, dock string // "" is valid
	}{
		{"http://p:9090/api/v1/write", "", ""},
		{"https://p", "", ""},
		{"http://", "has no host", "has no host"},
		{"p:9090", "must be an http:// or https:// URL", "must be unix://PATH or tcp://HOST:PORT"},
		{"%zz", "is not a URL", "is not a URL"},
		{"unix:///var/run/docker.sock", "must be an http:// or https:// URL", ""},
		{"unix://", "must be an http:// or https:// URL", "a unix:// address needs the socket's path"},
		{"tcp://127.0.0.1:2375", "must be an http:// or https:// URL", ""},
	} {
		if got := checkHTTPURL(c.in); got != c.http {
			t.Errorf("checkHTTPURL(%q) = %q, want %q", c.in, got, c.http)
		}
		if got := checkDockerHost(c.in); got != c.dock {
			t.Errorf("checkDockerHost(%q) = %q, want %q", c.in, got, c.dock)
		}
	}
}
