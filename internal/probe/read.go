// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/collect"
)

const (
	// reapDelay lets the last task of a removed cgroup finish its final
	// context switch (it leaves the cgroup in cgroup_exit(), before its
	// last schedule) before the cgroup's entries are deleted.
	reapDelay = time.Second
	// lostSweepEvery is how often in-flight block requests are checked
	// for ones whose completion was lost.
	lostSweepEvery = 10 * time.Second
	// goneSweepEvery is how often cgroupfs is checked for removed cgroups
	// when the cgroups probe, which reports removals, is down.
	goneSweepEvery = 30 * time.Second
	// mapMemoryEvery is how often map memory, and the programs'
	// recursion misses when run-time statistics are off, are asked of the
	// kernel: a read of /proc fdinfo per map took 2.4 ms.
	mapMemoryEvery = time.Minute
	// maxRetired bounds the removed cgroups whose final counts are kept
	// for RemovedRetention: anyone who may create cgroups creates these
	// entries. Beyond it the oldest are forgotten first and counted in
	// Snapshot.RemovedEvicted.
	maxRetired = 4096
	// unresolvedGrace is how long a map entry whose cgroup id resolves to
	// no cgroup is kept, and resolving retried, before it is deleted and
	// counted once as an "unresolved" drop: long enough for a cgroup
	// created just now to be named, short enough that ids crmon can never
	// resolve (a cgroup namespace of its own, a cgroup gone unnoticed) do
	// not fill the map.
	unresolvedGrace = 5 * time.Second
)

// readState is what Read keeps between reads: the last value of each map
// key, the final counts of reaped cgroups, and caches.
type readState struct {
	p *Probes

	sched map[uint64]*schedAcc
	block map[blockBlockKey]*blockAcc
	net   map[uint64]*netAcc
	// Entries whose cgroup id did not resolve, by map; each is bounded by
	// its map's size.
	unresolvedSched unresolvedSet[uint64]
	unresolvedBlock unresolvedSet[blockBlockKey]
	unresolvedNet   unresolvedSet[uint64]
	// retired holds, per path, the final counts of reaped cgroups; at
	// most maxRetired, evicted counts those forgotten early.
	retired map[string]*retiredPath
	evicted uint64
	// retiredStats are the retired cgroups as a snapshot lists them,
	// sorted by path, rebuilt only when retired changes (retiredDirty):
	// they never move, and rebuilding each one every tick was a tenth of
	// the agent's CPU for ten minutes after 150 containers were removed.
	// Snapshots share them, Block slices included; a cgroup also live
	// gets a copy.
	retiredStats []CgroupStats
	retiredDirty bool

	devices map[uint32]string
	// userDrops are drops user space counts: lost completions, unresolved
	// cgroups.
	userDrops map[[2]string]uint64
	lastSweep time.Time
	// maps and progs are the map memory and the programs' statistics as
	// last read; slowAt is when the map memory was.
	maps   []MapStats
	progs  []ProgramStats
	slowAt time.Time
	// removedSeen is the probe's count of removals at the last walk of
	// cgroup_removed, removedWaiting whether that walk left entries to
	// reap later.
	removedSeen    uint64
	removedWaiting bool
	// layout is the start of every snapshot's list of cgroups while no
	// cgroup's entry came or went: the live ones (those the maps hold)
	// with their path alone, merged in path order with the retired ones,
	// whose final counts a cgroup live again at the same path starts
	// from (its index in liveAgain). Each acc's at is its cgroup's index
	// in it. A read copies it and adds each acc's counts at its index:
	// building it (a map of paths, a sort of them, a merge) every tick
	// was 5 % of the agent's CPU beside 150 idle containers, hashing
	// their paths most of it. layoutStale is set when an acc is added or
	// deleted and when retiredStats is made again; a new acc's at is -1
	// until the layout is built again.
	layout      []CgroupStats
	liveAgain   []int
	layoutStale bool
	// layoutGen numbers the layouts built (Snapshot.layout).
	layoutGen uint64
	// byPath and paths are scratch space for building layout.
	byPath map[string]int
	paths  []string

	lastGoneSweep time.Time

	// Reused across reads.
	schedMap   perCPUReader[uint64, schedSchedValue]
	schedDirty dirtyKeys
	blockMap   perCPUReader[blockBlockKey, blockBlockValue]
	blockDirty dirtyKeys
	// blockInserts is block_inserts as the last read found it: the block
	// program marks a cgroup, not a key, so a read by marks finds only
	// the keys it knows of that cgroup, and reads the whole map when one
	// was added.
	blockInserts uint64
	blockKeys    []blockBlockKey
	netMap       perCPUReader[uint64, netNetValue]
	netDirty     dirtyKeys
	dropVals     [4]uint64 // the most reasons a probe has

	// oncpu are the cgroups with a task on a CPU at the last read, from
	// sched_oncpu; oncpuKnown is false when a CPU's cgroup did not
	// resolve or the map could not be read.
	oncpu      []string
	oncpuKnown bool
	oncpuVals  []uint64
}

