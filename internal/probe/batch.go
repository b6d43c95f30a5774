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
}

// read calls each with every entry's key and per-CPU values, which are
// only valid during the call. A map updated during the read is read as it
// is at each step, as with an iteration: an entry added meanwhile may be
// missed until the next read.
func (r *perCPUReader[K, V]) read(m *ebpf.Map, each func(key *K, vals []V)) error {
	if err := r.init(); err != nil {
		return err
	}
	if !r.noBatch {
		err := r.batch(m, each)
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return err
		}
		// The first call fails, before any entry was read.
		r.noBatch = true
	}
	return r.iterate(m, each)
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
