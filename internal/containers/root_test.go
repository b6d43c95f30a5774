// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/rtnl"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// rootSeries gathers c and returns the id="/" series as
// "family{extra label}" → value, checking each has name="" and image="".
func rootSeries(t *testing.T, c *Collector) map[string]float64 {
	t.Helper()
	mfs, _ := testenv.GatherText(t, c)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["id"] != "/" {
				continue
			}
			if labels["name"] != "" || labels["image"] != "" {
				t.Errorf("%s{id=\"/\"}: name %q image %q, want both empty", mf.GetName(), labels["name"], labels["image"])
			}
			key := mf.GetName()
			for _, extra := range []string{"cpu", "device", "interface"} {
				if v, ok := labels[extra]; ok {
					key += "{" + v + "}"
				}
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func noEngine(t *testing.T) string { return "unix://" + t.TempDir() + "/none.sock" }

// TestRootCgroupUnified serves the root of a pure cgroup2 host, which has
// cpu.stat and memory.stat but no memory.current: usage is anon + file,
// as runc's library reports it to cAdvisor, and the working set is usage
// minus inactive_file. The host's interfaces are the root's, without lo,
// veths and docker0. The root is not a container: not in the snapshot,
// not in crmon_containers_known.
func TestRootCgroupUnified(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", "testdata", "cgroups", "unified-docker-systemd"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{
		DockerHost: noEngine(t),
		Paths:      collect.Paths{ProcFS: filepath.Join(root, "proc"), SysFS: filepath.Join(root, "sys"), RootFS: root},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Update(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	got := rootSeries(t, c)
	const anon, file, inactiveFile = 2147483648, 4294967296, 3221225472
	for k, want := range map[string]float64{
		"container_cpu_usage_seconds_total{total}":               987.654321,
		"container_cpu_user_seconds_total":                       600,
		"container_cpu_system_seconds_total":                     387.654321,
		"container_memory_usage_bytes":                           anon + file,
		"container_memory_working_set_bytes":                     anon + file - inactiveFile,
		"container_memory_rss":                                   anon,
		"container_memory_cache":                                 file,
		"container_network_receive_bytes_total{eth0}":            355079216,
		"container_network_transmit_packets_total{eth0}":         7964,
		"container_processes":                                    2,
		"container_fs_writes_bytes_total{" + devName(8, 0) + "}": 10737418240,
	} {
		if v, ok := got[k]; !ok {
			t.Errorf("%s{id=\"/\"} missing", k)
		} else if v != want {
			t.Errorf("%s{id=\"/\"} = %v, want %v", k, v, want)
		}
	}
	for k := range got {
		for _, dev := range []string{"{lo}", "{docker0}", "{veth2692324}"} {
			if strings.HasSuffix(k, dev) {
				t.Errorf("root series for an interface cAdvisor leaves out: %s", k)
			}
		}
	}
	var m metrics.ResourceMetrics
	c.Fill(&m)
	if m.Containers.TotalContainers != 0 {
		t.Errorf("the root is in the snapshot's containers: %+v", m.Containers)
	}
	if _, ok := c.LookupCgroup("/"); ok {
		t.Error("LookupCgroup(\"/\") names a container")
	}
	checkText(t, c)
}

// devName is how the collector names a device the fixture's sysfs does
// not know.
func devName(major, minor uint32) string {
	return strconv.Itoa(int(major)) + ":" + strconv.Itoa(int(minor))
}

// TestRootCgroupReal reads this host's root cgroup (hybrid here: v1
// controllers, an empty cgroup2) and checks it against the root's own
// counter files, read before and after the tick: the CPU total lies
// between the two reads, and the working set is positive and within the
// host's memory.
func TestRootCgroupReal(t *testing.T) {
	testenv.RequireLong(t, "the host's cgroups")
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		testenv.Unavailable(t, "no cgroups: %v", err)
	}
	cpuTotal := func() float64 {
		t.Helper()
		if h.OnV2(cgroups.CPU) {
			b, err := os.ReadFile(filepath.Join(h.Unified, "cpu.stat"))
			if err != nil {
				t.Fatal(err)
			}
			f := strings.Fields(string(b))
			for i := 0; i+1 < len(f); i += 2 {
				if f[i] == "usage_usec" {
					v, _ := strconv.ParseFloat(f[i+1], 64)
					return v / 1e6
				}
			}
			t.Fatal("no usage_usec in the root's cpu.stat")
		}
		b, err := os.ReadFile(filepath.Join(h.V1["cpuacct"], "cpuacct.usage"))
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		if err != nil {
			t.Fatal(err)
		}
		return v / 1e9
	}
	c, err := New(Options{DockerHost: noEngine(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hostNet := func() []netIface {
		t.Helper()
		b, err := os.ReadFile("/proc/1/net/dev")
		if err != nil {
			t.Fatal(err)
		}
		return slices.DeleteFunc(parseNetDev(b, nil), func(it netIface) bool { return !rootInterface(it.name) })
	}
	before, netBefore := cpuTotal(), hostNet()
	if err := c.Update(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	after, netAfter := cpuTotal(), hostNet()
	// In the host's network namespace, the interfaces come by rtnetlink,
	// whether PID 1's namespace link can be read or not.
	self, _ := os.Readlink("/proc/self/ns/net")
	init, _ := os.Readlink("/proc/1/ns/net")
	if (self == init || self == fmt.Sprintf("net:[%d]", initNetNSIno)) && c.rootNet == nil {
		t.Errorf("the root's interfaces read from /proc/1/net/dev: this process is in the host's network namespace (%s, PID 1's %q)", self, init)
	}
	got := rootSeries(t, c)
	// The root's processes: from the v1 pids hierarchy where there is one.
	procs := filepath.Join(h.Unified, "cgroup.procs")
	if h.V1["pids"] != "" {
		procs = filepath.Join(h.V1["pids"], "cgroup.procs")
	}
	if b, err := os.ReadFile(procs); err != nil {
		t.Error(err)
	} else if n, p := float64(strings.Count(string(b), "\n")), got["container_processes"]; p < n-20 || p > n+20 {
		t.Errorf("container_processes{id=\"/\"} = %v, %s lists %v", p, procs, n)
	}
	// The host's interfaces, by rtnetlink here, between two reads of
	// /proc/1/net/dev.
	for i, it := range netBefore {
		if i >= len(netAfter) || netAfter[i].name != it.name {
			t.Skip("the host's interfaces changed during the test")
		}
		v, ok := got["container_network_receive_bytes_total{"+it.name+"}"]
		if !ok || v < float64(it.rxBytes) || v > float64(netAfter[i].rxBytes) {
			t.Errorf("container_network_receive_bytes_total{id=\"/\",interface=%q} = %v (present %v), /proc/1/net/dev %d before and %d after", it.name, v, ok, it.rxBytes, netAfter[i].rxBytes)
		}
	}
	for k := range got {
		if name, ok := strings.CutPrefix(k, "container_network_receive_bytes_total{"); ok {
			name = strings.TrimSuffix(name, "}")
			if !slices.ContainsFunc(netBefore, func(it netIface) bool { return it.name == name }) {
				t.Errorf("interface %s served for id=\"/\", not in /proc/1/net/dev or left out", name)
			}
		}
	}
	cpu, ok := got["container_cpu_usage_seconds_total{total}"]
	// The files count in ns (v1) or µs (v2); the series is in seconds.
	if !ok || cpu < before-1e-6 || cpu > after+1e-6 {
		t.Errorf("container_cpu_usage_seconds_total{id=\"/\"} = %v (present %v), root's own total %v before and %v after", cpu, ok, before, after)
	}
	memTotal := 0.0
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(string(b))
		memTotal, _ = strconv.ParseFloat(f[1], 64)
		memTotal *= 1024
	}
	if ws := got["container_memory_working_set_bytes"]; ws <= 0 || ws > memTotal {
		t.Errorf("container_memory_working_set_bytes{id=\"/\"} = %v, want within (0, MemTotal %v]", ws, memTotal)
	}
	if u := got["container_memory_usage_bytes"]; u < got["container_memory_working_set_bytes"] {
		t.Errorf("usage %v below working set %v", u, got["container_memory_working_set_bytes"])
	}
	checkText(t, c)
}

// TestRootNetworkRtnl checks the root's interfaces read by rtnetlink
// against the namespace's /proc/net/dev, in a namespace of the test's own
// where only the test moves the counters: veth*, docker* and lo left out,
// the rest sorted by name, and devices made, renamed and removed between
// two ticks followed.
func TestRootNetworkRtnl(t *testing.T) {
	ns := testenv.NewNetns(t)
	ns.IP(t, "link", "set", "lo", "up")
	ns.Veths(t, "veth", 2)
	ns.IP(t, "link", "add", "eth1", "type", "veth", "peer", "name", "docker0")
	ns.IP(t, "link", "add", "br-x", "type", "veth", "peer", "name", "eth0")
	for _, d := range []string{"eth0", "eth1", "br-x", "docker0"} {
		ns.IP(t, "link", "set", d, "up")
	}
	conn, err := rtnl.Open(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	c := &Collector{log: slog.New(slog.DiscardHandler), rootNet: conn}
	defer c.closeRoot()
	ct := newContainer("/")
	check := func(step string, want ...string) {
		t.Helper()
		c.readRootNet(ct)
		file := parseNetDev(ns.ProcNetDev(t), nil)
		var names []string
		for _, it := range ct.net {
			names = append(names, it.name)
			i := slices.IndexFunc(file, func(f netIface) bool { return f.name == it.name })
			if i < 0 {
				t.Errorf("%s: %s not in /proc/net/dev", step, it.name)
			} else if file[i] != it {
				t.Errorf("%s: %+v, /proc/net/dev has %+v", step, it, file[i])
			}
		}
		if !slices.Equal(names, want) {
			t.Errorf("%s: interfaces %v, want %v", step, names, want)
		}
	}
	check("first", "br-x", "eth0", "eth1")
	ns.IP(t, "link", "add", "wan0", "type", "veth", "peer", "name", "vethw")
	ns.IP(t, "link", "set", "eth1", "down")
	ns.IP(t, "link", "set", "eth1", "name", "dockerx")
	check("made and renamed", "br-x", "eth0", "wan0")
	ns.IP(t, "link", "del", "br-x")
	check("removed", "wan0")
}

// TestPreadAllManyInterfaces reads a net/dev longer than one read returns
// (its seq_file hands out a page at a time, some 30 interfaces) and finds
// every interface, as a read to the end of the file does.
func TestPreadAllManyInterfaces(t *testing.T) {
	testenv.RequireLong(t, "root and network namespaces")
	ns := testenv.NewNetns(t)
	ns.Veths(t, "v", 40)
	path := ns.Path[:len(ns.Path)-len("ns/net")] + "net/dev"
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var buf []byte
	n, err := preadAll(fd, &buf)
	if err != nil {
		t.Fatal(err)
	}
	names := func(b []byte) (v []string) {
		for _, it := range parseNetDev(b, nil) {
			v = append(v, it.name)
		}
		slices.Sort(v)
		return v
	}
	got, want := names(buf[:n]), names(ns.ProcNetDev(t))
	if len(want) != 80 || !slices.Equal(got, want) {
		t.Errorf("preadAll found %d interfaces, reading to the end %d (want 80: the veths, lo left out)", len(got), len(want))
	}
}