// schedAcc, blockAcc and netAcc are the last values of one map key;
// at is its cgroup's index in the snapshot layout.
type schedAcc struct {
	path string
	at   int
	v    schedSchedValue
}

type blockAcc struct {
	path string
	at   int
	// id is the cgroup2 ID of path, 0 if none.
	id uint64
	v  blockBlockValue
}

type netAcc struct {
	path string
	at   int
	v    netNetValue
}

// unresolvedSet tracks the map entries whose cgroup id did not resolve:
// when each was first seen, and whether the current read saw it.
type unresolvedSet[K comparable] struct {
	m map[K]*unresolvedEntry
	// expired are the keys to delete after the current read: deleting
	// during a batch read could move its cursor.
	expired []K
}

type unresolvedEntry struct {
	first time.Time
	seen  bool
}

// note records that key did not resolve in the read at now, and marks it
// for deletion once unresolvedGrace has passed since it was first seen.
func (u *unresolvedSet[K]) note(key K, now time.Time) {
	if u.m == nil {
		u.m = make(map[K]*unresolvedEntry)
	}
	e := u.m[key]
	if e == nil {
		e = &unresolvedEntry{first: now}
		u.m[key] = e
	}
	e.seen = true
	if now.Sub(e.first) >= unresolvedGrace {
		u.expired = append(u.expired, key)
	}
}

// resolved forgets key once it resolved.
func (u *unresolvedSet[K]) resolved(key K) { delete(u.m, key) }

// finish deletes the expired entries from m after a read, counting one
// drop per entry, and forgets keys the read did not see (deleted by
// someone else, or reaped).
func (u *unresolvedSet[K]) finish(m *ebpf.Map, drop func()) {
	for i := range u.expired {
		k := u.expired[i]
		err := m.Delete(&k)
		if err == nil || errors.Is(err, ebpf.ErrKeyNotExist) {
			delete(u.m, k)
			if err == nil {
				drop()
			}
		}
	}
	u.expired = u.expired[:0]
	for k, e := range u.m {
		if !e.seen {
			delete(u.m, k)
		}
		e.seen = false
	}
}

type retiredPath struct {
	stats     CgroupStats
	removedAt time.Time
}

func newReadState(p *Probes) *readState {
	return &readState{
		p:         p,
		sched:     make(map[uint64]*schedAcc),
		block:     make(map[blockBlockKey]*blockAcc),
		net:       make(map[uint64]*netAcc),
		retired:   make(map[string]*retiredPath),
		devices:   make(map[uint32]string),
		userDrops: make(map[[2]string]uint64),
	}
}

// Read reads every map once and returns all cgroups' cumulative counters.
// now stamps the snapshot and times the retention of removed cgroups. It
// also reaps removed cgroups after their final read.
func (p *Probes) Read(now time.Time) (*Snapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return nil, errors.New("probes closed")
	}
	p.reads.Add(1)
	return p.state.read(now)
}

// Reads is how many times Read has read the maps since the probes were
// loaded.
func (p *Probes) Reads() uint64 { return p.reads.Load() }

func monotonicNow() uint64 {
	var ts unix.Timespec
	// bpf_ktime_get_ns() is CLOCK_MONOTONIC.
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano())
}

