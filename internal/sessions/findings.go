// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/pkg/session"
)

// evidence is what a scope's cgroup files say beyond its measures: the
// limits it ran under, and the events that slow a run down or fail it.
type evidence struct {
	periods, throttledPeriods uint64
	throttledNanos            uint64
	oomKills                  uint64
	majorFaults               uint64
	// Settings, not counters: the last values read.
	memLimit     uint64
	quotaMicros  uint64
	periodMicros uint64
}

func evidenceOf(st *cgroups.Stats) evidence {
	return evidence{
		periods: st.CPU.Periods, throttledPeriods: st.CPU.ThrottledPeriods, throttledNanos: st.CPU.ThrottledNanos,
		oomKills: st.Memory.OOMEvents, majorFaults: st.Memory.MajorFaults,
		memLimit: st.Memory.Limit, quotaMicros: st.CPU.QuotaMicros, periodMicros: st.CPU.PeriodMicros,
	}
}

// since is e's counters since base; the settings are e's.
func (e evidence) since(base evidence) evidence {
	out := e
	out.periods = sub(e.periods, base.periods)
	out.throttledPeriods = sub(e.throttledPeriods, base.throttledPeriods)
	out.throttledNanos = sub(e.throttledNanos, base.throttledNanos)
	out.oomKills = sub(e.oomKills, base.oomKills)
	out.majorFaults = sub(e.majorFaults, base.majorFaults)
	return out
}

// hostMeter is a Meter that also sees the whole host: each cgroup's CPU
// time, and each device's block latency, so that a run's findings can
// name who else used the CPUs and what the device showed before the run.
type hostMeter interface {
	// CgroupCPU is each cgroup's own on-CPU seconds, by cgroup2 path, as
	// of the last Refresh.
	CgroupCPU() map[string]float64
	// DeviceLatency is the block latency histogram of each device for
	// the subtree at path ("/" for the host) as of the last Refresh.
	DeviceLatency(path string) map[string][]uint64
}

// The thresholds of the findings. They are chosen so that an idle or
// healthy run on a busy CI host has none, and are documented in
// docs/report.md.
const (
	// A scope is CPU-starved when its tasks waited in the run queue at
	// least starvedShare of the time they ran, and at least starvedMin
	// seconds in all; critical when they waited longer than they ran.
	// Three CPU-bound tasks on two CPUs wait half the time they run.
	starvedShare = 0.25
	starvedMin   = 0.25
	// Throttled: at least throttledMin seconds throttled, in at least
	// throttledShare of the CFS periods it ran in; critical from half.
	throttledMin   = 0.1
	throttledShare = 0.1
	// Memory near its limit: a peak at or above nearLimit of it.
	nearLimit = 0.9
	// Major faults: at least majorFaultsMin pages read back from disk.
	majorFaultsMin = 1000
	// Slow I/O: a p99 at least slowIOFactor times the device's before the
	// run and at least slowIOMin seconds, over at least slowIOOps
	// requests of the run and slowIOBeforeOps before it.
	slowIOFactor    = 4
	slowIOMin       = 0.01
	slowIOOps       = 16
	slowIOBeforeOps = 100
	// maxOthers bounds the other cgroups a starved finding names.
	maxOthers = 3
)

// scopeFacts are one scope's figures and evidence, for diagnose.
type scopeFacts struct {
	scope string
	m     *session.Measures
	ev    evidence
	// haveEv says the cgroup files were read.
	haveEv bool
	// exit is a container's, nil for the run or a container still
	// running; oomKilled Docker's flag.
	exit      *int
	oomKilled bool
	// ioBefore and ioRun are, per device, the block latency histogram of
	// the host before the run and of the scope during it; nil without
	// the probes.
	ioBefore, ioRun map[string][]uint64
}

// diagnose finds what slowed down or failed each scope. others are the
// cgroups outside the run that used the CPUs during it, most first.
func diagnose(scopes []scopeFacts, others []session.CgroupCPU) []session.Finding {
	out := []session.Finding{}
	for _, f := range scopes {
		out = append(out, diagnoseScope(f, others)...)
	}
	return out
}

