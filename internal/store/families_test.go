// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package store

import (
	"sync"

	dto "github.com/prometheus/client_model/go"

	"github.com/crmon-dev/crmon/internal/collect"
)

// interners keep, per store under test, the series of the families the
// tests and benchmarks replay, as the agent's Points keeps them for the
// families it gathers: the same *collect.Series from tick to tick.
var interners sync.Map // *Store → *collect.Interner

// appendFamilies appends fams at t (ms) as the agent would give them to
// the store: as points of series that stay the same from one call to the
// next.
func (s *Store) appendFamilies(fams []*dto.MetricFamily, t int64) error {
	v, _ := interners.LoadOrStore(s, new(collect.Interner))
	in := v.(*collect.Interner)
	return s.appendPoints(in.AppendFamilies(nil, fams), t)
}
