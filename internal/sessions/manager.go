// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/control"
	"github.com/crmon-dev/crmon/pkg/session"
)

// DefaultMaxSessions bounds the sessions an agent runs at once: each one
// samples, so an unbounded number would break the agent's CPU budget.
const DefaultMaxSessions = 32

// DefaultMaxPerUser bounds one non-root user's sessions, so that no user
// can take every slot from the others.
const DefaultMaxPerUser = 8

// DefaultAbandonedAfter is how long a session outlives its owner.
const DefaultAbandonedAfter = 30 * time.Second

// Bounds of a start request.
const (
	minSampleInterval = 50 * time.Millisecond
	maxSampleInterval = time.Hour
	minLease          = time.Second
	maxLease          = 24 * time.Hour
	maxSelectors      = 32
	maxSelectorLen    = 256
	maxCgroupPathLen  = 4096
	maxBodyBytes      = 64 << 10
	// removeTimeout bounds killing and removing an abandoned session's
	// cgroups.
	removeTimeout = 5 * time.Second
)

// ManagerOptions are what the agent gives the session manager.
type ManagerOptions struct {
	// Hierarchy is the host's cgroup layout (cgroups.Detect).
	Hierarchy *cgroups.Hierarchy
	// Meter is the agent's probes; nil when they are off, NoMeter saying
	// why.
	Meter   Meter
	NoMeter string
	// Procs counts the sessions' processes one by one; nil for none.
	Procs ProcCounter
	// Docker is the agent's engine client; nil without Docker.
	Docker   Docker
	ProcFS   string
	DiskPath string
	// MaxSessions is DefaultMaxSessions when 0; root may use all of them.
	MaxSessions int
	// MaxPerUser bounds one non-root user's sessions; DefaultMaxPerUser
	// when 0.
	MaxPerUser int
	// AbandonedAfter is DefaultAbandonedAfter when 0: the lease of a
	// session that does not end with its client process.
	AbandonedAfter time.Duration
	// Samples is the agent's sample stream, the one way the sessions get
	// the host's figures and the probes' reads between their start and
	// stop: each tick's read of the maps and of /proc serves every
	// session, however many run. The manager reads it until Close. Nil
	// (a manager without an agent) makes each session read for itself,
	// as `crmon exec` without an agent does.
	Samples *agent.Subscription
	Logger  *slog.Logger
}

// Manager runs named sessions and serves them under /api/v1/sessions.
type Manager struct {
	opts     ManagerOptions
	mu       sync.Mutex
	sessions map[string]*running
	hub      *eventHub
	// cop turns away browsers' cross-site POSTs and DELETEs, should a
	// browser ever reach the API.
	cop *http.CrossOriginProtection
	// done stops the sweep for abandoned sessions; swept says it stopped.
	done  chan struct{}
	swept chan struct{}
	// fedDone is closed when feed has ended (at once without Samples).
	fedDone chan struct{}
	now     func() time.Time
}

// running is a session; tr is nil while it starts.
type running struct {
	info  session.Info
	tr    *Tracker
	owner control.Peer
	// pidfd is the owner process' pidfd when the session ends with it,
	// else -1.
	pidfd int
	// lease is how long the session lives without a renewal, 0 when it
	// ends with its owner process instead.
	lease   time.Duration
	renewed time.Time
	// remove is the cgroup created for the session, killed and removed
	// if the session is abandoned; nil for a cgroup that is not its own.
	remove *cgroups.Paths
}

// Errors of the session API, mapped to HTTP statuses by ServeHTTP.
var (
	ErrExists    = errors.New("a session with this name is running")
	ErrNotFound  = errors.New("no such session")
	ErrTooMany   = errors.New("too many sessions running")
	ErrInvalid   = errors.New("invalid session request")
	ErrForbidden = errors.New("not allowed")
)

// NewManager returns a manager with no session running. Close stops it.
func NewManager(opts ManagerOptions) *Manager {
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.MaxPerUser <= 0 {
		opts.MaxPerUser = DefaultMaxPerUser
	}
	if opts.AbandonedAfter <= 0 {
		opts.AbandonedAfter = DefaultAbandonedAfter
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		opts: opts, sessions: map[string]*running{}, cop: http.NewCrossOriginProtection(),
		done: make(chan struct{}), swept: make(chan struct{}), now: time.Now,
	}
	if opts.Docker != nil {
		m.hub = &eventHub{d: opts.Docker}
	}
	m.fedDone = make(chan struct{})
	if opts.Samples != nil {
		go m.feed(opts.Samples)
	} else {
		close(m.fedDone)
	}
	go m.sweep()
	return m
}

