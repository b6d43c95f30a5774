// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// unameFiles are the /proc/sys/kernel files that hold what uname(2)
// returns, in the label order of node_uname_info: domainname, machine,
// nodename, release, sysname, version. Reading them instead of calling
// uname(2) keeps the procfs root in charge, so fixture trees work. arch is
// recent; older kernels fall back to uname(2) for the machine.
var unameFiles = [...]string{"domainname", "arch", "hostname", "osrelease", "ostype", "version"}

type unameCollector struct {
	metricSet
	log   *slog.Logger
	r     *reader
	files [len(unameFiles)]openFile
	vals  [len(unameFiles)][]byte
	lv    []string
	info  *metricDesc
}

func newUnameCollector(o collect.Options) (*unameCollector, error) {
	c := &unameCollector{
		log:  logger(o),
		r:    newReader(256),
		info: newDesc("uname", "info", "Labeled system information as provided by the uname system call.", "domainname", "machine", "nodename", "release", "sysname", "version"),
	}
	for i, f := range unameFiles {
		c.files[i] = openFile{path: mkpath(o.Paths.ProcFS, "sys/kernel", f)}
	}
	return c, nil
}

func (c *unameCollector) Name() string { return "uname" }

func (c *unameCollector) Close() error {
	for i := range c.files {
		c.files[i].Close()
	}
	return nil
}

// static are the uname files that cannot change without a reboot; they are
// read once, the host and domain names every tick.
var unameStatic = [len(unameFiles)]bool{false, true, false, true, true, true}

func (c *unameCollector) Update(_ context.Context, _ time.Time) error {
	changed := c.lv == nil
	for i := range c.files {
		if unameStatic[i] && c.lv != nil {
			continue
		}
		b, err := c.files[i].read(c.r)
		if err != nil {
			if unameFiles[i] == "arch" {
				b = []byte(machine())
			} else {
				c.clear()
				c.lv = nil
				return noData(c.log, "uname", fmt.Errorf("reading uname: %w", err))
			}
		}
		b = bytes.TrimSpace(b)
		if !bytes.Equal(b, c.vals[i]) {
			c.vals[i] = append(c.vals[i][:0], b...)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	lv := make([]string, len(c.vals))
	for i, v := range c.vals {
		lv[i] = string(v)
	}
	c.lv = lv
	c.begin()
	c.add(c.info, prometheus.GaugeValue, 1, lv)
	c.publish(nil)
	return nil
}

func (c *unameCollector) Fill(*metrics.ResourceMetrics) {}

// machine is uname(2)'s machine field.
func machine() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return string(bytes.TrimRight(u.Machine[:], "\x00"))
}
