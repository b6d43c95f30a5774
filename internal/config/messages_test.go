// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/pkg/session"
)

// A file in which every value has the wrong type gets one problem per
// value, each at its line and key, in one run.
func TestEveryWrongTypeReported(t *testing.T) {
	full, err := os.ReadFile(filepath.Join(testdata, "full.toml"))
	if err != nil {
		t.Fatal(err)
	}
	kv := regexp.MustCompile(`^([a-z_]+) = (.*?)(\s+#.*)?$`)
	var doc []string
	want := map[int]string{} // line → key
	limits := false
	for i, line := range strings.Split(string(full), "\n") {
		if strings.HasPrefix(line, "[cleanroom.resource_limits") {
			limits = true
		}
		m := kv.FindStringSubmatch(line)
		if m == nil || limits {
			doc = append(doc, line)
			continue
		}
		// Each value becomes one of another type: strings, lists and
		// durations true, booleans a string, numbers and tables a
		// boolean or a number.
		var bad string
		switch v := m[2]; {
		case v == "true" || v == "false":
			bad = `"yes"`
		case strings.HasPrefix(v, "{"):
			bad = "7"
		default:
			bad = "true"
		}
		doc = append(doc, m[1]+" = "+bad)
		want[i+1] = m[1]
	}
	if len(want) < 45 {
		t.Fatalf("only %d values changed", len(want))
	}
	_, err = Parse("wrong.toml", []byte(strings.Join(doc, "\n")), ParseOptions{LookupEnv: noEnv})
	got := map[int]string{}
	for _, e := range Problems(err) {
		if _, dup := got[e.Line]; dup {
			t.Errorf("a second problem on line %d: %v", e.Line, e)
		}
		got[e.Line] = lastKey(e.Key)
		if !strings.HasPrefix(e.Message, lastKey(e.Key)+" = ") {
			t.Errorf("%v does not start with its key", e)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems by line (-want +got):\n%s", diff)
	}
}

// What a message echoes from the file is escaped and short; nothing of
// Go's own types shows; a byte order mark is no problem.
func TestMessages(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, c := range []struct {
		name, doc string
		want      []string
	}{
		{"durations as booleans", "[cleanroom.monitoring]\nretention_period = true\n[cleanroom.monitoring.containers]\nidle_refresh = true\n", []string{
			`t.toml:2: retention_period = true: durations are strings with a unit; e.g. retention_period = "30s"`,
			`t.toml:4: idle_refresh = true: durations are strings with a unit; e.g. idle_refresh = "30s"`,
		}},
		{"tables for scalars", "[cleanroom.monitoring]\ncollection_interval = {}\ntop_processes = {a = 1}\n", []string{
			`t.toml:2: collection_interval = {}: durations are strings with a unit; e.g. collection_interval = "30s"`,
			`t.toml:3: top_processes = {a = 1}: top_processes takes a whole number`,
		}},
		{"headers of the wrong kind", "[cleanroom.monitoring.collection_interval]\na = 1\n[cleanroom.monitoring]\ntop_processes = \"x\"\n[[cleanroom.monitoring.thresholds]]\n[cleanroom.monitoring.ebpf.sched.x]\n", []string{
			`t.toml:1: [cleanroom.monitoring.collection_interval]: collection_interval takes a duration string such as "30s", not a table`,
			`t.toml:4: top_processes = "x": top_processes takes a whole number`,
			`t.toml:5: [[cleanroom.monitoring.thresholds]]: thresholds is one table, not a list; write [cleanroom.monitoring.thresholds] (single brackets)`,
			`t.toml:6: [cleanroom.monitoring.ebpf.sched.x]: sched takes true or false, not a table`,
		}},
		{"dotted keys through a value", "[cleanroom.monitoring]\nstore.path.x = 1\nstore.max_bytes = true\n", []string{
			`t.toml:2: store.path.x = 1: path takes a string in quotes, not a table`,
			`t.toml:3: store.max_bytes = true: max_bytes takes a whole number`,
		}},
		{"limits of the wrong kind", "[cleanroom.resource_limits]\ncpu_seconds = {}\nnet_rx_bytes = [1, 2]\nblock_read_bytes = true\n", []string{
			`t.toml:2: cpu_seconds = {}: want a number or a string with a unit, not a table`,
			`t.toml:3: net_rx_bytes = [1, 2]: want a number or a string with a unit, not a list`,
			`t.toml:4: block_read_bytes = true: want a number or a string with a unit, not true or false`,
		}},
		{"control characters", "[cleanroom.monitoring.ebpf]\nmode = \"\\u001b[2J\\u202e\"\n\"k\\u001bey\" = 1\n", []string{
			`t.toml:2: mode = "\x1b[2j\u202e": use one of "auto", "required", "disabled"`,
			`t.toml:3: unknown key k\x1bey in [cleanroom.monitoring.ebpf]; the keys there are ` + strings.Join(knownKeys([]string{"cleanroom", "monitoring", "ebpf"}), ", "),
		}},
		{"control characters in a line that does not parse", "[cleanroom.monitoring]\ncollection_interval = \"\x1b[31mred\"\n", []string{
			`t.toml:2: collection_interval = "\x1b[31mred": basic strings cannot have control characters; this is not valid TOML`,
		}},
		{"long values", "[cleanroom.monitoring.ebpf]\ninclude = [\"" + long + "\"]\nmax_series = \"" + long + "\"\n", []string{
			`t.toml:2: include: "` + long[:80] + `"… (cut): cgroup patterns match paths in the cgroup2 hierarchy and start with /; e.g. "/docker/*"`,
			`t.toml:3: max_series = "` + long[:79] + `… (cut): max_series takes a whole number`,
		}},
		{"long keys", "[cleanroom.monitoring]\n\"" + long + "\" = 1\nstore.path.\"" + long + "\" = 1\n[cleanroom.resource_limits]\n" + long + " = 1\n", []string{
			`t.toml:2: unknown key ` + long[:80] + `… (cut) in [cleanroom.monitoring]; the keys there are ` + strings.Join(knownKeys([]string{"cleanroom", "monitoring"}), ", "),
			`t.toml:3: store.path."` + long[:68] + `… (cut) = 1: path takes a string in quotes, not a table`,
			`t.toml:5: unknown key ` + long[:80] + `… (cut) in [cleanroom.resource_limits]; the keys there are ` + strings.Join(session.LimitNames(), ", ") + `, containers`,
		}},
		{"nested too deep", "[cleanroom.monitoring]\n\ninclude = " + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "\n", []string{
			`t.toml:3: values or keys nest more than 32 deep here; crmon's own keys nest 6 deep, so is this the right file?`,
		}},
		{"a key of too many parts", "a" + strings.Repeat(".a", 10000) + " = 1\n", []string{
			`t.toml:1: values or keys nest more than 32 deep here; crmon's own keys nest 6 deep, so is this the right file?`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(c.doc), ParseOptions{LookupEnv: noEnv})
			if err == nil {
				t.Fatal("Parse = nil error")
			}
			got := strings.Split(err.Error(), "\n")
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
			for _, line := range got {
				if strings.Contains(line, "map[") || strings.Contains(line, "interface {}") {
					t.Errorf("Go's types in %q", line)
				}
			}
		})
	}
}

