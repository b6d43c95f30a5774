// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package alert

import (
	"github.com/crmon-dev/crmon/internal/agent"
)

// Service is the alert engine fed by the agent's sample stream, handing
// what to notify to its dispatcher, which a reload changes in place
// (Dispatcher.Reload), keeping what is queued.
type Service struct {
	Engine *Engine
	disp   *Dispatcher
}

// NewService makes a service that notifies through d.
func NewService(e *Engine, d *Dispatcher) *Service {
	return &Service{Engine: e, disp: d}
}

// Dispatcher is the service's dispatcher.
func (s *Service) Dispatcher() *Dispatcher { return s.disp }

// Run evaluates every sample of sub until it is closed. Evaluation and
// queueing never wait on a channel, so Run keeps up with the ticks; if it
// did not, the subscription would drop the oldest samples, counted.
func (s *Service) Run(sub *agent.Subscription) {
	for smp := range sub.C() {
		ns := s.Engine.Eval(smp.Metrics)
		if s.disp != nil {
			for _, n := range ns {
				s.disp.Notify(n)
			}
		}
	}
}
