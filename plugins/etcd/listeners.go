package etcd

import (
	"github.com/pirlan/pir/discovery"
	"github.com/pirlan/pir/internal/eventq"
)

// subscriber delivers events to one discovery.Listener from a goroutine of
// its own, as discovery.Group does (internal/eventq): events queue without
// bound (their number is bounded by membership churn) and a slow listener
// delays only itself.
type subscriber = eventq.Subscriber[discovery.Event]

func newSubscriber(l discovery.Listener) *subscriber { return eventq.New[discovery.Event](l) }
