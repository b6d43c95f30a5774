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
// name appears, not every tick. It also remembers the names in the order
// a read found them: the kernel prints the same names in the same order
// each time, so next finds a field's descriptor by comparing its name with
// the one at the same place last time instead of hashing it into the map
// (/proc/net/netstat, snmp and snmp6 hold some 330 fields of which the
// defaults export 35, vmstat some 190 of which 25). A name that differs
// from last time's at its place (a kernel that added a counter) is looked
// up in the map and the order is relearnt from there.
type fieldSelector struct {
	re     *regexp.Regexp
	fields map[string]*metricDesc // nil: not exported
	mk     func(name string) *metricDesc
	order  []orderedField
	at     int // the place of the next name in order, from rewind
}

type orderedField struct {
	name string
	desc *metricDesc
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

// rewind starts a read: next's first name is the file's first.
func (s *fieldSelector) rewind() { s.at = 0 }

// next returns the descriptor of the read's next field, name, or nil when
// it is not exported.
func (s *fieldSelector) next(name []byte) *metricDesc {
	i := s.at
	s.at++
	if i < len(s.order) && s.order[i].name == string(name) {
		return s.order[i].desc
	}
	d := s.get(name)
	s.order = append(s.order[:i], orderedField{name: string(name), desc: d})
	return d
}

// add adds the read's next field, name, to m if it is exported, its value
// parsed from value; file names the file in an error.
func (s *fieldSelector) add(m *metricSet, file string, name, value []byte) error {
	d := s.next(name)
	if d == nil {
		return nil
	}
	v, ok := parseFloat(value)
	if !ok {
		return fmt.Errorf("parsing %s %s: bad value %q", file, name, value)
	}
	m.add(d, prometheus.UntypedValue, v, nil)
	return nil
}

// parseNetstat calls fn for each field of the "Proto: names..." /
// "Proto: values..." line pairs of /proc/net/netstat or /proc/net/snmp,
// with the value's text: fn parses the values it keeps. It stops at fn's
// first error.
func parseNetstat(b []byte, fn func(proto, name, value []byte) error) error {
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
			if err := fn(proto, n, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseSNMP6 calls fn for each "Ip6InReceives 123" line of /proc/net/snmp6,
// split as node_exporter splits it: protocol up to and including the "6",
// with the value's text. It stops at fn's first error.
func parseSNMP6(b []byte, fn func(proto, name, value []byte) error) error {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		k, rest := nextField(line)
		if len(k) == 0 {
			continue
		}
		v, _ := nextField(rest)
		i := bytes.IndexByte(k, '6')
		if i < 0 {
			continue
		}
		if err := fn(k[:i+1], k[i+1:], v); err != nil {
			return err
		}
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
	c.sel.rewind()
	emit := func(proto, name, value []byte) error {
		c.key = append(append(append(c.key[:0], proto...), '_'), name...)
		return c.sel.add(&c.metricSet, "netstat", c.key, value)
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

// parseVmstat calls fn for each "name value" line of /proc/vmstat, with
// the value's text. It stops at fn's first error.
func parseVmstat(b []byte, fn func(name, value []byte) error) error {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		k, rest := nextField(line)
		if len(k) == 0 {
			continue
		}
		v, _ := nextField(rest)
		if err := fn(k, v); err != nil {
			return err
		}
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
	c.sel.rewind()
	err = parseVmstat(b, func(name, value []byte) error {
		return c.sel.add(&c.metricSet, "vmstat", name, value)
	})
	if err != nil {
		return err
	}
	c.publish(nil)
	return nil
}

func (c *vmstatCollector) Fill(*metrics.ResourceMetrics) {}
