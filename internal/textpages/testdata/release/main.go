// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

// Command release calls textpages.Release on itself, then runs code and
// reads data it had not touched since: TestReleasePIE builds it as a
// position-independent executable, whose relocated read-only data
// (.data.rel.ro, made read-only after relocation) must survive.
package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"regexp"
	"runtime"

	"github.com/crmon-dev/crmon/internal/textpages"
)

type shape interface{ area() float64 }

type square struct{ side float64 }

func (s square) area() float64 { return s.side * s.side }

func main() {
	if _, err := textpages.Release("/proc"); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
	var shapes []shape
	for i := range 1000 {
		shapes = append(shapes, square{float64(i)})
	}
	runtime.GC()
	total := 0.0
	for _, s := range shapes {
		total += s.area()
	}
	re := regexp.MustCompile(`^(\d+)-(\d+)$`)
	fmt.Printf("%.0f %q %x\n", total, re.FindStringSubmatch("12-34"), sha256.Sum256([]byte("crmon")))
}
