// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package containers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/crmon-dev/crmon/internal/collect"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

// settingsEvery is how often, in ticks, limits and CFS settings are re-read
// even without an "update" event (someone may write the cgroup directly),
// with the next read of a container that is not idle; idleSettingsEvery
// the same for one that stays idle, whose settings files are closed and
// would be opened again for it (some 100 µs).
const (
	settingsEvery     = 60
	idleSettingsEvery = 600
)

// maxPending bounds the containers held as pending (their cgroup was made,
// the engine has not told of them yet), and pendingTTL is how long one is
// held: the engine's events for it, late as they may be, come well within
// it.
const (
	maxPending = 1000
	pendingTTL = time.Minute
)

// maxRemoved bounds the removed containers held for RemovedRetention:
// containers are made by whoever can reach the engine, and a host that
// churns faster than maxRemoved per retention would otherwise grow without
// bound. The oldest go first and are counted in
// crmon_containers_removed_evicted_total.
const maxRemoved = 1000

// Update reads every running container's cgroup and network counters once,
// and drops removed containers whose retention is over. The engine is not
// asked anything here: the container list is kept by events.
func (c *Collector) Update(ctx context.Context, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	var removed []*container
	var act collect.Activity
	probesTell := false
	if c.activity != nil {
		act, probesTell = c.activity.CgroupActivity(now)
	}
	for _, ct := range c.byID {
		if ct.pending {
			if now.Sub(ct.pendingSince) > pendingTTL {
				c.drop(ct)
			}
			continue
		}
		if ct.removed {
			if now.Sub(ct.goneAt) > c.opts.RemovedRetention {
				c.drop(ct)
				continue
			}
			removed = append(removed, ct)
		}
		if ct.reader != nil {
			ct.sinceSetting++
			a := ct.activity(act, probesTell)
			if err := ct.read(&c.buf, now, c.opts.IdleRefresh, a); err != nil {
				errs = append(errs, err)
			}
			if a != actIdle {
				c.probeBlock(ct)
			}
		}
		if !ct.running() && !ct.lastRead.After(c.lastUpdate) {
			ct.cpuPercent = 0
			ct.netRate = 0
		}
		if ct.lostFinalRead(now) {
			c.lostFinal(ct)
		}
		if ct.newKeys || ct.lp == nil || ct.lpStale {
			c.updateLabels(ct)
		}
	}
	if len(removed) > maxRemoved {
		slices.SortFunc(removed, func(a, b *container) int { return a.goneAt.Compare(b.goneAt) })
		for _, ct := range removed[:len(removed)-maxRemoved] {
			c.drop(ct)
			c.evicted++
		}
	}
	if c.sampled != c.members {
		c.sample = c.sample[:0]
		for _, ct := range c.byID {
			if !ct.pending {
				c.sample = append(c.sample, ct)
			}
		}
		c.byLabels = append(c.byLabels[:0], c.sample...)
		c.sampled = c.members
		c.relabeled = true
	}
	// Sorted once, the order holds from tick to tick until a name or a
	// label changes (a container's label sets rebuilt): 150 containers
	// were sorted twice a tick, 2.5 % of the agent's CPU, and checking
	// the order every tick was 1.6 % still.
	if c.relabeled {
		if !slices.IsSortedFunc(c.sample, byName) {
			slices.SortFunc(c.sample, byName)
		}
		// Collect's order is the registry's: by label values in
		// label-name order. Served in that order, the registry's sort of
		// each family is a linear pass over sorted input.
		if !slices.IsSortedFunc(c.byLabels, byLabelValues) {
			slices.SortFunc(c.byLabels, byLabelValues)
		}
		c.relabeled = false
	}
	c.scrapeOrder = append(c.scrapeOrder[:0], c.byLabels...)
	if err := c.updateRoot(now); err != nil {
		errs = append(errs, err)
	}
	c.lastUpdate = now
	if len(errs) > 0 {
		c.log.Debug("reading container cgroups", "err", errors.Join(errs...))
	}
	return nil
}

// byName orders containers by name, then id.
func byName(a, b *container) int {
	if n := strings.Compare(a.name, b.name); n != 0 {
		return n
	}
	return strings.Compare(a.id, b.id)
}

// byLabelValues orders containers by their base label values in label-name
// order, the registry's.
func byLabelValues(a, b *container) int {
	if a.lp == nil || b.lp == nil {
		return strings.Compare(a.id, b.id)
	}
	for i := range min(len(a.lp.base.pairs), len(b.lp.base.pairs)) {
		if n := strings.Compare(a.lp.base.pairs[i].GetValue(), b.lp.base.pairs[i].GetValue()); n != 0 {
			return n
		}
	}
	return 0
}

// drop forgets a container, closing what it holds. c.mu must be held.
func (c *Collector) drop(ct *container) {
	if ct.exitWD >= 0 && c.exits != nil {
		c.exits.remove(ct.exitWD)
		ct.exitWD = -1
	}
	ct.closeFiles()
	if ct.pending {
		c.pending--
	}
	delete(c.byID, ct.id)
	c.members++
	if c.byCgroup[ct.cgroupPath] == ct {
		delete(c.byCgroup, ct.cgroupPath)
	}
}

// Fill writes the snapshot's ContainerMetrics from the last Update.
func (c *Collector) Fill(m *metrics.ResourceMetrics) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cm := metrics.ContainerMetrics{ContainerDetails: make([]metrics.ContainerDetailMetrics, 0, len(c.sample))}
	for _, ct := range c.sample {
		cm.TotalContainers++
		running := ct.running()
		if running {
			cm.RunningContainers++
		} else {
			cm.StoppedContainers++
		}
		d := metrics.ContainerDetailMetrics{
			ContainerID:     ct.id,
			ContainerName:   ct.name,
			Image:           ct.image,
			State:           ct.state,
			CgroupPath:      ct.cgroupPath,
			CPUUsagePercent: ct.cpuPercent,
			CreatedAt:       ct.created,
		}
		if running {
			d.MemoryUsageBytes = ct.stats.Memory.WorkingSet
		}
		if ct.sizeRw > 0 {
			d.DiskUsageBytes = uint64(ct.sizeRw)
		}
		for i := range ct.net {
			d.NetworkBytesSent += ct.net[i].txBytes
			d.NetworkBytesReceived += ct.net[i].rxBytes
		}
		if running {
			d.NetworkBytesPerSec = uint64(ct.netRate)
		}
		d.StartedAt = ct.startedAt
		cm.ContainerDetails = append(cm.ContainerDetails, d)
	}
	m.Containers = cm
}
