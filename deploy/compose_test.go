// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv"
	"github.com/crmon-dev/crmon/pkg/session"
)

// composeService is the part of a Compose service the tests compare with
// sidecar.flags.
type composeService struct {
	Image       string            `yaml:"image"`
	PID         string            `yaml:"pid"`
	NetworkMode string            `yaml:"network_mode"`
	Cgroup      string            `yaml:"cgroup"`
	CapDrop     []string          `yaml:"cap_drop"`
	CapAdd      []string          `yaml:"cap_add"`
	SecurityOpt []string          `yaml:"security_opt"`
	ReadOnly    bool              `yaml:"read_only"`
	Volumes     []string          `yaml:"volumes"`
	Environment map[string]string `yaml:"environment"`
}

func readCompose(t *testing.T) map[string]composeService {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "deploy", "compose", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Services
}

// TestComposeMirrorsSidecar checks that the compose file's agent has
// sidecar.flags, entry for entry, but for the two the file says why it
// differs on: the control socket's directory is a volume shared with the
// test rather than the host's, and Debian's docker-compose 1.29 has no
// cgroup key (the default on cgroup v1 hosts is the host's namespace).
func TestComposeMirrorsSidecar(t *testing.T) {
	c, ok := readCompose(t)["crmon"]
	if !ok {
		t.Fatal("compose.yaml has no crmon service")
	}
	var got []string
	if c.PID != "" {
		got = append(got, "--pid="+c.PID)
	}
	if c.NetworkMode != "" {
		got = append(got, "--network="+c.NetworkMode)
	}
	if c.Cgroup != "" {
		got = append(got, "--cgroupns="+c.Cgroup)
	}
	for _, x := range c.CapDrop {
		got = append(got, "--cap-drop="+x)
	}
	for _, x := range c.CapAdd {
		got = append(got, "--cap-add="+x)
	}
	for _, x := range c.SecurityOpt {
		got = append(got, "--security-opt="+x)
	}
	if c.ReadOnly {
		got = append(got, "--read-only")
	}
	for _, v := range c.Volumes {
		got = append(got, "--volume="+v)
	}
	var want []string
	for _, f := range sidecarFlags(t) {
		switch f {
		case "--cgroupns=host":
			continue
		case "--volume=/run/crmon:/run/crmon":
			f = "--volume=crmon-run:/run/crmon"
		}
		want = append(want, f)
	}
	// The store's volume is the image's VOLUME, named here.
	want = append(want, "--volume=crmon-state:/var/lib/crmon")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the compose agent's flags\n  %v\nwant sidecar.flags'\n  %v", got, want)
	}
}

// buildImage runs `make image` under a tag of the test's and removes the
// image when the test ends.
func buildImage(t *testing.T) string {
	t.Helper()
	name := "crmon-test/crmon-deploy"
	version := strconv.Itoa(os.Getpid())
	dir := t.TempDir()
	command(t, root(t), "make", "image", "IMAGE="+name, "VERSION="+version,
		"BINARY="+filepath.Join(dir, "crmon"), "IMAGE_CONTEXT="+filepath.Join(dir, "context"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = exec.CommandContext(ctx, "docker", "rmi", "-f", name+":"+version, name+":latest").Run()
	})
	return name + ":" + version
}

// TestComposeSidecar runs the compose recipe: the agent from `make image`
// beside a test container that starts a session on its own cgroup over the
// shared control socket, burns CPU, writes 8 MiB with O_DIRECT and stops
// the session with a JSON report. The report must be of exactly that
// cgroup: its CPU between the cgroup's own counter read inside and outside
// the session (5 % either way), its writes the 8 MiB to +2 %.
func TestComposeSidecar(t *testing.T) {
	testenv.RequireRoot(t)
	dockertest.Require(t)
	compose := testenv.RequireCommand(t, "docker-compose")
	testenv.RequireCommand(t, "make")
	image := buildImage(t)
	// The CLI the test container runs: static, as the image's (busybox
	// has no C library).
	cli := filepath.Join(t.TempDir(), "crmon")
	command(t, root(t), "make", "build", "BINARY="+cli)
	reports := t.TempDir()
	project := "crmon-compose-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	env := append(os.Environ(),
		"CRMON_IMAGE="+image, "TEST_IMAGE="+dockertest.Image, "CRMON_CLI="+cli, "CRMON_REPORT_DIR="+reports,
		"CRMON_WEB_LISTEN_ADDRESS="+testenv.FreePort(t))
	file := filepath.Join(root(t), "deploy", "compose", "compose.yaml")
	dc := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, compose, append([]string{"-f", file, "-p", project}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if out, err := dc(2*time.Minute, "down", "-v", "--timeout", "5"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	out, err := dc(5*time.Minute, "up", "--abort-on-container-exit", "--exit-code-from", "test")
	if err != nil {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}
	id, err := dc(time.Minute, "ps", "-q", "test")
	if err != nil {
		t.Fatalf("docker-compose ps: %v\n%s", err, id)
	}
	id = strings.TrimSpace(id)

	b, err := os.ReadFile(filepath.Join(reports, "report.json"))
	if err != nil {
		t.Fatalf("no report: %v\n%s", err, out)
	}
	var r session.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	var inner, outer float64
	if b, err := os.ReadFile(filepath.Join(reports, "cpu_usec")); err != nil {
		t.Fatal(err)
	} else if _, err := fmt.Sscan(string(b), &inner, &outer); err != nil {
		t.Fatalf("cpu_usec %q: %v", b, err)
	}
	inner, outer = inner/1e6, outer/1e6
	if id == "" || !strings.HasSuffix(r.Cgroup, id) || r.TotalsOf != "cgroup" {
		t.Errorf("report of %q (totals of %q), want the test container's cgroup, id %s", r.Cgroup, r.TotalsOf, id)
	}
	if !slices.Contains(r.Sources, "ebpf") {
		t.Errorf("report sources %v: the sidecar's probes did not measure it", r.Sources)
	}
	if cpu := r.Totals.CPUSeconds; cpu < inner*0.95 || cpu > outer*1.05 || cpu <= 0 {
		t.Errorf("report CPU %.4f s; the cgroup's own counter says %.4f s inside the session and %.4f s around it", cpu, inner, outer)
	}
	if w := float64(r.Totals.BlockWriteBytes); w < 8<<20 || w > 8<<20*1.02 {
		t.Errorf("report block writes %.0f B, want 8 MiB to +2%%", w)
	}
	t.Logf("report: cgroup %s, CPU %.4f s (cgroup %.4f inside, %.4f around), writes %d B", r.Cgroup, r.Totals.CPUSeconds, inner, outer, r.Totals.BlockWriteBytes)
}