// feed hands every sample of the agent's stream to the sessions: the
// probes' read to the shared meter, which every session's plots read
// from, and the host's figures to each session's peaks. It holds m.mu only
// to list the sessions, and each session's lock only to take the figures,
// so a session that is busy delays the feed, never a tick: the
// subscription's buffer absorbs it, and drops the oldest, counted in
// crmon_samples_dropped_total{subscriber="sessions"}.
func (m *Manager) feed(sub *agent.Subscription) {
	defer close(m.fedDone)
	pm, _ := m.opts.Meter.(*ProbeMeter)
	var prev time.Time
	for smp := range sub.C() {
		if pm != nil {
			pm.offer(smp.Probes)
		}
		t := hostFromSample(smp.Metrics, smp.Time, prev)
		prev = smp.Time
		m.mu.Lock()
		trs := make([]*Tracker, 0, len(m.sessions))
		for _, r := range m.sessions {
			if r.tr != nil {
				trs = append(trs, r.tr)
			}
		}
		m.mu.Unlock()
		for _, tr := range trs {
			tr.feed(t)
		}
	}
}

// sweepEvery is how often the manager looks for abandoned sessions: a
// fraction of the bound, so that one is ended within it.
func (m *Manager) sweepEvery() time.Duration {
	return min(time.Second, m.opts.AbandonedAfter/4)
}

// sweep ends abandoned sessions until Close.
func (m *Manager) sweep() {
	defer close(m.swept)
	t := time.NewTicker(m.sweepEvery())
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			m.expire()
		}
	}
}

// expire ends every session whose owner is gone: its process exited, or
// its lease ran out.
func (m *Manager) expire() {
	now := m.now()
	var gone []*running
	var why []string
	m.mu.Lock()
	for name, r := range m.sessions {
		if r.tr == nil {
			continue // still starting
		}
		var reason string
		switch {
		case r.pidfd >= 0 && exited(r.pidfd):
			reason = fmt.Sprintf("its process %d exited", r.owner.PID)
		case r.lease > 0 && now.Sub(r.renewed) > r.lease:
			reason = fmt.Sprintf("its lease was not renewed for %s", r.lease)
		default:
			continue
		}
		delete(m.sessions, name)
		gone = append(gone, r)
		why = append(why, reason)
	}
	m.mu.Unlock()
	for i, r := range gone {
		m.release(r)
		r.tr.Close()
		args := []any{"session", r.info.Name, "owner_uid", r.owner.UID, "reason", why[i]}
		if r.remove != nil {
			if err := m.opts.Hierarchy.KillAndRemove(*r.remove, removeTimeout); err != nil {
				args = append(args, "err", err)
			} else {
				args = append(args, "removed_cgroup", r.remove.ID())
			}
		}
		m.opts.Logger.Warn("session abandoned; ended it", args...)
	}
}

// exited reports whether the process behind pidfd has exited: a pidfd
// polls readable from then on.
func exited(pidfd int) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0
}

