// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package dockertest runs containers for tests against the real engine that
// scripts/docker-env.sh prepares.
package dockertest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// Image is the local test image docker-env.sh builds from busybox-static.
const Image = "crmon-test/busybox:latest"

// Require stops the test unless the docker CLI answers and the test image
// exists; it returns the CLI's path.
func Require(t testing.TB) string {
	t.Helper()
	testenv.RequireLong(t, "the Docker engine")
	testenv.RequireRoot(t)
	cli := testenv.RequireCommand(t, "docker")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, "version").CombinedOutput(); err != nil {
		testenv.Unavailable(t, "dockerd does not answer (run scripts/docker-env.sh): %v: %s", err, out)
	}
	if out, err := exec.CommandContext(ctx, cli, "image", "inspect", Image).CombinedOutput(); err != nil {
		testenv.Unavailable(t, "no %s image (run scripts/docker-env.sh): %v: %s", Image, err, out)
	}
	return cli
}

// Docker runs the docker CLI and returns its trimmed stdout, failing the
// test on error.
func Docker(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, msg)
	}
	return strings.TrimSpace(string(out))
}

// Run starts a detached container with the given docker run arguments
// (before the image) and command (after it), removes it when the test ends,
// and returns its full ID.
func Run(t testing.TB, runArgs []string, cmd ...string) string {
	t.Helper()
	args := append([]string{"run", "-d"}, runArgs...)
	args = append(args, Image)
	args = append(args, cmd...)
	// docker run can fail after it created the container (no network,
	// say): a named one is removed by name then.
	for i, a := range runArgs {
		if a == "--name" && i+1 < len(runArgs) {
			name := runArgs[i+1]
			t.Cleanup(func() { Remove(name) })
		}
	}
	id := Docker(t, args...)
	t.Cleanup(func() { Remove(id) })
	return id
}

// Remove force-removes a container, ignoring errors (it may be gone).
func Remove(ids ...string) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_ = exec.CommandContext(ctx, "docker", append([]string{"rm", "-f"}, ids...)...).Run()
}

// BridgeIP is the host's IPv4 address on docker0, where a listener of the
// test is reachable from containers on the default bridge network.
func BridgeIP(t testing.TB) string {
	t.Helper()
	ifc, err := net.InterfaceByName("docker0")
	if err != nil {
		t.Fatalf("docker0: %v", err)
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	t.Fatal("docker0 has no IPv4 address")
	return ""
}

// HungEngine listens on a unix socket that accepts connections and never
// answers, as an engine stuck on a lock does, and returns its address
// ("unix://PATH"). The connections are closed when the test ends.
func HungEngine(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "crmon-hung-docker")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "engine.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		os.RemoveAll(dir)
	})
	return "unix://" + path
}
