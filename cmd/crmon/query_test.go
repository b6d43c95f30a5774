// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"strings"
	"testing"
	"time"
)

// TestQueryCommand runs crmon query against a running agent: an instant
// query's table, a range query's points, JSON, and the errors a user can
// make.
func TestQueryCommand(t *testing.T) {
	p := startAgent(t, "--collection-interval", "200ms", "--ebpf", "disabled", "--collector.containers=false")
	time.Sleep(1500 * time.Millisecond)
	out, stderr, code := run(t, "query", "--web.listen-address", p.addr, "crmon_collection_interval_seconds")
	if code != 0 || !strings.Contains(out, "SERIES") || !strings.Contains(out, "crmon_collection_interval_seconds  0.2") {
		t.Errorf("instant: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = run(t, "query", "--web.listen-address", p.addr, "--start", "1s", "--step", "200ms", "crmon_collection_interval_seconds")
	if code != 0 || strings.Count(out, "crmon_collection_interval_seconds") < 4 {
		t.Errorf("range: exit %d, want a row per point\n%s%s", code, out, stderr)
	}
	out, stderr, code = run(t, "query", "--web.listen-address", p.addr, "--json", "vector(2)")
	if code != 0 || !strings.Contains(out, `"resultType": "vector"`) || !strings.Contains(out, `"2"`) {
		t.Errorf("json: exit %d\n%s%s", code, out, stderr)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"rate("}, 1, "parse error"},
		{[]string{"--time", "1", "--start", "1h", "up"}, 2, "one or the other"},
		{[]string{"--start", "yesterday", "up"}, 2, "--start"},
		{[]string{"--end", "now", "up"}, 2, "needs --start"},
		{[]string{}, 2, "one PromQL expression"},
	} {
		_, stderr, code := run(t, append([]string{"query", "--web.listen-address", p.addr}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("crmon query %v: exit %d, want %d with %q:\n%s", c.args, code, c.code, c.msg, stderr)
		}
	}
}
