// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/pkg/session"
)

// DefaultMaxSessions bounds the sessions an agent runs at once: each one
// samples, so an unbounded number would break the agent's CPU budget.
const DefaultMaxSessions = 32

// ManagerOptions are what the agent gives the session manager.
type ManagerOptions struct {
	// Hierarchy is the host's cgroup layout (cgroups.Detect).
	Hierarchy *cgroups.Hierarchy
	// Meter is the agent's probes; nil when they are off, NoMeter saying
	// why.
	Meter   Meter
	NoMeter string
	// Docker is the agent's engine client; nil without Docker.
	Docker   Docker
	ProcFS   string
	DiskPath string
	// MaxSessions is DefaultMaxSessions when 0.
	MaxSessions int
	Logger      *slog.Logger
}

// Manager runs named sessions and serves them under /api/v1/sessions.
type Manager struct {
	opts     ManagerOptions
	mu       sync.Mutex
	sessions map[string]*running
	hub      *eventHub
	// cop turns away browsers' cross-site POSTs and DELETEs: the agent
	// listens on loopback, and any web page its user opens could
	// otherwise start or stop sessions there.
	cop *http.CrossOriginProtection
}

// running is a session; tr is nil while it starts.
type running struct {
	info session.Info
	tr   *Tracker
}

// Errors of the session API, mapped to HTTP statuses by ServeHTTP.
var (
	ErrExists   = errors.New("a session with this name is running")
	ErrNotFound = errors.New("no such session")
	ErrTooMany  = errors.New("too many sessions running")
	ErrInvalid  = errors.New("invalid session request")
)

// NewManager returns a manager with no session running.
func NewManager(opts ManagerOptions) *Manager {
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{opts: opts, sessions: map[string]*running{}, cop: http.NewCrossOriginProtection()}
	if opts.Docker != nil {
		m.hub = &eventHub{d: opts.Docker}
	}
	return m
}

func validName(n string) bool {
	if n == "" || len(n) > 128 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return n != "." && n != ".."
}

