// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"math/rand/v2"
	"testing"
	"time"
)

func TestFNV128a(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 64 {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		want := fnv.New128a()
		want.Write(data)
		h := newFNV128a()
		// In two parts, as docIDs hashes the time and then a group.
		h.write(data[:n/2])
		h.write(data[n/2:])
		if got := hex.EncodeToString(h.sum(nil)); got != hex.EncodeToString(want.Sum(nil)) {
			t.Fatalf("%d bytes: %s, want %x", n, got, want.Sum(nil))
		}
	}
}

// TestElasticsearchDocIDs checks the documents' IDs against their
// definition, for a batch of two ticks: the hex of the FNV-128a of the
// time in nanoseconds (8 bytes, big-endian) and the group's hash.
func TestElasticsearchDocIDs(t *testing.T) {
	el := &elastic{}
	t0 := time.Date(2026, 12, 6, 23, 59, 50, 123456789, time.UTC)
	var docs []esDoc
	for tick := range 2 {
		for g := range 3 {
			docs = append(docs, esDoc{g: &esGroup{hash: fnv128(string(rune('a' + g)))}, t: t0.Add(time.Duration(tick) * 10 * time.Second)})
		}
	}
	ids := el.docIDs(docs)
	seen := map[string]bool{}
	for i, d := range docs {
		var in [24]byte
		binary.BigEndian.PutUint64(in[:8], uint64(d.t.UnixNano()))
		copy(in[8:], d.g.hash[:])
		h := fnv.New128a()
		h.Write(in[:])
		if want := hex.EncodeToString(h.Sum(nil)); ids[i] != want {
			t.Errorf("document %d: ID %s, want %s", i, ids[i], want)
		}
		seen[ids[i]] = true
	}
	if len(seen) != len(docs) {
		t.Errorf("%d distinct IDs for %d documents", len(seen), len(docs))
	}
}