// release closes r's pidfd, once r is out of the map.
func (m *Manager) release(r *running) {
	if r.pidfd >= 0 {
		unix.Close(r.pidfd)
		r.pidfd = -1
	}
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

// checkRequest validates a start request on its own, before any session
// state is looked at; every message gives the allowed values.
func checkRequest(req session.StartRequest) error {
	if !validName(req.Name) {
		return fmt.Errorf("%w: name %q: want 1-128 letters, digits, '.', '_' or '-'", ErrInvalid, req.Name)
	}
	if v := req.SampleIntervalSeconds; v != 0 && !(v >= minSampleInterval.Seconds() && v <= maxSampleInterval.Seconds()) {
		return fmt.Errorf("%w: sample_interval_seconds = %v: want 0 (the default, %v) or %v to %v", ErrInvalid, v, DefaultSampleInterval.Seconds(), minSampleInterval.Seconds(), maxSampleInterval.Seconds())
	}
	if v := req.LeaseSeconds; v != 0 && !(v >= minLease.Seconds() && v <= maxLease.Seconds()) {
		return fmt.Errorf("%w: lease_seconds = %v: want 0 (the agent's abandoned_after) or %v to %v", ErrInvalid, v, minLease.Seconds(), maxLease.Seconds())
	}
	if req.EndWithClient && req.LeaseSeconds != 0 {
		return fmt.Errorf("%w: end_with_client and lease_seconds: a session ends with its client process or with its lease, not both", ErrInvalid)
	}
	if len(req.Cgroup) > maxCgroupPathLen {
		return fmt.Errorf("%w: cgroup: %d bytes, want at most %d", ErrInvalid, len(req.Cgroup), maxCgroupPathLen)
	}
	if len(req.Containers) > maxSelectors {
		return fmt.Errorf("%w: containers: %d selectors, want at most %d", ErrInvalid, len(req.Containers), maxSelectors)
	}
	for _, c := range req.Containers {
		if len(c) > maxSelectorLen {
			return fmt.Errorf("%w: containers: a selector of %d bytes, want at most %d", ErrInvalid, len(c), maxSelectorLen)
		}
	}
	if _, err := parseSelectors(req.Containers); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if req.NewCgroup && req.Cgroup == "" {
		return fmt.Errorf("%w: new_cgroup needs a cgroup", ErrInvalid)
	}
	return nil
}

// Start starts a session for peer, who owns it from then on.
func (m *Manager) Start(peer control.Peer, req session.StartRequest) (session.Info, error) {
	if err := checkRequest(req); err != nil {
		return session.Info{}, err
	}
	t := Target{Name: req.Name, Containers: req.Containers, Fresh: req.NewCgroup}
	var remove *cgroups.Paths
	if req.Cgroup != "" {
		if req.Cgroup == "/" && !peer.Root() {
			return session.Info{}, fmt.Errorf("%w: cgroup \"/\" is the whole host; only root may measure it", ErrForbidden)
		}
		if req.Cgroup == "/" && req.NewCgroup {
			return session.Info{}, fmt.Errorf("%w: cgroup \"/\" was not created for the session (new_cgroup)", ErrInvalid)
		}
		p, err := m.cgroupPaths(req.Cgroup, req.V1Cgroup)
		if err != nil {
			return session.Info{}, err
		}
		t.Cgroup = p
		if req.NewCgroup {
			// Killed and removed if the session is abandoned: only a
			// cgroup its owner made (root's for root, a delegated
			// subtree's for a user) may be.
			if !ownedBy(m.opts.Hierarchy, p, peer.UID) {
				return session.Info{}, fmt.Errorf("%w: new_cgroup: cgroup %s is not owned by uid %d", ErrForbidden, req.Cgroup, peer.UID)
			}
			remove = &p
		}
	}
	r := &running{owner: peer, pidfd: -1, remove: remove}
	if req.EndWithClient {
		if peer.PID <= 0 {
			return session.Info{}, fmt.Errorf("%w: end_with_client: the agent cannot see the client process (another PID namespace); use a lease", ErrInvalid)
		}
		fd, err := peer.OpenPidfd()
		if err != nil {
			return session.Info{}, fmt.Errorf("%w: end_with_client: watching process %d: %v", ErrInvalid, peer.PID, err)
		}
		r.pidfd = fd
	} else {
		r.lease = m.opts.AbandonedAfter
		if req.LeaseSeconds > 0 {
			r.lease = time.Duration(req.LeaseSeconds * float64(time.Second))
		}
	}
	if err := m.reserve(peer, req.Name, r); err != nil {
		m.release(r)
		return session.Info{}, err
	}
	interval := time.Duration(req.SampleIntervalSeconds * float64(time.Second))
	topts := TrackerOptions{
		Hierarchy: m.opts.Hierarchy, Meter: m.opts.Meter, Docker: m.opts.Docker,
		ProcFS: m.opts.ProcFS, DiskPath: m.opts.DiskPath, SampleInterval: interval,
		NoMeter: m.opts.NoMeter, Logger: m.opts.Logger, events: m.hub,
		fed: m.opts.Samples != nil,
	}
	// A report's processes name what ran (the program and an argument):
	// only for root, or for a user in a cgroup of their own, not for a
	// user measuring a cgroup someone else's processes run in.
	if peer.Root() || (t.Cgroup.V2 != "" && ownedBy(m.opts.Hierarchy, t.Cgroup, peer.UID)) {
		topts.Procs = m.opts.Procs
	}
	tr, err := NewTracker(topts, t)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		delete(m.sessions, req.Name)
		m.release(r)
		return session.Info{}, err
	}
	r.tr = tr
	r.renewed = m.now()
	r.info = session.Info{
		Name: req.Name, StartedAt: tr.Start(), Cgroup: req.Cgroup, Containers: req.Containers,
		OwnerUID: peer.UID, LeaseSeconds: r.lease.Seconds(),
	}
	if r.pidfd >= 0 {
		r.info.OwnerPID = peer.PID
	}
	m.opts.Logger.Info("session started", "session", req.Name, "cgroup", req.Cgroup, "owner_uid", peer.UID, "owner_pid", r.info.OwnerPID, "lease", r.lease)
	return r.info, nil
}

// reserve takes name for r within the quotas. The name is taken while the
// tracker starts, which may wait for the Docker engine: m.mu is not held
// across that.
func (m *Manager) reserve(peer control.Peer, name string, r *running) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[name]; ok {
		return fmt.Errorf("%w: %s", ErrExists, name)
	}
	if len(m.sessions) >= m.opts.MaxSessions {
		return fmt.Errorf("%w (%d)", ErrTooMany, m.opts.MaxSessions)
	}
	if !peer.Root() {
		n := 0
		for _, o := range m.sessions {
			if o.owner.UID == peer.UID {
				n++
			}
		}
		if n >= m.opts.MaxPerUser {
			return fmt.Errorf("%w: uid %d runs %d sessions, the most one user may (max_sessions_per_user)", ErrTooMany, peer.UID, n)
		}
	}
	m.sessions[name] = r
	return nil
}

