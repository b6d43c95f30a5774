// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
)

// TestBatchMatchesIterate reads the per-cgroup maps with batch lookups and
// by iteration, after some CPU, block and network work, and requires the
// same per-cgroup sums.
func TestBatchMatchesIterate(t *testing.T) {
	p := loadProbes(t, DefaultOptions())
	m := mounts(t)
	burn := newCgroup(t, m, "batch-burn")
	dio := newCgroup(t, m, "batch-dio")
	tx := newCgroup(t, m, "batch-tx")
	rx := newCgroup(t, m, "batch-rx")

	rw := start(t, rx, -1, "receive", "")
	rw.go_(t)
	var addr string
	for i := 0; i < 200 && addr == ""; i++ {
		time.Sleep(10 * time.Millisecond)
		addr = strings.TrimSpace(rw.stdoutString())
	}
	if addr == "" {
		t.Fatal("receiver did not start")
	}
	ws := []*workloadProc{
		start(t, burn, -1, "burn", "100ms"),
		start(t, dio, -1, "direct-io", fmt.Sprintf("%d,%s", 4<<20, testFile(t))),
		start(t, tx, -1, "send", fmt.Sprintf("%d,%s", 1<<20, addr)),
	}
	for _, w := range ws {
		w.go_(t)
	}
	for _, w := range append(ws, rw) {
		w.wait(t)
	}
	settle()

	// The test's cgroups have no tasks left: their entries hold still
	// between the two reads, where the rest of the host's only grow.
	quiet := make(map[uint64]bool)
	quietV1 := make(map[uint64]bool)
	for _, cg := range []*testCgroup{burn, dio, tx, rx} {
		id, err := p.unified.ID(cg.path)
		if err != nil {
			t.Fatal(err)
		}
		quiet[id] = true
		if p.blkio != nil {
			if id, err := p.blkio.ID(cg.path); err == nil {
				quietV1[id] = true
			}
		}
	}
	t.Run("sched", func(t *testing.T) {
		compareReads(t, p.sched.SchedCgroups, sumSched, func(k uint64) bool { return quiet[k] }, idKey)
	})
	t.Run("block", func(t *testing.T) {
		compareReads(t, p.block.BlockCgroups, sumBlock, func(k blockBlockKey) bool {
			if k.Hierarchy != 0 {
				return quietV1[k.Cgroup]
			}
			return quiet[k.Cgroup]
		}, func(i uint64) blockBlockKey { return blockBlockKey{Cgroup: i, Dev: 8 << 20, Op: uint32(i & 1)} })
	})
	t.Run("net", func(t *testing.T) {
		compareReads(t, p.net.NetCgroups, sumNet, func(k uint64) bool { return quiet[k] }, idKey)
	})
}

func idKey(i uint64) uint64 { return i }

// frozenEntries is the size of the copy compareReads reads: the hash
// buckets of so many keys are sure to hold several keys.
const frozenEntries = 1000

