// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/probe"
)

func TestCommandOf(t *testing.T) {
	for _, tc := range []struct {
		p    probe.Process
		want string
	}{
		{probe.Process{Comm: "procfs.test", Filename: "/tmp/go-build1/b001/procfs.test", Args: []string{"/tmp/go-build1/b001/procfs.test", "-test.count=1"}}, "procfs.test"},
		{probe.Process{Comm: "go", Filename: "/usr/local/go/bin/go", Args: []string{"go", "test", "-count=1", "./..."}}, "go test"},
		{probe.Process{Comm: "sh", Filename: "/bin/sh", Args: []string{"sh", "-c", "/usr/bin/make -j4 all"}}, "sh -c make"},
		{probe.Process{Comm: "python3", Filename: "/usr/bin/python3.12", Args: []string{"python3", "-m", "pytest", "-q"}}, "python3.12 pytest"},
		{probe.Process{Comm: "compile", Filename: "/usr/local/go/pkg/tool/linux_amd64/compile", Args: []string{"compile", "-o", "x"}}, "compile"},
		{probe.Process{Comm: "sh", Filename: "/bin/sh", Args: []string{"sh", "-c", "i=0; while [ $i -lt 9 ]; do i=$((i+1)); done"}}, "sh -c (script)"},
		{probe.Process{Comm: "sh", Filename: "/bin/sh", Args: []string{"sh", "-c", "cd /src && CGO_ENABLED=0 go build ./..."}}, "sh -c cd"},
		{probe.Process{Comm: "sh", Filename: "/bin/sh", Args: []string{"sh", "-c", "X=1 exec ./run-tests.sh --fast"}}, "sh -c run-tests.sh"},
		// A fork that never executed anything: its kernel name.
		{probe.Process{Comm: "sh"}, "sh"},
		{probe.Process{Comm: "pythonista", Filename: "/usr/bin/pythonista", Args: []string{"pythonista", "x"}}, "pythonista"},
	} {
		if got := commandOf(tc.p); got != tc.want {
			t.Errorf("%s %q: %q, want %q", tc.p.Filename, tc.p.Args, got, tc.want)
		}
	}
}

func TestProcessReports(t *testing.T) {
	var ps []probe.Process
	for i := range 300 {
		ps = append(ps, probe.Process{PID: 1000 + i, Comm: fmt.Sprintf("c%03d", i), CPU: time.Duration(i+1) * time.Millisecond, MaxRSSBytes: uint64(i)})
	}
	for i := range 40 {
		ps = append(ps, probe.Process{PID: 5000 + i, Comm: "compile", CPU: 10 * time.Millisecond, ReadBytes: 1, WriteBytes: 2, MaxRSSBytes: uint64(100 + i)})
	}
	rs := processReports(ps)
	if len(rs) != maxCommands {
		t.Fatalf("%d rows, want %d", len(rs), maxCommands)
	}
	if rs[0].Command != "compile" || rs[0].Count != 40 || len(rs[0].PIDs) != maxPIDs || rs[0].CPUSeconds < 0.3999 || rs[0].PeakMemoryBytes != 139 || rs[0].BlockWriteBytes != 80 {
		t.Errorf("first row %+v: want compile, 40 processes, 32 PIDs, 0.4 s, the largest RSS, bytes summed", rs[0])
	}
	last := rs[len(rs)-1]
	var sum, want float64
	for _, r := range rs {
		sum += r.CPUSeconds
	}
	for _, p := range ps {
		want += p.CPU.Seconds()
	}
	if last.Command != otherCommands || sum < want-1e-9 || sum > want+1e-9 {
		t.Errorf("last row %q; rows sum %.6f s, processes %.6f s", last.Command, sum, want)
	}
	if rs[0].Measured("context_switches") || !rs[0].Measured("cpu_seconds") {
		t.Error("a process row claims figures the kernel does not count per process")
	}
}

// stagedProcs is a ProcCounter whose processes exit on cue: exitedAt[i]
// is the Take call (1, 2) at which running[i] is reported exited.
type stagedProcs struct {
	exited   []probe.Process
	running  []probe.Process
	exitedAt []int
	takes    int
	pids     []int
}

func (s *stagedProcs) Watch(uint64) error { return nil }
func (s *stagedProcs) Unwatch(uint64)     {}
func (s *stagedProcs) Dropped() uint64    { return 0 }

func (s *stagedProcs) Take(uint64) ([]probe.Process, error) {
	s.takes++
	out := s.exited
	s.exited = nil
	for i, p := range s.running {
		if s.exitedAt[i] == s.takes {
			p.CPU += time.Second // what it used after it was read
			out = append(out, p)
		}
	}
	return out, nil
}

func (s *stagedProcs) Running(_ uint64, _ string, pids []int) ([]probe.Process, error) {
	s.pids = pids
	var out []probe.Process
	for i, p := range s.running {
		if s.exitedAt[i] != 1 { // gone before it was read otherwise
			out = append(out, p)
		}
	}
	return out, nil
}

// TestRunProcesses: the report's processes are the exited ones and the
// PIDs of the run's cgroup tree still running; one that exits while they
// are read is counted once, with its final figures.
func TestRunProcesses(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "scope"), 0o755); err != nil {
		t.Fatal(err)
	}
	for f, body := range map[string]string{"cgroup.procs": "10\n11\n", "scope/cgroup.procs": "12\n"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := &stagedProcs{
		exited:   []probe.Process{{PID: 5, CPU: time.Second}},
		running:  []probe.Process{{PID: 10, CPU: time.Second}, {PID: 11, CPU: time.Second}, {PID: 12, CPU: time.Second}},
		exitedAt: []int{0, 2, 1}, // 10 runs on, 11 exits after it was read, 12 before
	}
	got, err := runProcesses(s, 1, "/proc", dir)
	if err != nil {
		t.Fatal(err)
	}
	cpu := map[int]time.Duration{}
	for _, p := range got {
		if _, dup := cpu[p.PID]; dup {
			t.Errorf("pid %d counted twice", p.PID)
		}
		cpu[p.PID] = p.CPU
	}
	want := map[int]time.Duration{5: time.Second, 10: time.Second, 11: 2 * time.Second, 12: 2 * time.Second}
	if !maps.Equal(cpu, want) {
		t.Errorf("processes %v, want %v", cpu, want)
	}
	if !slices.Equal(s.pids, []int{10, 11, 12}) {
		t.Errorf("running PIDs read %v, want the cgroup tree's 10, 11, 12", s.pids)
	}
}
