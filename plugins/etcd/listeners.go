package etcd

import (
	"sync"

	"github.com/pirlan/pir/discovery"
)

// subscriber delivers events to one discovery.Listener from a goroutine of
// its own, as discovery.Group does: events queue without bound (their number
// is bounded by membership churn) and a slow listener delays only itself.
type subscriber struct {
	fn discovery.Listener

	mu      sync.Mutex
	queue   []discovery.Event
	wake    chan struct{} // capacity 1: "the queue may be non-empty"
	stopped bool          // no more deliveries: unsubscribed
	closing bool          // deliver what is queued, then exit: Close
}

func newSubscriber(fn discovery.Listener) *subscriber {
	return &subscriber{fn: fn, wake: make(chan struct{}, 1)}
}

// push queues e without blocking.
func (s *subscriber) push(e discovery.Event) {
	s.mu.Lock()
	if !s.stopped {
		s.queue = append(s.queue, e)
	}
	s.mu.Unlock()
	s.signal()
}

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// stop ends deliveries at once.
func (s *subscriber) stop() {
	s.mu.Lock()
	s.stopped = true
	s.queue = nil
	s.mu.Unlock()
	s.signal()
}

// finish lets the subscriber deliver what is queued, then exit.
func (s *subscriber) finish() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.signal()
}

// run delivers events until stopped, or until finished and drained. remove
// is called when the listener unsubscribes itself by returning false.
func (s *subscriber) run(remove func()) {
	for range s.wake {
		for {
			s.mu.Lock()
			if s.stopped || len(s.queue) == 0 {
				done := s.stopped || s.closing
				s.mu.Unlock()
				if done {
					return
				}
				break
			}
			e := s.queue[0]
			s.queue[0] = discovery.Event{}
			s.queue = s.queue[1:]
			s.mu.Unlock()

			if !s.fn(e) {
				s.stop()
				remove()
				return
			}
		}
	}
}
