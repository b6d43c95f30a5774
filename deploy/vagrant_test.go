// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/crmon-dev/crmon/internal/testenv"
)

type vagrantCall struct {
	Call string            `json:"call"`
	Args []string          `json:"args"`
	KW   map[string]string `json:"kw"`
}

// vagrantConfig evaluates the Vagrantfile with testdata/vagrant_stub.rb,
// which records its configuration calls.
func vagrantConfig(t *testing.T) []vagrantCall {
	t.Helper()
	ruby := testenv.RequireCommand(t, "ruby")
	vf := filepath.Join(root(t), "Vagrantfile")
	if out := command(t, root(t), ruby, "-c", vf); !strings.Contains(out, "Syntax OK") {
		t.Fatalf("ruby -c Vagrantfile: %s", out)
	}
	out, err := exec.Command(ruby, filepath.Join("testdata", "vagrant_stub.rb"), vf).Output()
	if err != nil {
		t.Fatalf("loading the Vagrantfile: %v", err)
	}
	var d struct {
		Version string        `json:"version"`
		Calls   []vagrantCall `json:"calls"`
	}
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if d.Version != "2" {
		t.Errorf("Vagrant.configure(%q), want \"2\"", d.Version)
	}
	return d.Calls
}

// TestVagrantfile checks the Vagrantfile as far as a machine without a VM
// can: it parses (ruby -c) and loads; each provisioner's shell script
// parses (bash -n); the forwarded port is the agent's, on the host's
// loopback; and the steps that need no VM run here: the Go version the
// VM installs is go.mod's toolchain, the safe.directory step is
// idempotent, and the test provisioner's make target exists.
func TestVagrantfile(t *testing.T) {
	bash := testenv.RequireCommand(t, "bash")
	calls := vagrantConfig(t)
	scripts := map[string]string{}
	forwarded := false
	for _, c := range calls {
		switch c.Call {
		case "config.vm.provision":
			if c.KW["type"] == "shell" && len(c.Args) > 0 {
				scripts[c.Args[0]] = c.KW["inline"]
			}
		case "config.vm.network":
			forwarded = forwarded || (len(c.Args) > 0 && c.Args[0] == "forwarded_port" &&
				c.KW["guest"] == "9717" && c.KW["host_ip"] == "127.0.0.1")
		}
	}
	if !forwarded {
		t.Error("no forwarded port 9717 on the host's 127.0.0.1 (README, The two commands)")
	}
	for _, name := range []string{"deps", "test"} {
		s, ok := scripts[name]
		if !ok {
			t.Errorf("no %q shell provisioner", name)
			continue
		}
		cmd := exec.Command(bash, "-n")
		cmd.Stdin = strings.NewReader(s)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("bash -n of the %q provisioner: %v\n%s", name, err, out)
		}
	}
	deps := scripts["deps"]

	// The Go version, computed by the provisioner's own line.
	line := regexp.MustCompile(`(?m)^\s*gover=\$\(.*$`).FindString(deps)
	if line == "" {
		t.Fatal("the deps provisioner no longer computes gover")
	}
	line = strings.ReplaceAll(line, "/crmon/go.mod", filepath.Join(root(t), "go.mod"))
	got := strings.TrimSpace(command(t, root(t), bash, "-c", "set -euo pipefail\n"+line+"\necho \"$gover\""))
	gomod, err := os.ReadFile(filepath.Join(root(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^toolchain go(\S+)$`).FindSubmatch(gomod)
	if want == nil {
		want = regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	}
	if want == nil || got != string(want[1]) {
		t.Errorf("the VM would install Go %q; go.mod names %q", got, want)
	}

	// safe.directory, run twice against a system config of the test's.
	i := strings.Index(deps, "git config --system --get-all safe.directory")
	j := strings.Index(deps[i:], "\n\n")
	if i < 0 || j < 0 {
		t.Fatal("the deps provisioner no longer sets safe.directory")
	}
	step := deps[i : i+j]
	sys := filepath.Join(t.TempDir(), "gitconfig")
	for range 2 {
		cmd := exec.Command(bash, "-c", "set -euo pipefail\n"+step)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_SYSTEM="+sys)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the safe.directory step: %v\n%s", err, out)
		}
	}
	if b, _ := os.ReadFile(sys); strings.Count(string(b), "directory = /crmon") != 1 {
		t.Errorf("after the safe.directory step ran twice, the system config holds:\n%s", b)
	}

	// The test provisioner's target, as make sees it.
	if !strings.Contains(scripts["test"], "make -C /crmon test") {
		t.Errorf("the test provisioner does not run make test: %q", scripts["test"])
	}
	testenv.RequireCommand(t, "make")
	if out := command(t, root(t), "make", "-n", "test"); !strings.Contains(out, "go test") {
		t.Errorf("make -n test runs no go test:\n%s", out)
	}
}
