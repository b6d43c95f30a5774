// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Package deploy holds the tests of what deploy/ ships: the sidecar flags,
// the systemd unit and `make install`, the Kubernetes manifests, the
// Grafana dashboard and the Vagrantfile.
package deploy

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// root is the repository's top directory.
func root(t testing.TB) string {
	t.Helper()
	r, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sidecarFlags are the lines of docker/sidecar.flags.
func sidecarFlags(t testing.TB) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(root(t), "deploy", "docker", "sidecar.flags"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var flags []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			flags = append(flags, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return flags
}

// sidecarCaps are the capabilities sidecar.flags adds, as CAP_ names,
// sorted: the set every other deployment mirrors.
func sidecarCaps(t testing.TB) []string {
	t.Helper()
	var caps []string
	drops := false
	for _, f := range sidecarFlags(t) {
		if c, ok := strings.CutPrefix(f, "--cap-add="); ok {
			caps = append(caps, "CAP_"+strings.TrimPrefix(strings.ToUpper(c), "CAP_"))
		}
		drops = drops || f == "--cap-drop=ALL"
	}
	if !drops || len(caps) == 0 {
		t.Fatalf("sidecar.flags: cap-drop=ALL %v, %d added: want every capability dropped and the needed ones added", drops, len(caps))
	}
	slices.Sort(caps)
	return caps
}

// command runs name with args in dir within two minutes and returns its
// combined output, failing the test on error.
func command(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// unitDirective returns the values of key in a systemd unit, in order.
func unitDirective(unit, key string) []string {
	var vs []string
	for _, l := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+"="); ok {
			vs = append(vs, v)
		}
	}
	return vs
}

// TestMakeInstall installs into a temporary DESTDIR and checks what lands
// where; then installs again with PREFIX and SYSCONFDIR in a temporary
// directory, so that the unit's paths name real files, and has systemd
// verify the unit as installed: any finding fails.
func TestMakeInstall(t *testing.T) {
	testenv.RequireLong(t, "a build of crmon")
	analyze := testenv.RequireCommand(t, "systemd-analyze")
	testenv.RequireCommand(t, "make")
	bin := filepath.Join(t.TempDir(), "crmon")

	dest := t.TempDir()
	command(t, root(t), "make", "install", "DESTDIR="+dest, "BINARY="+bin)
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{"usr/local/bin/crmon", 0o755},
		{"usr/local/lib/systemd/system/crmon.service", 0o644},
		{"etc/crmon/crmon.toml", 0o644},
	} {
		fi, err := os.Stat(filepath.Join(dest, f.path))
		if err != nil {
			t.Errorf("DESTDIR install: %v", err)
			continue
		}
		if fi.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, fi.Mode().Perm(), f.mode)
		}
	}
	unit, err := os.ReadFile(filepath.Join(dest, "usr/local/lib/systemd/system/crmon.service"))
	if err != nil {
		t.Fatal(err)
	}
	if got := unitDirective(string(unit), "ExecStart"); len(got) != 1 || got[0] != "/usr/local/bin/crmon run --config /etc/crmon/crmon.toml" {
		t.Errorf("ExecStart = %q: want the installed paths, without DESTDIR", got)
	}
	// The config is the operator's once installed.
	cfg := filepath.Join(dest, "etc/crmon/crmon.toml")
	if err := os.WriteFile(cfg, []byte("# edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	command(t, root(t), "make", "install", "DESTDIR="+dest, "BINARY="+bin)
	if b, _ := os.ReadFile(cfg); string(b) != "# edited\n" {
		t.Errorf("a second make install overwrote the config: %q", b)
	}

	prefix := t.TempDir()
	command(t, root(t), "make", "install", "PREFIX="+prefix+"/usr", "SYSCONFDIR="+prefix+"/etc", "BINARY="+bin)
	installed := filepath.Join(prefix, "usr/bin/crmon")
	if out := command(t, prefix, installed, "config", "check", filepath.Join(prefix, "etc/crmon/crmon.toml")); !strings.Contains(out, "valid") {
		t.Errorf("crmon config check of the default config:\n%s", out)
	}
	if out := command(t, prefix, analyze, "verify", filepath.Join(prefix, "usr/lib/systemd/system/crmon.service")); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify found:\n%s", out)
	}
}

// TestSystemdUnitMirrorsSidecar checks the unit's hardening: the bounding
// set is sidecar.flags' capabilities, the store and the control socket's
// directory are systemd's, and the file system is read-only but for them
// and the cgroup trees.
func TestSystemdUnitMirrorsSidecar(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "deploy", "systemd", "crmon.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	set := unitDirective(unit, "CapabilityBoundingSet")
	if len(set) != 1 {
		t.Fatalf("CapabilityBoundingSet: %q, want one line", set)
	}
	caps := strings.Fields(set[0])
	slices.Sort(caps)
	if want := sidecarCaps(t); !slices.Equal(caps, want) {
		t.Errorf("CapabilityBoundingSet = %v, sidecar.flags adds %v", caps, want)
	}
	for key, want := range map[string]string{
		"ProtectSystem":    "strict",
		"NoNewPrivileges":  "yes",
		"StateDirectory":   "crmon", // /var/lib/crmon, store.path's default
		"RuntimeDirectory": "crmon", // /run/crmon, the control socket's
		"ReadWritePaths":   "/sys/fs/cgroup",
		"PrivateTmp":       "yes",
	} {
		if got := unitDirective(unit, key); !slices.Equal(got, []string{want}) {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}

// TestReadmeExplainsSidecarFlags checks that the README's table of the
// sidecar's flags explains every line of sidecar.flags, and no flag that
// is not there.
func TestReadmeExplainsSidecarFlags(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "| flag | why | without it |")
	if start < 0 {
		t.Fatal("README: no table of the sidecar's flags")
	}
	explained := map[string]bool{}
	for _, line := range strings.Split(readme[start:], "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cell := strings.Split(line, "|")[1]
		for _, f := range strings.Split(cell, ",") {
			explained[strings.Trim(strings.TrimSpace(f), "`")] = true
		}
	}
	flags := sidecarFlags(t)
	for _, f := range flags {
		if !explained[f] {
			t.Errorf("README does not explain %s", f)
		}
		delete(explained, f)
	}
	for f := range explained {
		t.Errorf("README explains %s, which sidecar.flags does not have", f)
	}
}
