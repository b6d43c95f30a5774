// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"errors"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

const (
	// batchMinKeys is the batch a map's first read starts with, as far
	// as batchMaxBytes allows.
	batchMinKeys = 64
	// batchMaxBytes bounds the values buffer a map keeps between reads.
	// The values are per possible CPU: on a large host, a read of many
	// cgroups takes a few batches rather than megabytes of buffer.
	batchMaxBytes = 256 << 10
	// lookupMaxKeys is the most known keys a read looks up one by one
	// rather than in batches; see perCPUReader.known.
	lookupMaxKeys = 16
	// wholeEvery bounds the reads by look-up in a row (a minute at a 1 s
	// interval): the count of inserts is added after the insert, so on a
	// weakly ordered CPU a whole read may see the new count before the
	// new key; the next whole read finds it.
	wholeEvery = 60
)

// perCPUReader reads a whole per-CPU hash map of per-cgroup counters, once
// per tick. Where the kernel has batch lookups (5.6+), one bpf() call
// returns the keys and per-CPU values of many entries; iterating costs two
// calls (next key, lookup) per entry. The buffers are kept between reads,
// so that a read does not allocate per entry.
type perCPUReader[K, V any] struct {
	// keys and vals are one batch: the values of keys[i], one per
	// possible CPU, are vals[i*ncpu : (i+1)*ncpu].
	keys []K
	vals []V
	ncpu int
	// noBatch is set once the kernel turned batch lookups down.
	noBatch bool
	// known are the keys the last whole read found and insertsAt the
	// map's count of inserts before it, when haveKnown. While the count
	// stays no key was added since, and up to lookupMaxKeys known keys
	// are looked up one by one: a batch read walks every bucket of the
	// map, empty or not (4 096 here, some 50 µs, 8 % of the agent's CPU on
	// a quiet host with three maps), where a look-up takes about a µs.
	known     []K
	insertsAt uint64
	haveKnown bool
	// maxLookup replaces lookupMaxKeys when not 0 (the tests').
	maxLookup int
	// sinceWhole counts the reads by look-up since the last whole read.
	sinceWhole int
	// knownStale is set by readKeys, which may have read keys added
	// since the whole read without adding them to known.
	knownStale bool
}

// read calls each with every entry's key and per-CPU values, which are
// only valid during the call. A map updated during the read is read as it
// is at each step, as with an iteration: an entry added meanwhile may be
// missed until the next read. inserts, if not nil, is the map's count of
// inserts (lookup_or_init in bpf/common.h).
func (r *perCPUReader[K, V]) read(m *ebpf.Map, inserts *ebpf.Variable, each func(key *K, vals []V)) error {
	if err := r.init(); err != nil {
		return err
	}
	var count uint64
	counted := inserts != nil && inserts.Get(&count) == nil
	limit := lookupMaxKeys
	if r.maxLookup > 0 {
		limit = r.maxLookup
	}
	if counted && r.haveKnown && !r.knownStale && count == r.insertsAt && len(r.known) <= limit && r.sinceWhole < wholeEvery {
		r.sinceWhole++
		return r.lookup(m, each)
	}
	r.known, r.haveKnown, r.knownStale, r.sinceWhole = r.known[:0], false, false, 0
	all := func(key *K, vals []V) {
		r.known = append(r.known, *key)
		each(key, vals)
	}
	var err error
	if !r.noBatch {
		err = r.batch(m, all)
		if errors.Is(err, ebpf.ErrNotSupported) {
			// The first call fails, before any entry was read.
			r.noBatch = true
		}
	}
	if r.noBatch {
		err = r.iterate(m, all)
	}
	// The count read before the walk: a key added during it makes the
	// next read walk again.
	r.haveKnown, r.insertsAt = counted && err == nil, count
	return err
}

// readKeys is read when the probe told which keys it changed since the
// last read (dirtyKeys): those are looked up alone, new ones included,
// and the others keep the values each was last given, as long as a whole
// read came before (the first) and there was one within wholeEvery reads.
// Otherwise it is read.
func (r *perCPUReader[K, V]) readKeys(m *ebpf.Map, inserts *ebpf.Variable, keys []K, each func(key *K, vals []V)) error {
	if !r.haveKnown || r.sinceWhole >= wholeEvery {
		return r.read(m, inserts, each)
	}
	r.sinceWhole++
	// Keys added since are not in known: a read without the probe's
	// list walks the map again.
	r.knownStale = true
	_, err := r.lookupKeys(m, keys, each)
	return err
}

