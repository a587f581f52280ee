package discovery

import (
	"reflect"
	"runtime"
	"time"

	"github.com/pirlan/pir/internal/eventq"
)

// subscriber delivers events to one Listener from a goroutine of its own
// (internal/eventq). Its queue is bounded, so that a listener that is slow
// or never returns costs bounded memory however fast the network changes
// things (docs/security.md, "listener flood"):
//   - Updated and HealthChanged events merge: at most one of each is
//     pending per member. The newest wins and goes to the back of the
//     queue, with Prev from the first one pending, so that the listener
//     sees from -> to and a member's latest event carries its latest state.
//   - Joined and Left are never merged and keep their order: a member that
//     joins and leaves before the listener looks is seen to join, then
//     leave. A Left drops the member's pending Updated and HealthChanged,
//     which describe a member that is gone.
//   - Beyond Config.MaxListenerQueue events pending, an event that merges
//     with none is dropped and counted (Stats.EventsDropped).
type subscriber = eventq.Subscriber[Event]

func (g *Group) newSubscriber(l Listener) *subscriber {
	return eventq.New(l, eventq.Policy[Event]{
		Classify: classify,
		Merge:    mergeEvents,
		Limit:    g.cfg.MaxListenerQueue,
		Dropped:  func() { g.stats.eventsDropped.Add(1) },
		Merged:   func() { g.stats.eventsMerged.Add(1) },
	})
}

func classify(e Event) (member string, c eventq.Class) {
	switch e.Type {
	case Updated:
		return e.Member.ID, eventq.Merge
	case HealthChanged:
		return e.Member.ID, eventq.Merge + 1
	case Left:
		return e.Member.ID, eventq.End
	}
	return e.Member.ID, eventq.Keep
}

// mergeEvents keeps the newer event with the older one's Prev: the change
// from what the listener saw last to now.
func mergeEvents(pending, newer Event) Event {
	newer.Prev = pending.Prev
	return newer
}

// listenerName names l for ShutdownError: its function's name, such as
// "main.run.func2".
func listenerName(l Listener) string {
	if f := runtime.FuncForPC(reflect.ValueOf(l).Pointer()); f != nil {
		return f.Name()
	}
	return "listener"
}

// updateHold is a member's window of Updated rate limiting: after an
// Updated event, the member's next changes within updateWindow are applied
// at once (Members shows them) but emitted as one Updated when the window
// ends, from the member as the last Updated showed it to the member then.
// One source changing a member's announcements as fast as it can then
// costs each listener one event per window, not one per datagram.
type updateHold struct {
	seq  uint32 // names the window's task
	held bool   // a change came in the window
	prev Member // the member as the last Updated showed it, when held
}

// updateWindow is the least time between two Updated events of one
// member: half an announce interval, so that a member that changes its
// metadata once per announcement is reported at once every time.
func (g *Group) updateWindow() time.Duration { return g.cfg.AnnounceInterval / 2 }

// updated emits the Updated event of a joined member that changed from
// prev, or holds it until the member's window ends. The owner goroutine
// calls it with g.mu held.
func (g *Group) updated(id string, st *peerState, prev Member, now time.Time) {
	if h := g.holds[id]; h != nil {
		if !h.held {
			h.held, h.prev = true, prev
		}
		g.stats.updatesHeld.Add(1)
		return
	}
	g.emit(Event{Type: Updated, Member: st.member, Prev: prev, At: now})
	g.holdUpdates(id, now)
}

// holdUpdates opens a window for member id.
func (g *Group) holdUpdates(id string, now time.Time) {
	if g.holds == nil {
		g.holds = make(map[string]*updateHold)
	}
	g.holdSeq++
	g.holds[id] = &updateHold{seq: g.holdSeq}
	g.sched.push(task{at: g.at(now.Add(g.updateWindow())), kind: taskUpdate, id: id, gen: g.holdSeq})
}

// releaseUpdates ends member id's window seq: a change held in it is
// emitted now, and opens the next window. The owner goroutine calls it.
func (g *Group) releaseUpdates(id string, seq uint32, now time.Time) {
	h := g.holds[id]
	if h == nil || h.seq != seq {
		return // stale: the member left (see emit)
	}
	delete(g.holds, id)
	st := g.peers[id]
	if !h.held || st == nil || !st.joined {
		return
	}
	g.mu.Lock()
	g.emit(Event{Type: Updated, Member: st.member, Prev: h.prev, At: now})
	g.mu.Unlock()
	g.holdUpdates(id, now)
}
