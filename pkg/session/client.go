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

// DefaultAgentURL is where a crmon agent listens unless told otherwise.
const DefaultAgentURL = "http://127.0.0.1:9717"

// AgentURLEnv names the environment variable that overrides DefaultAgentURL.
const AgentURLEnv = "CRMON_AGENT_URL"

// AgentURL returns $CRMON_AGENT_URL, or DefaultAgentURL when it is unset.
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
}

// Info describes a running session, as GET /api/v1/sessions lists it.
type Info struct {
	Name       string    `json:"name"`
	StartedAt  time.Time `json:"started_at"`
	Cgroup     string    `json:"cgroup,omitempty"`
	Containers []string  `json:"containers,omitempty"`
}

// Options configures Start.
type Options struct {
	StartRequest
	// AgentURL is the agent's base URL; empty means AgentURL().
	AgentURL string
	// HTTPClient defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
}

// Session is a session running on an agent.
type Session struct {
	Info
	base   string
	client *http.Client
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
	s := &Session{base: strings.TrimRight(opts.AgentURL, "/"), client: opts.HTTPClient}
	if s.base == "" {
		s.base = strings.TrimRight(AgentURL(), "/")
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Second}
	}
	if err := s.do(ctx, http.MethodPost, "/api/v1/sessions", opts.StartRequest, &s.Info); err != nil {
		return nil, fmt.Errorf("starting session %q: %w", opts.Name, err)
	}
	return s, nil
}

// Stop ends the session and returns its report, series included.
func (s *Session) Stop(ctx context.Context) (*Report, error) {
	var r Report
	if err := s.do(ctx, http.MethodPost, "/api/v1/sessions/"+url.PathEscape(s.Name)+"/stop?series=1", nil, &r); err != nil {
		return nil, fmt.Errorf("stopping session %q: %w", s.Name, err)
	}
	return &r, nil
}

// Attach returns a handle on a session already running on the agent at
// base (empty: AgentURL()), e.g. one `crmon session start` began.
func Attach(base, name string, client *http.Client) *Session {
	if base == "" {
		base = AgentURL()
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
