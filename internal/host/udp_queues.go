// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// parseUDPQueues sums the tx_queue:rx_queue column of /proc/net/udp{,6}.
func parseUDPQueues(b []byte) (tx, rx uint64, err error) {
	_, b = nextLine(b) // header
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		rest := line
		var f []byte
		for i := 0; i < 5; i++ {
			f, rest = nextField(rest)
		}
		if len(f) == 0 {
			continue
		}
		i := bytes.IndexByte(f, ':')
		if i < 0 {
			return 0, 0, fmt.Errorf("parsing udp: bad queue %q", f)
		}
		t, ok1 := parseHex(f[:i])
		r, ok2 := parseHex(f[i+1:])
		if !ok1 || !ok2 {
			return 0, 0, fmt.Errorf("parsing udp: bad queue %q", f)
		}
		tx += t
		rx += r
	}
	return tx, rx, nil
}

// udpQueuesCollector sums the queues of /proc/net/udp and udp6. Reading
// either walks every slot of the kernel's UDP hash table, sockets or not
// (on a 2-core, 24 GiB host without a UDP socket: 31 µs a file in a tight
// loop, 145 µs a tick for the two in the agent, the costliest host read
// of a tick), so each is read only while sockstat says its family has
// sockets in use; with none, its queues are 0. The files stay open: an
// open of a /proc/net file builds its dentry and inode anew each time.
type udpQueuesCollector struct {
	metricSet
	log   *slog.Logger
	r     *reader
	files [2]openFile // udp, udp6
	// socks are sockstat and sockstat6, with the protocol each counts
	// the family's sockets under.
	socks  [2]openFile
	protos [2]string
	desc   *metricDesc
	labels [2][2][]string // [v4,v6][tx,rx]
}

func newUDPQueuesCollector(o collect.Options) (*udpQueuesCollector, error) {
	return &udpQueuesCollector{
		log:    logger(o),
		r:      newReader(4096),
		files:  [2]openFile{{path: procNetPath(o.Paths.ProcFS, "udp")}, {path: procNetPath(o.Paths.ProcFS, "udp6")}},
		socks:  [2]openFile{{path: procNetPath(o.Paths.ProcFS, "sockstat")}, {path: procNetPath(o.Paths.ProcFS, "sockstat6")}},
		protos: [2]string{"UDP", "UDP6"},
		desc:   newDesc("udp", "queues", "Number of allocated memory in the kernel for UDP datagrams in bytes.", "ip", "queue"),
		labels: [2][2][]string{
			{{"v4", "tx"}, {"v4", "rx"}},
			{{"v6", "tx"}, {"v6", "rx"}},
		},
	}, nil
}

func (c *udpQueuesCollector) Name() string { return "udp_queues" }

func (c *udpQueuesCollector) Update(_ context.Context, _ time.Time) error {
	c.begin()
	found := 0
	for i := range c.files {
		var tx, rx uint64
		if c.inUse(i) {
			b, err := c.files[i].read(c.r)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("reading udp queues: %w", err)
			}
			if tx, rx, err = parseUDPQueues(b); err != nil {
				return err
			}
		}
		found++
		c.add(c.desc, prometheus.GaugeValue, float64(tx), c.labels[i][0])
		c.add(c.desc, prometheus.GaugeValue, float64(rx), c.labels[i][1])
	}
	c.publish(nil)
	if found == 0 {
		return noData(c.log, "udp_queues", fmt.Errorf("reading %s: %w", c.files[0].path, fs.ErrNotExist))
	}
	return nil
}

// inUse reports whether family i may have sockets: false only when its
// sockstat file says none are in use. A socket is in the file that lists
// the family's queues only while it is bound, and sockstat counts it from
// then too.
func (c *udpQueuesCollector) inUse(i int) bool {
	b, err := c.socks[i].read(c.r)
	if err != nil {
		return true
	}
	n, found := uint64(0), false
	_ = parseSockstat(b, func(proto, key []byte, v uint64) {
		if string(proto) == c.protos[i] && string(key) == "inuse" {
			n, found = v, true
		}
	})
	return !found || n > 0
}

// Close closes the files kept open.
func (c *udpQueuesCollector) Close() error {
	return errors.Join(c.files[0].Close(), c.files[1].Close(), c.socks[0].Close(), c.socks[1].Close())
}

func (c *udpQueuesCollector) Fill(*metrics.ResourceMetrics) {}
