// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// selinuxCollector reports whether selinuxfs is mounted and, if so, the
// enforcing mode, from <sysfs>/fs/selinux/enforce.
type selinuxCollector struct {
	metricSet
	log              *slog.Logger
	r                *reader
	enforce          cpath
	enabled, current *metricDesc
	// check paces the looks at enforce on a host without SELinux, which
	// cannot gain it without a reboot; enabled stays 0 in between.
	check recheck
}

func newSELinuxCollector(o collect.Options) (*selinuxCollector, error) {
	return &selinuxCollector{
		log:     logger(o),
		r:       newReader(16),
		enforce: mkpath(o.Paths.SysFS, "fs/selinux/enforce"),
		enabled: newDesc("selinux", "enabled", "SELinux is enabled, 1 is true, 0 is false"),
		current: newDesc("selinux", "current_mode", "Current SELinux enforcement mode"),
	}, nil
}

func (c *selinuxCollector) Name() string { return "selinux" }

func (c *selinuxCollector) Update(_ context.Context, now time.Time) error {
	if !c.check.due(now) {
		return nil
	}
	c.begin()
	b, err := c.r.read(c.enforce)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			c.check.wait(now)
		}
		c.add(c.enabled, prometheus.GaugeValue, 0, nil)
		c.publish(nil)
		return nil
	}
	c.check.reset()
	c.add(c.enabled, prometheus.GaugeValue, 1, nil)
	if v, ok := parseInt(bytes.TrimSpace(b)); ok {
		c.add(c.current, prometheus.GaugeValue, float64(v), nil)
	}
	c.publish(nil)
	return nil
}

func (c *selinuxCollector) Fill(*metrics.ResourceMetrics) {}
