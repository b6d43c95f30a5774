// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crmon-dev/crmon/internal/collect"
)

func TestParseProcStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    ProcStatCPU
		wantErr bool
	}{
		{
			name: "two cpus",
			in:   "cpu  10 1 20 300 4 5 6 7 8 9\ncpu0 5 1 10 150 2 2 3 3 4 4\ncpu1 5 0 10 150 2 3 3 4 4 5\nintr 1 2\nctxt 5\n",
			want: ProcStatCPU{
				Total: CPUStat{10, 1, 20, 300, 4, 5, 6, 7, 8, 9},
				CPUs:  []CPUStat{{5, 1, 10, 150, 2, 2, 3, 3, 4, 4}, {5, 0, 10, 150, 2, 3, 3, 4, 4, 5}},
				IDs:   []int{0, 1},
			},
		},
		{
			name: "offline cpu1 and an old kernel without guest columns",
			in:   "cpu  1 2 3 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\ncpu2 0 0 0 0 0 0 0 0\n",
			want: ProcStatCPU{
				Total: CPUStat{User: 1, Nice: 2, System: 3, Idle: 4, Iowait: 5, IRQ: 6, SoftIRQ: 7, Steal: 8},
				CPUs:  []CPUStat{{User: 1, Nice: 2, System: 3, Idle: 4, Iowait: 5, IRQ: 6, SoftIRQ: 7, Steal: 8}, {}},
				IDs:   []int{0, 2},
			},
		},
		{name: "no cpu line", in: "intr 1\n", wantErr: true},
		{name: "bad value", in: "cpu  1 x 3\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got ProcStatCPU
			err := parseProcStatCPU([]byte(tc.in), &got)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestUsagePercent(t *testing.T) {
	for _, tc := range []struct {
		name      string
		prev, cur CPUStat
		want      float64
	}{
		{"half busy", CPUStat{User: 100, Idle: 100}, CPUStat{User: 150, Idle: 150}, 50},
		{"iowait is idle", CPUStat{}, CPUStat{System: 25, Iowait: 50, Idle: 25}, 25},
		{"steal is busy, guest not counted twice", CPUStat{}, CPUStat{User: 50, Guest: 50, Steal: 25, Idle: 25}, 75},
		{"no time passed", CPUStat{User: 5}, CPUStat{User: 5}, 0},
		{"counters went back", CPUStat{User: 50, Idle: 50}, CPUStat{User: 40, Idle: 70}, 0},
	} {
		if got := usagePercent(tc.prev, tc.cur); got != tc.want {
			t.Errorf("%s: usagePercent = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-1\n": 2, "0-3,8,10-11": 7, "": 0} {
		got, err := parseCPUList([]byte(in))
		if err != nil || got != want {
			t.Errorf("parseCPUList(%q) = %d, %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"3-1", "a", "1-"} {
		if _, err := parseCPUList([]byte(in)); err == nil {
			t.Errorf("parseCPUList(%q) succeeded", in)
		}
	}
}

func TestParseCPUInfoMHz(t *testing.T) {
	in := "processor\t: 0\ncpu MHz\t\t: 2000.000\n\nprocessor\t: 1\ncpu MHz\t\t: 3000.500\n"
	if got := parseCPUInfoMHz([]byte(in)); got != 2500.25 {
		t.Errorf("mean MHz = %v, want 2500.25", got)
	}
	// arm64's /proc/cpuinfo has no frequency.
	if got := parseCPUInfoMHz([]byte("processor\t: 0\nBogoMIPS\t: 50.00\n")); got != 0 {
		t.Errorf("MHz without cpu MHz = %v, want 0", got)
	}
}

func TestParseLoadavg(t *testing.T) {
	got, err := parseLoadavg([]byte("0.52 1.01 10.00 2/218 2161\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([3]float64{0.52, 1.01, 10}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := parseLoadavg([]byte("0.52\n")); err == nil {
		t.Error("short loadavg parsed")
	}
}

func TestParseMeminfo(t *testing.T) {
	in := "MemTotal:       16384 kB\nActive(anon):     100 kB\nHugePages_Total:       4\nHugepagesize:    2048 kB\n"
	type kv struct {
		Name  string
		Value uint64
	}
	var got []kv
	err := parseMeminfo([]byte(in), func(key []byte, v uint64, unit bool) {
		got = append(got, kv{meminfoMetricName(key, unit), v})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []kv{
		{"MemTotal_bytes", 16384 * 1024},
		{"Active_anon_bytes", 100 * 1024},
		{"HugePages_Total", 4},
		{"Hugepagesize_bytes", 2048 * 1024},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := parseMeminfo([]byte("MemTotal 5 kB\n"), func([]byte, uint64, bool) {}); err == nil {
		t.Error("line without colon parsed")
	}
}

func TestParseProcStat(t *testing.T) {
	in := "cpu  1 2 3 4\nintr 1153199 0 0 5\nctxt 2188170\nbtime 1795723570\nprocesses 34627\nprocs_running 3\nprocs_blocked 1\nsoftirq 1 2\n"
	got, err := parseProcStat([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := ProcStat{BootTime: 1795723570, ContextSwitches: 2188170, Forks: 34627, Interrupts: 1153199, ProcsRunning: 3, ProcsBlocked: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := parseProcStat([]byte("ctxt 5\n")); err == nil {
		t.Error("stat without btime parsed")
	}
}

func TestParseUptime(t *testing.T) {
	if got, err := parseUptime([]byte("754.17 1091.37\n")); err != nil || got != 754.17 {
		t.Errorf("parseUptime = %v, %v", got, err)
	}
}

func TestParseFileNr(t *testing.T) {
	a, m, err := parseFileNr([]byte("1139\t0\t2466177\n"))
	if err != nil || a != 1139 || m != 2466177 {
		t.Errorf("parseFileNr = %d, %d, %v", a, m, err)
	}
}

func TestIsPartition(t *testing.T) {
	for _, tc := range []struct {
		m    Mount
		want bool
	}{
		{Mount{Major: 254, Minor: 1, FSType: "ext4", Source: "/dev/vda1"}, true},
		{Mount{Major: 0, Minor: 50, FSType: "btrfs", Source: "/dev/sda2"}, true},
		{Mount{Major: 0, Minor: 26, FSType: "tmpfs", Source: "tmpfs"}, false},
		{Mount{Major: 0, Minor: 42, FSType: "nfs4", Source: "server:/export"}, false},
	} {
		if got := isPartition(tc.m); got != tc.want {
			t.Errorf("isPartition(%s %s) = %v, want %v", tc.m.FSType, tc.m.Source, got, tc.want)
		}
	}
}

func TestParseDiskstats(t *testing.T) {
	in := " 254       0 vda 42400 6270 2462458 22937 20345 33660 5120128 16278 0 6740 39779 6702 50 658040 475 2356 87\n  11       0 sr0 12 0 96 4 0 0 0 0 0 8 4\n"
	type line struct {
		Major, Minor uint32
		Name         string
		Fields       []uint64
	}
	var got []line
	err := parseDiskstats([]byte(in), func(d *DiskStat) {
		got = append(got, line{d.Major, d.Minor, string(d.Name), append([]uint64(nil), d.Fields[:d.NFields]...)})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []line{
		{254, 0, "vda", []uint64{42400, 6270, 2462458, 22937, 20345, 33660, 5120128, 16278, 0, 6740, 39779, 6702, 50, 658040, 475, 2356, 87}},
		{11, 0, "sr0", []uint64{12, 0, 96, 4, 0, 0, 0, 0, 0, 8, 4}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := parseDiskstats([]byte("8 0 sda 1 2 3\n"), func(*DiskStat) {}); err == nil {
		t.Error("short line parsed")
	}
}

func TestParseNetDev(t *testing.T) {
	in := "Inter-|   Receive\n face |bytes\n    lo:   20808     185    0    0    0     0          0         0    20808     185    0    0    0     0       0          0\nveth1c9af19:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
	type line struct {
		Name   string
		Fields [16]uint64
	}
	var got []line
	if err := parseNetDev([]byte(in), func(l *NetDevLine) { got = append(got, line{string(l.Name), l.Fields}) }); err != nil {
		t.Fatal(err)
	}
	want := []line{
		{"lo", [16]uint64{20808, 185, 0, 0, 0, 0, 0, 0, 20808, 185}},
		{"veth1c9af19", [16]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

type stat3 struct {
	Proto, Name string
	Value       float64
}

// appendStat3 is a parse callback that appends each field to got.
func appendStat3(got *[]stat3) func(p, n, v []byte) error {
	return func(p, n, v []byte) error {
		f, ok := parseFloat(v)
		if !ok {
			return fmt.Errorf("bad value %q", v)
		}
		*got = append(*got, stat3{string(p), string(n), f})
		return nil
	}
}

func TestParseNetstat(t *testing.T) {
	in := "Tcp: RtoAlgorithm MaxConn ActiveOpens\nTcp: 1 -1 77\nUdp: InDatagrams\nUdp: 12\n"
	var got []stat3
	if err := parseNetstat([]byte(in), appendStat3(&got)); err != nil {
		t.Fatal(err)
	}
	want := []stat3{{"Tcp", "RtoAlgorithm", 1}, {"Tcp", "MaxConn", -1}, {"Tcp", "ActiveOpens", 77}, {"Udp", "InDatagrams", 12}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := parseNetstat([]byte("Tcp: A\nUdp: 1\n"), func(_, _, _ []byte) error { return nil }); err == nil {
		t.Error("unpaired lines parsed")
	}
}

func TestParseSNMP6(t *testing.T) {
	in := "Ip6InReceives                   \t12\nIcmp6InMsgs 3\nUdpLite6InErrors 0\n"
	var got []stat3
	if err := parseSNMP6([]byte(in), appendStat3(&got)); err != nil {
		t.Fatal(err)
	}
	want := []stat3{{"Ip6", "InReceives", 12}, {"Icmp6", "InMsgs", 3}, {"UdpLite6", "InErrors", 0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestFieldSelectors(t *testing.T) {
	co := collect.Options{Paths: fixturePaths(t)}
	ns, err := newNetstatCollector(co, Options{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	vm, err := newVmstatCollector(co, Options{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sel  *fieldSelector
		name string
		want bool
	}{
		{&ns.sel, "Tcp_InSegs", true},
		{&ns.sel, "Tcp_RtoAlgorithm", false},
		{&ns.sel, "UdpLite6_InErrors", true},
		{&ns.sel, "TcpExt_ListenDrops", true},
		{&ns.sel, "IpExt_InOctets", true},
		{&vm.sel, "pgmajfault", true},
		{&vm.sel, "oom_kill", true},
		{&vm.sel, "nr_free_pages", false},
	} {
		if got := tc.sel.get([]byte(tc.name)) != nil; got != tc.want {
			t.Errorf("%s exported = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseVmstat(t *testing.T) {
	type kv struct {
		Name  string
		Value float64
	}
	var got []kv
	if err := parseVmstat([]byte("nr_free_pages 5\npgfault 17802237\n"), func(n, v []byte) error {
		f, ok := parseFloat(v)
		if !ok {
			return fmt.Errorf("bad value %q", v)
		}
		got = append(got, kv{string(n), f})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]kv{{"nr_free_pages", 5}, {"pgfault", 17802237}}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseSockstat(t *testing.T) {
	in := "sockets: used 35\nTCP: inuse 1 orphan 0 tw 16 alloc 1 mem 143\nFRAG: inuse 0 memory 0\n"
	type kv struct {
		Proto, Key string
		Value      uint64
	}
	var got []kv
	if err := parseSockstat([]byte(in), func(p, k []byte, v uint64) { got = append(got, kv{string(p), string(k), v}) }); err != nil {
		t.Fatal(err)
	}
	want := []kv{{"sockets", "used", 35}, {"TCP", "inuse", 1}, {"TCP", "orphan", 0}, {"TCP", "tw", 16}, {"TCP", "alloc", 1}, {"TCP", "mem", 143}, {"FRAG", "inuse", 0}, {"FRAG", "memory", 0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseSoftnet(t *testing.T) {
	in := "00000012 00000001 00000002 00000000 00000000 00000000 00000000 00000000 00000003 00000004 00000005 00000006 00000007 00000000 00000000\n" +
		"00002dd9 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n"
	var got []SoftnetStat
	if err := parseSoftnet([]byte(in), func(s *SoftnetStat) { got = append(got, *s) }); err != nil {
		t.Fatal(err)
	}
	want := []SoftnetStat{
		{CPU: 7, Processed: 0x12, Dropped: 1, TimeSqueezed: 2, CPUCollision: 3, ReceivedRps: 4, FlowLimitCount: 5, BacklogLen: 6, HasBacklog: true},
		{CPU: 1, Processed: 0x2dd9},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParsePSI(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want PSI
	}{
		{"some avg10=1.19 avg60=2.98 avg300=5.49 total=32114483\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n", PSI{32114483, 7, true, true}},
		// Before 5.13 the cpu file had no full line.
		{"some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n", PSI{Some: 5, HasSome: true}},
	} {
		got, err := parsePSI([]byte(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
}

func TestParseARP(t *testing.T) {
	in := "IP address       HW type     Flags       HW address            Mask     Device\n192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0\n172.17.0.2       0x1         0x2         02:42:ac:11:00:02     *        docker0\n192.0.2.2        0x1         0x2         02:fc:00:00:00:06     *        eth0\n"
	got := map[string]int{}
	if err := parseARP([]byte(in), func(d []byte) { got[string(d)]++ }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"eth0": 2, "docker0": 1}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseUDPQueues(t *testing.T) {
	in := "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n" +
		"  1: 00000000:0044 00000000:0000 07 00000010:00000200 00:00000000 00000000     0        0 1 2 0000000000000000 0\n" +
		"  2: 00000000:0045 00000000:0000 07 00000001:00000001 00:00000000 00000000     0        0 1 2 0000000000000000 0\n"
	tx, rx, err := parseUDPQueues([]byte(in))
	if err != nil || tx != 0x11 || rx != 0x201 {
		t.Errorf("parseUDPQueues = %d, %d, %v, want 17, 513", tx, rx, err)
	}
}

func TestParseOSRelease(t *testing.T) {
	in := "# comment\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nPRETTY_NAME='Ubuntu 22.04.3 LTS'\nVARIANT=\"a \\\"quoted\\\" \\$x\"\n"
	want := map[string]string{"NAME": "Ubuntu", "VERSION_ID": "22.04", "ID": "ubuntu", "PRETTY_NAME": "Ubuntu 22.04.3 LTS", "VARIANT": `a "quoted" $x`}
	if diff := cmp.Diff(want, parseOSRelease([]byte(in))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for in, want := range map[string]float64{"12": 12, "22.04": 22.04, "22.04.3": 22.04} {
		if got, ok := osVersion(in); !ok || got != want {
			t.Errorf("osVersion(%q) = %v, %v, want %v", in, got, ok, want)
		}
	}
	if _, ok := osVersion("rolling"); ok {
		t.Error(`osVersion("rolling") succeeded`)
	}
}

func TestParseUtmp(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixturePaths(t).RootFS, "run/utmp"))
	if err != nil {
		t.Fatal(err)
	}
	// The fixture is amd64's glibc format: reboot, LOGIN on tty1, alice,
	// bob, a dead pts/2.
	const size = 384
	if got := parseUtmp(b, size); got != 2 {
		t.Errorf("users = %d, want 2", got)
	}
	if got := parseUtmp(b[:3*size+100], size); got != 1 {
		t.Errorf("users in a cut file = %d, want 1 (alice only)", got)
	}
	if got := parseUtmp(nil, size); got != 0 {
		t.Errorf("users in an empty file = %d", got)
	}
}

func TestParsePIDStat(t *testing.T) {
	in := "1234 (my (weird) prog) R 1 1234 1234 0 -1 4194304 4000 0 10 0 1500 500 0 0 20 0 4 0 5000 1073741824 25600 18446744073709551615 1 1 0\n"
	var got PIDStat
	if err := parsePIDStat([]byte(in), &got); err != nil {
		t.Fatal(err)
	}
	want := PIDStat{Comm: []byte("my (weird) prog"), State: 'R', UTime: 1500, STime: 500, NumThreads: 4, StartTime: 5000, VSize: 1073741824, RSS: 25600}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := parsePIDStat([]byte("1 (x) S 0 1"), &got); err == nil {
		t.Error("short stat parsed")
	}
}

func TestInsertTop(t *testing.T) {
	vals := []int{5, 9, 1, 9, 7, 3, 8}
	var idx []int
	for i := range vals {
		idx = insertTop(idx, 3, i, func(a, b int) bool {
			if vals[a] != vals[b] {
				return vals[a] > vals[b]
			}
			return a < b
		})
	}
	if diff := cmp.Diff([]int{1, 3, 6}, idx); diff != "" {
		t.Errorf("top 3 indexes (-want +got):\n%s", diff)
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{"coretemp.0": "coretemp_0", "0000:00:1f.3": "0000_00_1f_3", "__a--b__": "a_b", "nvme": "nvme"} {
		if got := cleanName(in); got != want {
			t.Errorf("cleanName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadUdevData(t *testing.T) {
	p := filepath.Join(t.TempDir(), "b259-0")
	if err := os.WriteFile(p, []byte("S:disk/by-id/nvme-x\nE:ID_PATH=pci-0000:01:00.0-nvme-1\nE:ID_SERIAL_SHORT=S5GX\nG:systemd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ID_PATH": "pci-0000:01:00.0-nvme-1", "ID_SERIAL_SHORT": "S5GX"}
	if diff := cmp.Diff(want, readUdevData(p)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := readUdevData(p + ".missing"); len(got) != 0 {
		t.Errorf("missing udev entry gave %v", got)
	}
}

func TestReaderGrows(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big")
	want := make([]byte, 10000)
	for i := range want {
		want[i] = byte('a' + i%26)
	}
	if err := os.WriteFile(p, want, 0o644); err != nil {
		t.Fatal(err)
	}
	r := newReader(16)
	got, err := r.read(mkpath(p))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("read %d bytes, want %d", len(got), len(want))
	}
	if _, err := r.read(mkpath(p + ".missing")); !os.IsNotExist(err) {
		t.Errorf("missing file: err = %v, want not-exist", err)
	}
}
