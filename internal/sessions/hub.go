// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/crmon-dev/crmon/internal/docker"
)

// subscribeWait is how long a session's start waits for the engine's event
// stream. A stream that is not up by then does not hold the start back:
// the session lists the containers at its end instead.
const subscribeWait = time.Second

// eventHub shares one Docker event stream among the agent's sessions, so
// starting a session costs no round trip to the engine once the stream is
// up. It connects on first use and again after the stream breaks, in the
// background: no lock is held while the engine is asked.
type eventHub struct {
	d  Docker
	mu sync.Mutex
	// connecting says a connection is being made or is live; up is closed
	// once the engine has answered it.
	connecting bool
	up         chan struct{}
	cancel     context.CancelFunc
	closed     bool
	subs       map[*hubSub]struct{}
}

type hubSub struct {
	ch   chan docker.Event
	errc chan error
}

// subscribe returns the events from now until ctx ends. live says the
// stream was up within subscribeWait; when it is not, events may have been
// missed, and the stream follows once the engine answers.
func (h *eventHub) subscribe(ctx context.Context) (<-chan docker.Event, <-chan error, bool) {
	s := &hubSub{ch: make(chan docker.Event, 256), errc: make(chan error, 1)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		s.errc <- errors.New("docker events: closed")
		return s.ch, s.errc, false
	}
	if h.subs == nil {
		h.subs = map[*hubSub]struct{}{}
	}
	h.subs[s] = struct{}{}
	if !h.connecting {
		sctx, cancel := context.WithCancel(context.Background())
		h.connecting, h.up, h.cancel = true, make(chan struct{}), cancel
		go h.connect(sctx, h.up)
	}
	up := h.up
	h.mu.Unlock()
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
	}()
	t := time.NewTimer(subscribeWait)
	defer t.Stop()
	select {
	case <-up:
		return s.ch, s.errc, true
	case <-t.C:
	case <-ctx.Done():
	}
	return s.ch, s.errc, false
}

// connect opens the stream and fans it out until it breaks.
func (h *eventHub) connect(ctx context.Context, up chan struct{}) {
	evs, errc := h.d.Events(ctx)
	h.mu.Lock()
	close(up)
	h.mu.Unlock()
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				h.broken(errors.New("docker events: stream closed"))
				return
			}
			h.mu.Lock()
			for s := range h.subs {
				select {
				case s.ch <- ev:
				default:
					// A session that cannot keep up loses the stream
					// and lists containers at its end instead.
					delete(h.subs, s)
					s.errc <- errors.New("docker events: session fell behind")
				}
			}
			h.mu.Unlock()
		case err := <-errc:
			if err == nil {
				err = errors.New("docker events: stream closed")
			}
			h.broken(err)
			return
		}
	}
}

// broken tells every subscriber the stream ended; the next subscribe
// opens a new one.
func (h *eventHub) broken(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.errc <- err
		delete(h.subs, s)
	}
	h.connecting = false
	if h.cancel != nil {
		h.cancel()
	}
}

// close ends the stream; later subscriptions fail at once.
func (h *eventHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.cancel != nil {
		h.cancel()
	}
}
