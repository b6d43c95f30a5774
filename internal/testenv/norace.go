// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

//go:build !race

package testenv

// Race is true when the tests run with the race detector, under which
// sync.Pool drops objects at random, so allocation counts mean nothing.
const Race = false
