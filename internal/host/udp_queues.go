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

type udpQueuesCollector struct {
	metricSet
	log    *slog.Logger
	r      *reader
	files  [2]cpath
	desc   *metricDesc
	labels [2][2][]string // [v4,v6][tx,rx]
}

func newUDPQueuesCollector(o collect.Options) (*udpQueuesCollector, error) {
	return &udpQueuesCollector{
		log:   logger(o),
		r:     newReader(4096),
		files: [2]cpath{mkpath(o.Paths.ProcFS, "net/udp"), mkpath(o.Paths.ProcFS, "net/udp6")},
		desc:  newDesc("udp", "queues", "Number of allocated memory in the kernel for UDP datagrams in bytes.", "ip", "queue"),
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
	for i, p := range c.files {
		b, err := c.r.read(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading udp queues: %w", err)
		}
		tx, rx, err := parseUDPQueues(b)
		if err != nil {
			return err
		}
		found++
		c.add(c.desc, prometheus.GaugeValue, float64(tx), c.labels[i][0])
		c.add(c.desc, prometheus.GaugeValue, float64(rx), c.labels[i][1])
	}
	c.publish(nil)
	if found == 0 {
		return noData(c.log, "udp_queues", fmt.Errorf("reading %s: %w", c.files[0], fs.ErrNotExist))
	}
	return nil
}

func (c *udpQueuesCollector) Fill(*metrics.ResourceMetrics) {}
