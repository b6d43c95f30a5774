// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestExecGoTestProcesses runs a real test suite, github.com/prometheus/
// procfs's from the Go module cache (its dependencies are there too, so
// it builds offline), under crmon exec: each package's test binary is a
// row of processes[] of its own, and the rows' CPU adds up to the run's
// within 1 %. (Some of procfs's tests need fixtures its Makefile unpacks,
// so go test may exit 1: the report is what is checked.)
func TestExecGoTestProcesses(t *testing.T) {
	requireRootRun(t)
	goBin := testenv.RequireCommand(t, "go")
	out, err := exec.Command(goBin, "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(strings.TrimSpace(string(out)), "github.com/prometheus/procfs@v0.23.0")
	if _, err := os.Stat(src); err != nil {
		testenv.Unavailable(t, "github.com/prometheus/procfs@v0.23.0 is not in the module cache: %v", err)
	}
	mod := filepath.Join(t.TempDir(), "procfs")
	if out, err := exec.Command("cp", "-r", src, mod).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	if out, err := exec.Command("chmod", "-R", "u+w", mod).CombinedOutput(); err != nil {
		t.Fatalf("chmod: %v\n%s", err, out)
	}
	pkgs, err := exec.Command(goBin, "list", "-C", mod, "-mod=mod", "-f", "{{if .TestGoFiles}}{{.Name}}{{end}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	j := filepath.Join(t.TempDir(), "r.json")
	cmd := exec.Command(crmonBinary(t), "exec", "-q", noAgent, "--ebpf", "required", "--json", j, "--", goBin, "test", "-count=1", "./...")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off")
	outb, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() > 1 || err != nil && !ok {
		t.Fatalf("crmon exec go test: %v\n%s", err, outb)
	}
	r := readReport(t, j)
	rows := map[string]bool{}
	var sum float64
	for _, p := range r.Processes {
		rows[p.Command] = true
		sum += p.CPUSeconds
		if p.Count < 1 || len(p.PIDs) == 0 {
			t.Errorf("row %q: %d processes, pids %v", p.Command, p.Count, p.PIDs)
		}
	}
	for _, name := range strings.Fields(string(pkgs)) {
		if !rows[name+".test"] {
			t.Errorf("no row for %s.test; rows: %v", name, rows)
		}
	}
	if !rows["go test"] || !rows["compile"] {
		t.Errorf("rows %v: want go test and compile among them", rows)
	}
	if d := math.Abs(sum-r.Totals.CPUSeconds) / r.Totals.CPUSeconds; d > 0.01 {
		t.Errorf("processes' CPU sums to %.4fs, the run used %.4fs (%.2f%% apart, want within 1%%)", sum, r.Totals.CPUSeconds, d*100)
	} else {
		t.Logf("%d commands; their CPU sums to %.4fs, the run used %.4fs (%.3f%% apart)", len(r.Processes), sum, r.Totals.CPUSeconds, d*100)
	}
	if r.ProcessesDropped != 0 {
		t.Errorf("%d processes dropped", r.ProcessesDropped)
	}
}
