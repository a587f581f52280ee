package etcd

import (
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/internal/eventq"
)

// subscriber delivers events to one discovery.Listener from a goroutine of
// its own, as discovery.Group does (internal/eventq). Its queue has no
// bound: events come from etcd, written by the group's own Mirrors, and
// their number is bounded by the group's churn; a slow listener delays only
// itself.
type subscriber = eventq.Subscriber[discovery.Event]

func newSubscriber(l discovery.Listener) *subscriber {
	return eventq.New(l, eventq.Policy[discovery.Event]{})
}
