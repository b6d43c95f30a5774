// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	stdbytes "bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestAgentServesCgroupWithInvalidName: anyone who may make a cgroup names
// it, with any bytes. With a process burning CPU in a cgroup2 cgroup whose
// name is not UTF-8, the agent (eBPF probes loaded) keeps collecting and
// every scrape, text and protobuf, answers within a second with a valid
// exposition that carries the cgroup under its repaired name.
func TestAgentServesCgroupWithInvalidName(t *testing.T) {
	testenv.RequireRoot(t)
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		t.Fatal(err)
	}
	if h.Unified == "" {
		testenv.Unavailable(t, "no cgroup2 mount")
	}
	name := "crmon-bad\xff-" + strconv.Itoa(os.Getpid())
	dir := filepath.Join(h.Unified, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cgfd, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cgfd.Close()
	// Bursts of shell arithmetic with pauses: enough for the probes to
	// see the cgroup, little enough for a shared machine.
	burner := exec.Command("sh", "-c", `while :; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 0.2; done`)
	burner.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgfd.Fd())}
	if err := burner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		burner.Process.Kill()
		burner.Wait()
		for i := 0; i < 50; i++ {
			if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("removing %q: still busy", dir)
	})

	p := startAgent(t, "--collection-interval", "1s", "--ebpf", "required", "--collector.containers=false")
	client := &http.Client{Timeout: time.Second}
	scrape := func(accept string) map[string]*dto.MetricFamily {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/metrics", nil)
		req.Header.Set("Accept", accept)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("scrape (%s): %v\n%s", accept, err, p.logs())
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("scrape (%s): %s %v", accept, resp.Status, err)
		}
		fams := map[string]*dto.MetricFamily{}
		dec := expfmt.NewDecoder(stdbytes.NewReader(body), expfmt.Format(resp.Header.Get("Content-Type")))
		for {
			mf := new(dto.MetricFamily)
			if err := dec.Decode(mf); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("scrape (%s) is not a valid exposition: %v", accept, err)
			}
			fams[mf.GetName()] = mf
		}
		return fams
	}
	const (
		text  = "text/plain;version=0.0.4"
		proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
	)
	id := "/crmon-bad\uFFFD-" + strconv.Itoa(os.Getpid())
	// Wait for a tick that saw the burner run; from then on its CPU
	// seconds, a counter, stay above 0.
	deadline := time.Now().Add(15 * time.Second)
	for value(scrape(text), "crmon_container_cpu_seconds_total", map[string]string{"id": id}) <= 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no crmon_container_cpu_seconds_total{id=%q} within 15s\n%s", id, p.logs())
		}
		time.Sleep(500 * time.Millisecond)
	}
	var firstTicks, lastTicks float64
	for i := 0; i < 5; i++ {
		for _, accept := range []string{text, proto} {
			fams := scrape(accept)
			if v := value(fams, "crmon_container_cpu_seconds_total", map[string]string{"id": id}); v <= 0 {
				t.Errorf("scrape %d (%s): crmon_container_cpu_seconds_total{id=%q} = %v", i, accept, id, v)
			}
			if v := value(fams, "crmon_collector_success", map[string]string{"collector": "ebpf"}); v != 1 {
				t.Errorf("scrape %d (%s): crmon_collector_success{collector=\"ebpf\"} = %v, want 1", i, accept, v)
			}
			ticks := value(fams, "crmon_collections_total", nil)
			if i == 0 && accept == text {
				firstTicks = ticks
			}
			lastTicks = ticks
		}
		time.Sleep(400 * time.Millisecond)
	}
	if lastTicks <= firstTicks {
		t.Errorf("crmon_collections_total stayed at %v over 2s at a 1s interval", firstTicks)
	}
	p.get(t, "/healthz")
}
