// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/cgroups"
	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/internal/docker"
)

const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 10 * time.Second
	apiTimeout = 10 * time.Second
)

// follow keeps a session with the engine open, reconnecting with
// exponential backoff. The engine being down is logged once per outage.
func (c *Collector) follow(ctx context.Context) {
	backoff := minBackoff
	loggedDown := false
	for ctx.Err() == nil {
		synced := false
		err := c.session(ctx, func() {
			synced = true
			backoff = minBackoff
			if loggedDown {
				c.log.Info("docker engine is back")
				loggedDown = false
			}
		})
		c.setUp(false)
		c.markReady()
		if ctx.Err() != nil {
			return
		}
		if !loggedDown {
			c.log.Warn("docker engine unavailable; retrying", "err", err)
			loggedDown = true
		} else {
			c.log.Debug("docker engine still unavailable", "err", err, "synced", synced)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (c *Collector) setUp(up bool) {
	c.mu.Lock()
	c.up = up
	c.mu.Unlock()
}

// session subscribes to events, then lists and inspects every container
// (so that nothing starting in between is missed), then applies events until
// the stream breaks.
func (c *Collector) session(ctx context.Context, onSync func()) error {
	ictx, cancel := context.WithTimeout(ctx, apiTimeout)
	info, err := c.client.Info(ictx)
	cancel()
	if err != nil {
		return err
	}
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	evs, errs := c.client.Events(sctx)

	c.mu.Lock()
	c.layout = cgroups.Layout{Driver: info.CgroupDriver}
	c.fsDevice = c.deviceOfPath(info.DockerRootDir)
	c.mu.Unlock()
	// Containers' cgroups are made in the default parent unless they name
	// another: watched from now on, so that the first containers are
	// watched from the moment their cgroups exist too.
	if c.exits != nil && c.h.Unified != "" {
		c.exits.addParent(path.Dir(cgroups.DockerPath(cgroups.Layout{Driver: info.CgroupDriver}, "0")))
	}

	listed := time.Now()
	lctx, lcancel := context.WithTimeout(ctx, apiTimeout)
	list, err := c.client.List(lctx)
	lcancel()
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(list))
	for _, d := range list {
		seen[d.ID] = true
		if !c.watched(d.Name) {
			// Held as pending if its cgroup was made while the engine
			// was unreachable: the events that name it are gone.
			c.forgetPending(d.ID)
			continue
		}
		c.refresh(ctx, d.ID, docker.Event{Name: d.Name, Image: d.Image})
	}
	c.mu.Lock()
	for id, ct := range c.byID {
		switch {
		case seen[id] || ct.removed:
		case !ct.pending:
			// Removed while the engine was unreachable.
			c.markRemoved(ct)
		case ct.pendingSince.Before(listed):
			// Its cgroup was made before the list was asked for, so the
			// engine had the container then: not listed, it was removed
			// meanwhile, and no event will name it.
			c.drop(ct)
		}
	}
	c.up = true
	c.mu.Unlock()
	c.markReady()
	onSync()

	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return err
		case ev, ok := <-evs:
			if !ok {
				return fmt.Errorf("docker events: stream closed")
			}
			c.handle(ctx, ev)
		}
	}
}

// handle applies one event at once, so a container is seen when it starts,
// not at the next tick or poll.
func (c *Collector) handle(ctx context.Context, ev docker.Event) {
	switch ev.Action {
	case "destroy":
		c.mu.Lock()
		if ct, ok := c.byID[ev.ID]; ok {
			c.markRemoved(ct)
		}
		c.mu.Unlock()
	case "die":
		// Try for the final counters; usually the cgroup is already gone
		// (dockerd deletes the task before it emits die), and the exit
		// watcher or the last tick has them.
		c.mu.Lock()
		if ct, ok := c.byID[ev.ID]; ok && ct.reader != nil {
			ct.read(&c.buf, time.Now(), readFull, actUnknown)
			c.updateLabels(ct)
		}
		c.mu.Unlock()
		c.refresh(ctx, ev.ID, ev)
	case "update", "oom":
		// New limits, or an OOM kill: read everything at the next tick.
		c.mu.Lock()
		if ct, ok := c.byID[ev.ID]; ok {
			ct.needSettings = true
		}
		c.mu.Unlock()
		c.refresh(ctx, ev.ID, ev)
	case "create", "start", "rename", "pause", "unpause":
		if ev.Name != "" && !c.watched(ev.Name) {
			c.forgetPending(ev.ID)
			return
		}
		c.refresh(ctx, ev.ID, ev)
	}
}

