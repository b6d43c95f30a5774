// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"sync"

	"github.com/crmon-dev/crmon/internal/control"
	"github.com/crmon-dev/crmon/internal/live"
	"github.com/crmon-dev/crmon/internal/sessions"
)

// liveStatus is what the live page shows beside the samples: the probes'
// state and the running sessions. The agent sets it at start and after a
// reload; the page's hub reads it from its own goroutine.
type liveStatus struct {
	mu       sync.Mutex
	probes   []live.ProbeStatus
	sessions *sessions.Manager
}

func (l *liveStatus) set(src *sources) {
	var ps []live.ProbeStatus
	switch {
	case src.probes != nil:
		for _, st := range src.probes.Status() {
			ps = append(ps, live.ProbeStatus{Name: st.Probe, Up: st.Up, Error: st.Reason})
		}
	case src.probeErr != nil:
		ps = []live.ProbeStatus{{Name: "ebpf", Error: src.probeErr.Error()}}
	default:
		ps = []live.ProbeStatus{{Name: "ebpf", Error: "ebpf = " + src.ebpfMode}}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.probes, l.sessions = ps, src.sessions
}

func (l *liveStatus) Probes() []live.ProbeStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.probes
}

// Sessions lists every running session, as root sees them: the page
// shows their names and sizes, never their reports.
func (l *liveStatus) Sessions() []live.Session {
	l.mu.Lock()
	m := l.sessions
	l.mu.Unlock()
	if m == nil {
		return nil
	}
	infos := m.List(control.Peer{UID: 0})
	out := make([]live.Session, 0, len(infos))
	for _, in := range infos {
		out = append(out, live.Session{Name: in.Name, StartedAt: in.StartedAt, Containers: len(in.Containers), OwnerUID: in.OwnerUID})
	}
	return out
}
