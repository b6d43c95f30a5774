// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"fmt"
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