// markRemoved starts a container's retention; Update drops it after.
// c.mu must be held.
func (c *Collector) markRemoved(ct *container) {
	if ct.exitWD >= 0 && c.exits != nil {
		c.exits.remove(ct.exitWD)
		ct.exitWD = -1
	}
	ct.closeFiles()
	ct.removed = true
	ct.state = "removed"
	ct.gone(time.Now())
}

// refresh inspects a container and brings its record up to date: opens its
// cgroup and network files when it runs, closes them when it stopped.
func (c *Collector) refresh(ctx context.Context, id string, ev docker.Event) {
	ictx, cancel := context.WithTimeout(ctx, apiTimeout)
	d, err := c.client.Inspect(ictx, id)
	cancel()
	// guessed: the engine could not say the container's cgroup parent.
	guessed := false
	if err != nil {
		if !docker.IsNotFound(err) {
			c.log.Debug("inspecting container", "id", id, "err", err)
			return
		}
		// Gone before we could look: still count it, named from the event.
		d = docker.Container{ID: id, Name: ev.Name, Image: ev.Image, State: "exited"}
		if ev.Action == "create" {
			// Made then, so counted by the probes from its start if
			// they ran by then (standIn, lost.go).
			d.Created = ev.Time
		}
		guessed = true
	}
	if !c.watched(d.Name) {
		c.forgetPending(id)
		return
	}
	// Ended: the probes' counts, read now, before it is marked gone,
	// stand in at once if its final read was lost (lost.go).
	var ended *collect.CgroupCounts
	if !d.Running() && d.State != "created" {
		ended = c.readProbes(id)
	}

	c.mu.Lock()
	ct, ok := c.byID[id]
	if !ok {
		ct = newContainer(id)
		c.byID[id] = ct
		c.members++
	}
	if ct.pending {
		// Watched since its cgroup was made; now it is known.
		ct.pending = false
		c.pending--
		c.members++
	}
	if ct.removed {
		c.mu.Unlock()
		return
	}
	oldPID, hadReader, prevStart := ct.pid, ct.reader != nil, ct.started
	ct.setMeta(d, c.opts.ContainerLabels)
	// It runs, or ran since crmon follows the engine: its counters are
	// due, and one whose final read is lost is counted (lost.go).
	ct.ranWatched = ct.ranWatched || d.Running() || ev.Action == "start" || ev.Action == "die"
	layout := c.layout
	layout.Parent = d.CgroupParent
	c.mu.Unlock()

	if !d.Running() {
		c.mu.Lock()
		defer c.mu.Unlock()
		ct.pid = 0
		if ct.cgroupPath == "" {
			p := cgroups.DockerPath(layout, id)
			c.setCgroup(ct, c.h.Uniform(p))
			ct.pathGuessed = guessed
		}
		if d.State == "created" {
			// Not started yet: watch for its cgroup, so that its
			// cgroup.events is watched before its process runs.
			if c.exits != nil && c.h.Unified != "" && ct.paths.V2 != "" {
				c.exits.addParent(path.Dir(ct.paths.V2))
			}
			return
		}
		// It ran and stopped: its final counters, if its cgroup is still
		// there and they were not read as it emptied.
		c.readFinal(ct)
		if ended != nil && !ct.finalRead {
			c.standIn(ct, ended)
		}
		ct.gone(time.Now())
		if ct.exitWD >= 0 && c.exits != nil {
			c.exits.remove(ct.exitWD)
			ct.exitWD = -1
		}
		ct.closeFiles()
		return
	}
	if hadReader && oldPID == d.PID {
		return
	}

	// A new or restarted container: find its cgroups from its init
	// process (exact for every driver and parent), else from the layout.
	paths, perr := cgroups.ProcCgroup(c.opts.Paths.ProcFS, d.PID)
	if perr != nil {
		paths = c.h.Uniform(cgroups.DockerPath(layout, id))
	}
	r, rerr := c.h.OpenWith(paths, cgroups.OpenOptions{NoPressure: !c.groups.pressure})
	if rerr == nil && r.Files() < int(c.fullFiles.Load()) {
		// Some of its hierarchies are gone: the runtime is removing it,
		// and a read now would lose what they held.
		r.Close()
		r, rerr = nil, cgroups.ErrGone
	}
	netFD := -1
	if ns := readNetNS(c.opts.Paths.ProcFS, d.PID); ns != "" && ns != c.hostNetNS {
		if fd, err := unix.Open(filepath.Join(c.opts.Paths.ProcFS, strconv.Itoa(d.PID), "net", "dev"), unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			netFD = fd
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	// Removed, or ended (its process is gone) with its final counters
	// read: nothing to open.
	if ct.removed || ct.finalRead && perr != nil {
		if r != nil {
			r.Close()
		}
		if netFD >= 0 {
			unix.Close(netFD)
		}
		return
	}
	ct.closeFiles()
	if r != nil && int32(r.Files()) > c.fullFiles.Load() {
		c.fullFiles.Store(int32(r.Files()))
	}
	ct.pid = d.PID
	ct.reader, ct.netFD = r, netFD
	if !prevStart.IsZero() && !d.Started.IsZero() && !d.Started.Equal(prevStart) {
		ct.newRun()
	}
	ct.finalRead = false
	ct.goneAt = time.Time{}
	ct.prevAt = time.Time{}
	c.setCgroup(ct, paths)
	if rerr != nil {
		c.log.Debug("opening container cgroup", "id", id, "err", rerr)
		return
	}
	ct.needSettings = true
	ct.read(&c.buf, time.Now(), readFull, actUnknown)
	// Hold only what an idle container holds until it is seen running: a
	// container that runs opens the rest again at its next full read
	// (0.25-0.44 ms, once), and the agent starting on a host with 1 000
	// containers no longer holds some 20 files each before their first
	// idle refresh (19 000 here, past the limit of 20 000 with the host
	// collectors' and the processes': "too many open files" for 9 s).
	if ct.reader != nil {
		ct.reader.Release(cgroups.ReadIdle)
	}
	c.updateLabels(ct)
	// Spread idle containers' full reads over the ticks.
	ct.sinceFull = int(ct.id[0]+ct.id[1]) % c.opts.IdleRefresh
	if c.exits != nil && c.h.Unified != "" && paths.V2 != "" {
		// Its parent is watched for the cgroups of its siblings to
		// come, as one found "created" has (a container started with
		// --cgroup-parent is often running by the time it is looked at).
		c.exits.addParent(path.Dir(paths.V2))
	}
	if c.exits != nil && c.h.Unified != "" && paths.V2 != "" && ct.exitWD < 0 {
		wd, err := c.exits.add(filepath.Join(c.h.Unified, paths.V2, "cgroup.events"), id, paths, ct.started)
		if err == nil {
			ct.exitWD = wd
		}
	}
}

// setCgroup indexes ct under its cgroup2 path. c.mu must be held.
func (c *Collector) setCgroup(ct *container, p cgroups.Paths) {
	if ct.cgroupPath != "" && c.byCgroup[ct.cgroupPath] == ct {
		delete(c.byCgroup, ct.cgroupPath)
	}
	ct.paths = p
	ct.cgroupPath = p.ID()
	ct.lpStale = true
	c.byCgroup[ct.cgroupPath] = ct
}

// openCgroup opens a reader of the cgroup at paths, for a final read.
func (c *Collector) openCgroup(paths cgroups.Paths) (*cgroups.Reader, error) {
	return c.h.OpenWith(paths, cgroups.OpenOptions{NoPressure: !c.groups.pressure})
}

// onPopulatedZero runs when a watched cgroup has no process left: it reads
// the counters one last time, before the runtime removes the cgroup,
// through r when the watch opened it as the container started. The runtime
// may remove it within a millisecond, so the cgroup is read before c.mu is
// taken: a tick or a scrape holding it would make the read come too late.
func (c *Collector) onPopulatedZero(id string, paths cgroups.Paths, r *cgroups.Reader) {
	full := int(c.fullFiles.Load())
	if r != nil && r.Files() < full {
		// Opened before every hierarchy had the cgroup.
		r.Close()
		r = nil
	}
	if r == nil {
		var err error
		if r, err = c.openCgroup(paths); err != nil {
			return
		}
	}
	var st cgroups.Stats
	var buf []byte
	err := r.Read(&st, &buf, cgroups.ReadAll)
	files := r.Files()
	r.Close()
	// A read that raced the runtime's removal of some hierarchies is not
	// the final one.
	if err == cgroups.ErrGone || files < full {
		return
	}
	now := time.Now()
	c.apply(func() {
		ct, ok := c.byID[id]
		// Counters only grow: a lower one is no final value either.
		if !ok || ct.removed || ct.finalRead || st.CPU.UsageNanos < ct.stats.CPU.UsageNanos ||
			len(st.IO.Devices) < len(ct.stats.IO.Devices) {
			return
		}
		ct.stats = st
		ct.haveStats, ct.needSettings, ct.finalRead = true, false, true
		ct.account(now)
		ct.readNet(&c.buf, now)
		ct.closeFiles()
		// Served before the next tick: its devices need their labels now.
		c.updateLabels(ct)
	})
}

// apply runs f under c.mu in the apply goroutine, in the order given.
func (c *Collector) apply(f func()) {
	select {
	case c.applies <- f:
	case <-c.stopped:
	}
}

func (c *Collector) applyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-c.applies:
			c.mu.Lock()
			f()
			c.mu.Unlock()
		}
	}
}

