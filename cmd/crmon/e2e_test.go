// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// volatile are the families whose values depend on when and where the test
// runs, not on the fixture tree: the agent's own process, timings, clocks
// (timex reads the running kernel's clock with adjtimex, not a file).
var volatile = regexp.MustCompile(`^(go_|crmon_process_|process_|promhttp_|crmon_build_info|crmon_collector_duration_seconds|crmon_collection_duration_seconds|crmon_last_collection_timestamp_seconds|crmon_collections_total|node_time_|node_timex_|node_scrape_|crmon_store_(head_series|samples_appended_total|ticks_skipped_total|bytes|oldest_timestamp_seconds|newest_timestamp_seconds))`)

// TestEndToEnd runs the agent on the fixture trees, scrapes /metrics and
// compares it with testdata/e2e-output.txt (node_exporter's end-to-end
// test, for crmon). `go test ./cmd/crmon -run TestEndToEnd -args -update`
// rewrites the golden file.
func TestEndToEnd(t *testing.T) {
	root, err := filepath.Abs("../../testdata")
	if err != nil {
		t.Fatal(err)
	}
	p := startAgent(t,
		"--path.procfs", filepath.Join(root, "proc"),
		"--path.sysfs", filepath.Join(root, "sys"),
		"--path.rootfs", filepath.Join(root, "rootfs"),
		"--ebpf", "disabled",
		"--collector.containers=false",
		"--collector.filesystem.statfs=false",
		"--collection-interval", "1h",
	)
	scrape := p.get(t, "/metrics")
	testenv.CheckPromtool(t, []byte(scrape), filepath.Join(root, "proc", "meminfo"))

	got := stable(scrape)
	golden := filepath.Join(root, "e2e-output.txt")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -args -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("/metrics on the fixture tree differs from %s (-want +got):\n%s", golden, diff)
	}
}

// stable drops the volatile families, comments included.
func stable(scrape string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(scrape, "\n") {
		name := line
		if strings.HasPrefix(line, "# ") {
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			name = f[2]
		}
		if line == "" || volatile.MatchString(name) {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}
