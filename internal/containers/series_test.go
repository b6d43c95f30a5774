// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"slices"
	"testing"
	"time"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// checkSeries checks that AppendSeries gives exactly the series Collect
// emits, both ways, and the same *collect.Series when asked again.
func checkSeries(t testing.TB, c *Collector) {
	t.Helper()
	fams, _ := testenv.GatherText(t, c)
	testenv.CheckPoints(t, c, fams)
}

// TestAppendSeries covers the points of containers with several devices
// and interfaces, a label value that is not UTF-8, a stopped container
// still lingering; that a steady read allocates nothing; that metadata
// read again unchanged keeps the series, and that a container whose
// metadata changed gets series with its new labels.
func TestAppendSeries(t *testing.T) {
	c, add, now := fixtureCollector(t)
	c.mu.Lock()
	a := add("a1", "plain", "busybox:latest", "ci", "running")
	add("b2", "name", "img\xffbad", "", "running")
	add("c3", "stopped", "busybox", "ci", "exited").goneAt = now
	c.lastUpdate = now
	c.mu.Unlock()
	checkSeries(t, c)

	buf := make([]collect.Point, 0, 1024)
	if n := testing.AllocsPerRun(20, func() { c.AppendSeries(buf[:0]) }); n > 0 && !testenv.Race {
		t.Errorf("AppendSeries allocates %v times per steady call, want none", n)
	}

	// Metadata read again with the same values keeps the series.
	before := c.AppendSeries(nil)
	c.mu.Lock()
	a.lpStale = true
	c.updateLabels(a)
	c.mu.Unlock()
	testenv.SameSeries(t, before, c.AppendSeries(nil), "after the same metadata came again")

	c.mu.Lock()
	a.name, a.lpStale = "renamed", true
	c.updateLabels(a)
	c.mu.Unlock()
	checkSeries(t, c)
	renamed := 0
	for _, p := range c.AppendSeries(nil) {
		for _, l := range p.Series.Labels {
			if l.Name == "name" && l.Value == "plain" {
				t.Errorf("%s: a series with the container's old name", p.Series.Name)
			}
			if l.Name == "name" && l.Value == "renamed" {
				renamed++
			}
		}
	}
	if renamed == 0 {
		t.Error("no series with the container's new name")
	}
}

// TestSampleOrder checks that the containers served keep their orders (the
// snapshot's by name, the scrape's by label values, the root first) from
// tick to tick as containers come, go and are renamed, though Update sorts
// them again only when they are out of order.
func TestSampleOrder(t *testing.T) {
	c, add, now := fixtureCollector(t)
	c.rootTried = true // no root cgroup of the host's in this test
	tick := func() {
		t.Helper()
		now = now.Add(time.Second)
		if err := c.Update(t.Context(), now); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, want ...string) {
		t.Helper()
		c.mu.RLock()
		defer c.mu.RUnlock()
		var names, ids []string
		for _, ct := range c.sample {
			names = append(names, ct.name)
		}
		for _, ct := range c.scrapeOrder {
			ids = append(ids, ct.id)
		}
		if !slices.Equal(names, want) {
			t.Errorf("%s: snapshot order %q, want %q", what, names, want)
		}
		if !slices.IsSortedFunc(c.scrapeOrder, byLabelValues) || len(ids) != len(want) {
			t.Errorf("%s: scrape order %q, not by label values or not all", what, ids)
		}
	}
	c.mu.Lock()
	add("a1", "web", "busybox", "ci", "running")
	b := add("b2", "db", "busybox", "ci", "running")
	add("c3", "cache", "busybox", "ci", "running")
	c.mu.Unlock()
	tick()
	check("first tick", "cache", "db", "web")
	tick()
	check("unchanged", "cache", "db", "web")
	c.mu.Lock()
	b.name, b.lpStale = "zz", true
	c.updateLabels(b)
	c.mu.Unlock()
	tick()
	check("renamed", "cache", "web", "zz")
	c.mu.Lock()
	add("d4", "api", "busybox", "ci", "running")
	c.drop(c.byID["a1"])
	c.mu.Unlock()
	tick()
	check("one added, one dropped", "api", "cache", "zz")
}
