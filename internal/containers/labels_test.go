// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"testing"

	"github.com/crmon-dev/crmon/internal/docker"
)

// TestLabelsBeforeMetadata: a container whose cgroup was read before the
// engine described it (its final read, when it exits while pending) gets
// label sets with empty label values, and the engine's values once it
// describes it.
func TestLabelsBeforeMetadata(t *testing.T) {
	c := &Collector{labelNames: []string{"container_label_team"}}
	ct := &container{cgroupPath: "/docker/abc", pending: true}
	c.updateLabels(ct)
	if got := ct.lp.base.text; got != `{container_label_team="",id="/docker/abc",image="",name=""}` {
		t.Errorf("before metadata: %s", got)
	}
	ct.setMeta(docker.Container{Name: "web", Image: "img", Labels: map[string]string{"team": "a"}}, []string{"team"})
	c.updateLabels(ct)
	if got := ct.lp.base.text; got != `{container_label_team="a",id="/docker/abc",image="img",name="web"}` {
		t.Errorf("after metadata: %s", got)
	}
}

// TestLabelSetWith: a label set with one pair more is the label set of
// all the pairs, in the order and text newLabelSet gives them, whatever
// the new pair's place, and leaves the one it came from as it was.
func TestLabelSetWith(t *testing.T) {
	kv := []string{"name", "web", "id", "/docker/abc", "image", "busybox", "container_label_x", "a\xffb"}
	base := newLabelSet(kv...)
	before := base.text
	for _, add := range [][2]string{{"cpu", "total"}, {"interface", "eth0"}, {"zone", "z"}, {"a", "first"}, {"device", "bad\xff"}} {
		got := base.with(add[0], add[1])
		want := newLabelSet(append(kv[:len(kv):len(kv)], add[0], add[1])...)
		if got.text != want.text {
			t.Errorf("with(%q, %q): %s, want %s", add[0], add[1], got.text, want.text)
		}
		if len(got.pairs) != len(want.pairs) || cap(got.pairs) != len(got.pairs) {
			t.Fatalf("with(%q, %q): %d pairs (room for %d), want %d and no more room", add[0], add[1], len(got.pairs), cap(got.pairs), len(want.pairs))
		}
		for i := range got.pairs {
			if got.pairs[i].GetName() != want.pairs[i].GetName() || got.pairs[i].GetValue() != want.pairs[i].GetValue() {
				t.Errorf("with(%q, %q): pair %d is %v, want %v", add[0], add[1], i, got.pairs[i], want.pairs[i])
			}
		}
	}
	if base.text != before || len(base.pairs) != len(kv)/2 {
		t.Errorf("the base changed: %s, %d pairs; was %s", base.text, len(base.pairs), before)
	}
}
