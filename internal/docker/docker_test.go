// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package docker

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv"
)

func newEngine(t *testing.T) *Engine {
	t.Helper()
	dockertest.Require(t)
	e, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestEngineListInspect(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	info, err := e.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.CgroupDriver == "" || info.APIVersion == "" || info.DockerRootDir == "" {
		t.Errorf("Info = %+v, want driver, API version and root dir", info)
	}
	name := fmt.Sprintf("crmon-docker-test-%d", time.Now().UnixNano())
	before := time.Now().Add(-time.Second)
	id := dockertest.Run(t, []string{"--name", name, "--label", "crmon.test=yes", "--cgroup-parent", "/crmon-test"}, "sleep", "600")

	cs, err := e.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found *Container
	for i := range cs {
		if cs[i].ID == id {
			found = &cs[i]
		}
	}
	if found == nil {
		t.Fatalf("List does not have %s", id)
	}
	if found.Name != name || found.Image != dockertest.Image || found.State != "running" || found.Labels["crmon.test"] != "yes" {
		t.Errorf("List entry = %+v", *found)
	}

	c, err := e.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != name || c.Image != dockertest.Image || !c.Running() || c.PID <= 0 || c.CgroupParent != "/crmon-test" {
		t.Errorf("Inspect = %+v", c)
	}
	if c.Created.Before(before) || c.Started.Before(c.Created) || !c.Finished.IsZero() {
		t.Errorf("times: created %v started %v finished %v, want created after %v <= started, no finish", c.Created, c.Started, c.Finished, before)
	}
	// The PID is the container's init: its cgroup names the container.
	b, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(c.PID), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), id) {
		t.Errorf("/proc/%d/cgroup does not name %s:\n%s", c.PID, id, b)
	}

	if _, err := e.Inspect(ctx, strings.Repeat("0", 64)); !IsNotFound(err) {
		t.Errorf("Inspect of a missing container: err = %v, want not found", err)
	}
}