func diagnoseScope(f scopeFacts, others []session.CgroupCPU) []session.Finding {
	var out []session.Finding
	add := func(code, sev, msg string, ev map[string]float64) *session.Finding {
		out = append(out, session.Finding{Code: code, Severity: sev, Scope: f.scope, Message: msg, Evidence: ev})
		return &out[len(out)-1]
	}
	m, ev := f.m, f.ev
	throttled := false
	if f.haveEv && ev.throttledPeriods > 0 && ev.periods > 0 {
		thr := float64(ev.throttledNanos) / 1e9
		share := float64(ev.throttledPeriods) / float64(ev.periods)
		if thr >= throttledMin && share >= throttledShare {
			sev := session.SeverityWarning
			if share >= 0.5 {
				sev = session.SeverityCritical
			}
			quota := ""
			if ev.quotaMicros > 0 && ev.periodMicros > 0 {
				quota = fmt.Sprintf(" of %.2f CPUs", float64(ev.quotaMicros)/float64(ev.periodMicros))
			}
			evm := map[string]float64{"throttled_periods": float64(ev.throttledPeriods), "periods": float64(ev.periods),
				"throttled_seconds": thr, "throttled_percent_of_periods": share * 100}
			if quota != "" {
				evm["quota_cpus"] = float64(ev.quotaMicros) / float64(ev.periodMicros)
			}
			msg := fmt.Sprintf("%s hit its CPU quota%s in %d of %d periods (%.0f%%) and was held back %s",
				who(f.scope), quota, ev.throttledPeriods, ev.periods, share*100, session.FormatSeconds(thr))
			if m.Measured("runqueue_wait_seconds") {
				evm["runqueue_wait_seconds"] = m.RunqueueWaitSeconds
				msg += fmt.Sprintf("; its tasks waited %s in all while runnable", session.FormatSeconds(m.RunqueueWaitSeconds))
			}
			add(session.FindingCPUThrottled, sev, msg, evm)
			throttled = true
		}
	}
	// A task held back by its CPU quota stays runnable, and its wait
	// counts as run-queue wait: each of the scope's runnable tasks
	// waits while the quota holds them all, so a throttled scope's wait
	// cannot be put on others; its throttling finding says what held it.
	// A scope throttled a little has the quota's time taken off.
	wait := m.RunqueueWaitSeconds
	if f.haveEv {
		wait = max(0, wait-float64(ev.throttledNanos)/1e9)
	}
	if !throttled && m.Measured("runqueue_wait_seconds") && m.Measured("cpu_seconds") && wait >= starvedMin {
		share := wait / max(m.CPUSeconds, 1e-9)
		if share >= starvedShare {
			sev := session.SeverityWarning
			if share >= 1 {
				sev = session.SeverityCritical
			}
			msg := fmt.Sprintf("%s waited %s for a CPU while running %s (%.0f%% of its CPU time): the CPUs were busy with other work",
				who(f.scope), session.FormatSeconds(wait), session.FormatSeconds(m.CPUSeconds), share*100)
			if len(others) > 0 {
				var names []string
				for _, o := range others {
					name := o.Cgroup
					if name == "/" {
						name = "the root cgroup's processes"
					}
					names = append(names, fmt.Sprintf("%s %s", name, session.FormatSeconds(o.CPUSeconds)))
				}
				msg += ", most of all " + strings.Join(names, ", ")
			}
			fd := add(session.FindingCPUStarved, sev, msg, map[string]float64{
				"runqueue_wait_seconds": wait, "cpu_seconds": m.CPUSeconds, "wait_percent_of_cpu": share * 100,
			})
			fd.Others = others
		}
	}
	// Docker's flag stands alone for a container killed and removed
	// before its cgroup was read (a short one, on a busy host).
	if (f.haveEv && ev.oomKills > 0) || f.oomKilled {
		n := max(ev.oomKills, 1)
		evm := map[string]float64{"oom_kills": float64(n)}
		lim := ""
		if ev.memLimit > 0 {
			evm["limit_bytes"] = float64(ev.memLimit)
			lim = " at its limit of " + session.FormatBytes(float64(ev.memLimit))
		}
		if m.Measured("peak_memory_bytes") {
			evm["peak_memory_bytes"] = float64(m.PeakMemoryBytes)
		}
		add(session.FindingOOMKill, session.SeverityCritical, fmt.Sprintf("the kernel's OOM killer killed %d process(es) of %s%s",
			n, who(f.scope), lim), evm)
	} else if f.haveEv && ev.memLimit > 0 && m.Measured("peak_memory_bytes") && float64(m.PeakMemoryBytes) >= nearLimit*float64(ev.memLimit) {
		p := float64(m.PeakMemoryBytes) / float64(ev.memLimit) * 100
		add(session.FindingMemoryNearLimit, session.SeverityWarning, fmt.Sprintf("%s peaked at %s, %.0f%% of its memory limit of %s",
			who(f.scope), session.FormatBytes(float64(m.PeakMemoryBytes)), p, session.FormatBytes(float64(ev.memLimit))),
			map[string]float64{"peak_memory_bytes": float64(m.PeakMemoryBytes), "limit_bytes": float64(ev.memLimit), "peak_percent_of_limit": p})
	}
	if f.haveEv && ev.majorFaults >= majorFaultsMin {
		add(session.FindingMajorFaults, session.SeverityWarning, fmt.Sprintf("%s waited for %d pages to be read back from disk (major page faults): memory was short or the files were not cached",
			who(f.scope), ev.majorFaults), map[string]float64{"major_faults": float64(ev.majorFaults)})
	}
	for _, dev := range slices.Sorted(maps.Keys(f.ioRun)) {
		run, before := f.ioRun[dev], f.ioBefore[dev]
		if histCount(run) < slowIOOps || histCount(before) < slowIOBeforeOps {
			continue
		}
		p99, was := HistQuantile(0.99, run), HistQuantile(0.99, before)
		if p99 >= slowIOMin && p99 >= slowIOFactor*was {
			add(session.FindingSlowIO, session.SeverityWarning, fmt.Sprintf("block I/O of %s on %s took %s at p99, %.0f× the %s the device showed before the run",
				who(f.scope), dev, session.FormatSeconds(p99), p99/max(was, 1e-9), session.FormatSeconds(was)),
				map[string]float64{"p99_seconds": p99, "p99_before_seconds": was, "requests": float64(histCount(run))})
		}
	}
	if f.exit != nil && *f.exit != 0 {
		msg := fmt.Sprintf("%s exited with code %d", who(f.scope), *f.exit)
		switch {
		case f.oomKilled || ev.oomKills > 0:
			msg += " after the OOM killer ended it"
		case *f.exit > 128 && *f.exit < 160:
			msg += fmt.Sprintf(" (killed by signal %d)", *f.exit-128)
		}
		add(session.FindingContainerFailed, session.SeverityWarning, msg, map[string]float64{"exit_code": float64(*f.exit)})
	}
	return out
}