func (s *readState) read(now time.Time) (*Snapshot, error) {
	p := s.p
	var errs []error
	if p.sched != nil {
		// sched_oncpu before sched_cgroups: a task that ran since the
		// last read is either still on its CPU at the first read, or
		// switched out before it and was charged before the second.
		s.readOnCPU()
		errs = append(errs, s.readSched(now))
	} else {
		s.oncpu, s.oncpuKnown = s.oncpu[:0], false
	}
	if p.block != nil {
		errs = append(errs, s.readBlock(now))
		if now.Sub(s.lastSweep) >= min(lostSweepEvery, p.opts.LostAfter/2) {
			s.lastSweep = now
			errs = append(errs, s.sweepInflight(p.opts.LostAfter))
		}
	}
	if p.net != nil {
		errs = append(errs, s.readNet(now))
	}
	if p.cgroups != nil {
		errs = append(errs, s.reap(now))
	} else if now.Sub(s.lastGoneSweep) >= goneSweepEvery {
		s.lastGoneSweep = now
		s.reapGone(now)
	}
	snap := s.snapshot(now)
	return snap, errors.Join(errs...)
}

// resolve returns the cgroup2 path of a cgroup id of hierarchy hier (0:
// cgroup2, else the v1 blkio hierarchy).
func (s *readState) resolve(id uint64, hier uint32) (string, bool) {
	p := s.p
	if hier == 0 && id == 0 {
		// Block requests without a bio: the root pays, as blk-cgroup does.
		return "/", true
	}
	r := p.unified
	if hier != 0 {
		r = p.blkio
	}
	if r == nil {
		return "", false
	}
	// Known already: the on-CPU cgroups are resolved every tick, and a
	// lookup in the names map is a system call.
	if path, ok := r.Known(id); ok {
		return path, true
	}
	// A cgroup created since load was named by the cgroup_mkdir program:
	// cheaper than walking cgroupfs, and the only name of one already gone.
	if p.cgroups != nil {
		var name cgroupsCgroupName
		key := cgroupsCgroupKey{Id: id, Hierarchy: hier}
		if err := p.cgroups.CgroupNames.Lookup(&key, &name); err == nil {
			path := cString(name.Path[:])
			r.Add(id, path)
			return path, true
		}
	}
	return r.Path(id)
}

func cString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// unresolved counts one map entry deleted because its cgroup id never
// resolved: the events it summed are lost.
func (s *readState) unresolved(probe string) func() {
	return func() { s.userDrops[[2]string{probe, "unresolved"}]++ }
}

func (s *readState) readSched(now time.Time) error {
	m, inserts := s.p.sched.SchedCgroups, s.p.sched.SchedInserts
	each := func(key *uint64, vals []schedSchedValue) {
		a := s.sched[*key]
		if a == nil {
			path, ok := s.resolve(*key, 0)
			if !ok {
				s.unresolvedSched.note(*key, now)
				return
			}
			s.unresolvedSched.resolved(*key)
			a = &schedAcc{path: path, at: -1}
			s.sched[*key] = a
			s.layoutStale = true
		}
		a.v = sumSched(vals)
	}
	var err error
	if ids, ok := s.schedDirty.take(s.p.sched.SchedDirty, s.p.sched.SchedDirtyEpoch); ok {
		// The keys that did not resolve yet are looked up too, so that
		// each read sees them until their grace runs out.
		for k := range s.unresolvedSched.m {
			ids = append(ids, k)
		}
		err = s.schedMap.readKeys(m, inserts, ids, each)
	} else {
		err = s.schedMap.read(m, inserts, each)
	}
	s.unresolvedSched.finish(s.p.sched.SchedCgroups, s.unresolved(ProbeSched))
	if err != nil {
		return fmt.Errorf("reading sched_cgroups: %w", err)
	}
	return nil
}

// readOnCPU reads which cgroup each CPU runs.
func (s *readState) readOnCPU() {
	s.oncpu, s.oncpuKnown = s.oncpu[:0], false
	vals, err := perCPUValues(&s.oncpuVals)
	if err != nil {
		return
	}
	if err := s.p.sched.SchedOncpu.Lookup(uint32(0), vals); err != nil {
		return
	}
	for _, id := range s.oncpuVals {
		if id == 0 {
			continue
		}
		path, ok := s.resolve(id, 0)
		if !ok {
			return
		}
		if !slices.Contains(s.oncpu, path) {
			s.oncpu = append(s.oncpu, path)
		}
	}
	s.oncpuKnown = true
}

