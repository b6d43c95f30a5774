// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// node_exporter's default: RAM and loop devices, floppies and partitions.
const defDiskstatsDeviceExclude = `^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`

// sectorSize is the unit of /proc/diskstats' sector counts, fixed at 512
// bytes whatever the device's real sector size.
const sectorSize = 512

// diskstatsFields is how many counters follow the device name: 11 before
// Linux 4.18, 15 with discards, 17 with flushes (5.5).
const diskstatsFields = 17

// DiskStat is one line of /proc/diskstats.
type DiskStat struct {
	Major, Minor uint32
	Name         []byte // valid until the next read
	Fields       [diskstatsFields]uint64
	NFields      int
}

// parseDiskstats calls fn for each line of /proc/diskstats.
func parseDiskstats(b []byte, fn func(*DiskStat)) error {
	var d DiskStat
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		f, rest := nextField(line)
		if len(f) == 0 {
			continue
		}
		ma, ok1 := parseUint(f)
		f, rest = nextField(rest)
		mi, ok2 := parseUint(f)
		d.Name, rest = nextField(rest)
		if !ok1 || !ok2 || len(d.Name) == 0 {
			return fmt.Errorf("parsing diskstats: bad line %q", line)
		}
		d.Major, d.Minor = uint32(ma), uint32(mi)
		d.NFields = 0
		for d.NFields < diskstatsFields {
			f, rest = nextField(rest)
			if len(f) == 0 {
				break
			}
			v, ok := parseUint(f)
			if !ok {
				return fmt.Errorf("parsing diskstats %s: bad value %q", d.Name, f)
			}
			d.Fields[d.NFields] = v
			d.NFields++
		}
		if d.NFields < 11 {
			return fmt.Errorf("parsing diskstats %s: %d fields, want at least 11", d.Name, d.NFields)
		}
		fn(&d)
	}
	return nil
}

type diskDev struct {
	dev      uint64
	lv       []string
	info     []string
	excluded bool
	// total says whether the device counts in the host totals: a whole
	// disk (in /sys/block) that is not stacked on other disks (dm, md),
	// whose I/O its underlying disks already count.
	total    bool
	prev     [diskstatsFields]uint64
	havePrev bool
	seen     uint64
}

type diskDesc struct {
	desc  *metricDesc
	typ   prometheus.ValueType
	scale float64
}

type diskstatsCollector struct {
	metricSet
	log    *slog.Logger
	r      *reader
	path   openFile
	sysfs  string
	rootfs string
	ex     *regexp.Regexp
	sh     *shared

	descs [diskstatsFields]diskDesc
	info  *metricDesc

	devs  map[string]*diskDev
	gen   uint64
	last  time.Time
	rates ioRates
}

func newDiskstatsCollector(o collect.Options, ho Options, sh *shared) (*diskstatsCollector, error) {
	ex, err := regexp.Compile(ho.DiskstatsDeviceExclude)
	if err != nil {
		return nil, fmt.Errorf("parsing diskstats device exclude %q: %w", ho.DiskstatsDeviceExclude, err)
	}
	d := func(name, help string, t prometheus.ValueType, scale float64) diskDesc {
		return diskDesc{newDesc("disk", name, help, "device"), t, scale}
	}
	c, g := prometheus.CounterValue, prometheus.GaugeValue
	return &diskstatsCollector{
		log:    logger(o),
		r:      newReader(4096),
		path:   openFile{path: mkpath(o.Paths.ProcFS, "diskstats")},
		sysfs:  o.Paths.SysFS,
		rootfs: o.Paths.RootFS,
		ex:     ex,
		sh:     sh,
		descs: [diskstatsFields]diskDesc{
			d("reads_completed_total", "The total number of reads completed successfully.", c, 1),
			d("reads_merged_total", "The total number of reads merged.", c, 1),
			d("read_bytes_total", "The total number of bytes read successfully.", c, sectorSize),
			d("read_time_seconds_total", "The total number of seconds spent by all reads.", c, .001),
			d("writes_completed_total", "The total number of writes completed successfully.", c, 1),
			d("writes_merged_total", "The number of writes merged.", c, 1),
			d("written_bytes_total", "The total number of bytes written successfully.", c, sectorSize),
			d("write_time_seconds_total", "This is the total number of seconds spent by all writes.", c, .001),
			d("io_now", "The number of I/Os currently in progress.", g, 1),
			d("io_time_seconds_total", "Total seconds spent doing I/Os.", c, .001),
			d("io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os.", c, .001),
			d("discards_completed_total", "The total number of discards completed successfully.", c, 1),
			d("discards_merged_total", "The total number of discards merged.", c, 1),
			d("discarded_sectors_total", "The total number of sectors discarded successfully.", c, 1),
			d("discard_time_seconds_total", "This is the total number of seconds spent by all discards.", c, .001),
			d("flush_requests_total", "The total number of flush requests completed successfully", c, 1),
			d("flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush requests.", c, .001),
		},
		info: newDesc("disk", "info", "Info of /sys/block/<block_device>.",
			"device", "major", "minor", "model", "path", "revision", "rotational", "serial", "wwn"),
		devs: map[string]*diskDev{},
	}, nil
}

