// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package sessions

import (
	"context"
	"errors"
	"sync"

	"github.com/crmon-dev/crmon/internal/docker"
)

// eventHub shares one Docker event stream among the agent's sessions, so
// starting a session costs no round trip to the engine once the stream is
// up. It subscribes on first use and again after the stream breaks.
type eventHub struct {
	d      Docker
	mu     sync.Mutex
	live   bool
	cancel context.CancelFunc
	subs   map[*hubSub]struct{}
}

type hubSub struct {
	ch   chan docker.Event
	errc chan error
}

// subscribe returns the events from now until ctx ends. The stream is
// live when it returns.
func (h *eventHub) subscribe(ctx context.Context) (<-chan docker.Event, <-chan error) {
	s := &hubSub{ch: make(chan docker.Event, 256), errc: make(chan error, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.live {
		sctx, cancel := context.WithCancel(context.Background())
		evs, errc := h.d.Events(sctx)
		h.live, h.cancel = true, cancel
		if h.subs == nil {
			h.subs = map[*hubSub]struct{}{}
		}
		go h.fanOut(evs, errc)
	}
	h.subs[s] = struct{}{}
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
	}()
	return s.ch, s.errc
}

func (h *eventHub) fanOut(evs <-chan docker.Event, errc <-chan error) {
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
	h.live = false
	if h.cancel != nil {
		h.cancel()
	}
}

// close ends the stream.
func (h *eventHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel != nil {
		h.cancel()
	}
	h.live = false
}