// lookup reads the known keys one by one, forgetting those deleted since
// (user space reaps removed cgroups' entries).
func (r *perCPUReader[K, V]) lookup(m *ebpf.Map, each func(key *K, vals []V)) error {
	kept, err := r.lookupKeys(m, r.known, each)
	if err != nil {
		return err
	}
	r.known = kept
	return nil
}

// lookupKeys looks keys up one by one and calls each with those the map
// holds, which it returns, kept in keys' own array: a key deleted since
// it was learnt (user space reaps removed cgroups' entries) is left out.
func (r *perCPUReader[K, V]) lookupKeys(m *ebpf.Map, keys []K, each func(key *K, vals []V)) ([]K, error) {
	if r.vals == nil {
		if err := r.resize(1); err != nil {
			return nil, err
		}
	}
	vals := r.vals[:r.ncpu]
	kept := keys[:0]
	for i := range keys {
		key := keys[i]
		err := m.Lookup(&key, vals)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			continue
		}
		if err != nil {
			r.haveKnown = false
			return nil, err
		}
		kept = append(kept, key)
		each(&key, vals)
	}
	return kept, nil
}

// batch is read with batch lookups.
func (r *perCPUReader[K, V]) batch(m *ebpf.Map, each func(key *K, vals []V)) error {
	if r.keys == nil {
		if err := r.resize(min(batchMinKeys, r.maxKeys())); err != nil {
			return err
		}
	}
	// A fresh cursor starts at the map's first bucket.
	var cursor ebpf.MapBatchCursor
	total, calls := 0, 0
	for {
		n, err := m.BatchLookup(&cursor, r.keys, r.vals, nil)
		if errors.Is(err, unix.ENOSPC) {
			// The next hash bucket holds more entries than a batch; the
			// cursor stays on it.
			if len(r.keys) >= int(m.MaxEntries()) {
				return err
			}
			if err := r.resize(2 * len(r.keys)); err != nil {
				return err
			}
			continue
		}
		// ErrKeyNotExist marks the last batch, which may hold entries.
		end := errors.Is(err, ebpf.ErrKeyNotExist)
		if err != nil && !end {
			return err
		}
		calls++
		for i := range n {
			each(&r.keys[i], r.vals[i*r.ncpu:(i+1)*r.ncpu])
		}
		total += n
		if end || n == 0 {
			break
		}
	}
	// Take the next read in one call, as far as the budget goes.
	if want := min(total+total/4, r.maxKeys()); calls > 1 && want > len(r.keys) {
		return r.resize(want)
	}
	return nil
}

// iterate is read without batch lookups.
func (r *perCPUReader[K, V]) iterate(m *ebpf.Map, each func(key *K, vals []V)) error {
	if r.keys == nil {
		if err := r.resize(1); err != nil {
			return err
		}
	}
	// A slice of one value per CPU is filled in place; a pointer to one
	// would be replaced by a new slice on every lookup.
	vals := r.vals[:r.ncpu]
	var key K
	it := m.Iterate()
	for it.Next(&key, vals) {
		each(&key, vals)
	}
	return it.Err()
}

// init learns the number of possible CPUs, once.
func (r *perCPUReader[K, V]) init() error {
	if r.ncpu != 0 {
		return nil
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	r.ncpu = ncpu
	return nil
}

// perCPUValues returns *vals made one value per possible CPU, once. A
// per-CPU look-up given the slice itself writes into it; given a pointer
// to it, cilium/ebpf makes a new slice (by reflection) at every call:
// four of a read's look-ups a tick (the three marked tables and
// sched_oncpu), 1 % of the agent's CPU at rest.
func perCPUValues[V any](vals *[]V) ([]V, error) {
	if *vals == nil {
		ncpu, err := ebpf.PossibleCPU()
		if err != nil {
			return nil, err
		}
		*vals = make([]V, ncpu)
	}
	return *vals, nil
}

// resize makes room for a batch of n keys. BatchLookup writes straight
// into the buffers only when vals holds exactly one value per CPU per key.
func (r *perCPUReader[K, V]) resize(n int) error {
	if err := r.init(); err != nil {
		return err
	}
	r.keys = make([]K, n)
	r.vals = make([]V, n*r.ncpu)
	return nil
}

// maxKeys is the largest batch batchMaxBytes allows, at least one key; a
// hash bucket larger than that still gets its batch (ENOSPC grows it).
func (r *perCPUReader[K, V]) maxKeys() int {
	var v V
	return max(1, batchMaxBytes/(r.ncpu*int(unsafe.Sizeof(v))))
}
