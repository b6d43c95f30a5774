// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultAgentURL is the agent's control socket: the session API is served
// there only, where the kernel tells the agent who is asking.
const DefaultAgentURL = "unix://" + DefaultSocket

// AgentURLEnv names the environment variable that overrides DefaultAgentURL.
const AgentURLEnv = "CRMON_AGENT_URL"

// AgentURL returns $CRMON_AGENT_URL, or DefaultAgentURL when it is unset.
// Either is "unix://PATH" (or just "/PATH"), a control socket, or an
// "http(s)://" URL of something that serves the same API.
func AgentURL() string {
	if u := os.Getenv(AgentURLEnv); u != "" {
		return u
	}
	return DefaultAgentURL
}

// StartRequest is the body of POST /api/v1/sessions.
type StartRequest struct {
	// Name identifies the session; unique among running sessions.
	Name string `json:"name"`
	// Containers selects which containers created after the start are
	// reported: "label=value" or "label" (present with any value); every
	// selector must match. Empty: every container created after the start.
	Containers []string `json:"containers,omitempty"`
	// Cgroup is a cgroup2 path ("/ci/job-42") whose subtree the totals
	// measure. Empty: the totals sum the selected containers.
	Cgroup string `json:"cgroup,omitempty"`
	// SampleIntervalSeconds is the plots' sample interval; 0 means 0.2 s.
	SampleIntervalSeconds float64 `json:"sample_interval_seconds,omitempty"`
	// NewCgroup says Cgroup was created empty for this session (as
	// `crmon exec` does), so its counters since creation, memory peak
	// included, are the session's.
	NewCgroup bool `json:"new_cgroup,omitempty"`
	// V1Cgroup says Cgroup exists under the same path in the v1
	// hierarchies too (memory, blkio, cpuacct, pids), on hybrid hosts.
	V1Cgroup bool `json:"v1_cgroup,omitempty"`
	// EndWithClient ties the session to the process that starts it: when
	// that process exits, however it exits, the agent ends the session and,
	// with NewCgroup, kills what is left in the cgroup and removes it.
	// Only on the control socket, where the agent knows the process.
	EndWithClient bool `json:"end_with_client,omitempty"`
	// LeaseSeconds is how long the session lives without a renewal
	// (POST /api/v1/sessions/NAME/renew); 0 is the agent's
	// abandoned_after. A Session renews its lease while it is open.
	LeaseSeconds float64 `json:"lease_seconds,omitempty"`
}

// Info describes a running session, as GET /api/v1/sessions lists it.
type Info struct {
	Name       string    `json:"name"`
	StartedAt  time.Time `json:"started_at"`
	Cgroup     string    `json:"cgroup,omitempty"`
	Containers []string  `json:"containers,omitempty"`
	// OwnerUID is the user who started the session; only they and root
	// may see, renew or stop it.
	OwnerUID uint32 `json:"owner_uid"`
	// OwnerPID is the process the session ends with (EndWithClient), 0
	// for none.
	OwnerPID int `json:"owner_pid,omitempty"`
	// LeaseSeconds is the lease the agent granted: without a renewal for
	// this long, the session is ended. 0 for a session that ends with its
	// owner process instead.
	LeaseSeconds float64 `json:"lease_seconds,omitempty"`
}

// Options configures Start.
type Options struct {
	StartRequest
	// AgentURL is the agent's address: "unix://PATH" (or "/PATH") for a
	// control socket, or an "http(s)://" base URL; empty means AgentURL().
	// A socket is used only if CheckSocket passes and root listens on it.
	AgentURL string
	// HTTPClient asks an http(s) agent; it defaults to a client with a
	// 30 s timeout. A control socket gets its own client.
	HTTPClient *http.Client
}

// Session is a session running on an agent.
type Session struct {
	Info
	base   string
	client *http.Client
	// stopRenew ends the lease renewals; nil when none run.
	stopRenew context.CancelFunc
	renewed   chan struct{}
}

