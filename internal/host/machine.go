// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/userfile"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// machineRefresh is how often the machine collector re-reads what changes
// only with hotplug, swapon or a new boot; cAdvisor's machine info is
// refreshed every 5 minutes. A change of the online CPUs is seen at once.
const machineRefresh = time.Minute

// maxMachineCPUs bounds the CPUs whose topology is read (the kernel's
// NR_CPUS is at most 8192).
const maxMachineCPUs = 8192

// machineCollector serves cAdvisor's machine_* families, which dashboards
// of container metrics use for machine totals ("CPU Cores"): logical CPUs,
// physical cores, sockets, memory and swap, labelled as cAdvisor labels
// them with the boot, machine and system ids.
type machineCollector struct {
	metricSet
	log     *slog.Logger
	r       *reader
	online  openFile
	meminfo cpath
	cpuDir  string
	// idFiles are the files of the boot_id, machine_id and system_uuid
	// labels, each a list of candidates, first existing one wins (as
	// cAdvisor's --boot_id_file and --machine_id_file).
	idFiles [3][]string

	last       time.Time
	lastOnline []byte

	cores, physical, sockets, memory, swap, scrapeError *metricDesc
}

func newMachineCollector(o collect.Options) (*machineCollector, error) {
	ids := []string{"boot_id", "machine_id", "system_uuid"}
	c := &machineCollector{
		log:     logger(o),
		r:       newReader(4096),
		online:  openFile{path: mkpath(o.Paths.SysFS, "devices/system/cpu/online")},
		meminfo: mkpath(o.Paths.ProcFS, "meminfo"),
		cpuDir:  filepath.Join(o.Paths.SysFS, "devices/system/cpu"),
		idFiles: [3][]string{
			{filepath.Join(o.Paths.ProcFS, "sys/kernel/random/boot_id")},
			{filepath.Join(o.Paths.RootFS, "etc/machine-id"), filepath.Join(o.Paths.RootFS, "var/lib/dbus/machine-id")},
			{filepath.Join(o.Paths.SysFS, "class/dmi/id/product_uuid")},
		},
		cores:       newFQDesc("machine_cpu_cores", "Number of logical CPU cores.", ids...),
		physical:    newFQDesc("machine_cpu_physical_cores", "Number of physical CPU cores.", ids...),
		sockets:     newFQDesc("machine_cpu_sockets", "Number of CPU sockets.", ids...),
		memory:      newFQDesc("machine_memory_bytes", "Amount of memory installed on the machine.", ids...),
		swap:        newFQDesc("machine_swap_bytes", "Amount of swap memory available on the machine.", ids...),
		scrapeError: newFQDesc("machine_scrape_error", "1 if there was an error while getting machine metrics, 0 otherwise."),
	}
	return c, nil
}

func (c *machineCollector) Name() string { return "machine" }

func (c *machineCollector) Close() error { return c.online.Close() }

func (c *machineCollector) Update(_ context.Context, now time.Time) error {
	online, err := c.online.read(c.r)
	if err != nil {
		online = nil
	}
	if c.last.IsZero() || now.Sub(c.last) >= machineRefresh || now.Before(c.last) || !bytes.Equal(online, c.lastOnline) {
		c.lastOnline = append(c.lastOnline[:0], online...)
		c.last = now
		return c.read(online)
	}
	return nil
}

// read reads everything and publishes it. A part that cannot be read is
// left out and sets machine_scrape_error, as in cAdvisor.
func (c *machineCollector) read(online []byte) error {
	var lv []string
	for _, cands := range c.idFiles {
		lv = append(lv, c.readID(cands))
	}
	var errs []error
	c.begin()
	if online == nil {
		errs = append(errs, fmt.Errorf("reading %s", c.online.path))
	} else if cores, physical, sockets, err := c.topology(online); err != nil {
		errs = append(errs, err)
	} else {
		c.add(c.cores, prometheus.GaugeValue, float64(cores), lv)
		if physical > 0 {
			c.add(c.physical, prometheus.GaugeValue, float64(physical), lv)
			c.add(c.sockets, prometheus.GaugeValue, float64(sockets), lv)
		}
	}
	var memTotal, swapTotal uint64
	var seenMem bool
	b, err := c.r.read(c.meminfo)
	if err == nil {
		err = parseMeminfo(b, func(key []byte, v uint64, _ bool) {
			switch string(key) {
			case "MemTotal":
				memTotal, seenMem = v, true
			case "SwapTotal":
				swapTotal = v
			}
		})
	}
	if err != nil || !seenMem {
		errs = append(errs, fmt.Errorf("reading %s: %v", c.meminfo, err))
	} else {
		c.add(c.memory, prometheus.GaugeValue, float64(memTotal), lv)
		c.add(c.swap, prometheus.GaugeValue, float64(swapTotal), lv)
	}
	scrapeErr := 0.0
	if len(errs) > 0 {
		scrapeErr = 1
	}
	c.add(c.scrapeError, prometheus.GaugeValue, scrapeErr, nil)
	c.publish(nil)
	if len(errs) > 0 {
		return fmt.Errorf("machine: %v", errs)
	}
	return nil
}

// readID returns the trimmed content of the first candidate file that can
// be read, "" when none can.
func (c *machineCollector) readID(cands []string) string {
	for _, p := range cands {
		b, err := userfile.Read(p, 256)
		if err == nil {
			return collect.ValidLabelValue(string(bytes.TrimSpace(b)))
		}
	}
	return ""
}

// topology counts the online CPUs, and the distinct cores and sockets
// they belong to from each CPU's topology/{physical_package_id,core_id}.
// Core ids repeat across sockets, so a core is a (socket, core) pair.
// Without topology files (some virtual machines, fixture trees) physical
// is 0.
func (c *machineCollector) topology(online []byte) (cores, physical, sockets int, err error) {
	type core struct{ pkg, id int64 }
	cs := map[core]struct{}{}
	pkgs := map[int64]struct{}{}
	missing := false
	err = eachCPU(online, func(cpu uint64) bool {
		cores++
		if cores > maxMachineCPUs {
			return false
		}
		if missing {
			return true
		}
		dir := filepath.Join(c.cpuDir, "cpu"+strconv.FormatUint(cpu, 10), "topology")
		pkg, ok1 := c.readInt(filepath.Join(dir, "physical_package_id"))
		id, ok2 := c.readInt(filepath.Join(dir, "core_id"))
		if !ok1 || !ok2 {
			missing = true
			return true
		}
		cs[core{pkg, id}] = struct{}{}
		pkgs[pkg] = struct{}{}
		return true
	})
	if err != nil {
		return 0, 0, 0, err
	}
	if cores > maxMachineCPUs {
		return 0, 0, 0, fmt.Errorf("reading %s: more than %d CPUs", c.online.path, maxMachineCPUs)
	}
	if missing {
		return cores, 0, 0, nil
	}
	return cores, len(cs), len(pkgs), nil
}

func (c *machineCollector) readInt(p string) (int64, bool) {
	b, err := c.r.read(mkpath(p))
	if err != nil {
		return 0, false
	}
	v, ok := parseInt(bytes.TrimSpace(b))
	return v, ok
}

// Fill adds nothing: the snapshot's CPU count comes from the cpu collector.
func (c *machineCollector) Fill(*metrics.ResourceMetrics) {}