// readFinal reads a container's counters once its last process has left,
// opening its cgroup if that was not done yet (it ended before its start
// event was handled), and closes its files: the counters will not move
// again, and a later read of a removed cgroup would find nothing. c.mu must
// be held.
func (c *Collector) readFinal(ct *container) {
	if ct.finalRead || ct.cgroupPath == "" {
		return
	}
	if ct.reader == nil {
		r, err := c.h.OpenWith(ct.paths, cgroups.OpenOptions{NoPressure: !c.groups.pressure})
		if err != nil {
			return
		}
		if r.Files() < int(c.fullFiles.Load()) {
			// Some hierarchies are gone already.
			r.Close()
			return
		}
		ct.reader = r
		ct.needSettings = true
	}
	ct.read(&c.buf, time.Now(), readFull, actUnknown)
	// A read that found the cgroup removed closed the reader: the values
	// are the last tick's, no final ones (lost.go).
	ct.finalRead = ct.reader != nil
	ct.closeFiles()
	c.updateLabels(ct)
}

// onCgroupCreated runs when a cgroup is made in a watched parent: if it is
// a container's, its cgroup.events is watched from now on, before its
// process runs. The engine's events may come later than the container's
// end on a busy host, so a container not known yet is held as pending
// until they do: not served, not listed, and forgotten after pendingTTL,
// when the engine names a container crmon does not watch, or when the
// list taken as the engine is reached again names it so or no longer has
// it.
func (c *Collector) onCgroupCreated(cgroup string) {
	_, id, ok := cgroups.ParseContainerPath(cgroup)
	// The container's own cgroup, not one made inside it.
	if !ok || !strings.Contains(path.Base(cgroup), id) {
		return
	}
	// Watched at once, before c.mu is taken: the container may end soon.
	seen := time.Now()
	wd, err := c.exits.add(filepath.Join(c.h.Unified, cgroup, "cgroup.events"), id, c.h.Uniform(cgroup), time.Time{})
	if err != nil {
		// Gone already: crmon was held up for longer than the container
		// lived. Its path still names the probes' counts of it.
		wd = -1
	}
	c.apply(func() {
		ct, ok := c.byID[id]
		if !ok && c.pending < maxPending {
			ct = newContainer(id)
			ct.pending, ct.pendingSince = true, time.Now()
			c.byID[id] = ct
			c.members++
			c.pending++
			c.setCgroup(ct, c.h.Uniform(cgroup))
			ok = true
		}
		if ok && ct.pathGuessed && ct.paths.V2 != cgroup {
			// Its path was guessed from the default layout (the engine
			// had removed it before it could say its cgroup parent).
			c.setCgroup(ct, c.h.Uniform(cgroup))
			ct.pathGuessed = false
		}
		if ok && ct.paths.V2 == cgroup {
			if !ct.madeAt.IsZero() {
				// Made again: a restart (lost.go).
				ct.restarted = true
			}
			// Made since crmon watches, so since the probes count.
			ct.madeAt, ct.ranWatched = seen, true
		}
		switch {
		case wd < 0:
		case ok && wd == ct.exitWD:
		case !ok || ct.removed || ct.paths.V2 != cgroup:
			c.exits.remove(wd)
		default:
			// A watch held already is of the cgroup removed before this
			// one was made at its path (a restart whose "die" was handled
			// late or, the engine unreachable, not at all), or of this
			// one: the new watch is of the container's cgroup either way.
			if ct.exitWD >= 0 {
				c.exits.remove(ct.exitWD)
			}
			ct.exitWD = wd
		}
	})
}

