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
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// node_exporter's default field selections.
const (
	defNetstatFields = `^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$`
	defVmstatFields  = `^(oom_kill|pgpg|pswp|pg.*fault).*`
)

// fieldSelector decides once per field name whether it is exported and
// keeps its descriptor, so the regular expression runs only when a new
// name appears, not every tick.
type fieldSelector struct {
	re     *regexp.Regexp
	fields map[string]*metricDesc // nil: not exported
	mk     func(name string) *metricDesc
}

func (s *fieldSelector) get(name []byte) *metricDesc {
	if d, ok := s.fields[string(name)]; ok {
		return d
	}
	n := string(name)
	var d *metricDesc
	if s.re.MatchString(n) {
		d = s.mk(n)
	}
	s.fields[n] = d
	return d
}

// parseNetstat calls fn for each "Proto: names..." / "Proto: values..."
// line pair of /proc/net/netstat or /proc/net/snmp.
func parseNetstat(b []byte, fn func(proto, name []byte, v float64)) error {
	for len(b) > 0 {
		var names, values []byte
		names, b = nextLine(b)
		if len(names) == 0 {
			continue
		}
		values, b = nextLine(b)
		i := bytes.IndexByte(names, ':')
		j := bytes.IndexByte(values, ':')
		if i < 0 || j < 0 || !bytes.Equal(names[:i], values[:j]) {
			return fmt.Errorf("parsing netstat: unpaired line %q", names)
		}
		proto := names[:i]
		nr, vr := names[i+1:], values[j+1:]
		for {
			var n, v []byte
			n, nr = nextField(nr)
			v, vr = nextField(vr)
			if len(n) == 0 || len(v) == 0 {
				break
			}
			f, ok := parseFloat(v)
			if !ok {
				return fmt.Errorf("parsing netstat %s%s: bad value %q", proto, n, v)
			}
			fn(proto, n, f)
		}
	}
	return nil
}

// parseSNMP6 calls fn for each "Ip6InReceives 123" line of /proc/net/snmp6,
// split as node_exporter splits it: protocol up to and including the "6".
func parseSNMP6(b []byte, fn func(proto, name []byte, v float64)) error {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		k, rest := nextField(line)
		if len(k) == 0 {
			continue
		}
		vf, _ := nextField(rest)
		v, ok := parseFloat(vf)
		if !ok {
			return fmt.Errorf("parsing snmp6 %s: bad value %q", k, vf)
		}
		i := bytes.IndexByte(k, '6')
		if i < 0 {
			continue
		}
		fn(k[:i+1], k[i+1:], v)
	}
	return nil
}

// netstatCollector keeps its files open (see openFile): /proc/net/netstat
// outgrows the page a fresh open starts with, so reopening it each tick
// would have the kernel sum every counter twice.
type netstatCollector struct {
	metricSet
	log   *slog.Logger
	r     *reader
	files [3]openFile // netstat, snmp, snmp6
	sel   fieldSelector
	key   []byte
}

func newNetstatCollector(o collect.Options, ho Options) (*netstatCollector, error) {
	re, err := regexp.Compile(ho.NetstatFields)
	if err != nil {
		return nil, fmt.Errorf("parsing netstat fields %q: %w", ho.NetstatFields, err)
	}
	return &netstatCollector{
		log: logger(o),
		r:   newReader(16384),
		files: [3]openFile{
			{path: procNetPath(o.Paths.ProcFS, "netstat")},
			{path: procNetPath(o.Paths.ProcFS, "snmp")},
			{path: procNetPath(o.Paths.ProcFS, "snmp6")},
		},
		sel: fieldSelector{re: re, fields: map[string]*metricDesc{}, mk: func(n string) *metricDesc {
			// "Tcp_InSegs" is described as "Statistic TcpInSegs."
			help := "Statistic " + string(bytes.Replace([]byte(n), []byte("_"), nil, 1)) + "."
			return newDesc("netstat", n, help)
		}},
	}, nil
}

func (c *netstatCollector) Name() string { return "netstat" }

func (c *netstatCollector) Update(_ context.Context, _ time.Time) error {
	c.begin()
	emit := func(proto, name []byte, v float64) {
		c.key = append(append(append(c.key[:0], proto...), '_'), name...)
		if d := c.sel.get(c.key); d != nil {
			c.add(d, prometheus.UntypedValue, v, nil)
		}
	}
	found := 0
	for i := range c.files {
		b, err := c.files[i].read(c.r)
		if errors.Is(err, fs.ErrNotExist) {
			continue // no IPv6
		}
		if err != nil {
			return fmt.Errorf("reading netstat: %w", err)
		}
		found++
		if i == 2 {
			err = parseSNMP6(b, emit)
		} else {
			err = parseNetstat(b, emit)
		}
		if err != nil {
			return err
		}
	}
	c.publish(nil)
	if found == 0 {
		return noData(c.log, "netstat", fmt.Errorf("reading %s: %w", c.files[0].path, fs.ErrNotExist))
	}
	return nil
}

func (c *netstatCollector) Fill(*metrics.ResourceMetrics) {}

// Close closes the files kept open.
func (c *netstatCollector) Close() error {
	var errs []error
	for i := range c.files {
		errs = append(errs, c.files[i].Close())
	}
	return errors.Join(errs...)
}

// parseVmstat calls fn for each "name value" line of /proc/vmstat.
func parseVmstat(b []byte, fn func(name []byte, v float64)) error {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		k, rest := nextField(line)
		if len(k) == 0 {
			continue
		}
		vf, _ := nextField(rest)
		v, ok := parseFloat(vf)
		if !ok {
			return fmt.Errorf("parsing vmstat %s: bad value %q", k, vf)
		}
		fn(k, v)
	}
	return nil
}

type vmstatCollector struct {
	metricSet
	log *slog.Logger
	r   *reader
	// file is kept open, as /proc/stat is: a procfs open by path is a
	// path walk and a new inode each tick.
	file openFile
	sel  fieldSelector
}

func newVmstatCollector(o collect.Options, ho Options) (*vmstatCollector, error) {
	re, err := regexp.Compile(ho.VmstatFields)
	if err != nil {
		return nil, fmt.Errorf("parsing vmstat fields %q: %w", ho.VmstatFields, err)
	}
	return &vmstatCollector{
		log:  logger(o),
		r:    newReader(8192),
		file: openFile{path: mkpath(o.Paths.ProcFS, "vmstat")},
		sel: fieldSelector{re: re, fields: map[string]*metricDesc{}, mk: func(n string) *metricDesc {
			return newDesc("vmstat", n, "/proc/vmstat information field "+n+".")
		}},
	}, nil
}

func (c *vmstatCollector) Name() string { return "vmstat" }

func (c *vmstatCollector) Close() error { return c.file.Close() }

func (c *vmstatCollector) Update(_ context.Context, _ time.Time) error {
	b, err := c.file.read(c.r)
	if err != nil {
		return noData(c.log, "vmstat", fmt.Errorf("reading vmstat: %w", err))
	}
	c.begin()
	err = parseVmstat(b, func(name []byte, v float64) {
		if d := c.sel.get(name); d != nil {
			c.add(d, prometheus.UntypedValue, v, nil)
		}
	})
	if err != nil {
		return err
	}
	c.publish(nil)
	return nil
}

func (c *vmstatCollector) Fill(*metrics.ResourceMetrics) {}
