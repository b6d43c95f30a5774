// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package runner

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crmon-dev/crmon/internal/testenv"
)

// The test binary doubles as the workload of known size: run with
// CRMON_WORKLOAD set, TestMain does the work and exits instead of testing.
//
//	CRMON_WORKLOAD_CPU      seconds of CPU to burn (by getrusage)
//	CRMON_WORKLOAD_WRITE    bytes to write with O_DIRECT into CRMON_WORKLOAD_DIR
//	CRMON_WORKLOAD_SEND     bytes to send over TCP to CRMON_WORKLOAD_ADDR
//	CRMON_WORKLOAD_RESULT   file to write the workload's own rusage to (JSON)
func TestMain(m *testing.M) {
	if os.Getenv("CRMON_WORKLOAD") == "1" {
		if err := workload(); err != nil {
			fmt.Fprintln(os.Stderr, "workload:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	testenv.RemoveCgroupParent()
	os.Exit(code)
}

// testParent is the cgroup the tests make their cgroups under.
const testParent = testenv.CgroupParent

type workloadResult struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	Written    int64   `json:"written"`
	Sent       int64   `json:"sent"`
	// TCP is what the kernel counted for the connection that sent them.
	TCP testenv.TCPSent `json:"tcp"`
}

func rusageSeconds() float64 {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func workload() error {
	var res workloadResult
	if s := os.Getenv("CRMON_WORKLOAD_WRITE"); s != "" {
		n, _ := strconv.ParseInt(s, 10, 64)
		if err := directWrite(os.Getenv("CRMON_WORKLOAD_DIR"), n); err != nil {
			return err
		}
		res.Written = n
	}
	if s := os.Getenv("CRMON_WORKLOAD_SEND"); s != "" {
		n, _ := strconv.ParseInt(s, 10, 64)
		tcp, err := testenv.SendTCP(os.Getenv("CRMON_WORKLOAD_ADDR"), n, time.Minute)
		if err != nil {
			return err
		}
		res.TCP = tcp
		res.Sent = n
	}
	if s := os.Getenv("CRMON_WORKLOAD_CPU"); s != "" {
		want, _ := strconv.ParseFloat(s, 64)
		x := 1.0
		for rusageSeconds() < want {
			for i := 0; i < 1_000_000; i++ {
				x = x*1.0000001 + 1e-9
			}
		}
		_ = x
	}
	res.CPUSeconds = rusageSeconds()
	if p := os.Getenv("CRMON_WORKLOAD_RESULT"); p != "" {
		b, _ := json.Marshal(res)
		return os.WriteFile(p, b, 0o644)
	}
	return nil
}

// directWrite writes n bytes (a multiple of 4 KiB) with O_DIRECT, so every
// byte goes to the device while the workload runs, and removes the file.
func directWrite(dir string, n int64) error {
	p := filepath.Join(dir, fmt.Sprintf("direct-%d", os.Getpid()))
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_DIRECT, 0o600)
	if err != nil {
		return fmt.Errorf("opening %s: %w", p, err)
	}
	defer os.Remove(p)
	defer unix.Close(fd)
	const block = 1 << 20
	raw := make([]byte, block+4096)
	off := 4096 - int(uintptr(unsafe.Pointer(&raw[0]))&4095)
	buf := raw[off : off+block]
	for i := range buf {
		buf[i] = byte(i)
	}
	for left := n; left > 0; {
		k, err := unix.Write(fd, buf[:min(int64(block), left)])
		if err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		left -= int64(k)
	}
	return unix.Fsync(fd)
}
