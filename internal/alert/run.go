// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"sync/atomic"

	"github.com/crmon-dev/crmon/internal/agent"
)

// Service is the alert engine fed by the agent's sample stream, handing
// what to notify to the current dispatcher, which a reload may replace.
type Service struct {
	Engine *Engine
	disp   atomic.Pointer[Dispatcher]
}

// NewService makes a service; SetDispatcher sets where notifications go.
func NewService(e *Engine, d *Dispatcher) *Service {
	s := &Service{Engine: e}
	s.disp.Store(d)
	return s
}

// SetDispatcher replaces the dispatcher and returns the old one, for the
// caller to close.
func (s *Service) SetDispatcher(d *Dispatcher) *Dispatcher { return s.disp.Swap(d) }

// Dispatcher is the current dispatcher.
func (s *Service) Dispatcher() *Dispatcher { return s.disp.Load() }

// Run evaluates every sample of sub until it is closed. Evaluation and
// queueing never wait on a channel, so Run keeps up with the ticks; if it
// did not, the subscription would drop the oldest samples, counted.
func (s *Service) Run(sub *agent.Subscription) {
	for smp := range sub.C() {
		ns := s.Engine.Eval(smp.Metrics)
		if d := s.disp.Load(); d != nil {
			for _, n := range ns {
				d.Notify(n)
			}
		}
	}
}