// Start starts a session.
func (m *Manager) Start(req session.StartRequest) (session.Info, error) {
	if !validName(req.Name) {
		return session.Info{}, fmt.Errorf("%w: name %q: want 1-128 letters, digits, '.', '_' or '-'", ErrInvalid, req.Name)
	}
	t := Target{Name: req.Name, Containers: req.Containers, Fresh: req.NewCgroup}
	if req.Cgroup != "" {
		p, err := m.cgroupPaths(req.Cgroup, req.V1Cgroup)
		if err != nil {
			return session.Info{}, err
		}
		t.Cgroup = p
	}
	if _, err := parseSelectors(req.Containers); err != nil {
		return session.Info{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	m.mu.Lock()
	if _, ok := m.sessions[req.Name]; ok {
		m.mu.Unlock()
		return session.Info{}, fmt.Errorf("%w: %s", ErrExists, req.Name)
	}
	if len(m.sessions) >= m.opts.MaxSessions {
		m.mu.Unlock()
		return session.Info{}, fmt.Errorf("%w (%d)", ErrTooMany, m.opts.MaxSessions)
	}
	// The name is taken while the tracker starts, which may wait for the
	// Docker engine: m.mu is not held across that.
	r := &running{}
	m.sessions[req.Name] = r
	m.mu.Unlock()
	interval := time.Duration(req.SampleIntervalSeconds * float64(time.Second))
	if interval != 0 && interval < 50*time.Millisecond {
		interval = 50 * time.Millisecond
	}
	topts := TrackerOptions{
		Hierarchy: m.opts.Hierarchy, Meter: m.opts.Meter, Docker: m.opts.Docker,
		ProcFS: m.opts.ProcFS, DiskPath: m.opts.DiskPath, SampleInterval: interval,
		NoMeter: m.opts.NoMeter, Logger: m.opts.Logger, events: m.hub,
	}
	tr, err := NewTracker(topts, t)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		delete(m.sessions, req.Name)
		return session.Info{}, err
	}
	info := session.Info{Name: req.Name, StartedAt: tr.Start(), Cgroup: req.Cgroup, Containers: req.Containers}
	r.info, r.tr = info, tr
	m.opts.Logger.Info("session started", "session", req.Name, "cgroup", req.Cgroup)
	return info, nil
}

// cgroupPaths checks that p names an existing cgroup and returns its paths.
func (m *Manager) cgroupPaths(p string, v1 bool) (cgroups.Paths, error) {
	h := m.opts.Hierarchy
	clean := path.Clean("/" + p)
	if !strings.HasPrefix(p, "/") || clean != p {
		return cgroups.Paths{}, fmt.Errorf("%w: cgroup %q: want an absolute, clean path like /ci/job-42", ErrInvalid, p)
	}
	root := h.Unified
	if root == "" {
		root = h.V1["memory"]
	}
	if root == "" {
		return cgroups.Paths{}, fmt.Errorf("%w: no cgroup hierarchy mounted", ErrInvalid)
	}
	if fi, err := os.Stat(filepath.Join(root, clean)); err != nil || !fi.IsDir() {
		return cgroups.Paths{}, fmt.Errorf("%w: cgroup %s does not exist under %s", ErrInvalid, clean, root)
	}
	if v1 || h.Unified == "" {
		return h.Uniform(clean), nil
	}
	// On a hybrid host, the same path in the v1 memory and blkio
	// hierarchies (as systemd and container runtimes lay cgroups out)
	// gives the memory peak and block I/O.
	paths := cgroups.Paths{V2: clean, V1: map[string]string{}}
	for _, ctrl := range []string{"memory", "blkio"} {
		if mnt, ok := h.V1[ctrl]; ok {
			if fi, err := os.Stat(filepath.Join(mnt, clean)); err == nil && fi.IsDir() {
				paths.V1[ctrl] = clean
			}
		}
	}
	return paths, nil
}

// Stop ends a session and returns its report, series included.
func (m *Manager) Stop(name string) (*session.Report, error) {
	m.mu.Lock()
	r, ok := m.sessions[name]
	if ok && r.tr == nil {
		// Still starting: not a session yet.
		ok = false
	}
	if ok {
		delete(m.sessions, name)
	}
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	rep := r.tr.Stop()
	m.opts.Logger.Info("session stopped", "session", name, "duration", time.Duration(rep.DurationSeconds*float64(time.Second)))
	return rep, nil
}

// List returns the running sessions by name.
func (m *Manager) List() []session.Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]session.Info, 0, len(m.sessions))
	for _, r := range m.sessions {
		if r.tr != nil {
			out = append(out, r.info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Close ends every session without a report: nothing is asked of the
// Docker engine, so a hung one does not hold up the agent's shutdown.
func (m *Manager) Close() error {
	m.mu.Lock()
	var trs []*Tracker
	for name, r := range m.sessions {
		if r.tr != nil {
			trs = append(trs, r.tr)
			delete(m.sessions, name)
		}
	}
	m.mu.Unlock()
	for _, tr := range trs {
		tr.Close()
	}
	if m.hub != nil {
		m.hub.close()
	}
	return nil
}

// StopRequest is the optional body of POST /api/v1/sessions/NAME/stop.
type StopRequest struct {
	// Limits are checked against the report; the results are its
	// "limits".
	Limits session.Limits `json:"limits,omitempty"`
	// Unmeasured is what a limit on a figure that was not measured does:
	// "error" (the default) or "skip".
	Unmeasured session.Unmeasured `json:"unmeasured,omitempty"`
}

// ServeHTTP serves the session API (docs/report.md) under
// /api/v1/sessions, wherever the agent mounts it:
//
//	GET    /api/v1/sessions             list running sessions
//	POST   /api/v1/sessions             start one (session.StartRequest)
//	GET    /api/v1/sessions/NAME        one running session
//	POST   /api/v1/sessions/NAME/stop   stop it, answer the report
//	DELETE /api/v1/sessions/NAME        stop it, drop the report
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := m.cop.Check(r); err != nil {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin request refused: " + err.Error()})
		return
	}
	rest := r.URL.Path
	if i := strings.Index(rest, "/api/v1/sessions"); i >= 0 {
		rest = rest[i+len("/api/v1/sessions"):]
	}
	rest = strings.Trim(rest, "/")
	parts := strings.Split(rest, "/")
	switch {
	case rest == "" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, m.List())
	case rest == "" && r.Method == http.MethodPost:
		var req session.StartRequest
		if !decode(w, r, &req) {
			return
		}
		info, err := m.Start(req)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, info)
	case len(parts) == 1 && r.Method == http.MethodGet:
		for _, in := range m.List() {
			if in.Name == parts[0] {
				writeJSON(w, http.StatusOK, in)
				return
			}
		}
		writeError(w, fmt.Errorf("%w: %s", ErrNotFound, parts[0]))
	case len(parts) == 1 && r.Method == http.MethodDelete:
		if _, err := m.Stop(parts[0]); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case len(parts) == 2 && parts[1] == "stop" && r.Method == http.MethodPost:
		var req StopRequest
		if r.ContentLength != 0 && !decode(w, r, &req) {
			return
		}
		if _, err := session.ParseUnmeasured(string(req.Unmeasured)); err != nil {
			writeError(w, fmt.Errorf("%w: %v", ErrInvalid, err))
			return
		}
		if err := req.Limits.Validate(); err != nil {
			writeError(w, fmt.Errorf("%w: %v", ErrInvalid, err))
			return
		}
		rep, err := m.Stop(parts[0])
		if err != nil {
			writeError(w, err)
			return
		}
		_ = rep.Check(req.Limits, req.Unmeasured)
		if q := r.URL.Query().Get("series"); q == "" || q == "0" || q == "false" {
			rep.Series = nil
		}
		writeJSON(w, http.StatusOK, rep)
	default:
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": r.Method + " " + r.URL.Path + " is not part of the session API"})
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, fmt.Errorf("%w: body: %v", ErrInvalid, err))
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrExists):
		code = http.StatusConflict
	case errors.Is(err, ErrTooMany):
		code = http.StatusTooManyRequests
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
