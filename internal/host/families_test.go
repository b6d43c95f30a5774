// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package host

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/crmon-dev/crmon/internal/collect"
)

// notExported are node_exporter families crmon leaves to others or skips:
// the exporter's own build info and per-collector scrape metrics are the
// agent's (crmon_ names), and textfile has no place in crmon.
var notExported = []string{
	"node_exporter_build_info",
	"node_scrape_collector_duration_seconds",
	"node_scrape_collector_success",
	"node_textfile_scrape_error",
}

// refFamily is one line of testdata/node_exporter-families.txt, a scrape
// of node_exporter on a host like crmon's CI machines, or of
// testdata/cadvisor-machine-families.txt, cAdvisor's machine_* families.
type refFamily struct {
	typ, help string
	labels    []string
}

var refLine = regexp.MustCompile(`^(\w+) (\w+) (\{[^}]*\})?\s*# (.*)$`)

func readRefFamilies(t *testing.T, file string) map[string]refFamily {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]refFamily{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := refLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var labels []string
		for _, kv := range regexp.MustCompile(`(\w+)="`).FindAllStringSubmatch(m[3], -1) {
			labels = append(labels, kv[1])
		}
		slices.Sort(labels)
		out[m[1]] = refFamily{typ: m[2], help: m[4], labels: labels}
	}
	return out
}

// TestNodeExporterFamilies checks that every node_exporter family on the
// reference list is exported, from the fixture trees or this machine, with
// node_exporter's type, help and label names, so dashboards keep working.
func TestNodeExporterFamilies(t *testing.T) {
	ref := readRefFamilies(t, "node_exporter-families.txt")
	if len(ref) < 100 {
		t.Fatalf("read %d reference families", len(ref))
	}
	checkRefFamilies(t, ref, "node_exporter")
}

// TestCadvisorMachineFamilies checks cAdvisor's machine_* families the
// same way: container dashboards take machine totals from them.
func TestCadvisorMachineFamilies(t *testing.T) {
	ref := readRefFamilies(t, "cadvisor-machine-families.txt")
	if len(ref) != 6 {
		t.Fatalf("read %d reference families, want 6", len(ref))
	}
	checkRefFamilies(t, ref, "cAdvisor")
}

func checkRefFamilies(t *testing.T, ref map[string]refFamily, exporter string) {
	t.Helper()
	got := map[string]*dto.MetricFamily{}
	for _, paths := range []collect.Paths{fixturePaths(t), collect.DefaultPaths()} {
		s := newHostSet(t, paths, Options{FilesystemNoStatfs: paths != collect.DefaultPaths()})
		s.update(time.Now())
		mfs, err := s.registry(t).Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			got[mf.GetName()] = mf
		}
	}
	for name, want := range ref {
		if slices.Contains(notExported, name) {
			continue
		}
		mf, ok := got[name]
		if !ok {
			t.Errorf("%s: not exported", name)
			continue
		}
		if typ := strings.ToLower(mf.GetType().String()); typ != want.typ {
			t.Errorf("%s: type %s, %s has %s", name, typ, exporter, want.typ)
		}
		if mf.GetHelp() != want.help {
			t.Errorf("%s: help %q, %s has %q", name, mf.GetHelp(), exporter, want.help)
		}
		var labels []string
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			labels = append(labels, lp.GetName())
		}
		slices.Sort(labels)
		if !slices.Equal(labels, want.labels) {
			t.Errorf("%s: labels %v, %s has %v", name, labels, exporter, want.labels)
		}
	}
}
