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
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// parseSockstat calls fn for each "PROTO: key value key value" pair of
// /proc/net/sockstat or sockstat6.
func parseSockstat(b []byte, fn func(proto, key []byte, v uint64)) error {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			continue
		}
		proto, rest := line[:i], line[i+1:]
		for {
			var k, v []byte
			k, rest = nextField(rest)
			v, rest = nextField(rest)
			if len(k) == 0 {
				break
			}
			n, ok := parseUint(v)
			if !ok {
				return fmt.Errorf("parsing sockstat %s %s: bad value %q", proto, k, v)
			}
			fn(proto, k, n)
		}
	}
	return nil
}

type sockstatCollector struct {
	metricSet
	log      *slog.Logger
	r        *reader
	files    [2]openFile
	pageSize float64
	descs    map[string]*metricDesc
	key      []byte
}

func newSockstatCollector(o collect.Options) (*sockstatCollector, error) {
	return &sockstatCollector{
		log:      logger(o),
		r:        newReader(1024),
		files:    [2]openFile{{path: procNetPath(o.Paths.ProcFS, "sockstat")}, {path: procNetPath(o.Paths.ProcFS, "sockstat6")}},
		pageSize: float64(os.Getpagesize()),
		descs:    map[string]*metricDesc{},
	}, nil
}

func (c *sockstatCollector) Name() string { return "sockstat" }

func (c *sockstatCollector) desc(proto, key []byte) *metricDesc {
	c.key = append(append(append(c.key[:0], proto...), '_'), key...)
	if d, ok := c.descs[string(c.key)]; ok {
		return d
	}
	n := string(c.key)
	help := "Number of " + string(proto) + " sockets in state " + string(key) + "."
	if n == "sockets_used" {
		help = "Number of IPv4 sockets in use."
	}
	d := newDesc("sockstat", n, help)
	c.descs[n] = d
	return d
}

func (c *sockstatCollector) Update(_ context.Context, _ time.Time) error {
	c.begin()
	found := 0
	for i := range c.files {
		b, err := c.files[i].read(c.r)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading sockstat: %w", err)
		}
		found++
		err = parseSockstat(b, func(proto, key []byte, v uint64) {
			c.add(c.desc(proto, key), prometheus.GaugeValue, float64(v), nil)
			// mem is in pages; node_exporter adds it in bytes.
			if string(key) == "mem" {
				c.add(c.desc(proto, []byte("mem_bytes")), prometheus.GaugeValue, float64(v)*c.pageSize, nil)
			}
		})
		if err != nil {
			return err
		}
	}
	c.publish(nil)
	if found == 0 {
		return noData(c.log, "sockstat", fmt.Errorf("reading %s: %w", c.files[0].path, fs.ErrNotExist))
	}
	return nil
}

func (c *sockstatCollector) Fill(*metrics.ResourceMetrics) {}

// Close closes the files kept open.
func (c *sockstatCollector) Close() error {
	return errors.Join(c.files[0].Close(), c.files[1].Close())
}