func (s *readState) readBlock(now time.Time) error {
	m, inserts := s.p.block.BlockCgroups, s.p.block.BlockInserts
	each := func(key *blockBlockKey, vals []blockBlockValue) {
		a := s.block[*key]
		if a == nil {
			path, ok := s.resolve(key.Cgroup, key.Hierarchy)
			if !ok {
				s.unresolvedBlock.note(*key, now)
				return
			}
			s.unresolvedBlock.resolved(*key)
			a = &blockAcc{path: path, at: -1, id: key.Cgroup}
			s.layoutStale = true
			if key.Hierarchy != 0 {
				// A v1 blkio cgroup: charge its cgroup2 twin of the same path.
				a.id, _ = s.p.unified.ID(path)
			}
			s.block[*key] = a
		}
		a.v = sumBlock(vals)
	}
	// The count before the marks: a key added after it makes the next
	// read whole.
	var count uint64
	counted := inserts.Get(&count) == nil
	ids, ok := s.blockDirty.take(s.p.block.BlockDirty, s.p.block.BlockDirtyEpoch)
	var err error
	if ok && counted && count == s.blockInserts {
		s.blockKeys = s.blockKeys[:0]
		if len(ids) > 0 {
			for k := range s.block {
				if s.blockDirty.marked(k.Cgroup) {
					s.blockKeys = append(s.blockKeys, k)
				}
			}
		}
		for k := range s.unresolvedBlock.m {
			s.blockKeys = append(s.blockKeys, k)
		}
		err = s.blockMap.readKeys(m, inserts, s.blockKeys, each)
	} else {
		err = s.blockMap.read(m, inserts, each)
	}
	if counted && err == nil {
		s.blockInserts = count
	}
	s.unresolvedBlock.finish(s.p.block.BlockCgroups, s.unresolved(ProbeBlock))
	if err != nil {
		return fmt.Errorf("reading block_cgroups: %w", err)
	}
	return nil
}

func (s *readState) readNet(now time.Time) error {
	m, inserts := s.p.net.NetCgroups, s.p.net.NetInserts
	each := func(key *uint64, vals []netNetValue) {
		a := s.net[*key]
		if a == nil {
			path, ok := s.resolve(*key, 0)
			if !ok {
				s.unresolvedNet.note(*key, now)
				return
			}
			s.unresolvedNet.resolved(*key)
			a = &netAcc{path: path, at: -1}
			s.net[*key] = a
			s.layoutStale = true
		}
		a.v = sumNet(vals)
	}
	var err error
	if ids, ok := s.netDirty.take(s.p.net.NetDirty, s.p.net.NetDirtyEpoch); ok {
		// As in readSched.
		for k := range s.unresolvedNet.m {
			ids = append(ids, k)
		}
		err = s.netMap.readKeys(m, inserts, ids, each)
	} else {
		err = s.netMap.read(m, inserts, each)
	}
	s.unresolvedNet.finish(s.p.net.NetCgroups, s.unresolved(ProbeNet))
	if err != nil {
		return fmt.Errorf("reading net_cgroups: %w", err)
	}
	return nil
}

// sumSched, sumBlock and sumNet add up one entry's per-CPU values.

func sumSched(vals []schedSchedValue) schedSchedValue {
	var sum schedSchedValue
	for i := range vals {
		v := &vals[i]
		sum.CpuNs += v.CpuNs
		sum.WaitNs += v.WaitNs
		sum.Waits += v.Waits
		sum.Voluntary += v.Voluntary
		sum.Involuntary += v.Involuntary
		for b := range sum.WaitHist {
			sum.WaitHist[b] += v.WaitHist[b]
		}
	}
	return sum
}

func sumBlock(vals []blockBlockValue) blockBlockValue {
	var sum blockBlockValue
	for i := range vals {
		v := &vals[i]
		sum.Bytes += v.Bytes
		sum.Ops += v.Ops
		sum.LatencyCount += v.LatencyCount
		sum.LatencyNs += v.LatencyNs
		for b := range sum.LatencyHist {
			sum.LatencyHist[b] += v.LatencyHist[b]
		}
	}
	return sum
}

func sumNet(vals []netNetValue) netNetValue {
	var sum netNetValue
	for i := range vals {
		v := &vals[i]
		sum.RxBytes += v.RxBytes
		sum.RxPackets += v.RxPackets
		sum.TxBytes += v.TxBytes
		sum.TxPackets += v.TxPackets
	}
	return sum
}

