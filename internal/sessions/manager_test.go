// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/control"
	"github.com/crmon-dev/crmon/internal/docker"
	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/runner"
	"github.com/crmon-dev/crmon/internal/sessions"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/session"
)

// agentServer is a session manager served on a control socket, as the
// agent serves it.
type agentServer struct {
	// URL is the socket's address for pkg/session.
	URL    string
	sock   string
	client *http.Client
	m      *sessions.Manager
}

func newServer(t *testing.T) (*agentServer, *cgroups.Hierarchy) {
	return newServerWith(t, sessions.ManagerOptions{})
}

func newServerWith(t *testing.T, opts sessions.ManagerOptions) (*agentServer, *cgroups.Hierarchy) {
	testenv.RequireLong(t, "root and cgroups")
	testenv.RequireRoot(t)
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		testenv.Unavailable(t, "no cgroups: %v", err)
	}
	opts.Hierarchy = h
	m := sessions.NewManager(opts)
	mux := http.NewServeMux()
	mux.Handle("/api/v1/sessions", m)
	mux.Handle("/api/v1/sessions/", m)
	sock := filepath.Join(t.TempDir(), "crmon.sock")
	ln, err := control.Listen(sock, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ConnContext: control.ConnContext}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); m.Close() })
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	return &agentServer{URL: "unix://" + sock, sock: sock, client: client, m: m}, h
}

