// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/docker"
	"github.com/crmon-dev/crmon/internal/docker/dockertest"
	"github.com/crmon-dev/crmon/internal/sessions"
	"github.com/crmon-dev/crmon/internal/testenv"
)

// TestSessionContainerBound starts more containers during a session than
// it measures: the first are reported, the rest counted as omitted.
func TestSessionContainerBound(t *testing.T) {
	dockertest.Require(t)
	h, err := cgroups.Detect("/proc", "/")
	if err != nil {
		testenv.Unavailable(t, "no cgroups: %v", err)
	}
	d, err := docker.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	label := fmt.Sprintf("crmon.test.bound=%d", os.Getpid())
	tr, err := sessions.NewTracker(sessions.TrackerOptions{Hierarchy: h, Docker: d, MaxContainers: 2},
		sessions.Target{Name: "bound", Containers: []string{label}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 4 {
		ids = append(ids, dockertest.Run(t, []string{"--label", label}, "sleep", "600"))
	}
	rep := tr.Stop()
	if len(rep.Containers) != 2 || rep.ContainersOmitted != 2 || rep.ContainersLimit != 2 {
		t.Errorf("%d containers reported, %d omitted (limit %d); want 2, 2 (limit 2)", len(rep.Containers), rep.ContainersOmitted, rep.ContainersLimit)
	}
	for i, c := range rep.Containers {
		if c.ID != ids[i] {
			t.Errorf("container %d is %.12s, want the first ones started (%.12s)", i, c.ID, ids[i])
		}
	}
}