// sweepInflight drops block requests issued more than olderThan ago that
// never completed, counting each as a lost completion: the completion
// program did not run for it (seen on Linux 6.18 while another program
// attached to the tracepoint), or a driver ended it without
// block_rq_complete. Its bytes are missing from the counts, and its entry
// would otherwise stay until the map is full.
func (s *readState) sweepInflight(olderThan time.Duration) error {
	mono := monotonicNow()
	if mono <= uint64(olderThan) {
		return nil
	}
	limit := mono - uint64(olderThan)
	var (
		key  uint64
		val  blockInflight
		lost []uint64
	)
	it := s.p.block.BlockInflight.Iterate()
	for it.Next(&key, &val) {
		if val.IssuedNs < limit {
			lost = append(lost, key)
		}
	}
	for _, k := range lost {
		if err := s.p.block.BlockInflight.Delete(&k); err == nil {
			s.userDrops[[2]string{ProbeBlock, "lost_completion"}]++
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("reading block_inflight: %w", err)
	}
	return nil
}

// reap deletes the entries of cgroups removed at least reapDelay ago,
// after this read took their final values, and keeps those values under
// the cgroup's path.
func (s *readState) reap(now time.Time) error {
	p := s.p
	// Walking cgroup_removed visits each of its hash buckets, 16 384 at
	// map_max_entries' default, even when it is empty: 1.7 % of the
	// agent's CPU beside 150 idle containers. It is walked only when the
	// probe counted a removal since the last walk, or one is waiting.
	var count uint64
	counted := p.cgroups.RemovedCount.Get(&count) == nil
	if counted && count == s.removedSeen && !s.removedWaiting {
		s.expireRetired(now)
		return nil
	}
	mono := monotonicNow()
	var (
		key     cgroupsCgroupKey
		ts      uint64
		done    []cgroupsCgroupKey
		waiting bool
	)
	it := p.cgroups.CgroupRemoved.Iterate()
	for it.Next(&key, &ts) {
		if ts > mono || mono-ts < uint64(reapDelay) {
			waiting = true
			continue
		}
		done = append(done, key)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("reading cgroup_removed: %w", err)
	}
	if counted {
		s.removedSeen, s.removedWaiting = count, waiting
	}
	for _, k := range done {
		if k.Hierarchy == 0 {
			if a := s.sched[k.Id]; a != nil {
				s.retire(a.path, k.Id, now).addSched(&a.v)
				delete(s.sched, k.Id)
				s.layoutStale = true
				_ = p.sched.SchedCgroups.Delete(&k.Id)
			}
			if a := s.net[k.Id]; a != nil {
				s.retire(a.path, k.Id, now).addNet(&a.v)
				delete(s.net, k.Id)
				s.layoutStale = true
				_ = p.net.NetCgroups.Delete(&k.Id)
			}
			p.unified.Forget(k.Id)
		} else if p.blkio != nil {
			p.blkio.Forget(k.Id)
		}
		for bk, a := range s.block {
			if bk.Cgroup == k.Id && bk.Hierarchy == k.Hierarchy {
				s.retire(a.path, a.id, now).addBlock(s.deviceName(bk.Dev), bk.Dev, bk.Op, &a.v)
				delete(s.block, bk)
				s.layoutStale = true
				_ = p.block.BlockCgroups.Delete(&bk)
			}
		}
		_ = p.cgroups.CgroupNames.Delete(&k)
		_ = p.cgroups.CgroupRemoved.Delete(&k)
	}
	s.expireRetired(now)
	return nil
}

// expireRetired forgets removed cgroups' final counts after the
// retention, and the oldest beyond maxRetired.
func (s *readState) expireRetired(now time.Time) {
	for path, r := range s.retired {
		if now.Sub(r.removedAt) > s.p.opts.RemovedRetention {
			delete(s.retired, path)
			s.retiredDirty = true
		}
	}
	if len(s.retired) <= maxRetired {
		return
	}
	paths := make([]string, 0, len(s.retired))
	for path := range s.retired {
		paths = append(paths, path)
	}
	sort.Slice(paths, func(i, j int) bool { return s.retired[paths[i]].removedAt.Before(s.retired[paths[j]].removedAt) })
	s.retiredDirty = true
	for _, path := range paths[:len(paths)-maxRetired] {
		delete(s.retired, path)
		s.evicted++
	}
}

// reapGone is reap without the cgroups probe: a cgroup whose directory
// is gone, or holds another cgroup now, is reaped. It is slower to notice
// (goneSweepEvery) but keeps the maps from filling up.
func (s *readState) reapGone(now time.Time) {
	p := s.p
	gone := func(r interface{ ID(string) (uint64, error) }, path string, id uint64) bool {
		got, err := r.ID(path)
		return err != nil || got != id
	}
	for id, a := range s.sched {
		if gone(p.unified, a.path, id) {
			s.retire(a.path, id, now).addSched(&a.v)
			delete(s.sched, id)
			s.layoutStale = true
			_ = p.sched.SchedCgroups.Delete(&id)
		}
	}
	for id, a := range s.net {
		if gone(p.unified, a.path, id) {
			s.retire(a.path, id, now).addNet(&a.v)
			delete(s.net, id)
			s.layoutStale = true
			_ = p.net.NetCgroups.Delete(&id)
		}
	}
	for k, a := range s.block {
		r := p.unified
		if k.Hierarchy != 0 {
			r = p.blkio
		}
		if k.Cgroup == 0 || r == nil || !gone(r, a.path, k.Cgroup) {
			continue
		}
		s.retire(a.path, a.id, now).addBlock(s.deviceName(k.Dev), k.Dev, k.Op, &a.v)
		delete(s.block, k)
		s.layoutStale = true
		_ = p.block.BlockCgroups.Delete(&k)
	}
	s.expireRetired(now)
}

func (s *readState) retire(path string, id uint64, now time.Time) *retiredPath {
	s.retiredDirty = true
	r := s.retired[path]
	if r == nil {
		r = &retiredPath{stats: CgroupStats{Path: path}}
		s.retired[path] = r
	}
	if id != 0 {
		r.stats.ID = id
	}
	r.removedAt = now
	return r
}

func (r *retiredPath) addSched(v *schedSchedValue) { addSched(&r.stats, v) }
func (r *retiredPath) addNet(v *netNetValue)       { addNet(&r.stats, v) }
func (r *retiredPath) addBlock(name string, dev, op uint32, v *blockBlockValue) {
	addBlock(&r.stats, name, dev, op, v)
}

func addSched(c *CgroupStats, v *schedSchedValue) {
	c.CPU += time.Duration(v.CpuNs)
	c.RunqueueWait += time.Duration(v.WaitNs)
	c.VoluntarySwitches += v.Voluntary
	c.InvoluntarySwitches += v.Involuntary
	for b := range v.WaitHist {
		c.RunqueueLatency.Buckets[b] += v.WaitHist[b]
	}
	c.RunqueueLatency.Count += v.Waits
	c.RunqueueLatency.Sum += time.Duration(v.WaitNs)
}

func addNet(c *CgroupStats, v *netNetValue) {
	c.NetReceiveBytes += v.RxBytes
	c.NetReceivePackets += v.RxPackets
	c.NetTransmitBytes += v.TxBytes
	c.NetTransmitPackets += v.TxPackets
}

// addBlock adds one map entry's counts; dev is the kernel's dev_t
// (major << 20 | minor), name the device's.
func addBlock(c *CgroupStats, name string, dev, op uint32, v *blockBlockValue) {
	b := BlockStats{Device: name, Major: dev >> 20, Minor: dev & (1<<20 - 1), Op: OpRead, Bytes: v.Bytes, Ops: v.Ops}
	if op == 1 {
		b.Op = OpWrite
	}
	b.Latency.Buckets = v.LatencyHist
	b.Latency.Count = v.LatencyCount
	b.Latency.Sum = time.Duration(v.LatencyNs)
	c.addBlock(&b)
}

// deviceName maps a kernel dev_t (major << 20 | minor) to the kernel's
// name of the device, from /sys/dev/block/MAJ:MIN/uevent.
func (s *readState) deviceName(dev uint32) string {
	if n, ok := s.devices[dev]; ok {
		return n
	}
	majmin := fmt.Sprintf("%d:%d", dev>>20, dev&(1<<20-1))
	name := majmin
	if b, err := os.ReadFile(filepath.Join(s.p.opts.SysFS, "dev", "block", majmin, "uevent")); err == nil {
		if n := parseUeventDevname(b); n != "" {
			name = collect.ValidLabelValue(n)
		}
	}
	s.devices[dev] = name
	return name
}

// parseUeventDevname returns DEVNAME from a sysfs uevent file.
func parseUeventDevname(b []byte) string {
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("DEVNAME=")); ok {
			return string(v)
		}
	}
	return ""
}

