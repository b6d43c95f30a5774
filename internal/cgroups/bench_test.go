// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package cgroups

import (
	"testing"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
)

// benchCgroup starts an idle container and returns its cgroup.
func benchCgroup(b *testing.B) (*Hierarchy, Paths) {
	dockertest.Require(b)
	id := dockertest.Run(b, nil, "sleep", "600")
	pid := dockertest.Docker(b, "inspect", "-f", "{{.State.Pid}}", id)
	h, err := Detect("/proc", "/")
	if err != nil {
		b.Fatal(err)
	}
	p, err := ProcCgroup("/proc", atoi(b, pid))
	if err != nil {
		b.Fatal(err)
	}
	return h, p
}

// benchReader opens crmon's reader on an idle container's cgroup, closed
// when the benchmark ends.
func benchReader(b *testing.B) *Reader {
	h, p := benchCgroup(b)
	r, err := h.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}

func atoi(b *testing.B, s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			b.Fatalf("not a pid: %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// BenchmarkReader is one container's full read with crmon's reader.
func BenchmarkReader(b *testing.B) {
	r := benchReader(b)
	var s Stats
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := r.Read(&s, &buf, ReadAll); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderReopen is one container's full read with its files
// opened for the read and released after it (but the ones ReadIdle reads).
func BenchmarkReaderReopen(b *testing.B) {
	r := benchReader(b)
	var s Stats
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.Release(ReadIdle)
		if err := r.Read(&s, &buf, ReadAll); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderIdleRefresh is an idle container's refresh: only what
// moves while it does not run.
func BenchmarkReaderIdleRefresh(b *testing.B) {
	r := benchReader(b)
	r.Release(ReadIdle)
	var s Stats
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := r.Read(&s, &buf, ReadIdle); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(r.Held()), "files")
}

// BenchmarkReaderIdle is the per-tick read of an idle container.
func BenchmarkReaderIdle(b *testing.B) {
	r := benchReader(b)
	var s Stats
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := r.ReadUsage(&s, &buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkContainerdStat is the same container through
// containerd/cgroups/v3, for comparison.
func BenchmarkContainerdStat(b *testing.B) {
	h, p := benchCgroup(b)
	b.ReportAllocs()
	if h.Mode == ModeUnified {
		m, err := cgroup2.Load(p.V2)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			if _, err := m.Stat(); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(p.V1["memory"]))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := cg.Stat(cgroup1.IgnoreNotExist); err != nil {
			b.Fatal(err)
		}
	}
}