// APIError is an error answer of the agent's session API.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("crmon agent: %s (HTTP %d)", e.Message, e.StatusCode)
}

// Start starts a session on the agent: from now on, the agent measures the
// cgroup and the containers the options select.
func Start(ctx context.Context, opts Options) (*Session, error) {
	if opts.Name == "" {
		return nil, errors.New("session name is required")
	}
	s := Attach(opts.AgentURL, opts.Name, opts.HTTPClient)
	if err := s.do(ctx, http.MethodPost, "/api/v1/sessions", opts.StartRequest, &s.Info); err != nil {
		return nil, fmt.Errorf("starting session %q: %w", opts.Name, err)
	}
	s.renew()
	return s, nil
}

// renew renews the session's lease in the background, three times per
// lease, until Stop or Close.
func (s *Session) renew() {
	if s.LeaseSeconds <= 0 {
		return
	}
	every := time.Duration(s.LeaseSeconds * float64(time.Second) / 3)
	ctx, cancel := context.WithCancel(context.Background())
	s.stopRenew, s.renewed = cancel, make(chan struct{})
	go func() {
		defer close(s.renewed)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				rctx, rcancel := context.WithTimeout(ctx, every)
				err := s.do(rctx, http.MethodPost, "/api/v1/sessions/"+url.PathEscape(s.Name)+"/renew", nil, nil)
				rcancel()
				var ae *APIError
				if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
					return
				}
			}
		}
	}()
}

// Close stops renewing the session's lease without stopping the session,
// which the agent then ends once the lease runs out.
func (s *Session) Close() {
	if s.stopRenew != nil {
		s.stopRenew()
		<-s.renewed
		s.stopRenew = nil
	}
}

// Stop ends the session and returns its report, series included.
func (s *Session) Stop(ctx context.Context) (*Report, error) {
	s.Close()
	var r Report
	if err := s.do(ctx, http.MethodPost, "/api/v1/sessions/"+url.PathEscape(s.Name)+"/stop?series=1", nil, &r); err != nil {
		return nil, fmt.Errorf("stopping session %q: %w", s.Name, err)
	}
	return &r, nil
}

// Attach returns a handle on a session already running on the agent at
// base (empty: AgentURL()), e.g. one `crmon session start` began. client
// asks an http(s) agent (nil: a plain one with a 30 s timeout).
func Attach(base, name string, client *http.Client) *Session {
	if base == "" {
		base = AgentURL()
	}
	if p, ok := SocketPath(base); ok {
		// The host part is never dialled; the socket is.
		return &Session{Info: Info{Name: name}, base: "http://localhost", client: &http.Client{Transport: unixTransport(p), Timeout: 30 * time.Second}}
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &Session{Info: Info{Name: name}, base: strings.TrimRight(base, "/"), client: client}
}

// List returns the sessions running on the agent at base.
func List(ctx context.Context, base string, client *http.Client) ([]Info, error) {
	s := Attach(base, "", client)
	var infos []Info
	if err := s.do(ctx, http.MethodGet, "/api/v1/sessions", nil, &infos); err != nil {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	return infos, nil
}

// Healthy reports whether an agent answers GET /healthz at base within
// timeout, asked with a plain HTTP client. An agent served with TLS or
// basic auth needs HealthyClient.
func Healthy(ctx context.Context, base string, timeout time.Duration) bool {
	return HealthyClient(ctx, nil, base, timeout)
}

// HealthyClient is Healthy asked with client (nil: a plain one): pass the
// client given to Start in Options.HTTPClient, so that an agent found
// healthy is one the session can reach.
func HealthyClient(ctx context.Context, client *http.Client, base string, timeout time.Duration) bool {
	if _, ok := SocketPath(base); ok {
		s := Attach(base, "", nil)
		client, base = s.client, s.base
	}
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (s *Session) do(ctx context.Context, method, p string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+p, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return &APIError{StatusCode: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding answer: %w", err)
	}
	return nil
}