func (s *readState) snapshot(now time.Time) *Snapshot {
	p := s.p
	// Each cgroup's stats are built in place in a copy of the layout: a
	// tick allocates that slice and nothing per cgroup (a struct of some
	// 400 bytes each before, then copied, and a sort that moved them).
	snap := &Snapshot{Time: now, Probes: p.Status(), OnCPUKnown: s.oncpuKnown}
	snap.OnCPU = append([]string(nil), s.oncpu...)
	retired := s.sortedRetired()
	if s.layout == nil || s.layoutStale {
		s.buildLayout(retired)
	}
	snap.Cgroups = slices.Clone(s.layout)
	snap.layout = s.layoutGen
	for _, i := range s.liveAgain {
		// Its counts are added to the removed one's: not in the array
		// the retired cgroup and other snapshots share.
		snap.Cgroups[i].Block = slices.Clone(snap.Cgroups[i].Block)
	}
	for id, a := range s.sched {
		c := &snap.Cgroups[a.at]
		addSched(c, &a.v)
		c.ID = id
	}
	for id, a := range s.net {
		c := &snap.Cgroups[a.at]
		addNet(c, &a.v)
		c.ID = id
	}
	for k, a := range s.block {
		c := &snap.Cgroups[a.at]
		addBlock(c, s.deviceName(k.Dev), k.Dev, k.Op, &a.v)
		if c.ID == 0 {
			c.ID = a.id
		}
	}

	// Map memory moves slowly and costs a read of /proc fdinfo per map; a
	// program's statistics cost a bpf() call each, and without run-time
	// statistics only their recursion misses move, rarely (16 of 1 319
	// samples of the agent's CPU beside 150 containers went to reading
	// them every tick). Both are read every mapMemoryEvery, the programs'
	// every tick with run-time statistics on.
	slow := s.maps == nil || now.Sub(s.slowAt) >= mapMemoryEvery || now.Before(s.slowAt)
	if slow || p.stats != nil {
		s.progs = make([]ProgramStats, 0, len(p.progs))
		for _, np := range p.progs {
			ps := ProgramStats{Probe: np.probe, Name: np.name}
			if st, err := np.prog.Stats(); err == nil {
				ps.RunCount = st.RunCount
				ps.RunTime = st.Runtime
				ps.Missed = st.RecursionMisses
			}
			s.progs = append(s.progs, ps)
		}
	}
	snap.Programs = s.progs
	if slow {
		s.slowAt = now
		s.maps = make([]MapStats, 0, len(p.mapList))
		for _, nm := range p.mapList {
			ms := MapStats{Name: nm.name}
			if info, err := nm.m.Info(); err == nil {
				if b, ok := info.Memlock(); ok {
					ms.MemoryBytes = b
				}
			}
			s.maps = append(s.maps, ms)
		}
	}
	snap.Maps = s.maps
	snap.Drops = s.drops(snap.Programs)
	snap.RemovedEvicted = s.evicted
	return snap
}

