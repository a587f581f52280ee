// Package eventq delivers events to one listener from a goroutine of its
// own: discovery.Group's listeners, and those of plugins that offer the
// same listener API.
//
// A listener's queue is bounded, so that a listener that is slow, or never
// returns, costs a bounded amount of memory however fast events come: the
// Policy merges the events that describe the latest state of a subject (at
// most one pending per subject and class, the newest winning) and drops,
// counting them, the events beyond its Limit.
package eventq

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// Class says how an event queues among the pending events of its subject.
type Class uint8

const (
	// Keep events are queued in order and never replaced (a member
	// joined).
	Keep Class = iota
	// End events are queued in order after the pending events of class
	// Merge (and above) of their subject are dropped: those describe a
	// subject that is gone (a member left). Keep events stay, so a subject
	// that comes and goes before the listener looks is still seen to come
	// and go, in order.
	End
	// Merge and the classes above it (Merge+1, ...) are merged: at most one
	// event of each such class is pending per subject. A new one replaces
	// the pending one, Policy.Merge combining them, and goes to the back of
	// the queue, so that the listener sees a subject's events in the order
	// of their latest change.
	Merge
)

// Policy says how a Subscriber queues events. The zero Policy keeps every
// event, without bound.
type Policy[E any] struct {
	// Classify returns an event's subject and class. Nil means every
	// event is Keep.
	Classify func(E) (subject string, c Class)
	// Merge combines a pending event with a newer one of the same subject
	// and class into the one to deliver. Nil means the newer one.
	Merge func(pending, newer E) E
	// Limit is the most events pending at once. An event that merges with
	// none and would go beyond it is dropped. Zero means no limit.
	Limit int
	// Dropped, when set, is called for each event dropped at Limit;
	// Merged for each pending event replaced by a newer one or dropped by
	// an End. Both are called with the Subscriber's lock held: they must
	// be quick and must not call the Subscriber.
	Dropped, Merged func()
}

// node is one pending event, in a doubly linked list so that a merged
// event leaves its place at once: a subject toggled for ever while the
// listener sleeps then holds one node, not a growing trail of dead ones.
type node[E any] struct {
	e          E
	subject    string
	class      Class
	prev, next *node[E]
}

// Subscriber queues events for one listener function and delivers them in
// order from the goroutine that calls Run. A slow listener delays only
// itself, and its queue holds at most Policy.Limit events.
type Subscriber[E any] struct {
	fn  func(E) bool
	pol Policy[E]

	mu      sync.Mutex
	root    node[E]               // sentinel of the pending list: root.next is the oldest
	n       int                   // events pending
	merged  map[string][]*node[E] // pending events of class Merge and above, by subject
	wake    chan struct{}         // capacity 1: "the queue may be non-empty"
	stopped bool                  // no more deliveries; set by Stop
	closing bool                  // deliver what is queued, then exit; set by Finish

	gid  atomic.Uint64 // the goroutine running Run, once it started
	done chan struct{} // closed when Run returns
}

// New returns a Subscriber that delivers to fn, queuing as p says; fn
// returns false to unsubscribe.
func New[E any](fn func(E) bool, p Policy[E]) *Subscriber[E] {
	s := &Subscriber[E]{fn: fn, pol: p, wake: make(chan struct{}, 1), done: make(chan struct{})}
	s.root.next, s.root.prev = &s.root, &s.root
	return s
}

// Push queues e without blocking. After Stop it does nothing.
func (s *Subscriber[E]) Push(e E) {
	s.mu.Lock()
	if !s.stopped {
		s.push(e)
	}
	s.mu.Unlock()
	s.signal()
}

func (s *Subscriber[E]) push(e E) {
	subject, c := "", Keep
	if s.pol.Classify != nil {
		subject, c = s.pol.Classify(e)
	}
	switch {
	case c == End:
		for _, n := range s.merged[subject] {
			s.unlink(n)
			s.count(s.pol.Merged)
		}
		delete(s.merged, subject)
	case c >= Merge:
		pend := s.merged[subject]
		for i, n := range pend {
			if n.class != c {
				continue
			}
			if s.pol.Merge != nil {
				e = s.pol.Merge(n.e, e)
			}
			s.unlink(n)
			s.count(s.pol.Merged)
			if pend = append(pend[:i], pend[i+1:]...); len(pend) == 0 {
				delete(s.merged, subject)
			} else {
				s.merged[subject] = pend
			}
			break
		}
	}
	if s.pol.Limit > 0 && s.n >= s.pol.Limit {
		s.count(s.pol.Dropped)
		return
	}
	n := &node[E]{e: e, class: c}
	if c >= Merge {
		n.subject = subject
		if s.merged == nil {
			s.merged = make(map[string][]*node[E])
		}
		s.merged[subject] = append(s.merged[subject], n)
	}
	n.prev, n.next = s.root.prev, &s.root
	s.root.prev.next = n
	s.root.prev = n
	s.n++
}

func (s *Subscriber[E]) count(f func()) {
	if f != nil {
		f()
	}
}

// unlink takes n out of the pending list (not out of merged).
func (s *Subscriber[E]) unlink(n *node[E]) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
	s.n--
}

// pop takes the oldest pending event. s.mu must be held and s.n > 0.
func (s *Subscriber[E]) pop() E {
	n := s.root.next
	s.unlink(n)
	if n.class >= Merge {
		pend := s.merged[n.subject]
		for i, m := range pend {
			if m == n {
				pend = append(pend[:i], pend[i+1:]...)
				break
			}
		}
		if len(pend) == 0 {
			delete(s.merged, n.subject)
		} else {
			s.merged[n.subject] = pend
		}
	}
	return n.e
}

// Len returns the number of events pending.
func (s *Subscriber[E]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *Subscriber[E]) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Stop ends deliveries at once (unsubscribe): what is queued is dropped.
// An event being delivered is not interrupted: Run returns after it.
func (s *Subscriber[E]) Stop() {
	s.mu.Lock()
	s.stopped = true
	s.root.next, s.root.prev = &s.root, &s.root
	s.n = 0
	s.merged = nil
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

// Done returns a channel closed when Run has returned.
func (s *Subscriber[E]) Done() <-chan struct{} { return s.done }

// Calling reports whether the calling goroutine is the one delivering s's
// events: whether the listener itself is calling, from inside its
// function. A publisher's Close uses it not to wait for the listener that
// called it.
func (s *Subscriber[E]) Calling() bool {
	id := s.gid.Load()
	return id != 0 && id == goid()
}

// Run delivers events until Stop, or until Finish and the queue is drained.
// remove is called when the listener unsubscribes itself by returning
// false.
func (s *Subscriber[E]) Run(remove func()) {
	defer close(s.done)
	s.gid.Store(goid())
	for range s.wake {
		for {
			s.mu.Lock()
			if s.stopped || s.n == 0 {
				done := s.stopped || s.closing
				s.mu.Unlock()
				if done {
					return
				}
				break
			}
			e := s.pop()
			s.mu.Unlock()

			if !s.fn(e) {
				s.Stop()
				remove()
				return
			}
		}
	}
}

// goid returns the calling goroutine's ID, which the first line of its
// stack trace gives ("goroutine 18 [running]:"). Go offers no other way;
// it is called once per listener and once per Close, never per event.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}
