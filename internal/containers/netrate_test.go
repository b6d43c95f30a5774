// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"fmt"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/pkg/metrics"
)

// TestContainerNetworkRate checks the snapshot's per-container network
// rate, which the container_network alert resource compares: both
// directions of every interface between two reads, none for a container
// that stopped, and no jump when a counter goes back.
func TestContainerNetworkRate(t *testing.T) {
	netDev := func(rx0, tx0, rx1, tx1 uint64) []byte {
		return fmt.Appendf(nil, `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0
  eth0: %d 1 0 0 0 0 0 0 %d 1 0 0 0 0 0 0
  eth1: %d 1 0 0 0 0 0 0 %d 1 0 0 0 0 0 0
`, rx0, tx0, rx1, tx1)
	}
	t0 := time.Unix(1_700_000_000, 0)
	ct := newContainer("a1")
	ct.name, ct.state = "net", "running"
	c := &Collector{sample: []*container{ct}}
	rate := func() uint64 {
		return fillOne(c).NetworkBytesPerSec
	}

	ct.net = parseNetDev(netDev(1000, 2000, 0, 0), ct.net)
	ct.accountNet(t0)
	if r := rate(); r != 0 {
		t.Errorf("rate after one read = %d, want 0", r)
	}
	// 2 s later: +3000 received, +5000 sent on eth0, +2000 on eth1.
	ct.net = parseNetDev(netDev(4000, 7000, 1000, 1000), ct.net)
	ct.accountNet(t0.Add(2 * time.Second))
	if r, want := rate(), uint64((3000+5000+2000)/2); r != want {
		t.Errorf("rate = %d B/s, want %d", r, want)
	}
	// A counter that went back (interface replaced) does not make a rate.
	ct.net = parseNetDev(netDev(10, 10, 0, 0), ct.net)
	ct.accountNet(t0.Add(3 * time.Second))
	if r := rate(); r != 5000 {
		t.Errorf("rate after a counter went back = %d, want the previous 5000", r)
	}
	ct.state = "exited"
	if r := rate(); r != 0 {
		t.Errorf("a stopped container's rate = %d, want 0", r)
	}
}

func fillOne(c *Collector) (d metrics.ContainerDetailMetrics) {
	var m metrics.ResourceMetrics
	c.Fill(&m)
	return m.Containers.ContainerDetails[0]
}