// buildLayout makes the layout from the accs' paths and the retired
// cgroups (sorted by path), and gives each acc its index.
func (s *readState) buildLayout(retired []CgroupStats) {
	s.layoutStale = false
	s.layoutGen++
	if s.byPath == nil {
		s.byPath = map[string]int{}
	}
	clear(s.byPath)
	s.paths = s.paths[:0]
	note := func(path string) {
		if _, ok := s.byPath[path]; !ok {
			s.byPath[path] = 0
			s.paths = append(s.paths, path)
		}
	}
	for _, a := range s.sched {
		note(a.path)
	}
	for _, a := range s.net {
		note(a.path)
	}
	for _, a := range s.block {
		note(a.path)
	}
	slices.Sort(s.paths)
	// A new array: snapshots still read may share the last one's
	// retired entries, never the array.
	layout := make([]CgroupStats, 0, len(s.paths)+len(retired))
	s.liveAgain = s.liveAgain[:0]
	for i, j := 0, 0; i < len(s.paths) || j < len(retired); {
		switch {
		case j == len(retired) || i < len(s.paths) && s.paths[i] < retired[j].Path:
			s.byPath[s.paths[i]] = len(layout)
			layout = append(layout, CgroupStats{Path: s.paths[i]})
			i++
		case i == len(s.paths) || retired[j].Path < s.paths[i]:
			layout = append(layout, retired[j])
			j++
		default: // live again: the removed one's counts, and the new one's
			c := retired[j]
			c.Removed, c.RemovedAt = false, time.Time{}
			s.byPath[s.paths[i]] = len(layout)
			s.liveAgain = append(s.liveAgain, len(layout))
			layout = append(layout, c)
			i++
			j++
		}
	}
	s.layout = layout
	for _, a := range s.sched {
		a.at = s.byPath[a.path]
	}
	for _, a := range s.net {
		a.at = s.byPath[a.path]
	}
	for _, a := range s.block {
		a.at = s.byPath[a.path]
	}
}

