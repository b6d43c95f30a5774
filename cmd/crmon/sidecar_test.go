// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// repoRoot is the repository's top directory, which the paths in
// deploy/docker/sidecar.flags are relative to.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// sidecarImage is `make image` under a tag of this test run's, built once
// per test binary and removed when it exits (TestMain).
var sidecarImage = sync.OnceValues(func() (string, error) {
	tag := "crmon-test/crmon:" + strconv.Itoa(os.Getpid())
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "crmon-image")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	name, version, _ := strings.Cut(tag, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-C", root, "image", "IMAGE="+name, "VERSION="+version,
		"BINARY="+filepath.Join(dir, "crmon"), "IMAGE_CONTEXT="+filepath.Join(dir, "context"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("make image: %v\n%s", err, out)
	}
	builtImages = append(builtImages, tag, name+":latest")
	return tag, nil
})

// builtImages are the tags sidecarImage made, for TestMain to remove.
var builtImages []string

func removeBuiltImages() {
	if len(builtImages) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = exec.CommandContext(ctx, "docker", append([]string{"rmi", "-f"}, builtImages...)...).Run()
}

// sidecarFlags reads deploy/docker/sidecar.flags: one docker run flag a
// line, files named relative to the repository root. The host's
// /run/crmon, where the agent's control socket goes, is replaced by a
// directory of the test's, so that a test leaves nothing in /run.
func sidecarFlags(t *testing.T) []string {
	t.Helper()
	root := repoRoot(t)
	f, err := os.Open(filepath.Join(root, "deploy", "docker", "sidecar.flags"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run := t.TempDir()
	var flags []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			t.Fatalf("sidecar.flags: %q: one flag a line, with no space (it is read by $(cat …))", line)
		}
		if v, ok := strings.CutPrefix(line, "--volume=/run/crmon:"); ok {
			line = "--volume=" + run + ":" + v
		}
		if v, ok := strings.CutPrefix(line, "--security-opt=seccomp="); ok && !filepath.IsAbs(v) {
			line = "--security-opt=seccomp=" + filepath.Join(root, v)
		}
		flags = append(flags, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return flags
}

// sidecar is a running crmon container.
type sidecar struct {
	name, addr string
}

// startSidecar runs the image with flags, the test's config file (when
// not "") and `run ARGS`, listening on a free loopback port of the host's
// network, and waits until it serves. The container and its anonymous
// store volume are removed when the test ends.
func startSidecar(t *testing.T, flags []string, config string, args ...string) *sidecar {
	t.Helper()
	image, err := sidecarImage()
	if err != nil {
		t.Fatal(err)
	}
	s := &sidecar{
		name: "crmon-sidecar-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 10),
		addr: "127.0.0.1:" + strconv.Itoa(testenv.Port(t, testenv.FreePort(t))),
	}
	run := append([]string{"run", "-d", "--name", s.name}, flags...)
	run = append(run, "--env=CRMON_WEB_LISTEN_ADDRESS="+s.addr)
	if config != "" {
		run = append(run, "--volume="+config+":/etc/crmon/crmon.toml:ro", "--env=CRMON_CONFIG=/etc/crmon/crmon.toml")
	}
	run = append(run, image, "run")
	run = append(run, args...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = exec.CommandContext(ctx, "docker", "rm", "-f", "-v", s.name).Run()
	})
	dockertest.Docker(t, run...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := s.fetch("/healthz"); code == http.StatusOK {
			return s
		}
		if time.Now().After(deadline) || dockertest.Docker(t, "inspect", "-f", "{{.State.Running}}", s.name) != "true" {
			t.Fatalf("the sidecar does not serve on %s:\n%s", s.addr, s.logs(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *sidecar) fetch(path string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, string(b)
}

func (s *sidecar) get(t *testing.T, path string) string {
	t.Helper()
	code, body := s.fetch(path)
	if code != http.StatusOK {
		t.Fatalf("GET %s from the sidecar: %d %s\n%s", path, code, body, s.logs(t))
	}
	return body
}

func (s *sidecar) logs(t *testing.T) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "docker", "logs", s.name).CombinedOutput()
	return string(out)
}

func requireSidecar(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	dockertest.Require(t)
	testenv.RequireCommand(t, "make")
}

// TestSidecarAttributesContainers runs the image as the README's sidecar,
// with exactly the flags of deploy/docker/sidecar.flags (no --privileged),
// and checks the burner, writer, sender and idle containers beside it
// within the tolerances of the host binary's test.
func TestSidecarAttributesContainers(t *testing.T) {
	requireSidecar(t)
	s := startSidecar(t, sidecarFlags(t), lostCompletionConfig(t), "--collection-interval", "1s", "--ebpf", "required")
	logs := s.logs(t)
	if strings.Contains(logs, "eBPF probe not loaded") || strings.Contains(logs, "level=WARN") {
		t.Errorf("the sidecar warned at start:\n%s", logs)
	}
	attributeContainers(t, s.get, "sidecar")
}

// TestSidecarWithoutCapabilities runs the same image with the same flags
// but no added capability: the host and cgroupfs families are still
// served, and the probes are down with the capability each lacks, in the
// log and in crmon_probe_down_info.
func TestSidecarWithoutCapabilities(t *testing.T) {
	requireSidecar(t)
	var flags []string
	for _, f := range sidecarFlags(t) {
		if !strings.HasPrefix(f, "--cap-add") {
			flags = append(flags, f)
		}
	}
	burner := dockertest.Run(t, []string{"--name", "crmon-nocaps-burn-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 10)}, "sh", "-c", "yes >/dev/null")
	s := startSidecar(t, flags, "", "--collection-interval", "1s")
	time.Sleep(2500 * time.Millisecond)
	fams := parseMetrics(t, s.get(t, "/metrics"))

	for _, fam := range []string{"node_cpu_seconds_total", "node_memory_MemTotal_bytes", "node_network_receive_bytes_total", "node_load1"} {
		if count(fams, fam, nil) == 0 {
			t.Errorf("no %s: the host families must not need a capability", fam)
		}
	}
	if v := value(fams, "container_cpu_usage_seconds_total", map[string]string{"id": "/docker/" + burner}); v <= 0 {
		if v = sum(fams, "container_cpu_usage_seconds_total", map[string]string{"name": strings.TrimPrefix(dockertest.Docker(t, "inspect", "-f", "{{.Name}}", burner), "/")}); v <= 0 {
			t.Errorf("burner container: container_cpu_usage_seconds_total %v, want > 0 from cgroupfs", v)
		}
	}
	missing := regexp.MustCompile(`missing capabilities: CAP_BPF \(or CAP_SYS_ADMIN\)`)
	for _, probe := range []string{"sched", "block", "net"} {
		if v := value(fams, "crmon_probe_up", map[string]string{"probe": probe}); v != 0 {
			t.Errorf("crmon_probe_up{probe=%q} = %v, want 0", probe, v)
		}
		ms := matching(fams, "crmon_probe_down_info", map[string]string{"probe": probe})
		if len(ms) != 1 || !missing.MatchString(labelValue(ms[0], "reason")) {
			t.Errorf("crmon_probe_down_info{probe=%q}: %d series %v, want one whose reason names CAP_BPF", probe, len(ms), ms)
		}
	}
	logs := s.logs(t)
	for _, want := range []string{
		`msg="eBPF probe not loaded" probe=sched reason="missing capabilities: CAP_BPF (or CAP_SYS_ADMIN), CAP_PERFMON (or CAP_SYS_ADMIN)"`,
		`msg="eBPF probe not loaded" probe=net reason="missing capabilities: CAP_BPF (or CAP_SYS_ADMIN), CAP_NET_ADMIN"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s:\n%s", want, logs)
		}
	}
}

// TestImage checks what `make image` built: OCI labels naming this
// version and revision, `crmon run` by default, the store's volume, no
// base image, and no file but the binary and the CA bundle (beside what
// the engine itself adds to every container).
func TestImage(t *testing.T) {
	requireSidecar(t)
	image, err := sidecarImage()
	if err != nil {
		t.Fatal(err)
	}
	var in []struct {
		Config struct {
			Labels     map[string]string
			Entrypoint []string
			Cmd        []string
			Volumes    map[string]struct{}
		}
		RootFS struct{ Layers []string }
	}
	if err := json.Unmarshal([]byte(dockertest.Docker(t, "image", "inspect", image)), &in); err != nil || len(in) != 1 {
		t.Fatalf("docker image inspect %s: %v", image, err)
	}
	cfg := in[0].Config
	_, version, _ := strings.Cut(image, ":")
	head, err := exec.Command("git", "-C", repoRoot(t), "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": strings.TrimSpace(string(head)),
		"org.opencontainers.image.title":    "crmon",
		"org.opencontainers.image.licenses": "Apache-2.0",
	} {
		if cfg.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, cfg.Labels[k], want)
		}
	}
	if _, err := time.Parse(time.RFC3339, cfg.Labels["org.opencontainers.image.created"]); err != nil {
		t.Errorf("label org.opencontainers.image.created: %v", err)
	}
	if strings.Join(cfg.Entrypoint, " ") != "/usr/bin/crmon" || strings.Join(cfg.Cmd, " ") != "run" {
		t.Errorf("entrypoint %q, cmd %q: want /usr/bin/crmon run", cfg.Entrypoint, cfg.Cmd)
	}
	if _, ok := cfg.Volumes["/var/lib/crmon"]; !ok {
		t.Errorf("volumes %v, want /var/lib/crmon (store.path)", cfg.Volumes)
	}
	// FROM scratch: the two COPY layers are all there is.
	if n := len(in[0].RootFS.Layers); n != 2 {
		t.Errorf("%d layers, want the binary's and the CA bundle's alone", n)
	}

	// Every regular file of a container made from it.
	id := dockertest.Docker(t, "create", image)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", "-v", id).Run() })
	out, err := exec.Command("sh", "-c", "docker export "+id+" | tar -t").Output()
	if err != nil {
		t.Fatalf("docker export: %v", err)
	}
	var files []string
	for _, f := range strings.Fields(string(out)) {
		if !strings.HasSuffix(f, "/") {
			files = append(files, f)
		}
	}
	// The engine adds these to every container.
	engine := map[string]bool{".dockerenv": true, "etc/hostname": true, "etc/hosts": true, "etc/resolv.conf": true, "etc/mtab": true, "dev/console": true, "dev/pts": true, "dev/shm": true, "proc": true, "sys": true}
	var ours []string
	for _, f := range files {
		if !engine[f] {
			ours = append(ours, f)
		}
	}
	if strings.Join(ours, " ") != "etc/ssl/certs/ca-certificates.crt usr/bin/crmon" {
		t.Errorf("the image holds %v, want the CA bundle and the binary alone", ours)
	}
}

// TestSidecarHostRootAtRootfs runs the image as the README's sidecar once
// was: the host's /, /proc and /sys bind-mounted at /rootfs, /host/proc and
// /host/sys and named by the path flags. It read its own mount table,
// whose /rootfs/sys/fs/cgroup/... it joined under /rootfs again: every
// container cgroup read as removed, with no container_* series. Now a
// burner's CPU is served from both families, and the host's / is statted
// through /rootfs.
func TestSidecarHostRootAtRootfs(t *testing.T) {
	requireSidecar(t)
	flags := append(sidecarFlags(t),
		"--volume=/:/rootfs:ro", "--volume=/proc:/host/proc:ro", "--volume=/sys:/host/sys:ro",
		"--env=CRMON_LOG_LEVEL=debug")
	name := "crmon-rootfs-burn-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	dockertest.Run(t, []string{"--name", name}, "sh", "-c", "yes >/dev/null")
	s := startSidecar(t, flags, "", "--collection-interval", "1s",
		"--path.procfs", "/host/proc", "--path.sysfs", "/host/sys", "--path.rootfs", "/rootfs")
	time.Sleep(2500 * time.Millisecond)
	fams := parseMetrics(t, s.get(t, "/metrics"))
	burner := map[string]string{"name": name}
	if v := sum(fams, "container_cpu_usage_seconds_total", burner); v <= 0 {
		t.Errorf("container_cpu_usage_seconds_total{name=%q} = %v, want > 0", name, v)
	}
	if v := sum(fams, "crmon_container_cpu_seconds_total", burner); v <= 0 {
		t.Errorf("crmon_container_cpu_seconds_total{name=%q} = %v, want > 0", name, v)
	}
	if logs := s.logs(t); strings.Contains(logs, "cgroup removed") {
		t.Errorf("the sidecar read a live cgroup as removed:\n%s", logs)
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		t.Fatal(err)
	}
	if got, want := value(fams, "node_filesystem_size_bytes", map[string]string{"mountpoint": "/"}), float64(st.Blocks)*float64(st.Bsize); got != want {
		t.Errorf("node_filesystem_size_bytes{mountpoint=\"/\"} = %v, the host's / has %v", got, want)
	}
}