func (c *diskstatsCollector) Name() string { return "diskstats" }

func (c *diskstatsCollector) Close() error { return c.path.Close() }

// device returns the cached description of a block device, reading its
// sysfs and udev attributes once per device (and again if its number
// changes).
func (c *diskstatsCollector) device(s *DiskStat) *diskDev {
	dn := devNum(s.Major, s.Minor)
	if d, ok := c.devs[string(s.Name)]; ok && d.dev == dn {
		return d
	}
	name := string(s.Name)
	d := &diskDev{dev: dn, lv: []string{name}, excluded: c.ex.MatchString(name)}
	blk := filepath.Join(c.sysfs, "block", name)
	if _, err := os.Stat(blk); err == nil {
		d.total = true
		if ents, err := os.ReadDir(filepath.Join(blk, "slaves")); err == nil && len(ents) > 0 {
			d.total = false
		}
	}
	maj, min := strconv.FormatUint(uint64(s.Major), 10), strconv.FormatUint(uint64(s.Minor), 10)
	udev := readUdevData(filepath.Join(c.rootfs, "run/udev/data", "b"+maj+":"+min))
	model, rev := udev["ID_MODEL"], udev["ID_REVISION"]
	if model == "" {
		model, _ = readString(filepath.Join(blk, "device/model"))
	}
	if rev == "" {
		rev, _ = readString(filepath.Join(blk, "device/rev"))
	}
	rot, _ := readString(filepath.Join(blk, "queue/rotational"))
	d.info = []string{name, maj, min, model, udev["ID_PATH"], rev, rot, udev["ID_SERIAL_SHORT"], udev["ID_WWN"]}
	c.devs[name] = d
	return d
}

// readUdevData reads the E: properties of a udev database entry; a host
// without udev has none.
func readUdevData(path string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "E:"), "="); ok && strings.HasPrefix(sc.Text(), "E:") {
			out[k] = v
		}
	}
	return out
}

func (c *diskstatsCollector) Update(_ context.Context, now time.Time) error {
	b, err := c.path.read(c.r)
	if err != nil {
		return noData(c.log, "diskstats", fmt.Errorf("reading diskstats: %w", err))
	}
	dt := now.Sub(c.last).Seconds()
	haveDT := !c.last.IsZero() && dt > 0
	c.gen++
	c.begin()
	var tot ioRates
	c.sh.mu.Lock()
	clear(c.sh.diskRates)
	err = parseDiskstats(b, func(s *DiskStat) {
		d := c.device(s)
		d.seen = c.gen
		if haveDT && d.havePrev {
			r := ioRates{
				readOps:    perSec(s.Fields[0], d.prev[0], dt),
				readBytes:  perSec(s.Fields[2], d.prev[2], dt) * sectorSize,
				writeOps:   perSec(s.Fields[4], d.prev[4], dt),
				writeBytes: perSec(s.Fields[6], d.prev[6], dt) * sectorSize,
			}
			c.sh.diskRates[d.dev] = r
			if d.total && !d.excluded {
				tot.readOps += r.readOps
				tot.readBytes += r.readBytes
				tot.writeOps += r.writeOps
				tot.writeBytes += r.writeBytes
			}
		}
		d.prev, d.havePrev = s.Fields, true
		if d.excluded {
			return
		}
		c.add(c.info, prometheus.GaugeValue, 1, d.info)
		for i := 0; i < s.NFields; i++ {
			dd := &c.descs[i]
			c.add(dd.desc, dd.typ, float64(s.Fields[i])*dd.scale, d.lv)
		}
	})
	c.sh.mu.Unlock()
	if err != nil {
		return err
	}
	for name, d := range c.devs {
		if d.seen != c.gen {
			delete(c.devs, name)
		}
	}
	c.last = now
	c.publish(func() { c.rates = tot })
	return nil
}

// perSec is a counter's rate; a counter that went backwards (device
// re-created) counts as 0.
func perSec(cur, prev uint64, dt float64) uint64 {
	if cur < prev {
		return 0
	}
	return uint64(float64(cur-prev)/dt + 0.5)
}

// Fill reports the I/O rates of whole disks (not partitions, which the
// disks already count).
func (c *diskstatsCollector) Fill(m *metrics.ResourceMetrics) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m.Disk.ReadBytesPerSec, m.Disk.WriteBytesPerSec = c.rates.readBytes, c.rates.writeBytes
	m.Disk.ReadOpsPerSec, m.Disk.WriteOpsPerSec = c.rates.readOps, c.rates.writeOps
}