func TestByteOrderMark(t *testing.T) {
	doc := "\uFEFF[cleanroom.monitoring]\ncollection_interval = \"5s\"\n"
	cfg, err := Parse("t.toml", []byte(doc), ParseOptions{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Monitoring.CollectionInterval.String(); got != "5s" {
		t.Errorf("collection_interval = %s, want 5s", got)
	}
	// Lines still count from the first.
	_, err = Parse("t.toml", []byte("\uFEFF[cleanroom.monitoring]\ncollection_interval = 5\n"), ParseOptions{LookupEnv: noEnv})
	if p := Problems(err); len(p) != 1 || p[0].Line != 2 {
		t.Errorf("problems = %v, want one on line 2", err)
	}
}

// A file nested deep, or of very many keys or list items, is refused
// before the TOML parser sees it: parsing cost 177 MB for 20 KB nested
// 10 000 deep, and about 100 MB and seconds for 1 MB of keys.
func TestCostlyDocumentsRefusedCheaply(t *testing.T) {
	items := func(format string, n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, format, i)
		}
		return b.String()
	}
	for _, c := range []struct{ doc, want string }{
		{"x = " + strings.Repeat("[", 10000) + strings.Repeat("]", 10000), "nest more than " + strconv.Itoa(maxNesting) + " deep"},
		{"x = " + strings.Repeat("{a=", 5000) + "1" + strings.Repeat("}", 5000), "nest more than " + strconv.Itoa(maxNesting) + " deep"},
		{"a" + strings.Repeat(".a", 10000) + " = 1", "nest more than " + strconv.Itoa(maxNesting) + " deep"},
		{"[a" + strings.Repeat(".a", 10000) + "]", "nest more than " + strconv.Itoa(maxNesting) + " deep"},
		{"[cleanroom.monitoring]\n" + items("k%d = 1\n", 90000), "more than 4096 keys, tables and list items"},
		{"[cleanroom.monitoring]\nx = {" + items("k%d = 1, ", 60000) + "}", "more than 4096 keys, tables and list items"},
		{"[cleanroom.monitoring.ebpf]\ninclude = [" + items(`"/%d", `, 100000) + "]", "more than 4096 keys, tables and list items"},
		{items("[t%d]\n", 100000), "more than 4096 keys, tables and list items"},
	} {
		doc := []byte(c.doc)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Parse("t.toml", doc, ParseOptions{LookupEnv: noEnv})
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.30q…: err = %v, want %q", c.doc, err, c.want)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 256<<10 {
			t.Errorf("%.30q…: %d bytes allocated to refuse %d", c.doc, n, len(doc))
		}
	}
}
