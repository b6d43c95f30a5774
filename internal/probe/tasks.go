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

// Tasks lists the host's processes in one read of a BPF task iterator
// (bpf/tasks.bpf.c): some 200 ns a task, where /proc/<pid>/stat costs
// some 8 µs a process. It implements collect.ProcessLister.
type Tasks struct {
	objs tasksObjects
	link *link.Iter

	mu  sync.Mutex
	buf []byte
	cpu map[int32]uint64 // scratch: live threads' CPU by thread group
}

// NewTasks loads the task iterator.
func NewTasks() (t *Tasks, err error) {
	// A no-op on kernels that charge BPF memory to the cgroup (5.11+).
	_ = rlimit.RemoveMemlock()
	t = &Tasks{buf: make([]byte, 256<<10), cpu: map[int32]uint64{}}
	if err := loadTasksObjects(&t.objs, nil); err != nil {
		return nil, fmt.Errorf("loading the task iterator: %w", err)
	}
	t.link, err = link.AttachIter(link.IterOptions{Program: t.objs.CrmonTasks})
	if err != nil {
		t.objs.Close()
		return nil, fmt.Errorf("attaching the task iterator: %w", err)
	}
	return t, nil
}

// ListProcesses appends every process of the host to buf: its leader's
// figures, and the CPU time of all its threads.
func (t *Tasks) ListProcesses(buf []collect.ProcessStat) ([]collect.ProcessStat, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.read()
	if err != nil {
		return buf, err
	}
	return t.parse(t.buf[:n], buf)
}

// read runs the iterator into t.buf and returns how much it wrote.
func (t *Tasks) read() (int, error) {
	r, err := t.link.Open()
	if err != nil {
		return 0, fmt.Errorf("running the task iterator: %w", err)
	}
	defer r.Close()
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

// Close detaches and unloads the iterator.
func (t *Tasks) Close() error {
	return errors.Join(t.link.Close(), t.objs.Close())
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