func histCount(h []uint64) uint64 {
	var n uint64
	for _, c := range h {
		n += c
	}
	return n
}

// who names a scope in a sentence.
func who(scope string) string {
	if name, ok := strings.CutPrefix(scope, session.ScopeContainerPrefix); ok {
		return "container " + name
	}
	if scope == session.ScopeContainers {
		return "the run's containers"
	}
	return "the run"
}

// othersCPU are the cgroups outside the run's subtree and not in skip
// that used the most CPU between start and end (each cgroup's own time),
// at most maxOthers, most first.
func othersCPU(start, end map[string]float64, run string, skip map[string]string) []session.CgroupCPU {
	var out []session.CgroupCPU
	for p, v := range end {
		if _, ok := skip[p]; ok || (run != "" && (p == run || strings.HasPrefix(p, strings.TrimSuffix(run, "/")+"/"))) {
			continue
		}
		d := v - start[p]
		if d < 0.01 {
			continue
		}
		out = append(out, session.CgroupCPU{Cgroup: p, CPUSeconds: d})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CPUSeconds != out[j].CPUSeconds {
			return out[i].CPUSeconds > out[j].CPUSeconds
		}
		return out[i].Cgroup < out[j].Cgroup
	})
	return out[:min(len(out), maxOthers)]
}

// findings diagnoses r, the report Stop is making, from the evidence the
// scopes gathered. tr.mu held.
func (tr *Tracker) findings(r *session.Report) []session.Finding {
	hm, _ := tr.opts.Meter.(hostMeter)
	var scopes []scopeFacts
	names := map[string]string{}
	if tr.run != nil {
		f := scopeFacts{scope: session.ScopeRun, m: &r.Totals, ev: tr.run.ev.since(tr.run.evBase), haveEv: tr.run.haveEv}
		if hm != nil && tr.run.paths.V2 != "" {
			f.ioBefore = tr.ioBefore
			f.ioRun = map[string][]uint64{}
			for dev, h := range hm.DeviceLatency(tr.run.paths.V2) {
				f.ioRun[dev] = subHist(h, tr.ioRunStart[dev])
			}
		}
		scopes = append(scopes, f)
	}
	for i, id := range tr.order {
		s := tr.containers[id]
		c := &r.Containers[i]
		names[s.paths.V2] = c.Name
		f := scopeFacts{scope: session.ScopeContainerPrefix + c.Name, m: &c.Measures, ev: s.ev.since(s.evBase), haveEv: s.haveEv,
			exit: c.ExitCode, oomKilled: c.OOMKilled}
		if hm != nil && s.paths.V2 != "" {
			f.ioBefore, f.ioRun = tr.ioBefore, hm.DeviceLatency(s.paths.V2)
		}
		scopes = append(scopes, f)
	}
	var others []session.CgroupCPU
	if hm != nil && tr.cpuAtStart != nil {
		run := ""
		if tr.run != nil {
			run = tr.run.paths.V2
		}
		// The run's own containers are the run's work, not others'.
		others = othersCPU(tr.cpuAtStart, hm.CgroupCPU(), run, names)
	}
	return diagnose(scopes, others)
}
