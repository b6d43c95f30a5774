// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/crmon-dev/crmon/internal/testenv"
)

const (
	id1 = "4c9699121accb82def3cae8d5f9da64bf12acf692e0499cc1e66bad6555b5dca"
	id2 = "9f2d3c5e7a1b4c6d8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"
	id3 = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c"
	id4 = "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f"
	id5 = "c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4"
)

func TestParseContainerPath(t *testing.T) {
	tests := []struct {
		path string
		rt   Runtime
		id   string
		ok   bool
	}{
		{"/docker/" + id1, RuntimeDocker, id1, true},
		{"/system.slice/docker-" + id2 + ".scope", RuntimeDocker, id2, true},
		{"/system.slice/docker-" + id2 + ".scope/init.scope", RuntimeDocker, id2, true},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice/cri-containerd-" + id3 + ".scope", RuntimeContainerd, id3, true},
		{"/kubepods/burstable/pod2d6ac3f1-7b0e-4c9a-9f3e-5a1b2c3d4e5f/" + id4, RuntimeCRI, id4, true},
		{"/kubepods/pod2d6ac3f1/" + id4, RuntimeCRI, id4, true},
		{"/kubepods.slice/kubepods-pod1.slice/crio-" + id4 + ".scope", RuntimeCRIO, id4, true},
		{"/machine.slice/libpod-" + id5 + ".scope", RuntimePodman, id5, true},
		{"/machine.slice/libpod-" + id5 + ".scope/container", RuntimePodman, id5, true},
		{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id5 + ".scope", RuntimePodman, id5, true},
		{"/libpod_parent/libpod-" + id5, RuntimePodman, id5, true},
		{"/machine.slice/libpod-conmon-" + id5 + ".scope", "", "", false},
		{"/system.slice/docker.service", "", "", false},
		{"/docker/" + id1[:63], "", "", false},
		{"/docker/" + id1[:63] + "G", "", "", false},
		{"/", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		rt, id, ok := ParseContainerPath(tt.path)
		if rt != tt.rt || id != tt.id || ok != tt.ok {
			t.Errorf("ParseContainerPath(%q) = %q, %q, %v; want %q, %q, %v", tt.path, rt, id, ok, tt.rt, tt.id, tt.ok)
		}
	}
}

func TestDockerPath(t *testing.T) {
	tests := []struct {
		l    Layout
		want string
	}{
		{Layout{Driver: "cgroupfs"}, "/docker/" + id1},
		{Layout{Driver: "cgroupfs", Parent: "/ci/jobs/"}, "/ci/jobs/" + id1},
		{Layout{Driver: "cgroupfs", Parent: "ci"}, "/ci/" + id1},
		{Layout{Driver: "systemd"}, "/system.slice/docker-" + id1 + ".scope"},
		{Layout{Driver: "systemd", Parent: "ci-jobs.slice"}, "/ci.slice/ci-jobs.slice/docker-" + id1 + ".scope"},
	}
	for _, tt := range tests {
		if got := DockerPath(tt.l, id1); got != tt.want {
			t.Errorf("DockerPath(%+v) = %q, want %q", tt.l, got, tt.want)
		}
	}
}

func TestExpandSlice(t *testing.T) {
	for in, want := range map[string]string{
		"system.slice":       "/system.slice",
		"a-b-c.slice":        "/a.slice/a-b.slice/a-b-c.slice",
		"-.slice":            "/",
		"/custom/parent":     "/custom/parent",
		"kubepods.slice":     "/kubepods.slice",
		"kubepods-pod.slice": "/kubepods.slice/kubepods-pod.slice",
	} {
		if got := ExpandSlice(in); got != want {
			t.Errorf("ExpandSlice(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	got, err := parseProcCgroup([]byte("5:name=systemd:/a\n1:cpu,cpuacct:/b\n0::/c\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Paths{V2: "/c", V1: map[string]string{"name=systemd": "/a", "cpu": "/b", "cpuacct": "/b"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if _, err := parseProcCgroup([]byte("garbage\n")); err == nil {
		t.Error("want an error for a malformed line")
	}
	// A container's path, the same in every hierarchy, is kept once.
	got, err = parseProcCgroup([]byte("3:memory:/docker/x\n2:cpu,cpuacct:/docker/x\n1:pids:/docker/x\n0::/docker/x\n"))
	if err != nil {
		t.Fatal(err)
	}
	for c, v := range got.V1 {
		if v != "/docker/x" || unsafe.StringData(v) != unsafe.StringData(got.V2) {
			t.Errorf("%s: %q is a copy of its own, want the one string of %q", c, v, got.V2)
		}
	}
}

func TestParsers(t *testing.T) {
	tests := []struct {
		name  string
		parse func([]byte, *Stats) error
		in    string
		want  Stats
		err   bool
	}{
		{"cpuacct.stat", func(b []byte, s *Stats) error { return parseCPUAcctStat(b, &s.CPU) },
			"user 12\nsystem 34\n", Stats{CPU: CPUStats{UserNanos: 120000000, SystemNanos: 340000000}}, false},
		{"cpuacct.stat bad", func(b []byte, s *Stats) error { return parseCPUAcctStat(b, &s.CPU) },
			"user x\n", Stats{}, true},
		{"cpu.stat v2", func(b []byte, s *Stats) error { return parseCPUStat(b, &s.CPU) },
			"usage_usec 3\nuser_usec 2\nsystem_usec 1\nnr_periods 5\nnr_throttled 4\nthrottled_usec 7\n",
			Stats{CPU: CPUStats{UsageNanos: 3000, UserNanos: 2000, SystemNanos: 1000, Periods: 5, ThrottledPeriods: 4, ThrottledNanos: 7000}}, false},
		{"cpu.max unlimited", func(b []byte, s *Stats) error { return parseCPUMax(b, &s.CPU) },
			"max 100000\n", Stats{CPU: CPUStats{PeriodMicros: 100000}}, false},
		{"cpu.max", func(b []byte, s *Stats) error { return parseCPUMax(b, &s.CPU) },
			"150000 100000\n", Stats{CPU: CPUStats{QuotaMicros: 150000, PeriodMicros: 100000}}, false},
		{"cpu.max bad", func(b []byte, s *Stats) error { return parseCPUMax(b, &s.CPU) }, "150000\n", Stats{}, true},
		{"memory.events", func(b []byte, s *Stats) error { return parseMemoryEventsV2(b, &s.Memory) },
			"low 0\nhigh 1\nmax 2\noom 3\noom_kill 4\n", Stats{Memory: MemoryStats{Failcnt: 2, OOMEvents: 4}}, false},
		{"memory.stat v1 ignores local fields", func(b []byte, s *Stats) error { return parseMemoryStatV1(b, &s.Memory) },
			"rss 1\ncache 2\ninactive_file 3\npgmajfault 4\ntotal_rss 10\ntotal_cache 20\ntotal_inactive_file 30\ntotal_pgmajfault 40\n",
			Stats{Memory: MemoryStats{RSS: 10, Cache: 20, InactiveFile: 30, MajorFaults: 40}}, false},
		{"memory.stat v2", func(b []byte, s *Stats) error { return parseMemoryStatV2(b, &s.Memory) },
			"anon 10\nfile 20\ninactive_file 30\npgfault 99\npgmajfault 7\n",
			Stats{Memory: MemoryStats{RSS: 10, Cache: 20, InactiveFile: 30, MajorFaults: 7}}, false},
		{"memory.stat bad", func(b []byte, s *Stats) error { return parseMemoryStatV1(b, &s.Memory) }, "total_rss\n", Stats{}, true},
		{"io.stat", func(b []byte, s *Stats) error { return parseIOStatV2(b, &s.IO) },
			"8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n8:16 rbytes=7 wbytes=8 rios=9 wios=10\n",
			Stats{IO: IOStats{Devices: []IODevice{{8, 0, 1, 2, 3, 4}, {8, 16, 7, 8, 9, 10}}}}, false},
		{"io.stat bad device", func(b []byte, s *Stats) error { return parseIOStatV2(b, &s.IO) }, "sda rbytes=1\n", Stats{}, true},
		{"blkio bytes", func(b []byte, s *Stats) error { return parseBlkioV1(b, &s.IO, true) },
			"8:0 Read 10\n8:0 Write 20\n8:0 Sync 0\n8:0 Total 30\n8:16 Write 5\nTotal 35\n",
			Stats{IO: IOStats{Devices: []IODevice{{Major: 8, Minor: 0, ReadBytes: 10, WriteBytes: 20}, {Major: 8, Minor: 16, WriteBytes: 5}}}}, false},
		{"cpu.pressure", func(b []byte, s *Stats) error { return parsePressure(b, &s.Pressure.CPUSome, &s.Pressure.CPUFull) },
			"some avg10=1.50 avg60=0.00 avg300=0.00 total=12345\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=678\n",
			Stats{Pressure: PressureStats{CPUSome: 12345, CPUFull: 678}}, false},
		{"io.pressure bad", func(b []byte, s *Stats) error { return parsePressure(b, &s.Pressure.IOSome, &s.Pressure.IOFull) },
			"some avg10=0.00\n", Stats{}, true},
		{"blkio ops empty", func(b []byte, s *Stats) error { return parseBlkioV1(b, &s.IO, false) }, "Total 0\n", Stats{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Stats
			err := tt.parse([]byte(tt.in), &got)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if tt.err {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestWeightToShares(t *testing.T) {
	// runc maps shares to weight as 1 + ((shares-2)*9999)/262142; these
	// are the round trips of the shares Docker and the kubelet set.
	for w, want := range map[uint64]uint64{1: 2, 100: 2597, 39: 998, 10000: 262144} {
		if got := WeightToShares(w); got != want {
			t.Errorf("WeightToShares(%d) = %d, want %d", w, got, want)
		}
	}
}

// TestLayouts runs the whole path on fixture trees of layouts this machine
// cannot run: detect the mounts, find a process's cgroups, name the
// container, read its counters.
func TestLayouts(t *testing.T) {
	tests := []struct {
		layout string
		pid    int
		mode   Mode
		onV2   bool
		id     string
		rt     Runtime
		cid    string
		want   Stats
	}{
		{
			layout: "hybrid-docker-cgroupfs", pid: 4242, mode: ModeHybrid,
			id: "/docker/" + id1, rt: RuntimeDocker, cid: id1,
			want: Stats{
				CPU: CPUStats{UsageNanos: 27658766, UserNanos: 10000000, SystemNanos: 20000000, Periods: 40, ThrottledPeriods: 12,
					ThrottledNanos: 345000000, QuotaMicros: 50000, PeriodMicros: 100000, Shares: 1024},
				Memory: MemoryStats{Usage: 10485760, WorkingSet: 10485760 - 3145728, RSS: 5242880, Cache: 4194304, MappedFile: 8192,
					ActiveFile: 1048576, InactiveFile: 3145728, Limit: 268435456, ReservationLimit: 134217728, SwapLimit: 536870912, MaxUsage: 12582912, Failcnt: 3, OOMEvents: 1},
				Pids:      PidsStats{Current: 3},
				IO:        IOStats{Devices: []IODevice{{Major: 254, ReadBytes: 4096, WriteBytes: 33554432, Reads: 1, Writes: 32}}},
				Processes: 2,
				Pressure:  PressureStats{CPUSome: 1500, CPUFull: 1000, MemorySome: 20, MemoryFull: 10, IOSome: 300, IOFull: 200},
			},
		},
		{
			layout: "unified-docker-systemd", pid: 777, mode: ModeUnified, onV2: true,
			id: "/system.slice/docker-" + id2 + ".scope", rt: RuntimeDocker, cid: id2,
			want: Stats{
				CPU: CPUStats{UsageNanos: 1500000000, UserNanos: 1000000000, SystemNanos: 500000000, Periods: 30, ThrottledPeriods: 10,
					ThrottledNanos: 250000000, QuotaMicros: 50000, PeriodMicros: 100000, Shares: 2597},
				Memory: MemoryStats{Usage: 20971520, WorkingSet: 20971520 - 6291456, RSS: 8388608, Cache: 10485760, MappedFile: 65536,
					ActiveFile: 4194304, InactiveFile: 6291456, MaxUsage: 25165824, Failcnt: 7, OOMEvents: 1, MajorFaults: 2},
				Pids: PidsStats{Current: 2, Limit: 4096},
				IO: IOStats{Devices: []IODevice{
					{Major: 8, ReadBytes: 1048576, WriteBytes: 33554432, Reads: 16, Writes: 256},
					{Major: 253, ReadBytes: 4096, Reads: 1},
				}},
				Processes: 1,
				Pressure:  PressureStats{CPUSome: 7, CPUFull: 3},
			},
		},
		{
			layout: "unified-kubepods-containerd", pid: 31337, mode: ModeUnified, onV2: true,
			id: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2d6ac3f1_7b0e_4c9a_9f3e_5a1b2c3d4e5f.slice/cri-containerd-" + id3 + ".scope",
			rt: RuntimeContainerd, cid: id3,
			want: Stats{
				CPU:       CPUStats{UsageNanos: 1000000, UserNanos: 600000, SystemNanos: 400000, PeriodMicros: 100000, Shares: 998},
				Memory:    MemoryStats{Usage: 1048576, WorkingSet: 1048576, RSS: 524288, Limit: 134217728},
				Pids:      PidsStats{Current: 1},
				Processes: 1,
			},
		},
		{
			layout: "legacy-kubepods-cgroupfs", pid: 555, mode: ModeLegacy,
			id: "/kubepods/burstable/pod2d6ac3f1-7b0e-4c9a-9f3e-5a1b2c3d4e5f/" + id4, rt: RuntimeCRI, cid: id4,
			want: Stats{
				CPU:       CPUStats{UsageNanos: 2345678, UserNanos: 0, SystemNanos: 10000000, PeriodMicros: 100000, Shares: 102},
				Memory:    MemoryStats{Usage: 2097152, WorkingSet: 2097152 - 262144, RSS: 1048576, Cache: 524288, ActiveFile: 262144, InactiveFile: 262144, MaxUsage: 4194304},
				Pids:      PidsStats{Current: 5, Limit: 1024},
				IO:        IOStats{Devices: []IODevice{{Major: 8, WriteBytes: 8192, Writes: 2}}},
				Processes: 3,
			},
		},
		{
			layout: "unified-podman", pid: 9000, mode: ModeUnified, onV2: true,
			id: "/machine.slice/libpod-" + id5 + ".scope/container", rt: RuntimePodman, cid: id5,
			want: Stats{
				CPU:       CPUStats{UsageNanos: 10000, UserNanos: 5000, SystemNanos: 5000},
				Memory:    MemoryStats{Usage: 4096, WorkingSet: 4096, RSS: 4096},
				Pids:      PidsStats{Current: 1},
				Processes: 1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.layout, func(t *testing.T) {
			root := filepath.Join("..", "..", "testdata", "cgroups", tt.layout)
			h, err := Detect(filepath.Join(root, "proc"), root)
			if err != nil {
				t.Fatal(err)
			}
			if h.Mode != tt.mode || h.OnV2(Memory) != tt.onV2 || h.OnV2(CPU) != tt.onV2 {
				t.Errorf("mode %v, memory on v2 %v; want %v, %v", h.Mode, h.OnV2(Memory), tt.mode, tt.onV2)
			}
			p, err := ProcCgroup(filepath.Join(root, "proc"), tt.pid)
			if err != nil {
				t.Fatal(err)
			}
			if p.ID() != tt.id {
				t.Errorf("ID() = %q, want %q", p.ID(), tt.id)
			}
			rt, cid, ok := ParseContainerPath(p.ID())
			if !ok || rt != tt.rt || cid != tt.cid {
				t.Errorf("ParseContainerPath = %q, %q, %v; want %q, %q", rt, cid, ok, tt.rt, tt.cid)
			}
			got, err := h.ReadStats(p)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			// A Uniform path (no process to ask) reads the same files.
			if tt.mode != ModeLegacy {
				u, err := h.ReadStats(h.Uniform(p.ID()))
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(got, u, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("Uniform (-proc +uniform)\n%s", diff)
				}
			}
			// Released files are opened again, each in its own
			// controller's directory, and read the same.
			r, err := h.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			r.Release(ReadIdle)
			if r.Held() >= r.Files() {
				t.Fatalf("released: %d of %d files held", r.Held(), r.Files())
			}
			var again Stats
			var buf []byte
			if err := r.Read(&again, &buf, ReadAll); err != nil {
				t.Fatal(err)
			}
			if r.Held() != r.Files() {
				t.Errorf("after a full read %d of %d files held", r.Held(), r.Files())
			}
			if diff := cmp.Diff(got, again, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("reopened (-first +reopened)\n%s", diff)
			}
		})
	}
}

func TestReadGone(t *testing.T) {
	root := filepath.Join("..", "..", "testdata", "cgroups", "unified-docker-systemd")
	h, err := Detect(filepath.Join(root, "proc"), root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Open(h.Uniform("/system.slice/docker-gone.scope")); !errors.Is(err, ErrGone) {
		t.Errorf("Open of a missing cgroup: err = %v, want ErrGone", err)
	}
}

func TestParseMountinfo(t *testing.T) {
	in := "24 18 0:20 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n" +
		"26 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n" +
		"27 24 0:23 /sub /mnt/bind rw - cgroup cgroup rw,memory\n" +
		"28 24 0:24 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n" +
		"30 24 0:26 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/x,name=systemd\n"
	h, err := parseMountinfo([]byte(in), "/host")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cpu":          "/host/sys/fs/cgroup/cpu,cpuacct",
		"cpuacct":      "/host/sys/fs/cgroup/cpu,cpuacct",
		"memory":       "/host/sys/fs/cgroup/memory",
		"name=systemd": "/host/sys/fs/cgroup/systemd",
	}
	if diff := cmp.Diff(want, h.V1); diff != "" || h.Unified != "" {
		t.Errorf("unified %q, (-want +got)\n%s", h.Unified, diff)
	}
}

// TestReadModes checks that ReadCounters keeps the settings of the last
// ReadAll and ReadUsage reads the CPU total alone, on a copy of a fixture
// whose files the test changes.
// fixtureReader opens a copy of a fixture tree's container cgroup, whose
// files the test may change, and returns the reader and the directory.
func fixtureReader(t *testing.T) (*Reader, string) {
	t.Helper()
	src := filepath.Join("..", "..", "testdata", "cgroups", "unified-docker-systemd")
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	h, err := Detect(filepath.Join(root, "proc"), root)
	if err != nil {
		t.Fatal(err)
	}
	cg := filepath.Join(root, "sys", "fs", "cgroup", "system.slice", "docker-"+id2+".scope")
	r, err := h.Open(h.Uniform("/system.slice/docker-" + id2 + ".scope"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, cg
}

// fixtureReads is fixtureReader with the Stats its reads fill and a read
// in a mode that fails the test on error.
func fixtureReads(t *testing.T) (cg string, s *Stats, read func(ReadMode)) {
	r, cg := fixtureReader(t)
	s = new(Stats)
	var buf []byte
	read = func(mode ReadMode) {
		t.Helper()
		if err := r.Read(s, &buf, mode); err != nil {
			t.Fatal(err)
		}
	}
	return cg, s, read
}

func TestReadModes(t *testing.T) {
	r, cg := fixtureReader(t)
	var s Stats
	var buf []byte
	if err := r.Read(&s, &buf, ReadAll); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(cg, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cpu.max", "max 100000\n")
	write("memory.current", "1048576\n")
	write("cpu.stat", "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\n")

	if err := r.ReadUsage(&s, &buf); err != nil {
		t.Fatal(err)
	}
	if s.CPU.UsageNanos != 2e9 || s.Memory.Usage != 20971520 {
		t.Errorf("ReadUsage: usage %d, memory %d; want the new CPU total only", s.CPU.UsageNanos, s.Memory.Usage)
	}
	if err := r.Read(&s, &buf, ReadCounters); err != nil {
		t.Fatal(err)
	}
	if s.Memory.Usage != 1048576 || s.CPU.QuotaMicros != 50000 || len(s.IO.Devices) != 2 {
		t.Errorf("ReadCounters: memory %d, quota %d, %d devices; want new counters, old quota", s.Memory.Usage, s.CPU.QuotaMicros, len(s.IO.Devices))
	}
	if err := r.Read(&s, &buf, ReadAll); err != nil {
		t.Fatal(err)
	}
	if s.CPU.QuotaMicros != 0 {
		t.Errorf("ReadAll: quota %d, want 0 (max)", s.CPU.QuotaMicros)
	}
	if n := testing.AllocsPerRun(100, func() { r.Read(&s, &buf, ReadAll) }); n != 0 {
		t.Errorf("Read allocates %v times, want 0", n)
	}
}

// realCgroup makes the cgroup cg in every hierarchy of the host's; it
// needs root. removeAll, also called at the test's end, removes them
// again.
func realCgroup(t *testing.T, cg string) (h *Hierarchy, p Paths, dirs []string, removeAll func()) {
	t.Helper()
	testenv.RequireLong(t, "root and cgroupfs")
	testenv.RequireRoot(t)
	h, err := Detect("/proc", "/")
	if err != nil {
		testenv.Unavailable(t, "no cgroup hierarchy: %v", err)
	}
	p = h.Uniform(cg)
	seen := map[string]bool{}
	for _, d := range append([]string{h.Unified}, slices.Collect(maps.Values(h.V1))...) {
		if d == "" || seen[d] {
			continue
		}
		seen[d] = true
		dir := filepath.Join(d, cg)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	removeAll = func() {
		for _, d := range dirs {
			os.Remove(d)
		}
	}
	t.Cleanup(removeAll)
	return h, p, dirs, removeAll
}

// TestReadManyProcs counts the processes of a real cgroup with more of
// them than one read of cgroup.procs returns (its seq_file hands out a
// page at a time, some 800 PIDs), through Read and through ReadProcs.
func TestReadManyProcs(t *testing.T) {
	const sleeps = 1500
	cg := fmt.Sprintf("/crmon-manyprocs-%d", time.Now().UnixNano())
	h, p, _, _ := realCgroup(t, cg)
	// The hierarchies whose cgroup.procs Read counts; v1's cpuset would
	// want CPUs and memory nodes first.
	var dirs []string
	for _, d := range []string{h.Unified, h.V1["pids"]} {
		if d != "" {
			dirs = append(dirs, filepath.Join(d, cg))
		}
	}
	// The shell joins the cgroups, then forks the sleeps into them.
	sh := exec.Command("/bin/sh", "-c", fmt.Sprintf("read x; i=0; while [ $i -lt %d ]; do sleep 600 & i=$((i+1)); done; echo started; wait", sleeps))
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-sh.Process.Pid, syscall.SIGKILL)
		sh.Wait()
		// The killed processes leave their cgroups as they are reaped.
		for i := 0; i < 100; i++ {
			b, _ := os.ReadFile(filepath.Join(dirs[0], "cgroup.procs"))
			if len(b) == 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(sh.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in.Write([]byte("go\n"))
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "started\n" {
		t.Fatalf("starting the sleeps: %q, %v", line, err)
	}
	const want = sleeps + 1 // and the shell
	var buf []byte
	for _, o := range []OpenOptions{{}, {ProcsApart: true}, {ProcsV1: true}} {
		r, err := h.OpenWith(p, o)
		if err != nil {
			t.Fatal(err)
		}
		var s Stats
		if err := r.Read(&s, &buf, ReadAll); err != nil {
			t.Fatal(err)
		}
		if err := r.ReadProcs(&s, &buf); err != nil {
			t.Fatal(err)
		}
		r.Close()
		if s.Processes != want {
			t.Errorf("%+v: %d processes, want %d", o, s.Processes, want)
		}
	}
}

// TestReadRemovedKeepsLast reads a real cgroup after it was removed: Read
// says ErrGone and leaves every counter as the last Read left it, block
// I/O devices included, since those are the cgroup's final values.
func TestReadRemovedKeepsLast(t *testing.T) {
	h, p, _, removeAll := realCgroup(t, fmt.Sprintf("/crmon-readgone-%d", time.Now().UnixNano()))
	r, err := h.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var s Stats
	var buf []byte
	if err := r.Read(&s, &buf, ReadAll); err != nil {
		t.Fatal(err)
	}
	// What an earlier Read would have left of a cgroup that did I/O.
	s.IO.Devices = append(s.IO.Devices[:0], IODevice{Major: 8, WriteBytes: 8 << 20, Writes: 8})
	s.CPU.UsageNanos = 12345
	want := s
	want.IO.Devices = append([]IODevice(nil), s.IO.Devices...)
	removeAll()
	for _, mode := range []ReadMode{ReadCounters, ReadAll} {
		if err := r.Read(&s, &buf, mode); !errors.Is(err, ErrGone) {
			t.Fatalf("Read of a removed cgroup: err = %v, want ErrGone", err)
		}
		if diff := cmp.Diff(want, s, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Read of a removed cgroup changed its last counters (-want +got)\n%s", diff)
		}
	}
}

// TestReadIdleMemoryStat checks that ReadIdle leaves memory.stat out while
// the memory usage has not moved since it was read, at most IdleSkips
// times in a row, and reads it at once when the usage moved or after a
// read of another mode.
func TestReadIdleMemoryStat(t *testing.T) {
	cg, s, read := fixtureReads(t)
	// inactive sets inactive_file in memory.stat, current memory.current.
	inactive := func(v int) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(cg, "memory.stat"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "inactive_file ") {
				lines[i] = fmt.Sprintf("inactive_file %d", v)
			}
		}
		if err := os.WriteFile(filepath.Join(cg, "memory.stat"), []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	current := func(v int) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(cg, "memory.current"), []byte(fmt.Sprintln(v)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const usage = 20 << 20
	current(usage)
	read(ReadAll)
	first := s.Memory.InactiveFile

	// Aging moves pages to the inactive list without moving the usage:
	// left out IdleSkips times, read the time after.
	inactive(int(first) + 4096)
	for i := range IdleSkips {
		read(ReadIdle)
		if s.Memory.InactiveFile != first {
			t.Fatalf("idle read %d, usage unchanged: inactive_file %d, want the %d read before (memory.stat left out)", i+1, s.Memory.InactiveFile, first)
		}
	}
	read(ReadIdle)
	if s.Memory.InactiveFile != first+4096 {
		t.Errorf("idle read %d: inactive_file %d, want %d: memory.stat is due", IdleSkips+1, s.Memory.InactiveFile, first+4096)
	}
	if want := uint64(usage) - s.Memory.InactiveFile; s.Memory.WorkingSet != want {
		t.Errorf("working set %d, want %d", s.Memory.WorkingSet, want)
	}

	// The usage moved (reclaim): read at once.
	inactive(int(first))
	read(ReadIdle)
	if s.Memory.InactiveFile != first+4096 {
		t.Fatalf("inactive_file %d right after memory.stat was read, want %d", s.Memory.InactiveFile, first+4096)
	}
	current(usage - 8192)
	read(ReadIdle)
	if s.Memory.Usage != usage-8192 || s.Memory.InactiveFile != first {
		t.Errorf("usage moved: usage %d, inactive_file %d; want %d, %d (memory.stat read)", s.Memory.Usage, s.Memory.InactiveFile, usage-8192, first)
	}

	// A full read reads it whatever the usage.
	inactive(int(first) + 8192)
	read(ReadCounters)
	if s.Memory.InactiveFile != first+8192 {
		t.Errorf("ReadCounters: inactive_file %d, want %d", s.Memory.InactiveFile, first+8192)
	}
	if n := testing.AllocsPerRun(100, func() { read(ReadIdle) }); n != 0 {
		t.Errorf("ReadIdle allocates %v times, want 0", n)
	}
}

// TestReadIdleQuietIO checks that ReadIdleQuiet leaves the block I/O
// files out at most IdleSkips times in a row, the devices staying as last
// read, and that ReadIdle and full reads read them at once.
func TestReadIdleQuietIO(t *testing.T) {
	cg, s, read := fixtureReads(t)
	wbytes := func() uint64 {
		t.Helper()
		for _, d := range s.IO.Devices {
			if d.Major == 8 && d.Minor == 0 {
				return d.WriteBytes
			}
		}
		t.Fatalf("device 8:0 missing from %+v", s.IO.Devices)
		return 0
	}
	// write sets device 8:0's written bytes in io.stat.
	write := func(v uint64) {
		t.Helper()
		b := fmt.Sprintf("8:0 rbytes=1048576 wbytes=%d rios=16 wios=256 dbytes=0 dios=0\n253:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n", v)
		if err := os.WriteFile(filepath.Join(cg, "io.stat"), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read(ReadAll)
	first := wbytes()
	write(first + 4096)
	for i := range IdleSkips {
		read(ReadIdleQuiet)
		if got := wbytes(); got != first || len(s.IO.Devices) != 2 {
			t.Fatalf("quiet read %d: written %d over %d devices, want the %d read before (io.stat left out)", i+1, got, len(s.IO.Devices), first)
		}
	}
	read(ReadIdleQuiet)
	if got := wbytes(); got != first+4096 {
		t.Errorf("quiet read %d: written %d, want %d: io.stat is due", IdleSkips+1, got, first+4096)
	}
	// ReadIdle (the probe could not tell) reads it whatever came before.
	write(first + 8192)
	read(ReadIdleQuiet)
	read(ReadIdle)
	if got := wbytes(); got != first+8192 {
		t.Errorf("ReadIdle after a quiet read: written %d, want %d", got, first+8192)
	}
	write(first + 12288)
	read(ReadIdleQuiet)
	read(ReadCounters)
	if got := wbytes(); got != first+12288 {
		t.Errorf("ReadCounters: written %d, want %d", got, first+12288)
	}
	if n := testing.AllocsPerRun(100, func() { read(ReadIdleQuiet) }); n != 0 {
		t.Errorf("ReadIdleQuiet allocates %v times, want 0", n)
	}
}

func TestProcsApart(t *testing.T) {
	_, cg := fixtureReader(t)
	h, err := Detect(filepath.Join(cg, "..", "..", "..", "..", "..", "proc"), filepath.Join(cg, "..", "..", "..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.OpenWith(h.Uniform("/system.slice/docker-"+id2+".scope"), OpenOptions{ProcsApart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte("777\n778\n779\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var s Stats
	var buf []byte
	for _, mode := range []ReadMode{ReadAll, ReadCounters, ReadIdle} {
		if err := r.Read(&s, &buf, mode); err != nil {
			t.Fatal(err)
		}
		if s.Processes != 0 {
			t.Fatalf("mode %d read cgroup.procs apart: %d processes", mode, s.Processes)
		}
	}
	if s.CPU.UsageNanos == 0 || s.Memory.Usage == 0 {
		t.Fatalf("the other files were not read: %+v", s)
	}
	if err := r.ReadProcs(&s, &buf); err != nil || s.Processes != 3 {
		t.Fatalf("ReadProcs: %d processes, %v; want 3", s.Processes, err)
	}
	// Without the option, Read counts them and ReadProcs does nothing.
	r2, err := h.Open(h.Uniform("/system.slice/docker-" + id2 + ".scope"))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	var s2 Stats
	if err := r2.ReadProcs(&s2, &buf); err != nil || s2.Processes != 0 {
		t.Fatalf("ReadProcs without ProcsApart: %d, %v", s2.Processes, err)
	}
	if err := r2.Read(&s2, &buf, ReadCounters); err != nil || s2.Processes != 3 {
		t.Fatalf("Read: %d processes, %v; want 3", s2.Processes, err)
	}
}
