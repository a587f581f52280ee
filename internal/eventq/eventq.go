// Package eventq delivers events to one listener from a goroutine of its
// own: discovery.Group's listeners, and those of plugins that offer the
// same listener API.
package eventq

import "sync"

// Subscriber queues events for one listener function and delivers them in
// order from the goroutine that calls Run. Its queue has no bound: events
// are never dropped, and a slow listener delays only itself. The
// publisher's own bound (membership churn) bounds the queue.
type Subscriber[E any] struct {
	fn func(E) bool

	mu      sync.Mutex
	queue   []E
	wake    chan struct{} // capacity 1: "the queue may be non-empty"
	stopped bool          // no more deliveries; set by Stop
	closing bool          // deliver what is queued, then exit; set by Finish
}

// New returns a Subscriber that delivers to fn; fn returns false to
// unsubscribe.
func New[E any](fn func(E) bool) *Subscriber[E] {
	return &Subscriber[E]{fn: fn, wake: make(chan struct{}, 1)}
}

// Push queues e without blocking. After Stop it does nothing.
func (s *Subscriber[E]) Push(e E) {
	s.mu.Lock()
	if !s.stopped {
		s.queue = append(s.queue, e)
	}
	s.mu.Unlock()
	s.signal()
}

func (s *Subscriber[E]) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Stop ends deliveries at once (unsubscribe): what is queued is dropped.
func (s *Subscriber[E]) Stop() {
	s.mu.Lock()
	s.stopped = true
	s.queue = nil
	s.mu.Unlock()
	s.signal()
}

// Finish lets the subscriber deliver what is queued, then Run returns
// (the publisher is closing).
func (s *Subscriber[E]) Finish() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.signal()
}

// Run delivers events until Stop, or until Finish and the queue is drained.
// remove is called when the listener unsubscribes itself by returning
// false.
func (s *Subscriber[E]) Run(remove func()) {
	var zero E
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
			s.queue[0] = zero
			s.queue = s.queue[1:]
			s.mu.Unlock()

			if !s.fn(e) {
				s.Stop()
				remove()
				return
			}
		}
	}
}
