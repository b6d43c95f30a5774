// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/internal/userfile"
	"github.com/crmon-dev/crmon/pkg/session"
)

// everyLimitDoc sets every limit pkg/session knows, in the run's table and
// (for those that are not host-wide) in a container entry, so that a limit
// added to session is tested here without a change.
func everyLimitDoc() string {
	var run, ctr strings.Builder
	run.WriteString("[cleanroom.resource_limits]\n")
	ctr.WriteString("\n[[cleanroom.resource_limits.containers]]\nname = \"db-*\"\n")
	for i, n := range session.LimitNames() {
		fmt.Fprintf(&run, "%s = %d\n", n, i+1)
		if session.LimitUnit(n) != session.UnitPercent {
			fmt.Fprintf(&ctr, "%s = %d\n", n, 10*(i+1))
		}
	}
	return run.String() + ctr.String()
}

// A file with every limit loads, to the limits session.ParseLimitsTOML
// reads from the same file: one table, one meaning.
func TestResourceLimitsLoad(t *testing.T) {
	full, err := os.ReadFile(filepath.Join(testdata, "full.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		doc  string
		want session.Limits // nil: as session reads it
	}{
		{"every limit, generated", everyLimitDoc(), nil},
		{"full.toml", string(full), fullConfig().ResourceLimits.Limits},
		{"units as strings", `[cleanroom.resource_limits]
max_cpu_usage_percent = "80%"
max_memory_usage_percent = 75
max_disk_usage_percent = 92.5
cpu_seconds = "1m30s"
peak_memory_bytes = "512MiB"
block_read_bytes = "1.5GB"
block_write_bytes = "64 KiB"
net_rx_bytes = "2kB"
net_tx_bytes = 4096
runqueue_wait_p99_seconds = "250ms"

[[cleanroom.resource_limits.containers]]
name = "db-*"
runqueue_wait_p99_seconds = 0.5
cpu_seconds = "2s"

[[cleanroom.resource_limits.containers]]
name = "/cache?"
peak_memory_bytes = "1Gi"
`, session.Limits{
			{Name: "max_cpu_usage_percent", Value: 80},
			{Name: "max_memory_usage_percent", Value: 75},
			{Name: "max_disk_usage_percent", Value: 92.5},
			{Name: "cpu_seconds", Value: 90},
			{Name: "peak_memory_bytes", Value: 512 << 20},
			{Name: "block_read_bytes", Value: 1.5e9},
			{Name: "block_write_bytes", Value: 64 << 10},
			{Name: "net_rx_bytes", Value: 2000},
			{Name: "net_tx_bytes", Value: 4096},
			{Name: "runqueue_wait_p99_seconds", Value: 0.25},
			{Name: "cpu_seconds", Container: "db-*", Value: 2},
			{Name: "runqueue_wait_p99_seconds", Container: "db-*", Value: 0.5},
			{Name: "peak_memory_bytes", Container: "/cache?", Value: 1 << 30},
		}},
		{"inline entries, zero is a limit", `[cleanroom.resource_limits]
net_tx_bytes = 0
containers = [{ name = "a", cpu_seconds = 1 }, { name = "b" }]
`, session.Limits{
			{Name: "net_tx_bytes", Value: 0},
			{Name: "cpu_seconds", Container: "a", Value: 1},
		}},
		{"no limits", "[cleanroom.resource_limits]\n", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			fromSession, err := session.ParseLimitsTOML([]byte(c.doc))
			if err != nil {
				t.Fatalf("session.ParseLimitsTOML: %v", err)
			}
			want := c.want
			if want == nil {
				want = fromSession
			}
			cfg, err := Parse("t.toml", []byte(c.doc), ParseOptions{Dir: testdata, LookupEnv: envOf(map[string]string{
				"CRMON_SLACK_URL": "https://hooks.example.com/x", "CRMON_HOOK_AUTH": "x", "CRMON_INFLUX_TOKEN": "x",
			})})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := cfg.ResourceLimits.Limits
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Limits (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(fromSession, got); diff != "" {
				t.Errorf("Limits against session.ParseLimitsTOML (-session +config):\n%s", diff)
			}
			host := map[string]float64{}
			for _, l := range got {
				if l.Container == "" && session.LimitUnit(l.Name) == session.UnitPercent {
					host[l.Name] = l.Value
				}
			}
			r := cfg.ResourceLimits
			if diff := cmp.Diff([]float64{host["max_cpu_usage_percent"], host["max_memory_usage_percent"], host["max_disk_usage_percent"]},
				[]float64{r.MaxCPUUsagePercent, r.MaxMemoryUsagePercent, r.MaxDiskUsagePercent}); diff != "" {
				t.Errorf("host limit fields (-want +got):\n%s", diff)
			}
		})
	}
}

// A problem in [cleanroom.resource_limits] is reported like any other:
// file, line, key and the fix, all of them in one run. session.ParseLimitsTOML
// rejects the same files.
func TestResourceLimitsErrors(t *testing.T) {
	type problem struct {
		Line int
		Key  string
		Msg  string
	}
	for _, c := range []struct {
		name string
		doc  string
		want []problem
		// sessionAccepts: the config is stricter than session here.
		sessionAccepts bool
	}{
		{"bad duration", `[cleanroom.resource_limits]
peak_memory_bytes = "1GiB"
cpu_seconds = "fast"
`, []problem{
			{3, "cleanroom.resource_limits.cpu_seconds", `cpu_seconds = "fast": bad duration "fast": want seconds like 1.5 or a duration like "1.5s", "250ms"`},
		}, false},
		{"bad values", `[cleanroom.resource_limits]
peak_memory_bytes = "32XB"
block_read_bytes = true
net_rx_bytes = -5
max_cpu_usage_percent = "eighty"
`, []problem{
			{2, "cleanroom.resource_limits.peak_memory_bytes", `peak_memory_bytes = "32XB": bad byte size "32XB": want an integer or a size like "32MiB", "1.5GB"`},
			{3, "cleanroom.resource_limits.block_read_bytes", `block_read_bytes = true: want a number or a string with a unit, not true or false`},
			{4, "cleanroom.resource_limits.net_rx_bytes", `net_rx_bytes = -5: value -5 must be a finite number >= 0`},
			{5, "cleanroom.resource_limits.max_cpu_usage_percent", `max_cpu_usage_percent = "eighty": bad percentage "eighty": want a number like 80 or "80%"`},
		}, false},
		{"unknown keys", `[cleanroom.resource_limits]
cpu_second = 10
max_cpu_usage_percent = 90.0
timeout = 60

[cleanroom.resource_limits.extra]
cpu_seconds = 1
`, []problem{
			{2, "cleanroom.resource_limits.cpu_second", `unknown key cpu_second in [cleanroom.resource_limits]; did you mean cpu_seconds?`},
			{4, "cleanroom.resource_limits.timeout", `unknown key timeout in [cleanroom.resource_limits]; the keys there are ` + strings.Join(session.LimitNames(), ", ") + `, containers`},
			{6, "cleanroom.resource_limits.extra", `unknown key extra in [cleanroom.resource_limits]; the keys there are ` + strings.Join(session.LimitNames(), ", ") + `, containers`},
		}, false},
		{"container entries", `[cleanroom.resource_limits]
cpu_seconds = 60

[[cleanroom.resource_limits.containers]]
name = "db-*"
max_cpu_usage_percent = 80
peak_memory_bytes = "256MiB"
peak_mem_bytes = "1GiB"

[[cleanroom.resource_limits.containers]]
cpu_seconds = 1

[[cleanroom.resource_limits.containers]]
name = "web-[0-9"
cpu_seconds = "soon"

[[cleanroom.resource_limits.containers]]
name = 5
`, []problem{
			{6, "cleanroom.resource_limits.containers[0].max_cpu_usage_percent", `max_cpu_usage_percent = 80: limit max_cpu_usage_percent is host-wide and cannot be set per container ("db-*"); move it to [cleanroom.resource_limits]`},
			{8, "cleanroom.resource_limits.containers[0].peak_mem_bytes", `unknown key peak_mem_bytes in [[cleanroom.resource_limits.containers]] (container limit "db-*"); did you mean peak_memory_bytes?`},
			{10, "cleanroom.resource_limits.containers[1].name", `container limit #2 has no name; add name = "GLOB", a pattern on container names such as "db-*"`},
			{14, "cleanroom.resource_limits.containers[2].name", `name: "web-[0-9" is not a valid glob pattern (unbalanced [ or a trailing \)`},
			{15, "cleanroom.resource_limits.containers[2].cpu_seconds", `cpu_seconds = "soon": bad duration "soon": want seconds like 1.5 or a duration like "1.5s", "250ms"`},
			{18, "cleanroom.resource_limits.containers[3].name", `name = 5: name takes a string in quotes, a pattern on container names such as "db-*" (container limit #4)`},
		}, false},
		{"containers not a list", `[cleanroom.resource_limits.containers]
name = "db-*"
cpu_seconds = 1
`, []problem{
			{1, "cleanroom.resource_limits.containers", `[cleanroom.resource_limits.containers] is a list: write [[cleanroom.resource_limits.containers]] (double brackets), one such header per container pattern`},
		}, false},
		{"containers a number", `[cleanroom.resource_limits]
containers = 2
`, []problem{
			{2, "cleanroom.resource_limits.containers", `containers: container limits are a list of tables; write [[cleanroom.resource_limits.containers]] with name = "GLOB" and the limits, once per pattern`},
		}, false},
		{"unquoted duration", `[cleanroom.resource_limits]
cpu_seconds = 1.5s

[[cleanroom.resource_limits.containers]]
name = "db-*"
runqueue_wait_p99_seconds = 20ms
`, []problem{
			{2, "cleanroom.resource_limits.cpu_seconds", `cpu_seconds = 1.5s: durations are strings; write cpu_seconds = "1.5s"`},
			{6, "cleanroom.resource_limits.containers[0].runqueue_wait_p99_seconds", `runqueue_wait_p99_seconds = 20ms: durations are strings; write runqueue_wait_p99_seconds = "20ms"`},
		}, false},
		{"twice", `[cleanroom.resource_limits]
cpu_seconds = 1
cpu_seconds = 2
`, []problem{
			{3, "cleanroom.resource_limits.cpu_seconds", `cpu_seconds = 2: cpu_seconds is already set on line 2; TOML allows each key once, so delete one`},
		}, false},
		// A host percentage over 100 can never be exceeded: a typo.
		{"percentage over 100", `[cleanroom.resource_limits]
max_disk_usage_percent = "120%"
`, []problem{
			{2, "cleanroom.resource_limits.max_disk_usage_percent", `max_disk_usage_percent = "120%": must be a percentage, 0-100`},
		}, false},
		// Numbers a measure can never reach are typos too, and a byte
		// count must fit the integer it is compared with.
		{"out of range", `[cleanroom.resource_limits]
net_tx_bytes = 1.5e300
net_rx_bytes = 9223372036854775807
peak_memory_bytes = "9EiB"
block_read_bytes = "10000000TB"
cpu_seconds = 1e300
runqueue_wait_p99_seconds = inf
max_cpu_usage_percent = nan

[[cleanroom.resource_limits.containers]]
name = "db-*"
block_write_bytes = 1e19
`, []problem{
			{2, "cleanroom.resource_limits.net_tx_bytes", `net_tx_bytes = 1.5e300: value 1.5e+300 is out of range; byte limits are from 0 to 9223372036854775808 (8 EiB)`},
			{4, "cleanroom.resource_limits.peak_memory_bytes", `peak_memory_bytes = "9EiB": bad byte size "9EiB": want an integer or a size like "32MiB", "1.5GB"`},
			{5, "cleanroom.resource_limits.block_read_bytes", `block_read_bytes = "10000000TB": bad byte size "10000000TB": byte limits are from 0 to 9223372036854775808 (8 EiB)`},
			{6, "cleanroom.resource_limits.cpu_seconds", `cpu_seconds = 1e300: value 1e+300 is out of range; limits in seconds are from 0 to 3153600000 (100 years)`},
			{7, "cleanroom.resource_limits.runqueue_wait_p99_seconds", `runqueue_wait_p99_seconds = inf: value +Inf must be a finite number >= 0`},
			{8, "cleanroom.resource_limits.max_cpu_usage_percent", `max_cpu_usage_percent = nan: must be a percentage, 0-100`},
			{12, "cleanroom.resource_limits.containers[0].block_write_bytes", `block_write_bytes = 1e19: value 1e+19 is out of range; byte limits are from 0 to 9223372036854775808 (8 EiB)`},
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("limits.toml", []byte(c.doc), ParseOptions{LookupEnv: noEnv})
			if err == nil {
				t.Fatal("Parse = nil error")
			}
			var got []problem
			for _, e := range Problems(err) {
				if e.File != "limits.toml" {
					t.Errorf("problem without the file: %#v", e)
				}
				got = append(got, problem{e.Line, e.Key, e.Message})
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("Parse problems (-want +got):\n%s", diff)
			}
			for i, line := range strings.Split(err.Error(), "\n") {
				if i < len(c.want) && !strings.HasPrefix(line, fmt.Sprintf("limits.toml:%d: ", c.want[i].Line)) {
					t.Errorf("error line %q does not start with the file and line %d", line, c.want[i].Line)
				}
			}
			_, serr := session.ParseLimitsTOML([]byte(c.doc))
			if c.sessionAccepts != (serr == nil) {
				t.Errorf("session.ParseLimitsTOML error = %v, want accepted = %v", serr, c.sessionAccepts)
			}
		})
	}
}

// Limits the caller adds after loading are checked by Validate, which names
// the table.
func TestResourceLimitsValidate(t *testing.T) {
	c := Default()
	c.ResourceLimits.Limits = session.Limits{
		{Name: "cpu_seconds", Value: 10},
		{Name: "max_memory_usage_percent", Value: 101},
		{Name: "peak_memory_bytes", Container: "[", Value: 1},
		{Name: "wall_seconds", Value: 1},
	}
	want := []string{
		`[cleanroom.resource_limits] max_memory_usage_percent = 101: must be a percentage, 0-100`,
		`[cleanroom.resource_limits] peak_memory_bytes = 1: bad container pattern "[": syntax error in pattern`,
		`[cleanroom.resource_limits] wall_seconds = 1: unknown limit "wall_seconds": valid limits are ` + strings.Join(session.LimitNames(), ", "),
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("Validate() (-want +got):\n%s", diff)
	}
}

// LoadLimits reads only [cleanroom.resource_limits]: the agent's config
// file, whose other tables may hold what only the agent can resolve,
// serves as a limits file; the limits' own problems are at their lines.
func TestLoadLimits(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.toml", `[cleanroom.monitoring]
collection_interval = 5s
[[cleanroom.monitoring.alerting.alert_channels]]
name = "slack"
type = "slack"
webhook_url_env = "ONLY_THE_AGENT_HAS_IT"

[cleanroom.resource_limits]
cpu_seconds = "90s"
[[cleanroom.resource_limits.containers]]
name = "db-*"
peak_memory_bytes = "512MiB"
`)
	ls, err := LoadLimits(good)
	if err != nil {
		t.Fatal(err)
	}
	want := session.Limits{{Name: "cpu_seconds", Value: 90}, {Name: "peak_memory_bytes", Container: "db-*", Value: 512 << 20}}
	if diff := cmp.Diff(want, ls); diff != "" {
		t.Errorf("LoadLimits (-want +got):\n%s", diff)
	}

	bad := writeFile(t, dir, "bad.toml", "[cleanroom.monitoring]\nretention_period = true\n[cleanroom.resource_limits]\ncpu_seconds = 1.5s\nnet_tx_bytes = 1.5e300\n")
	_, err = LoadLimits(bad)
	wantErr := []string{
		bad + `:4: cpu_seconds = 1.5s: durations are strings; write cpu_seconds = "1.5s"`,
		bad + `:5: net_tx_bytes = 1.5e300: value 1.5e+300 is out of range; byte limits are from 0 to 9223372036854775808 (8 EiB)`,
	}
	if err == nil {
		t.Fatal("LoadLimits = nil error")
	}
	if diff := cmp.Diff(wantErr, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("LoadLimits (-want +got):\n%s", diff)
	}

	if _, err := LoadLimits("/dev/zero"); !errors.Is(err, userfile.ErrNotRegular) {
		t.Errorf("LoadLimits(/dev/zero) = %v, want ErrNotRegular", err)
	}
}
