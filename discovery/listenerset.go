package discovery

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pirlan/pir/internal/eventq"
)

// DefaultMaxListenerQueue is the queue bound NewListeners uses when given
// zero: 4 × the default Config.MaxPeers, what a Group with the default
// Config derives.
const DefaultMaxListenerQueue = 4 * 4096

// Listeners delivers events to listeners as a Group delivers them (see
// Listener): each listener in a goroutine of its own, one event at a time,
// from a queue of its own that merges a member's Updated and HealthChanged
// events, keeps Joined and Left in order, and drops, counting them, the
// events beyond its bound.
//
// It is for code that offers the Group's listener API over another source
// of membership, so that its listeners see events queue and merge exactly
// as a Group's do; plugins/etcd's Watcher is one. A Group does not need it.
//
// Its methods are safe for concurrent use. A listener may call any of them
// but Close.
type Listeners struct {
	maxQueue int

	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
	wg     sync.WaitGroup

	merged, dropped atomic.Uint64
}

// ListenersStats counts what a Listeners did not deliver, as Stats does for
// a Group's listeners.
type ListenersStats struct {
	// Merged counts events a listener never received because a newer
	// event of the same member replaced them in its queue, or the member
	// left.
	Merged uint64
	// Dropped counts events dropped because a listener's queue was full.
	Dropped uint64
}

// NewListeners returns a Listeners whose listeners each queue at most
// maxQueue events, as Config.MaxListenerQueue bounds a Group's; zero or
// less means DefaultMaxListenerQueue.
func NewListeners(maxQueue int) *Listeners {
	if maxQueue <= 0 {
		maxQueue = DefaultMaxListenerQueue
	}
	return &Listeners{maxQueue: maxQueue, subs: make(map[*subscriber]struct{})}
}

// Add subscribes l and returns a function that unsubscribes it, at once,
// dropping what is queued for it. l first receives replay, in order (a
// Group replays a Joined event per current member), then every event
// Emitted after Add. Returning false from l unsubscribes it too. After
// Close, Add does nothing.
func (ls *Listeners) Add(l Listener, replay ...Event) (remove func()) {
	s := newEventQueue(l, ls.maxQueue, &ls.dropped, &ls.merged)
	removeOnce := sync.OnceFunc(func() {
		ls.mu.Lock()
		delete(ls.subs, s)
		ls.mu.Unlock()
	})
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return func() {}
	}
	for _, e := range replay {
		s.Push(e)
	}
	ls.subs[s] = struct{}{}
	ls.wg.Add(1)
	go func() {
		defer ls.wg.Done()
		s.Run(removeOnce)
	}()
	return func() {
		s.Stop()
		removeOnce()
	}
}

// Emit queues e for every listener. It never blocks on a listener.
func (ls *Listeners) Emit(e Event) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for s := range ls.subs {
		s.Push(e)
	}
}

// Len returns the number of listeners subscribed.
func (ls *Listeners) Len() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.subs)
}

// Stats returns the counters of events not delivered.
func (ls *Listeners) Stats() ListenersStats {
	return ListenersStats{Merged: ls.merged.Load(), Dropped: ls.dropped.Load()}
}

// Close lets each listener receive what is queued for it, then waits for
// all of them; later Adds do nothing and later Emits reach no one. It is
// idempotent.
func (ls *Listeners) Close() {
	ls.mu.Lock()
	ls.closed = true
	subs := slices.Collect(maps.Keys(ls.subs))
	clear(ls.subs)
	ls.mu.Unlock()
	for _, s := range subs {
		s.Finish()
	}
	ls.wg.Wait()
}

// newEventQueue returns a subscriber that queues events for l as a Group's
// listeners queue them (see Group.newSubscriber), counting into dropped and
// merged.
func newEventQueue(l Listener, maxQueue int, dropped, merged *atomic.Uint64) *subscriber {
	return eventq.New(l, eventq.Policy[Event]{
		Classify: classify,
		Merge:    mergeEvents,
		Limit:    maxQueue,
		Dropped:  func() { dropped.Add(1) },
		Merged:   func() { merged.Add(1) },
	})
}
