// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// The acceptance tests run workloads of known size in child processes:
// the test binary itself, re-executed with CRMON_TEST_WORKLOAD set. The
// child waits for one byte on stdin, so that the parent can place it in
// every cgroup hierarchy before it does any work.
//
// With CRMON_TEST_SPIN set, the test binary is a burner of fixed work
// instead (spin).
func TestMain(m *testing.M) {
	if n := os.Getenv("CRMON_TEST_SPIN"); n != "" {
		if err := spin(n, os.Getenv("CRMON_TEST_SPIN_CPU")); err != nil {
			fmt.Fprintln(os.Stderr, "spin:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("CRMON_TEST_WORKLOAD") != "" {
		if err := workload(); err != nil {
			fmt.Fprintln(os.Stderr, "workload:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	removeBuiltImages()
	os.Exit(code)
}

// workload burns CRMON_TEST_CPU seconds of CPU, writes CRMON_TEST_DIRECT_BYTES
// with O_DIRECT to CRMON_TEST_FILE and sends CRMON_TEST_SEND_BYTES to
// CRMON_TEST_SEND_ADDR, each when set; what the kernel counted for the
// connection goes to CRMON_TEST_SEND_RESULT (sendEnv).
func workload() error {
	var b [1]byte
	if _, err := os.Stdin.Read(b[:]); err != nil {
		return fmt.Errorf("waiting for the go: %w", err)
	}
	if s := os.Getenv("CRMON_TEST_CPU"); s != "" {
		secs, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		burn(time.Duration(secs * float64(time.Second)))
	}
	if s := os.Getenv("CRMON_TEST_DIRECT_BYTES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		if err := writeDirect(os.Getenv("CRMON_TEST_FILE"), n); err != nil {
			return err
		}
	}
	if s := os.Getenv("CRMON_TEST_SEND_BYTES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		sent, err := testenv.SendTCP(os.Getenv("CRMON_TEST_SEND_ADDR"), n, time.Minute)
		if err != nil {
			return err
		}
		b, err := json.Marshal(sent)
		if err != nil {
			return err
		}
		if err := os.WriteFile(os.Getenv("CRMON_TEST_SEND_RESULT"), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// burn spins until this thread has used d of CPU time.
func burn(d time.Duration) {
	var ts unix.Timespec
	x := 0
	for {
		for i := 0; i < 1e6; i++ {
			x += i
		}
		unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
		if time.Duration(ts.Nano()) >= d {
			break
		}
	}
	_ = x
}

// spinArgv is a command that does n xorshift rounds of fixed work on one
// CPU (the test binary re-executed as a burner, see spin): about 0.8 s of
// CPU per 480e6 rounds on this project's CI host.
func spinArgv(t *testing.T, n uint64) []string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cpu := ""
	if c := quietCPU(); c >= 0 {
		cpu = strconv.Itoa(c)
	}
	return []string{"env", "CRMON_TEST_SPIN=" + strconv.FormatUint(n, 10), "CRMON_TEST_SPIN_CPU=" + cpu, self}
}

// spin does n rounds of a xorshift, on CPU cpu when it is set. Fixed work
// in registers, unlike a shell loop, takes the same CPU time whatever the
// caches hold: 15 runs of 0.4 s beside stress-ng --cpu 1 --io 1 spread
// 8 % pinned to the quiet CPU, a shell loop 48 % on the same CPU.
func spin(n, cpu string) error {
	rounds, err := strconv.ParseUint(n, 10, 64)
	if err != nil {
		return err
	}
	if cpu != "" {
		c, err := strconv.Atoi(cpu)
		if err != nil {
			return err
		}
		// The affinity is the thread's: keep the loop on this thread.
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(c)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pinning to CPU %d: %w", c, err)
		}
	}
	x := uint64(88172645463325252)
	for range rounds {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	if x == 0 { // never: a xorshift of a non-zero seed stays non-zero
		return errors.New("xorshift reached 0")
	}
	return nil
}

// quietCPU is the CPU, of those this process may run on, that has handled
// the fewest device interrupts since boot, or -1 when /proc/interrupts
// cannot tell. On a kernel without CONFIG_IRQ_TIME_ACCOUNTING (this
// project's CI host) an interrupt's time is charged to the task it
// interrupted: a burner on the CPU that takes the disk's interrupts used
// up to 25 % more CPU time beside stress-ng --io 1 than the same burner
// on the other CPU (median of 10 runs 0.498 s against 0.424 s, max
// 0.625 s against 0.437 s).
func quietCPU() int {
	b, err := os.ReadFile("/proc/interrupts")
	if err != nil {
		return -1
	}
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return -1
	}
	lines := strings.Split(string(b), "\n")
	var cpus []int // column -> CPU number
	for _, f := range strings.Fields(lines[0]) {
		n, err := strconv.Atoi(strings.TrimPrefix(f, "CPU"))
		if err != nil {
			return -1
		}
		cpus = append(cpus, n)
	}
	sums := make([]uint64, len(cpus))
	for _, l := range lines[1:] {
		label, rest, ok := strings.Cut(l, ":")
		if _, err := strconv.Atoi(strings.TrimSpace(label)); !ok || err != nil {
			continue // per-CPU interrupts (LOC, RES, …) fall on every CPU alike
		}
		for i, f := range strings.Fields(rest) {
			if i == len(cpus) {
				break
			}
			n, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				break
			}
			sums[i] += n
		}
	}
	best := -1
	for i, c := range cpus {
		if allowed.IsSet(c) && (best < 0 || sums[i] < sums[best]) {
			best = i
		}
	}
	if best < 0 {
		return -1
	}
	return cpus[best]
}

// writeDirect writes n bytes in 1 MiB O_DIRECT writes and fsyncs: every
// byte reaches the block layer once, issued by this process.
func writeDirect(path string, n int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|syscall.O_DIRECT, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	const chunk = 1 << 20
	raw := make([]byte, chunk+4096)
	off := 4096 - int(uintptr(unsafe.Pointer(&raw[0]))&4095)
	buf := raw[off : off+chunk]
	for i := range buf {
		buf[i] = byte(i)
	}
	for done := 0; done < n; done += chunk {
		if _, err := f.Write(buf[:min(chunk, n-done)]); err != nil {
			return fmt.Errorf("O_DIRECT write: %w", err)
		}
	}
	return f.Sync()
}

// sendEnv is the environment of a workload that sends n bytes to addr,
// and a function that reads, once it has, what its TCP stack counted.
func sendEnv(t *testing.T, addr string, n int) ([]string, func() testenv.TCPSent) {
	t.Helper()
	result := filepath.Join(t.TempDir(), "sent.json")
	env := []string{"CRMON_TEST_SEND_BYTES=" + strconv.Itoa(n), "CRMON_TEST_SEND_ADDR=" + addr, "CRMON_TEST_SEND_RESULT=" + result}
	return env, func() testenv.TCPSent {
		t.Helper()
		var s testenv.TCPSent
		b, err := os.ReadFile(result)
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		if err != nil {
			t.Fatalf("the sender's TCP counters: %v", err)
		}
		return s
	}
}

// countingListener listens on addr ("127.0.0.1:0", "<bridge>:0") and
// counts the bytes of the first connection it accepts; the count arrives
// on the channel when the sender closes (-1 if accepting failed).
func countingListener(t *testing.T, addr string) (net.Listener, <-chan int64) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		got <- n
	}()
	return ln, got
}