// forgetPending drops the container id if it is held only as pending.
func (c *Collector) forgetPending(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ct, ok := c.byID[id]; ok && ct.pending {
		c.drop(ct)
	}
}

// refreshSizes refreshes writable-layer sizes every DiskUsageInterval, off
// the tick: the engine walks each layer for them.
func (c *Collector) refreshSizes(ctx context.Context) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		sizes, err := c.client.Sizes(sctx)
		cancel()
		if err != nil {
			c.log.Debug("refreshing container sizes", "err", err)
			t.Reset(min(c.opts.DiskUsageInterval, 10*time.Second))
			continue
		}
		c.mu.Lock()
		for id, s := range sizes {
			if ct, ok := c.byID[id]; ok {
				if ct.sizeRw < 0 {
					ct.lpStale = true
				}
				ct.sizeRw = s
			}
		}
		c.mu.Unlock()
		t.Reset(c.opts.DiskUsageInterval)
	}
}

// deviceOfPath names the block device holding dir (under RootFS), for
// container_fs_usage_bytes' device label. c.mu must be held.
func (c *Collector) deviceOfPath(dir string) string {
	if dir == "" {
		return ""
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(c.opts.Paths.RootFS, dir), &st); err != nil {
		return ""
	}
	return c.devName(unix.Major(st.Dev), unix.Minor(st.Dev))
}

// devName names a block device "/dev/<name>" from sysfs, as cAdvisor's
// device label does, caching the answer. c.mu must be held.
func (c *Collector) devName(major, minor uint32) string {
	key := uint64(major)<<32 | uint64(minor)
	if n, ok := c.devNames[key]; ok {
		return n
	}
	name := strconv.FormatUint(uint64(major), 10) + ":" + strconv.FormatUint(uint64(minor), 10)
	if b, err := os.ReadFile(filepath.Join(c.opts.Paths.SysFS, "dev", "block", name, "uevent")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "DEVNAME="); ok {
				name = "/dev/" + v
			}
		}
	}
	c.devNames[key] = name
	return name
}
