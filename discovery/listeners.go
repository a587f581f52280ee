package discovery

import "github.com/pirlan/pir/internal/eventq"

// subscriber delivers events to one Listener from a goroutine of its own
// (internal/eventq). Its queue has no bound: events are never dropped, and
// their number is bounded by membership churn, which MaxPeers bounds.
type subscriber = eventq.Subscriber[Event]

func newSubscriber(l Listener) *subscriber { return eventq.New[Event](l) }
