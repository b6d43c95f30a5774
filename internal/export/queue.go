// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package export

import (
	"sync"
	"time"
)

// point is one sample of one series: s is shared by every tick that
// carries the series, so a queued sample costs a pointer and its value,
// 16 bytes.
type point struct {
	s *series
	v float64
}

// tick is what one agent sample gives an exporter: every series' value at
// one time. doc is the tick's own payload for exporters that send the
// snapshot rather than series (Custom); n counts it as one sample.
type tick struct {
	t   time.Time
	pts []point
	doc []byte
	// idx is the queue's running number of the tick's first sample.
	idx uint64
	// queued is when the tick entered the queue, for flush_interval.
	queued time.Time
}

func (t *tick) len() int {
	if t.doc != nil {
		return 1
	}
	return len(t.pts)
}

// chunk is part of one tick: its samples [from, to).
type chunk struct {
	t        time.Time
	pts      []point
	doc      []byte
	from, to int
}

// batch is what one request carries: chunks of consecutive ticks, oldest
// first, and the queue positions [lo, hi) they cover.
type batch struct {
	chunks []chunk
	lo, hi uint64
}

func (b *batch) samples() int { return int(b.hi - b.lo) }

// backlog is one exporter's queue: on disk (diskQueue), or in memory
// (queue) when there is no usable directory for it. push is the intake's,
// the rest the sender's; both may call len, oldest and the metrics'
// methods.
type backlog interface {
	// push appends t and returns how many of the oldest samples it
	// dropped to stay within the queue's bounds. It never waits on the
	// sender.
	push(t *tick, now time.Time) (dropped int)
	// peek is the batch of up to max samples at the head (see
	// queue.peek); commit removes what is before hi, delivered or given
	// up.
	peek(max int, whole bool) batch
	commit(hi uint64)
	len() int
	oldest() (t time.Time, ok bool)
	readyC() <-chan struct{}
	droppedTotal() uint64
	diskBytes() int64
	// sending is called before the batch [lo, hi) is sent; replayEnd is
	// the end of the batch the last run was sending when it ended (0:
	// none), which the receiver may hold (see diskQueue.sending);
	// headPos is the first sample not yet delivered or given up.
	sending(lo, hi uint64)
	replayEnd() uint64
	headPos() uint64
	// close ends the queue at the exporter's stop and says how many
	// samples were left and whether they are kept for the next start.
	close() (left int, kept bool)
}

// queue is one exporter's bounded queue of samples, oldest first. Every
// sample has a running number; head is the first one not yet delivered or
// dropped. A batch is peeked, not taken: it leaves the queue only when it
// is delivered (or given up), so a full queue that drops its oldest samples
// during an outage drops them from the batch in flight too, and the next
// attempt starts from what is left.
type queue struct {
	mu    sync.Mutex
	ticks []*tick // oldest first; ticks[0] holds head
	head  uint64
	end   uint64 // running number after the last sample
	max   int
	// bytes is what the queued docs (Custom's snapshots) hold; beyond
	// maxDocBytes the oldest are dropped too.
	bytes int
	// dropped counts the samples lost to a full queue.
	dropped uint64
	// ready is signalled (without blocking) on every push.
	ready chan struct{}
}

// maxDocBytes bounds the snapshots a Custom exporter queues, whatever
// queue_size says.
const maxDocBytes = 64 << 20

func newQueue(max int) *queue {
	return &queue{max: max, ready: make(chan struct{}, 1)}
}

// push appends t and, beyond the queue's size, drops the oldest samples.
// It never blocks on the sender: a tick is never delayed by an exporter.
func (q *queue) push(t *tick, now time.Time) (dropped int) {
	n := t.len()
	if n == 0 {
		return 0
	}
	q.mu.Lock()
	t.idx, t.queued = q.end, now
	q.end += uint64(n)
	q.ticks = append(q.ticks, t)
	q.bytes += len(t.doc)
	if over := int(q.end-q.head) - q.max; over > 0 {
		dropped = over
		q.advance(q.head + uint64(over))
	}
	for q.bytes > maxDocBytes && len(q.ticks) > 1 {
		dropped++
		q.advance(q.ticks[0].idx + 1)
	}
	q.dropped += uint64(dropped)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return dropped
}

// advance moves head to at least to and forgets the ticks before it.
// Callers hold mu.
func (q *queue) advance(to uint64) {
	if to <= q.head {
		return
	}
	q.head = min(to, q.end)
	i := 0
	for i < len(q.ticks) && q.ticks[i].idx+uint64(q.ticks[i].len()) <= q.head {
		q.bytes -= len(q.ticks[i].doc)
		q.ticks[i] = nil
		i++
	}
	q.ticks = q.ticks[i:]
	if len(q.ticks) == 0 {
		q.ticks = nil // let append start a fresh array
	}
}

// len is the number of samples waiting.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int(q.end - q.head)
}

// oldest is when the oldest waiting sample was queued; ok is false when
// the queue is empty.
func (q *queue) oldest() (t time.Time, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.end == q.head {
		return time.Time{}, false
	}
	return q.ticks[0].queued, true
}

// peek returns up to max samples from head, without removing them; with
// whole, more when the last tick has more, so that the batch ends at a
// tick's end. A Custom tick (doc) is never split.
func (q *queue) peek(max int, whole bool) batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	return peekTicks(q.ticks, q.head, max, whole)
}

// peekTicks is the batch of up to max samples from head in ticks, whose
// first holds head and which follow each other without a gap (see peek).
func peekTicks(ticks []*tick, head uint64, max int, whole bool) batch {
	b := batch{lo: head, hi: head}
	for _, t := range ticks {
		if b.samples() >= max {
			break
		}
		from := 0
		if t.idx < head {
			from = int(head - t.idx)
		}
		to := t.len()
		if !whole {
			to = min(to, from+max-b.samples())
		}
		b.chunks = append(b.chunks, chunk{t: t.t, pts: t.pts, doc: t.doc, from: from, to: to})
		b.hi += uint64(to - from)
	}
	return b
}

// commit removes the samples before hi: delivered or given up.
func (q *queue) commit(hi uint64) {
	q.mu.Lock()
	q.advance(hi)
	q.mu.Unlock()
}

// droppedTotal is the samples the full queue has dropped.
func (q *queue) droppedTotal() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// readyC is signalled (without blocking) on every push.
func (q *queue) readyC() <-chan struct{} { return q.ready }

// sending, replayEnd: nothing outlives the process in memory.
func (q *queue) sending(lo, hi uint64) {}
func (q *queue) replayEnd() uint64     { return 0 }

func (q *queue) headPos() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.head
}

// diskBytes is 0: the queue is in memory.
func (q *queue) diskBytes() int64 { return 0 }

// close ends the queue at the exporter's stop: what is left is dropped,
// counted, and its number returned; nothing is kept.
func (q *queue) close() (left int, kept bool) { return q.discard(), false }

// discard drops every queued sample, counted as dropped, and returns how
// many there were.
func (q *queue) discard() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := int(q.end - q.head)
	q.dropped += uint64(n)
	q.advance(q.end)
	return n
}
