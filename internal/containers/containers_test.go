// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crmon-dev/crmon/pkg/metrics"
)

func TestParseNetDev(t *testing.T) {
	in := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    1462      17    1    2    0     0          0         0  4300000    3000    3    4    0     0       0          0
  eth1: 5 6 7 8 0 0 0 0 9 10 11 12 0 0 0 0
`
	want := []netIface{
		{name: "eth0", rxBytes: 1462, rxPackets: 17, rxErrors: 1, rxDrops: 2, txBytes: 4300000, txPackets: 3000, txErrors: 3, txDrops: 4},
		{name: "eth1", rxBytes: 5, rxPackets: 6, rxErrors: 7, rxDrops: 8, txBytes: 9, txPackets: 10, txErrors: 11, txDrops: 12},
	}
	got := parseNetDev([]byte(in), nil)
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(netIface{})); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	// A second parse reuses the entries and their names.
	again := parseNetDev([]byte(in), got)
	if &again[0] != &got[0] {
		t.Error("second parse did not reuse the slice")
	}
	b := []byte(in)
	if n := testing.AllocsPerRun(100, func() { parseNetDev(b, got) }); n != 0 {
		t.Errorf("parseNetDev allocates %v times per call on unchanged interfaces, want 0", n)
	}
}

func TestSanitizeLabel(t *testing.T) {
	for in, want := range map[string]string{
		"com.docker.compose.project": "com_docker_compose_project",
		"team":                       "team",
		"a-b/c:d":                    "a_b_c_d",
	} {
		if got := sanitizeLabel(in); got != want {
			t.Errorf("sanitizeLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWatched(t *testing.T) {
	c := &Collector{opts: Options{Include: []string{"ci-*", "build"}, Exclude: []string{"ci-cache*"}}}
	for name, want := range map[string]bool{
		"ci-job-1": true, "build": true, "ci-cache-1": false, "other": false,
	} {
		if got := c.watched(name); got != want {
			t.Errorf("watched(%q) = %v, want %v", name, got, want)
		}
	}
	if _, err := New(Options{Include: []string{"["}}); err == nil {
		t.Error("New accepted a bad pattern")
	}
	if _, err := New(Options{EnableMetrics: []string{"pressure", "nope"}}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("New with an unknown metric group: err = %v", err)
	}
}

// TestNoEngine: without an engine the collector still builds, reports
// crmon_docker_up 0 and serves an empty snapshot.
func TestNoEngine(t *testing.T) {
	c, err := New(Options{DockerHost: "unix://" + t.TempDir() + "/none.sock"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready 10s after the engine failed to answer")
	}
	if c.Up() {
		t.Fatal("up without an engine")
	}
	if err := c.Update(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	var m metrics.ResourceMetrics
	c.Fill(&m)
	if m.Containers.TotalContainers != 0 || m.Containers.ContainerDetails == nil {
		t.Errorf("snapshot %+v, want no containers and an empty list", m.Containers)
	}
	const want = `# HELP crmon_docker_up Whether the Docker engine answered crmon's last request (1) or not (0).
# TYPE crmon_docker_up gauge
crmon_docker_up 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "crmon_docker_up"); err != nil {
		t.Error(err)
	}
}
