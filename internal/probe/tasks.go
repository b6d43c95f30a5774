// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/crmon-dev/crmon/internal/collect"
)

// The records bpf/tasks.bpf.c writes: a task's, and after a thread group
// leader's, the leader's.
const (
	taskRecSize   = 16
	leaderRecSize = 64
)

// maxTaskOutput bounds what one listing reads: 4 194 304 tasks (the
// kernel's most PIDs) write 16 bytes each, and 64 MiB is far beyond any
// host's; a listing that reaches it fails rather than grow without end.
const maxTaskOutput = 64 << 20

var pageSize = uint64(os.Getpagesize())

// walkRest is how many listings the iterator makes alone after a walk
// that did not list (12: a minute at the default scan interval).
const walkRest = 12

// procsPerChunk is how many processes the walk writes to a value of its
// map: a page of 64-byte records.
const procsPerChunk = len(taskwalkProcChunk{}.R)

// Tasks lists the host's processes in one run of a BPF program: on Linux
// 6.7 and later a walk of the kernel's task list (bpf/taskwalk.bpf.c,
// some 50 ns a thread warm, 0.4 µs at a scan every 5 s), before that and
// on a host with more processes than the walk's map holds a task iterator
// (bpf/tasks.bpf.c, some 1 µs a thread at a scan), where /proc/<pid>/stat
// costs some 8 µs a process. It implements collect.ProcessLister.
type Tasks struct {
	// walk is nil where it did not load, for walkErr: before Linux 6.7
	// the kernel has no open-coded task iterators. skipWalk counts the
	// listings left to the iterator after a walk that did not list.
	walk     *taskwalkObjects
	walkErr  error
	skipWalk int
	iter     tasksObjects
	link     *link.Iter

	mu     sync.Mutex
	buf    []byte
	cpu    map[int32]uint64 // scratch: live threads' CPU by thread group
	keys   []uint32
	chunks []taskwalkProcChunk
}

// NewTasks loads the task list walk, where the kernel has it, and the
// task iterator.
func NewTasks() (*Tasks, error) { return newTasks(tasksOptions{}) }

// tasksOptions are the tests': to list with the iterator alone, or with a
// walk whose map holds fewer processes.
type tasksOptions struct {
	noWalk     bool
	walkChunks uint32
}

func newTasks(o tasksOptions) (t *Tasks, err error) {
	// A no-op on kernels that charge BPF memory to the cgroup (5.11+).
	_ = rlimit.RemoveMemlock()
	t = &Tasks{cpu: map[int32]uint64{}}
	if err := loadTasksObjects(&t.iter, nil); err != nil {
		return nil, fmt.Errorf("loading the task iterator: %w", err)
	}
	t.link, err = link.AttachIter(link.IterOptions{Program: t.iter.CrmonTasks})
	if err != nil {
		t.iter.Close()
		return nil, fmt.Errorf("attaching the task iterator: %w", err)
	}
	if !o.noWalk {
		// Before 6.7 the verifier knows none of the walk's kfuncs: the
		// iterator lists alone.
		t.walk, t.walkErr = loadWalk(o.walkChunks)
	}
	return t, nil
}

// WalkErr says why the task list walk did not load, and the slower task
// iterator lists alone; nil when the walk lists.
func (t *Tasks) WalkErr() error { return t.walkErr }

// loadWalk loads the task list walk, its map of chunks chunks long
// unless chunks is 0.
func loadWalk(chunks uint32) (*taskwalkObjects, error) {
	spec, err := loadTaskwalk()
	if err != nil {
		return nil, err
	}
	if chunks > 0 {
		spec.Maps[taskwalkMapProcChunks].MaxEntries = chunks
	}
	var w taskwalkObjects
	if err := spec.LoadAndAssign(&w, nil); err != nil {
		return nil, err
	}
	return &w, nil
}

// ListProcesses appends every process of the host to buf: its leader's
// figures, and the CPU time of all its threads.
func (t *Tasks) ListProcesses(buf []collect.ProcessStat) ([]collect.ProcessStat, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var werr error
	if t.walk != nil && t.skipWalk == 0 {
		out, ok, err := t.walked(buf)
		if ok {
			return out, nil
		}
		// More processes than the walk's map holds, a walk cut short
		// (see MAX_STEPS) or an error: the iterator lists, and alone
		// for the next walkRest listings, so that a host this large
		// does not pay for both each time.
		t.skipWalk, werr = walkRest, err
	} else if t.skipWalk > 0 {
		t.skipWalk--
	}
	n, err := t.read()
	if err != nil {
		return buf, errors.Join(werr, err)
	}
	return t.parse(t.buf[:n], buf)
}