func TestEngineEvents(t *testing.T) {
	e := newEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	evs, errs := e.Events(ctx)
	// A container that lives a moment: every life-cycle event must arrive.
	id := dockertest.Docker(t, "run", "-d", dockertest.Image, "sh", "-c", "exit 3")
	dockertest.Docker(t, "wait", id)
	dockertest.Docker(t, "rm", id)

	want := []string{"create", "start", "die", "destroy"}
	var got []string
	for len(got) < len(want) {
		select {
		case ev := <-evs:
			if ev.ID != id {
				continue
			}
			if ev.Time.IsZero() || ev.Image != dockertest.Image || ev.Name == "" {
				t.Errorf("event %s: time %v, name %q, image %q", ev.Action, ev.Time, ev.Name, ev.Image)
			}
			// A die event carries the exit code, and only a die event.
			if (ev.Action == "die") != (ev.ExitCode != nil) || (ev.ExitCode != nil && *ev.ExitCode != 3) {
				t.Errorf("event %s: exit code %v, want 3 on die only", ev.Action, ev.ExitCode)
			}
			got = append(got, ev.Action)
		case err := <-errs:
			t.Fatalf("events: %v (got %v)", err, got)
		case <-ctx.Done():
			t.Fatalf("timed out; got %v, want %v", got, want)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func TestEngineSizes(t *testing.T) {
	e := newEngine(t)
	const size = 3 << 20
	id := dockertest.Run(t, nil, "sh", "-c", fmt.Sprintf("dd if=/dev/zero of=/tmp/f bs=%d count=1 2>/dev/null && sleep 600", size))
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, err := e.Sizes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// The writable layer holds the file plus a few directories.
		if m[id] >= size && m[id] < size+64<<10 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("SizeRw = %d, want about %d", m[id], size)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A daemon that is not there is an error to report, never a hang or a panic.
func TestEngineMissingDaemon(t *testing.T) {
	e, err := New("unix://" + filepath.Join(t.TempDir(), "no.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.Info(ctx); err == nil || !IsUnreachable(err) {
		t.Errorf("Info against a missing daemon: err = %v, want unreachable", err)
	}
	if _, err := e.List(ctx); err == nil {
		t.Error("List against a missing daemon succeeded")
	}
	_, errs := e.Events(ctx)
	select {
	case err := <-errs:
		if err == nil {
			t.Error("events: nil error")
		}
	case <-ctx.Done():
		t.Error("events against a missing daemon did not fail")
	}
}

// An engine that accepts connections and never answers: every call ends
// by its caller's deadline, or by crmon's own when the caller has none,
// even while another request holds the client's version negotiation.
func TestEngineHungDaemon(t *testing.T) {
	testenv.RequireLong(t, "waiting out crmon's own deadline on a hung engine")
	e, err := New(dockertest.HungEngine(t))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	// A request with no deadline of its own, first in line for the
	// client's version negotiation.
	type ended struct {
		what  string
		after time.Duration
		err   error
	}
	unbounded := make(chan ended, 2)
	start := time.Now()
	go func() {
		_, err := e.Info(context.Background())
		unbounded <- ended{"Info", time.Since(start), err}
	}()
	go func() {
		_, errs := e.Events(context.Background())
		unbounded <- ended{"Events", time.Since(start), <-errs}
	}()
	time.Sleep(100 * time.Millisecond)

	const budget = 500 * time.Millisecond
	calls := map[string]func(ctx context.Context) error{
		"Info":    func(ctx context.Context) error { _, err := e.Info(ctx); return err },
		"List":    func(ctx context.Context) error { _, err := e.List(ctx); return err },
		"Inspect": func(ctx context.Context) error { _, err := e.Inspect(ctx, strings.Repeat("0", 64)); return err },
		"Sizes":   func(ctx context.Context) error { _, err := e.Sizes(ctx); return err },
		"Events": func(ctx context.Context) error {
			_, errs := e.Events(ctx)
			return <-errs
		},
	}
	for name, call := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		t0 := time.Now()
		err := call(ctx)
		took := time.Since(t0)
		cancel()
		if err == nil {
			t.Errorf("%s against a hung engine succeeded", name)
		}
		// The deadline is the caller's; the slack is the scheduler's on a
		// busy host, not the engine's.
		if took > budget+time.Second {
			t.Errorf("%s took %v with a %v deadline", name, took, budget)
		}
	}
	for range 2 {
		select {
		case r := <-unbounded:
			if r.err == nil {
				t.Errorf("%s without a deadline succeeded against a hung engine", r.what)
			}
			if r.after < CallTimeout-time.Second {
				t.Errorf("%s without a deadline gave up after %v, before crmon's own %v", r.what, r.after, CallTimeout)
			}
		case <-time.After(CallTimeout + 5*time.Second):
			t.Fatalf("a call without a deadline still hangs %v after it began", time.Since(start))
		}
	}
}

// An engine whose answers never end: the reads stop at crmon's bounds,
// with an error, instead of growing without limit.
func TestEngineBoundsAnswers(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "engine.sock"))
	if err != nil {
		t.Fatal(err)
	}
	endless := func(w http.ResponseWriter, chunk []byte) {
		w.Header().Set("Content-Type", "application/json")
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			w.Header().Set("Api-Version", "1.41")
			w.Write([]byte("OK"))
		case strings.HasSuffix(r.URL.Path, "/containers/json"):
			w.Write([]byte("["))
			endless(w, []byte(`{"Id":"`+strings.Repeat("0", 64)+`","Names":["/x"],"Image":"x","State":"running"},`))
		case strings.HasSuffix(r.URL.Path, "/events"):
			// One event that never ends.
			w.Write([]byte(`{"Type":"container","Action":"`))
			endless(w, bytes.Repeat([]byte("x"), 4096))
		default:
			http.NotFound(w, r)
		}
	})}}
	srv.Start()
	defer srv.Close()

	e, err := New("unix://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.List(ctx); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("List of an endless answer: err = %v, want too large", err)
	}
	_, errs := e.Events(ctx)
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("an endless event: err = %v, want too large", err)
	}
}