// compareReads reads m by iteration, then with batch lookups: the sums of
// quiet keys must be equal, the others not lower. Then it reads a copy of
// m that nothing updates, padded with made-up entries (keys from key) to
// frozenEntries, both ways, and requires the per-CPU values put. The
// batches start at one key, so that the reads take many batches and
// buckets of several keys make them grow.
func compareReads[K comparable, V any](t *testing.T, m *ebpf.Map, sum func([]V) V, quiet func(K) bool, key func(uint64) K) {
	iter := readMap[K, V](t, m, "iterate", 0)
	batch := readMap[K, V](t, m, "batch", 1)
	var nquiet int
	for k, iv := range iter {
		bv, ok := batch[k]
		if !ok {
			t.Errorf("key %+v read by iteration, not in batches", k)
			continue
		}
		is, bs := sum(iv), sum(bv)
		if quiet(k) {
			nquiet++
			if !reflect.DeepEqual(counters(&is), counters(&bs)) {
				t.Errorf("key %+v:\niterate %+v\nbatch   %+v", k, is, bs)
			}
			continue
		}
		for i, c := range counters(&is) {
			if counters(&bs)[i] < c {
				t.Errorf("key %+v: counter %d went down from %d (iterate) to %d (batch)", k, i, c, counters(&bs)[i])
			}
		}
	}
	if nquiet == 0 {
		t.Errorf("none of the test's cgroups in %d entries", len(iter))
	}
	t.Logf("%d entries, %d of the test's cgroups", len(iter), nquiet)

	frozen, err := ebpf.NewMap(&ebpf.MapSpec{
		Type:       ebpf.PerCPUHash,
		KeySize:    m.KeySize(),
		ValueSize:  m.ValueSize(),
		MaxEntries: frozenEntries,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer frozen.Close()
	put := maps.Clone(iter)
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	// Made-up IDs above any kernfs inode number.
	for i := uint64(1 << 62); len(put) < frozenEntries; i++ {
		vals := make([]V, ncpu)
		for c := range vals {
			for j := range counters(&vals[c]) {
				counters(&vals[c])[j] = i<<16 | uint64(c)<<8 | uint64(j)
			}
		}
		put[key(i)] = vals
	}
	for k, v := range put {
		if err := frozen.Put(&k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, how := range []string{"batch", "iterate"} {
		got := readMap[K, V](t, frozen, how, 1)
		if len(got) != len(put) {
			t.Errorf("copy read by %s: %d entries, put %d", how, len(got), len(put))
		}
		for k, v := range put {
			if !reflect.DeepEqual(got[k], v) {
				t.Errorf("copy read by %s: key %+v: per-CPU values differ from those put", how, k)
				break
			}
		}
	}

	// The kernel writes into the reader's buffers: no allocation per entry.
	var r perCPUReader[K, V]
	read := func() {
		if err := r.read(frozen, nil, func(*K, []V) {}); err != nil {
			t.Fatal(err)
		}
	}
	read()
	if allocs := testing.AllocsPerRun(5, read); allocs > frozenEntries/10 {
		t.Errorf("a read of %d entries allocates %.0f times", frozenEntries, allocs)
	} else {
		t.Logf("a read of %d entries: %d keys a batch, %.0f allocations", frozenEntries, len(r.keys), allocs)
	}
}

// readMap reads m one way, with batches of batchKeys keys at first (0: as
// Read does), and returns each key's per-CPU values.
func readMap[K comparable, V any](t *testing.T, m *ebpf.Map, how string, batchKeys int) map[K][]V {
	t.Helper()
	var r perCPUReader[K, V]
	if batchKeys > 0 {
		if err := r.resize(batchKeys); err != nil {
			t.Fatal(err)
		}
	}
	got := make(map[K][]V)
	each := func(k *K, vals []V) {
		if _, dup := got[*k]; dup {
			t.Errorf("%s: key %+v read twice", how, *k)
		}
		got[*k] = slices.Clone(vals)
	}
	read := r.batch
	if how == "iterate" {
		read = r.iterate
	}
	if err := read(m, each); err != nil {
		t.Fatalf("%s: %v", how, err)
	}
	return got
}

// counters views a map value as its counters: every field of the
// generated value types is a uint64 or an array of them.
func counters[V any](v *V) []uint64 {
	return unsafe.Slice((*uint64)(unsafe.Pointer(v)), unsafe.Sizeof(*v)/8)
}

// TestReadKnownKeys reads sched_cgroups as each tick does: a whole read,
// then, while the map's count of inserts stays, look-ups of the keys it
// found, which must find what a whole read finds, and a whole read again
// after wholeEvery of them. A cgroup that runs for the first time adds a
// key, and the next read walks the map again and finds it; a key deleted
// is forgotten.
func TestReadKnownKeys(t *testing.T) {
	p := loadProbes(t, DefaultOptions())
	m := p.sched.SchedCgroups
	var r perCPUReader[uint64, schedSchedValue]
	r.maxLookup = 1 << 20 // however many cgroups this host runs
	read := func() map[uint64]schedSchedValue {
		t.Helper()
		got := map[uint64]schedSchedValue{}
		if err := r.read(m, p.sched.SchedInserts, func(k *uint64, vals []schedSchedValue) { got[*k] = sumSched(vals) }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	inserts := func() uint64 {
		t.Helper()
		var n uint64
		if err := p.sched.SchedInserts.Get(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	first := read()
	if !r.haveKnown || len(r.known) != len(first) {
		t.Fatalf("after a whole read of %d keys: known %v, %d keys", len(first), r.haveKnown, len(r.known))
	}
	// Look-ups, unless a cgroup of the host ran for the first time in
	// between: retried until a read sees the count stay.
	var looked map[uint64]schedSchedValue
	for range 50 {
		before := inserts()
		looked = read()
		if r.sinceWhole > 0 && inserts() == before {
			break
		}
		looked = nil
	}
	if looked == nil {
		t.Fatal("no read looked the known keys up: inserts on every read")
	}
	for k, v := range first {
		w, ok := looked[k]
		if !ok {
			t.Errorf("key %d of the whole read not looked up", k)
			continue
		}
		if w.CpuNs < v.CpuNs || w.Voluntary+w.Involuntary < v.Voluntary+v.Involuntary {
			t.Errorf("key %d went back: %+v then %+v", k, v, w)
		}
	}

	// A whole read at the latest after wholeEvery look-ups in a row.
	for i := 0; r.sinceWhole > 0; i++ {
		if i > wholeEvery {
			t.Fatalf("%d reads, still by look-up (%d in a row)", i, r.sinceWhole)
		}
		read()
	}

	mnt := mounts(t)
	cg := newCgroup(t, mnt, "known-keys")
	id, err := p.unified.ID(cg.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := looked[id]; ok {
		t.Fatalf("new cgroup %d already in the map", id)
	}
	w := start(t, cg, -1, "burn", "50ms")
	w.go_(t)
	w.wait(t)
	settle()
	got := read()
	if r.sinceWhole != 0 {
		t.Error("a read after an insert looked the known keys up")
	}
	if v, ok := got[id]; !ok || v.CpuNs == 0 {
		t.Fatalf("the new cgroup's key %d: %+v, %v", id, v, ok)
	}
	if !slices.Contains(r.known, id) {
		t.Fatal("the new cgroup's key not known after the read")
	}

	if err := m.Delete(&id); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		got = read()
		if !slices.Contains(r.known, id) {
			break
		}
	}
	if _, ok := got[id]; ok || slices.Contains(r.known, id) {
		t.Errorf("deleted key %d still read (%v) or known (%v)", id, ok, slices.Contains(r.known, id))
	}
}

// BenchmarkReadMaps reads the three per-cgroup maps with 50 active
// cgroups, in batches, by iteration, and by look-ups of the known keys.
func BenchmarkReadMaps(b *testing.B) {
	p := benchCgroups(b)
	for _, how := range []string{"batch", "iterate", "lookup"} {
		b.Run(how, func(b *testing.B) {
			var (
				sched perCPUReader[uint64, schedSchedValue]
				block perCPUReader[blockBlockKey, blockBlockValue]
				net   perCPUReader[uint64, netNetValue]
				n     int
				// Reads by look-up of the known keys.
				looked int
			)
			noBatch := how == "iterate"
			sched.noBatch, block.noBatch, net.noBatch = noBatch, noBatch, noBatch
			var si, bi, ni *ebpf.Variable
			if how == "lookup" {
				si, bi, ni = p.sched.SchedInserts, p.block.BlockInserts, p.net.NetInserts
				sched.maxLookup, block.maxLookup, net.maxLookup = 1<<20, 1<<20, 1<<20
			}
			b.ReportAllocs()
			for b.Loop() {
				n = 0
				err := errors.Join(
					sched.read(p.sched.SchedCgroups, si, func(*uint64, []schedSchedValue) { n++ }),
					block.read(p.block.BlockCgroups, bi, func(*blockBlockKey, []blockBlockValue) { n++ }),
					net.read(p.net.NetCgroups, ni, func(*uint64, []netNetValue) { n++ }))
				if err != nil {
					b.Fatal(err)
				}
				for _, since := range []int{sched.sinceWhole, block.sinceWhole, net.sinceWhole} {
					if since > 0 {
						looked++
					}
				}
			}
			b.ReportMetric(float64(n), "entries")
			b.ReportMetric(float64(looked)/float64(b.N), "lookup-reads/op")
		})
	}
}

// TestBatchBufferBound: the first batch and every later one stay within
// batchMaxBytes of values on a host of many CPUs, and at least one key.
func TestBatchBufferBound(t *testing.T) {
	for _, ncpu := range []int{1, 2, 64, 256, 8192} {
		r := perCPUReader[uint64, schedSchedValue]{ncpu: ncpu}
		first := min(batchMinKeys, r.maxKeys())
		size := int(unsafe.Sizeof(schedSchedValue{}))
		if first < 1 || (first > 1 && first*ncpu*size > batchMaxBytes) {
			t.Errorf("%d CPUs: first batch of %d keys, %d bytes of values", ncpu, first, first*ncpu*size)
		}
	}
}