// do sends a request to the session API and returns the status and body.
func (a *agentServer) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://localhost"+path, strings.NewReader(body))
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSessionOverHTTP measures a burner through the agent's API with the
// Go client, as a test framework would.
func TestSessionOverHTTP(t *testing.T) {
	srv, h := newServer(t)
	cg, err := runner.NewCgroup(h, testenv.CgroupParent, fmt.Sprintf("session-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Remove()
	ctx := context.Background()
	s, err := session.Start(ctx, session.Options{
		AgentURL:     srv.URL,
		StartRequest: session.StartRequest{Name: "it", Cgroup: cg.Path, NewCgroup: true, V1Cgroup: len(cg.V1Dirs) > 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	list, err := session.List(ctx, srv.URL, nil)
	if err != nil || len(list) != 1 || list[0].Name != "it" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// A shell loop that burns CPU without forking, so CMD's rusage is
	// the ground truth.
	res, err := runner.Run(ctx, cg, runner.Options{Args: []string{"sh", "-c", `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done`}})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("run: %v exit %d", err, res.ExitCode)
	}
	rep, err := s.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The cgroup also counts exec and exit, which rusage does not see.
	if d := rep.Totals.CPUSeconds - res.RusageSeconds; d < -0.002 || d > 0.01*res.RusageSeconds+0.002 {
		t.Errorf("cpu_seconds = %v, rusage %v", rep.Totals.CPUSeconds, res.RusageSeconds)
	}
	if rep.Series == nil || len(rep.Series.Run) == 0 {
		t.Error("no series in the report")
	}
	if err := rep.Check(session.Limits{{Name: "cpu_seconds", Value: 0.01}}, ""); err == nil {
		t.Error("Check passed a 10 ms CPU budget")
	}
	if list, _ := session.List(ctx, srv.URL, nil); len(list) != 0 {
		t.Errorf("sessions left after Stop: %+v", list)
	}
}

func TestSessionAPIErrors(t *testing.T) {
	srv, _ := newServer(t)
	ctx := context.Background()
	if _, err := session.Start(ctx, session.Options{AgentURL: srv.URL, StartRequest: session.StartRequest{Name: "a"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		code   int
	}{
		{"duplicate", "POST", "/api/v1/sessions", `{"name":"a"}`, http.StatusConflict},
		{"bad name", "POST", "/api/v1/sessions", `{"name":"a/b"}`, http.StatusBadRequest},
		{"unknown field", "POST", "/api/v1/sessions", `{"name":"b","cgroups":"/x"}`, http.StatusBadRequest},
		{"missing cgroup", "POST", "/api/v1/sessions", `{"name":"b","cgroup":"/no/such/cgroup"}`, http.StatusBadRequest},
		{"relative cgroup", "POST", "/api/v1/sessions", `{"name":"b","cgroup":"../etc"}`, http.StatusBadRequest},
		{"bad selector", "POST", "/api/v1/sessions", `{"name":"b","containers":["=x"]}`, http.StatusBadRequest},
		{"unknown session", "POST", "/api/v1/sessions/zz/stop", ``, http.StatusNotFound},
		{"unknown limit", "POST", "/api/v1/sessions/a/stop", `{"limits":[{"name":"cpu","value":1}]}`, http.StatusBadRequest},
		{"bad unmeasured", "POST", "/api/v1/sessions/a/stop", `{"unmeasured":"ignore"}`, http.StatusBadRequest},
		{"get one", "GET", "/api/v1/sessions/a", ``, http.StatusOK},
		{"stop with limits", "POST", "/api/v1/sessions/a/stop", `{"limits":[{"name":"cpu_seconds","value":1}]}`, http.StatusOK},
		{"gone", "GET", "/api/v1/sessions/a", ``, http.StatusNotFound},
		{"method", "PUT", "/api/v1/sessions", ``, http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := srv.do(t, tc.method, tc.path, tc.body); code != tc.code {
				t.Errorf("%s %s: HTTP %d, want %d: %s", tc.method, tc.path, code, tc.code, body)
			}
		})
	}
	_, err := session.Start(ctx, session.Options{AgentURL: srv.URL, StartRequest: session.StartRequest{Name: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = session.Start(ctx, session.Options{AgentURL: srv.URL, StartRequest: session.StartRequest{Name: "a"}})
	var ae *session.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusConflict {
		t.Errorf("second Start: %v, want an APIError 409", err)
	}
}

// TestCrossSiteRefused checks that a web page cannot drive the session API
// from the user's browser, while clients that are not browsers can.
func TestCrossSiteRefused(t *testing.T) {
	m := sessions.NewManager(sessions.ManagerOptions{Hierarchy: &cgroups.Hierarchy{}})
	defer m.Close()
	for _, tc := range []struct {
		name   string
		header http.Header
		want   int
	}{
		{"client", nil, http.StatusNotFound},
		{"same origin", http.Header{"Sec-Fetch-Site": {"same-origin"}}, http.StatusNotFound},
		{"cross site", http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"other origin", http.Header{"Origin": {"https://attacker.example"}}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "http://localhost/api/v1/sessions/it/stop", nil)
			r = r.WithContext(control.WithPeer(r.Context(), control.Peer{UID: 0}))
			for k, v := range tc.header {
				r.Header[k] = v
			}
			w := httptest.NewRecorder()
			m.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Errorf("POST stop: HTTP %d, want %d: %s", w.Code, tc.want, w.Body)
			}
		})
	}
}

// TestSessionsWithHungDocker runs sessions beside a Docker engine that
// accepts connections and never answers: start, list and stop each answer
// within 2 s, and the report says the containers could not be looked up.
func TestSessionsWithHungDocker(t *testing.T) {
	d, err := docker.New(dockertest.HungEngine(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	srv, _ := newServerWith(t, sessions.ManagerOptions{Docker: d})

	const budget = 2 * time.Second
	ctx := context.Background()
	timed := func(what string, f func() error) {
		t.Helper()
		t0 := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if took := time.Since(t0); took > budget {
			t.Errorf("%s took %v, want at most %v", what, took, budget)
		}
	}
	// Two sessions start at once: neither waits for the other's engine
	// calls.
	var wg sync.WaitGroup
	ss := make([]*session.Session, 2)
	for i := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			timed(fmt.Sprint("start ", i), func() (err error) {
				ss[i], err = session.Start(ctx, session.Options{AgentURL: srv.URL, StartRequest: session.StartRequest{Name: fmt.Sprint("hung-", i)}})
				return err
			})
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	timed("list", func() error {
		list, err := session.List(ctx, srv.URL, nil)
		if err == nil && len(list) != 2 {
			err = fmt.Errorf("%d sessions listed, want 2", len(list))
		}
		return err
	})
	for _, s := range ss {
		timed("stop "+s.Name, func() error {
			rep, err := s.Stop(ctx)
			if err != nil {
				return err
			}
			for _, m := range rep.SourcesMissing {
				if m.Source == "docker" && m.Reason != "" {
					return nil
				}
			}
			return fmt.Errorf("sources_missing = %+v, want docker with the reason", rep.SourcesMissing)
		})
	}
}
