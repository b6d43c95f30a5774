// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/docker/dockertest"
)

// containerID finds a container's ID in a cgroup file's path.
var containerID = regexp.MustCompile(`[0-9a-f]{64}`)

// openFDKinds counts this process's descriptors: sockets, and the other
// files but those of containers ours is false for. The collector watches
// every container's cgroup from the moment it is made, whoever runs it
// (held as pending until the engine names it): the containers other
// processes on the host start and remove meanwhile come and go in the
// count, and are left out of it by the container ID in their path.
func openFDKinds(t *testing.T, ours map[string]bool) (sockets, files int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		if strings.HasPrefix(target, "socket:") {
			sockets++
		} else if id := containerID.FindString(target); id == "" || ours[id] {
			files++
		}
	}
	return sockets, files
}

// TestEngineOutageLeaksNothing takes the engine away three times while
// its containers change underneath (one restarted, one stopped and started
// again, one replaced by a new one) and containers it does not watch come
// (one still running, one already removed when the engine is back): once
// the collector has caught up, it holds as many descriptors as before,
// watches each of its containers' current cgroup, and nothing of the
// others.
func TestEngineOutageLeaksNothing(t *testing.T) {
	dockertest.Require(t)
	prefix := uniq("crmon-outage")
	others := uniq("crmon-outage-other")
	sock := filepath.Join(t.TempDir(), "engine.sock")
	relay := startRelay(t, sock)
	defer func() { relay.stop() }()
	// ours are the test's watched containers, every one it ran.
	ours := map[string]bool{}
	run := func(name string) string {
		id := dockertest.Run(t, []string{"--name", name}, "sleep", "600")
		ours[id] = true
		return id
	}
	run(prefix + "-steady")
	restarted := run(prefix + "-restarted")
	stopped := run(prefix + "-stopped")
	replaced := run(prefix + "-replaced")

	c := newTestCollector(t, Options{DockerHost: "unix://" + sock, Include: []string{prefix + "-*"}})
	if c.exits == nil {
		t.Fatal("no exit watcher")
	}
	// Caught up: every container of the test is running with its files
	// open, under the PID the engine gives now.
	caughtUp := func() bool {
		if !c.Up() {
			return false
		}
		ps := strings.Fields(dockertest.Docker(t, "ps", "-q", "--no-trunc", "--filter", "name="+prefix+"-"))
		c.mu.RLock()
		defer c.mu.RUnlock()
		open := 0
		for _, ct := range c.byID {
			if !ct.removed && ct.reader != nil {
				open++
			}
		}
		for _, id := range ps {
			ct, ok := c.byID[id]
			if !ok || ct.reader == nil || ct.pid != pidOf(t, id) {
				return false
			}
		}
		return open == len(ps) && len(ps) == 4
	}
	waitFor(t, 20*time.Second, "the first sync", caughtUp)
	// Ticks open what the collector keeps open besides the containers
	// (the root cgroup's files): the baseline is taken after some.
	tick := func() {
		for i := 0; i < 5; i++ {
			if err := c.Update(t.Context(), time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	tick()
	// The readers kept for the final reads of containers started in the
	// last keepReaderFor come and go with starts, and an idle container's
	// reader holds fewer files after its refresh than while it runs:
	// both are counted apart, so that any other file left open shows.
	isOurs := func(id string) bool { return ours[id] }
	held := func() int {
		c.mu.RLock()
		defer c.mu.RUnlock()
		n := 0
		for id, ct := range c.byID {
			if ours[id] && ct.reader != nil {
				n += ct.reader.Held()
			}
		}
		return n
	}
	fds := func() (sockets, files int) {
		for {
			kept, h := c.exits.keptFiles(isOurs), held()
			sockets, files = openFDKinds(t, ours)
			if c.exits.keptFiles(isOurs) == kept && held() == h {
				return sockets, files - kept - h
			}
		}
	}
	// watchesCurrent checks that each of the test's containers watches
	// the cgroup.events of the cgroup it runs in now, not that of one
	// removed before it was made again at the same path (a restart).
	watchesCurrent := func(cycle int) {
		t.Helper()
		c.mu.RLock()
		defer c.mu.RUnlock()
		for id, ct := range c.byID {
			if !ours[id] || ct.removed {
				continue
			}
			var open, now unix.Stat_t
			p := filepath.Join(c.h.Unified, ct.paths.V2, "cgroup.events")
			if ct.exitWD < 0 {
				t.Errorf("after outage %d: %s is not watched", cycle, ct.name)
			} else if err := unix.Fstat(ct.exitWD, &open); err != nil {
				t.Errorf("after outage %d: %s's watch: %v", cycle, ct.name, err)
			} else if err := unix.Stat(p, &now); err != nil {
				t.Errorf("after outage %d: %v", cycle, err)
			} else if open.Ino != now.Ino {
				t.Errorf("after outage %d: %s watches a removed cgroup's %s (inode %d, now %d)", cycle, ct.name, p, open.Ino, now.Ino)
			}
		}
	}
	baseSockets, baseFiles := fds()

	for cycle := 1; cycle <= 3; cycle++ {
		relay.stop()
		waitFor(t, 15*time.Second, "the engine seen down", func() bool { return !c.Up() })
		dockertest.Docker(t, "restart", "-t", "0", restarted)
		dockertest.Docker(t, "stop", "-t", "0", stopped)
		dockertest.Docker(t, "start", stopped)
		dockertest.Remove(replaced)
		replaced = run(prefix + "-replaced")
		// Not watched: held as pending from their cgroups being made,
		// until the engine says what they are.
		other := dockertest.Run(t, []string{"--name", others + "-running"}, "sleep", "600")
		gone := dockertest.Run(t, []string{"--rm", "--name", others + "-gone"}, "true")
		waitFor(t, 15*time.Second, "the unwatched containers held as pending", func() bool {
			c.mu.RLock()
			defer c.mu.RUnlock()
			o, g := c.byID[other], c.byID[gone]
			return o != nil && o.pending && g != nil && g.pending
		})
		waitFor(t, 15*time.Second, "the short-lived one removed", func() bool {
			return dockertest.Docker(t, "ps", "-aq", "--filter", "id="+gone) == ""
		})
		relay = startRelay(t, sock)
		waitFor(t, 30*time.Second, "the collector to catch up", caughtUp)
		// Removed containers linger a few ticks: let them go.
		tick()
		sockets, files := fds()
		// The cgroup, /proc/PID/net/dev and cgroup.events descriptors
		// are one set per running container: exactly as many as before.
		// Sockets vary by the idle connections Go's HTTP client keeps to
		// the engine (at most two), each counted three times here: the
		// client's end and the relay's two.
		if files != baseFiles || sockets > baseSockets+6 {
			t.Errorf("after outage %d: %d files, %d sockets open; before: %d files, %d sockets", cycle, files, sockets, baseFiles, baseSockets)
		}
		watchesCurrent(cycle)
		// The sync names the running one unwatched, and the list no
		// longer has the other: neither is held.
		for _, id := range []string{other, gone} {
			c.mu.RLock()
			_, held := c.byID[id]
			c.mu.RUnlock()
			if held || c.exits.watching(id) {
				t.Errorf("after outage %d: container %.12s, not watched, still held (in the collector: %v)", cycle, id, held)
			}
		}
		dockertest.Remove(other)
	}
}

// pidOf is a container's init PID as the engine reports it.
func pidOf(t *testing.T, id string) int {
	t.Helper()
	var pid int
	for _, r := range dockertest.Docker(t, "inspect", "-f", "{{.State.Pid}}", id) {
		if r >= '0' && r <= '9' {
			pid = pid*10 + int(r-'0')
		}
	}
	return pid
}
