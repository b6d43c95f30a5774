// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The acceptance tests run workloads of known size in child processes:
// the test binary itself, re-executed with CRMON_TEST_WORKLOAD set. The
// child waits for one byte on stdin, so that the parent can place it in
// every cgroup hierarchy before it does any work.
func TestMain(m *testing.M) {
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
// CRMON_TEST_SEND_ADDR, each when set.
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
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		if err := send(os.Getenv("CRMON_TEST_SEND_ADDR"), n); err != nil {
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

func send(addr string, n int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for left := n; left > 0; left -= len(buf) {
		if _, err := c.Write(buf[:min(len(buf), left)]); err != nil {
			return err
		}
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	io.Copy(io.Discard, c) // wait for the listener to finish reading
	return c.Close()
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