// walked runs the task list walk and appends its processes to out; ok is
// false when they did not fit its map.
func (t *Tasks) walked(out []collect.ProcessStat) (_ []collect.ProcessStat, ok bool, err error) {
	ret, err := t.walk.CrmonProcs.Run(&ebpf.RunOptions{})
	if err != nil {
		return out, false, fmt.Errorf("running the task list walk: %w", err)
	}
	n := int(int32(ret))
	if n < 0 {
		return out, false, nil
	}
	nchunks := (n + procsPerChunk - 1) / procsPerChunk
	if nchunks == 0 {
		return out, true, nil
	}
	if cap(t.chunks) < nchunks {
		t.chunks = make([]taskwalkProcChunk, nchunks+nchunks/4)
		t.keys = make([]uint32, len(t.chunks))
	}
	// A fresh cursor starts at the array's first index.
	var cursor ebpf.MapBatchCursor
	got, err := t.walk.ProcChunks.BatchLookup(&cursor, t.keys[:nchunks], t.chunks[:nchunks], nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) || got < nchunks {
		return out, false, fmt.Errorf("reading the task list walk: %d of %d chunks: %w", got, nchunks, err)
	}
	for i := range n {
		r := &t.chunks[i/procsPerChunk].R[i%procsPerChunk]
		p := collect.ProcessStat{
			PID:        int32(r.Tgid),
			CPUNanos:   r.RuntimeNs,
			StartNanos: r.StartNs,
			VSize:      r.TotalVmPages * pageSize,
			RSS:        r.RssPages,
			State:      stateLetter(r.State, r.ExitState),
			Threads:    uint64(r.NrThreads),
		}
		for j, c := range r.Comm {
			p.Comm[j] = byte(c)
		}
		out = append(out, p)
	}
	return out, true, nil
}

// read runs the iterator into t.buf and returns how much it wrote.
func (t *Tasks) read() (int, error) {
	r, err := t.link.Open()
	if err != nil {
		return 0, fmt.Errorf("running the task iterator: %w", err)
	}
	defer r.Close()
	if t.buf == nil {
		t.buf = make([]byte, 256<<10)
	}
	n := 0
	for {
		if n == len(t.buf) {
			if len(t.buf) >= maxTaskOutput {
				return 0, fmt.Errorf("running the task iterator: more than %d bytes", maxTaskOutput)
			}
			nb := make([]byte, 2*len(t.buf))
			copy(nb, t.buf[:n])
			t.buf = nb
		}
		m, err := r.Read(t.buf[n:])
		n += m
		if errors.Is(err, io.EOF) || (err == nil && m == 0) {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("running the task iterator: %w", err)
		}
	}
}

// parse turns the iterator's records into processes, appended to out.
func (t *Tasks) parse(b []byte, out []collect.ProcessStat) ([]collect.ProcessStat, error) {
	clear(t.cpu)
	le := binary.LittleEndian
	first := len(out)
	for len(b) > 0 {
		if len(b) < taskRecSize {
			return out[:first], fmt.Errorf("task iterator: %d bytes left of a record", len(b))
		}
		tgid, pid := int32(le.Uint32(b)), int32(le.Uint32(b[4:]))
		t.cpu[tgid] += le.Uint64(b[8:])
		b = b[taskRecSize:]
		if pid != tgid {
			continue
		}
		if len(b) < leaderRecSize {
			return out[:first], fmt.Errorf("task iterator: %d bytes left of a leader's record", len(b))
		}
		p := collect.ProcessStat{
			PID:        pid,
			CPUNanos:   le.Uint64(b), // the exited threads'; the live ones' added below
			StartNanos: le.Uint64(b[8:]),
			VSize:      le.Uint64(b[16:]) * pageSize,
			RSS:        le.Uint64(b[24:]),
			State:      stateLetter(le.Uint32(b[32:]), le.Uint32(b[36:])),
			Threads:    uint64(le.Uint32(b[40:])),
		}
		copy(p.Comm[:], b[48:64])
		out = append(out, p)
		b = b[leaderRecSize:]
	}
	// A thread whose leader was not listed (it began or ended between
	// the two) has no process to count in.
	for i := first; i < len(out); i++ {
		out[i].CPUNanos += t.cpu[out[i].PID]
	}
	return out, nil
}

// Close unloads the walk, and detaches and unloads the iterator.
func (t *Tasks) Close() error {
	var err error
	if t.walk != nil {
		err = t.walk.Close()
	}
	return errors.Join(err, t.link.Close(), t.iter.Close())
}

// The task states task_state_index() reports (include/linux/sched.h).
const (
	taskReport     = 0x7f   // TASK_REPORT: running to parked
	taskIdle       = 0x402  // TASK_IDLE: TASK_UNINTERRUPTIBLE | TASK_NOLOAD
	taskReportIdle = 0x80   // TASK_REPORT_IDLE
	taskRTLockWait = 0x1000 // TASK_RTLOCK_WAIT (5.15+)
	taskFrozen     = 0x8000 // TASK_FROZEN (6.1+)
	taskUninterr   = 0x2    // TASK_UNINTERRUPTIBLE
)

// stateLetter is the letter fs/proc/array.c shows for a task's state and
// exit state.
func stateLetter(state, exit uint32) byte {
	s := (state | exit) & taskReport
	if state&taskIdle == taskIdle {
		s = taskReportIdle
	}
	if state&(taskRTLockWait|taskFrozen) != 0 {
		s = taskUninterr
	}
	return "RSDTtXZPI"[bits.Len32(s)]
}