// ownedBy reports whether every directory of p is owned by uid.
func ownedBy(h *cgroups.Hierarchy, p cgroups.Paths, uid uint32) bool {
	dirs := h.Dirs(p)
	for _, d := range dirs {
		var st unix.Stat_t
		if unix.Lstat(d, &st) != nil || st.Uid != uid {
			return false
		}
	}
	return len(dirs) > 0
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

// lookup returns the session name for peer: its owner's or root's only.
// Call with m.mu held.
func (m *Manager) lookup(peer control.Peer, name string) (*running, error) {
	r, ok := m.sessions[name]
	if !ok || r.tr == nil {
		// A session still starting is not one yet.
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if !peer.Root() && r.owner.UID != peer.UID {
		return nil, fmt.Errorf("%w: session %s belongs to another user", ErrForbidden, name)
	}
	return r, nil
}

// Stop ends a session and returns its report, series included. Only the
// session's owner or root may.
func (m *Manager) Stop(peer control.Peer, name string) (*session.Report, error) {
	m.mu.Lock()
	r, err := m.lookup(peer, name)
	if err == nil {
		delete(m.sessions, name)
	}
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	m.release(r)
	rep := r.tr.Stop()
	m.opts.Logger.Info("session stopped", "session", name, "by_uid", peer.UID, "duration", time.Duration(rep.DurationSeconds*float64(time.Second)))
	return rep, nil
}

// Renew renews a session's lease.
func (m *Manager) Renew(peer control.Peer, name string) (session.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.lookup(peer, name)
	if err != nil {
		return session.Info{}, err
	}
	r.renewed = m.now()
	return r.info, nil
}

// Get returns one running session, if peer may see it.
func (m *Manager) Get(peer control.Peer, name string) (session.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.lookup(peer, name)
	if err != nil {
		return session.Info{}, err
	}
	return r.info, nil
}

// List returns the running sessions peer may see, by name: root sees
// every one, a user their own.
func (m *Manager) List(peer control.Peer) []session.Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]session.Info, 0, len(m.sessions))
	for _, r := range m.sessions {
		if r.tr != nil && (peer.Root() || r.owner.UID == peer.UID) {
			out = append(out, r.info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Close ends every session without a report: nothing is asked of the
// Docker engine, so a hung one does not hold up the agent's shutdown.
func (m *Manager) Close() error {
	select {
	case <-m.done:
	default:
		close(m.done)
	}
	<-m.swept
	if m.opts.Samples != nil {
		m.opts.Samples.Close()
	}
	<-m.fedDone
	m.mu.Lock()
	var all []*running
	for name, r := range m.sessions {
		if r.tr != nil {
			all = append(all, r)
			delete(m.sessions, name)
		}
	}
	m.mu.Unlock()
	for _, r := range all {
		m.release(r)
		r.tr.Close()
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
// /api/v1/sessions, on the control socket only: every request must carry
// its peer's credentials (control.ConnContext).
//
//	GET    /api/v1/sessions             list the caller's running sessions (root: all)
//	POST   /api/v1/sessions             start one (session.StartRequest)
//	GET    /api/v1/sessions/NAME        one running session
//	POST   /api/v1/sessions/NAME/renew  renew its lease
//	POST   /api/v1/sessions/NAME/stop   stop it, answer the report
//	DELETE /api/v1/sessions/NAME        stop it, drop the report
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := m.cop.Check(r); err != nil {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin request refused: " + err.Error()})
		return
	}
	peer, ok := control.PeerFrom(r.Context())
	if !ok {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "the session API is served on the agent's control socket only"})
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
		writeJSON(w, http.StatusOK, m.List(peer))
	case rest == "" && r.Method == http.MethodPost:
		var req session.StartRequest
		if !decode(w, r, &req) {
			return
		}
		info, err := m.Start(peer, req)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, info)
	case len(parts) == 1 && r.Method == http.MethodGet:
		info, err := m.Get(peer, parts[0])
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, info)
	case len(parts) == 1 && r.Method == http.MethodDelete:
		if _, err := m.Stop(peer, parts[0]); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case len(parts) == 2 && parts[1] == "renew" && r.Method == http.MethodPost:
		info, err := m.Renew(peer, parts[0])
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, info)
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
		rep, err := m.Stop(peer, parts[0])
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

// decode reads one JSON value of at most maxBodyBytes into v: unknown
// fields and anything after the value are errors, not ignored.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON value; send one object")
		}
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = fmt.Errorf("more than %d bytes", mbe.Limit)
		}
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
	case errors.Is(err, ErrForbidden):
		code = http.StatusForbidden
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
