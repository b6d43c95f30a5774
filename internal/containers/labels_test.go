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
