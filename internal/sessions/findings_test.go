// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"slices"
	"strings"
	"testing"

	"github.com/crmon-dev/crmon/pkg/session"
)

// hist is a latency histogram with n requests in the bucket of d seconds.
func hist(n uint64, d float64) []uint64 {
	h := make([]uint64, 34)
	b := 0
	for ns := d * 1e9; ns >= 1; ns /= 2 {
		b++
	}
	h[b] = n
	return h
}

func TestDiagnose(t *testing.T) {
	exit := func(c int) *int { return &c }
	healthy := session.Measures{CPUSeconds: 2, RunqueueWaitSeconds: 0.3, PeakMemoryBytes: 10 << 20}
	for _, tc := range []struct {
		name string
		f    scopeFacts
		want []string // codes
		in   string   // a word the first finding's message must hold
	}{
		{"throttled, not starved", scopeFacts{m: &session.Measures{CPUSeconds: 0.4, RunqueueWaitSeconds: 1.7}, haveEv: true,
			ev: evidence{periods: 20, throttledPeriods: 19, throttledNanos: 1.6e9}}, []string{session.FindingCPUThrottled}, "quota"},
		{"healthy", scopeFacts{m: &healthy, haveEv: true, ev: evidence{memLimit: 1 << 30, periods: 100}}, nil, ""},
		{"idle", scopeFacts{m: &session.Measures{CPUSeconds: 0.001, RunqueueWaitSeconds: 0.2}, haveEv: true}, nil, ""},
		{"starved", scopeFacts{m: &session.Measures{CPUSeconds: 1, RunqueueWaitSeconds: 0.7}}, []string{session.FindingCPUStarved}, "/other.slice"},
		{"starved, not measured", func() scopeFacts {
			m := session.Measures{CPUSeconds: 1}
			m.SetUnmeasured("runqueue_wait_seconds")
			return scopeFacts{m: &m}
		}(), nil, ""},
		{"throttled", scopeFacts{m: &healthy, haveEv: true, ev: evidence{periods: 50, throttledPeriods: 45, throttledNanos: 3e9, quotaMicros: 20000, periodMicros: 100000}},
			[]string{session.FindingCPUThrottled}, "0.20 CPUs"},
		{"a few throttled periods", scopeFacts{m: &healthy, haveEv: true, ev: evidence{periods: 1000, throttledPeriods: 5, throttledNanos: 2e8}}, nil, ""},
		{"near limit", scopeFacts{m: &session.Measures{PeakMemoryBytes: 15 << 20}, haveEv: true, ev: evidence{memLimit: 16 << 20}},
			[]string{session.FindingMemoryNearLimit}, "94%"},
		{"oom", scopeFacts{scope: "container:db", m: &session.Measures{PeakMemoryBytes: 16 << 20}, haveEv: true, ev: evidence{memLimit: 16 << 20, oomKills: 1}, exit: exit(137), oomKilled: true},
			[]string{session.FindingOOMKill, session.FindingContainerFailed}, "OOM killer"},
		// Killed and gone before its cgroup was ever read: the engine's
		// word is the evidence.
		{"oom, cgroup never read", scopeFacts{scope: "container:db", m: &session.Measures{}, exit: exit(137), oomKilled: true},
			[]string{session.FindingOOMKill, session.FindingContainerFailed}, "OOM killer killed 1 process(es) of container db"},
		{"major faults", scopeFacts{m: &healthy, haveEv: true, ev: evidence{majorFaults: 5000}}, []string{session.FindingMajorFaults}, "5000"},
		{"slow io", scopeFacts{m: &healthy, ioBefore: map[string][]uint64{"vda": hist(1000, 0.001)}, ioRun: map[string][]uint64{"vda": hist(50, 0.05)}},
			[]string{session.FindingSlowIO}, "vda"},
		{"io as before", scopeFacts{m: &healthy, ioBefore: map[string][]uint64{"vda": hist(1000, 0.05)}, ioRun: map[string][]uint64{"vda": hist(50, 0.05)}}, nil, ""},
		{"io without history", scopeFacts{m: &healthy, ioBefore: map[string][]uint64{"vda": hist(3, 0.001)}, ioRun: map[string][]uint64{"vda": hist(50, 0.05)}}, nil, ""},
		{"failed container", scopeFacts{scope: "container:web", m: &healthy, exit: exit(2)}, []string{session.FindingContainerFailed}, "code 2"},
		{"container ok", scopeFacts{scope: "container:web", m: &healthy, exit: exit(0)}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.f.scope == "" {
				tc.f.scope = session.ScopeRun
			}
			got := diagnose([]scopeFacts{tc.f}, []session.CgroupCPU{{Cgroup: "/other.slice", CPUSeconds: 1.5}})
			var codes []string
			for _, f := range got {
				codes = append(codes, f.Code)
				if f.Severity != session.SeverityWarning && f.Severity != session.SeverityCritical || f.Message == "" || len(f.Evidence) == 0 || f.Scope != tc.f.scope {
					t.Errorf("finding %+v: want a severity, a message, evidence and scope %s", f, tc.f.scope)
				}
			}
			if !slices.Equal(codes, tc.want) {
				t.Fatalf("codes %v, want %v (%+v)", codes, tc.want, got)
			}
			if got == nil {
				t.Fatal("nil findings: want an empty list")
			}
			if len(got) > 0 && !strings.Contains(got[0].Message, tc.in) {
				t.Errorf("message %q lacks %q", got[0].Message, tc.in)
			}
		})
	}
}

func TestOthersCPU(t *testing.T) {
	start := map[string]float64{"/a": 1, "/b": 0, "/run": 0, "/docker/x": 0}
	end := map[string]float64{"/a": 3, "/b": 0.5, "/c": 4, "/run": 9, "/run/sub": 9, "/docker/x": 8, "/idle": 0.001, "/d": 0.2, "/e": 0.1}
	got := othersCPU(start, end, "/run", map[string]string{"/docker/x": "x"})
	want := []session.CgroupCPU{{Cgroup: "/c", CPUSeconds: 4}, {Cgroup: "/a", CPUSeconds: 2}, {Cgroup: "/b", CPUSeconds: 0.5}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
