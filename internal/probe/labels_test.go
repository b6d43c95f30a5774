// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/collect"
)

// TestRepairedIDsStayDistinct: two cgroups whose names differ only in
// bytes that are not UTF-8 repair to one id; only the first is exported,
// since two series with one label set fail the scrape.
func TestRepairedIDsStayDistinct(t *testing.T) {
	var out []exported
	for _, p := range []string{"/a\xff", "/b", "/a\xfe", "/a\uFFFD"} {
		out = append(out, exported{stats: &CgroupStats{Path: p}, cgroupLabels: newCgroupLabels(p, collect.ContainerRef{}, false)})
	}
	got := dedupIDs(out, slog.New(slog.DiscardHandler))
	var paths []string
	for _, e := range got {
		paths = append(paths, e.stats.Path)
	}
	if want := []string{"/a\xff", "/b"}; !slices.Equal(paths, want) {
		t.Errorf("exported %q, want %q", paths, want)
	}
}

// TestExportFollowsLayout: while the probes' layout stays, a cgroup's
// labels are kept by its index; a new layout (a cgroup came before it)
// finds them by path, and a cgroup no update exported forgets them.
func TestExportFollowsLayout(t *testing.T) {
	p := &Probes{status: []Status{{Probe: ProbeSched, Up: true}}}
	lookup := staticLookup{"/docker/b": {Name: "b"}}
	c := NewCollector(p, CollectorOptions{Lookup: lookup, Exclude: []string{"/skip"}}).(*collector)
	now := time.Unix(1_700_000_000, 0)
	snap := func(layout uint64, paths ...string) *Snapshot {
		s := &Snapshot{Time: now, layout: layout}
		for _, p := range paths {
			s.Cgroups = append(s.Cgroups, CgroupStats{Path: p, CPU: time.Second, VoluntarySwitches: 1})
		}
		return s
	}
	names := func() (out []string) {
		for _, e := range c.cgroups {
			out = append(out, e.stats.Path+"="+e.name)
		}
		return out
	}
	c.export(snap(1, "/docker/b", "/skip"), now)
	b := c.cgroups[0].cgroupLabels
	// The container is forgotten by the lookup: its name stays.
	delete(lookup, "/docker/b")
	c.export(snap(1, "/docker/b", "/skip"), now)
	if got := names(); !slices.Equal(got, []string{"/docker/b=b"}) || c.cgroups[0].cgroupLabels != b {
		t.Errorf("same layout: %q", got)
	}
	c.export(snap(2, "/docker/a", "/docker/b", "/skip"), now)
	if got := names(); !slices.Equal(got, []string{"/docker/a=", "/docker/b=b"}) || c.cgroups[1].cgroupLabels != b {
		t.Errorf("a cgroup before it: %q", got)
	}
	// Not exported for a tick (not active), then again: its name is gone.
	idle := snap(2, "/docker/a", "/docker/b", "/skip")
	idle.Cgroups[1] = CgroupStats{Path: "/docker/b"}
	c.export(idle, now)
	c.export(snap(2, "/docker/a", "/docker/b", "/skip"), now)
	if got := names(); !slices.Equal(got, []string{"/docker/a=", "/docker/b="}) {
		t.Errorf("after an update that did not export it: %q", got)
	}
}
