// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/pkg/session"
)

// TestReportFromHistory runs a container that writes 16 MiB with O_DIRECT
// and exits 2 s later, under an agent with its probes, then asks crmon report for
// the window it lived in: the report names it, with the bytes it wrote
// (eBPF, charged to its blkcg), its CPU, its end; the HTML has its plots;
// a window before it started does not list it.
func TestReportFromHistory(t *testing.T) {
	dockertest.Require(t)
	p := startAgent(t, "--config", lostCompletionConfig(t), "--collection-interval", "1s", "--ebpf", "required")
	const direct = 16 << 20
	name := fmt.Sprintf("crmon-report-writer-%d", os.Getpid())
	before := time.Now()
	time.Sleep(2 * time.Second)
	from := time.Now()
	id := dockertest.Run(t, []string{"--name", name, "--network", "none"}, "sh", "-c",
		fmt.Sprintf("dd if=/dev/zero of=/tmp/f bs=1M count=%d oflag=direct 2>/dev/null; sleep 2", direct>>20))
	dockertest.Docker(t, "wait", id)
	time.Sleep(lostCompletionAfter + 3*time.Second) // the final counts reach a tick
	to := time.Now()

	dir := t.TempDir()
	jf, hf := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	_, stderr, code := run(t, "report", "--web.listen-address", p.addr, "--from", from.Format(time.RFC3339Nano), "--to", strconv.FormatInt(to.Unix()+1, 10),
		"--container", "crmon-report-*", "--json", jf, "--html", hf)
	if code != 0 {
		t.Fatalf("crmon report: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, name) {
		t.Errorf("the summary does not name %s:\n%s", name, stderr)
	}
	b, err := os.ReadFile(jf)
	if err != nil {
		t.Fatal(err)
	}
	var rep session.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Containers) != 1 || rep.Containers[0].Name != name {
		t.Fatalf("containers %+v, want %s alone", rep.Containers, name)
	}
	c := rep.Containers[0]
	if c.BlockWriteBytes < direct || float64(c.BlockWriteBytes) > direct*1.02 {
		t.Errorf("block_write_bytes = %d, want 0 to +2%% of %d", c.BlockWriteBytes, direct)
	}
	if c.CPUSeconds <= 0 || c.FinishedAt.IsZero() || !c.FinishedAt.Before(to) {
		t.Errorf("cpu %v s, finished %v: want some CPU and its end inside the window", c.CPUSeconds, c.FinishedAt)
	}
	if rep.Totals.BlockWriteBytes != c.BlockWriteBytes || len(rep.Sources) != 1 || rep.Sources[0] != "ebpf" {
		t.Errorf("totals %d bytes, sources %v", rep.Totals.BlockWriteBytes, rep.Sources)
	}
	html, err := os.ReadFile(hf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "container "+name) || !strings.Contains(string(html), "<svg") {
		t.Errorf("the HTML report has no plots of %s", name)
	}

	out, stderr, code := run(t, "report", "--web.listen-address", p.addr, "--from", before.Format(time.RFC3339Nano), "--to", from.Add(-500*time.Millisecond).Format(time.RFC3339Nano), "--json", "-", "--quiet")
	if code != 0 || strings.Contains(out, name) {
		t.Errorf("a window before the container: exit %d, names it: %v\n%s", code, strings.Contains(out, name), stderr)
	}
	_, stderr, code = run(t, "report", "--web.listen-address", p.addr, "--from", "now", "--to", "1h")
	if code != 2 || !strings.Contains(stderr, "not after") {
		t.Errorf("an empty window: exit %d\n%s", code, stderr)
	}
}