// sortedRetired returns retiredStats, rebuilt first if retired changed.
func (s *readState) sortedRetired() []CgroupStats {
	if !s.retiredDirty {
		return s.retiredStats
	}
	s.retiredDirty, s.layoutStale = false, true
	// A new slice: the last one's entries are in snapshots still read.
	out := make([]CgroupStats, 0, len(s.retired))
	for _, r := range s.retired {
		c := CgroupStats{Path: r.stats.Path}
		c.Add(&r.stats)
		c.ID = r.stats.ID
		c.Removed = true
		c.RemovedAt = r.removedAt
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b CgroupStats) int { return strings.Compare(a.Path, b.Path) })
	s.retiredStats = out
	return out
}

var dropReasons = map[string][]string{
	ProbeSched:   {"cgroup_map_full", "task_storage"},
	ProbeBlock:   {"cgroup_map_full", "inflight_full", "lost_completion"},
	ProbeNet:     {"cgroup_map_full"},
	ProbeCgroups: {"removed_map_full"},
}

func (s *readState) drops(progs []ProgramStats) []Drop {
	p := s.p
	counts := make(map[[2]string]uint64)
	for _, ps := range progs {
		counts[[2]string{ps.Probe, "recursion"}] += ps.Missed
	}
	read := func(probe string, v *ebpf.Variable) {
		reasons := dropReasons[probe]
		vals := s.dropVals[:len(reasons)]
		if err := v.Get(vals); err != nil {
			return
		}
		for i, reason := range reasons {
			counts[[2]string{probe, reason}] += vals[i]
		}
	}
	if p.sched != nil {
		read(ProbeSched, p.sched.SchedDrops)
	}
	if p.block != nil {
		read(ProbeBlock, p.block.BlockDrops)
	}
	if p.net != nil {
		read(ProbeNet, p.net.NetDrops)
	}
	if p.cgroups != nil {
		read(ProbeCgroups, p.cgroups.CgroupsDrops)
	}
	for k, n := range s.userDrops {
		counts[k] += n
	}
	out := make([]Drop, 0, len(counts))
	for k, n := range counts {
		out = append(out, Drop{Probe: k[0], Reason: k[1], Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Probe != out[j].Probe {
			return out[i].Probe < out[j].Probe
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

// SweepLostCompletions counts as lost, now, the completions of block
// requests issued more than olderThan ago and still in flight, as Read
// does with LostAfter. With no block probe it does nothing.
func (p *Probes) SweepLostCompletions(olderThan time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return errors.New("probes closed")
	}
	if p.block == nil {
		return nil
	}
	return p.state.sweepInflight(olderThan)
}

// Cgroup reads the probes now and returns the counters of the cgroup at
// path (in the cgroup2 hierarchy).
func (p *Probes) Cgroup(path string) (CgroupStats, bool, error) {
	snap, err := p.Read(time.Now())
	if snap == nil {
		return CgroupStats{}, false, err
	}
	c, ok := snap.Cgroup(path)
	return c, ok, err
}

// Subtree reads the probes now and sums the cgroup at prefix and all
// cgroups below it, removed ones included (see Snapshot.Subtree).
func (p *Probes) Subtree(prefix string) (CgroupStats, error) {
	snap, err := p.Read(time.Now())
	if snap == nil {
		return CgroupStats{}, err
	}
	return snap.Subtree(prefix), nil
}
