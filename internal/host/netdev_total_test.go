// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

const netDevDocker = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    5000      50    0    0    0     0          0         0     3000      30    0    0    0     0       0          0
docker0:   1000      10    0    0    0     0          0         0     4000      40    0    0    0     0       0          0
vethab12:  4000      40    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
`

// TestNetworkTotals checks that the host's network totals count a
// container's traffic once, on the NIC, and not again on the bridge and
// the veth it crossed; without a physical NIC (a network namespace of its
// own) every interface but loopback counts.
func TestNetworkTotals(t *testing.T) {
	type totals struct{ Sent, Received, PacketsSent, PacketsReceived uint64 }
	for _, tc := range []struct {
		name     string
		physical []string
		want     totals
	}{
		{"host", []string{"eth0"}, totals{3000, 5000, 30, 50}},
		{"own netns", nil, totals{3000 + 4000 + 1000, 5000 + 1000 + 4000, 80, 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc, sys := t.TempDir(), t.TempDir()
			if err := os.MkdirAll(filepath.Join(proc, "net"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(proc, "net/dev"), []byte(netDevDocker), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"lo", "eth0", "docker0", "vethab12"} {
				if err := os.MkdirAll(filepath.Join(sys, "class/net", n), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range tc.physical {
				if err := os.Symlink("../../../devices/pci0000:00/0000:00:03.0", filepath.Join(sys, "class/net", n, "device")); err != nil {
					t.Fatal(err)
				}
			}
			sh := &shared{diskRates: map[uint64]ioRates{}, speeds: map[string]uint64{}}
			c, err := newNetdevCollector(collect.Options{Paths: collect.Paths{ProcFS: proc, SysFS: sys}}, Options{}, sh)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Update(context.Background(), time.Now()); err != nil {
				t.Fatal(err)
			}
			var m metrics.ResourceMetrics
			c.Fill(&m)
			n := m.Network
			got := totals{n.BytesSent, n.BytesReceived, n.PacketsSent, n.PacketsReceived}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("network totals (-want +got):\n%s", diff)
			}
			if len(n.Interfaces) != 4 {
				t.Errorf("%d interfaces listed, want all 4", len(n.Interfaces))
			}
		})
	}
}
