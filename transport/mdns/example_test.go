package mdns_test

import (
	"fmt"
	"time"

	"github.com/pirlan/pir/codec"

	"github.com/pirlan/pir/transport/mdns"
)

// Two Conns of the group "web" on one host: a publishes its member as a
// DNS-SD service instance, b browses and hands Receive a pir announcement
// of it, then a goodbye once a says goodbye. A discovery.Group does the
// encoding and decoding itself (Config.Transport); this shows what passes
// through the transport. Both use only the loopback interface, which this
// package's tests set up for multicast inside a private network namespace
// (internal/netlab); on a real host, leave Interfaces empty.
func Example() {
	cfg := mdns.Config{Group: "web", Network: "udp4", Interfaces: []string{"lo"}}
	a, err := mdns.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	b, err := mdns.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	// A bound against a hang only: the answer comes within a second.
	stop := time.AfterFunc(time.Minute, func() { b.Close() })
	defer stop.Stop()

	var c mdns.Codec
	send := func(m *codec.Message) {
		out, err := c.Encode(nil, m)
		if err == nil {
			err = a.Send(out)
		}
		if err != nil {
			fmt.Println(err)
		}
	}
	// next returns the next message about member id of the given kind
	// that b receives; b's heartbeats repeat announcements meanwhile.
	next := func(kind codec.Kind, id string) *codec.Message {
		buf := make([]byte, mdns.MaxMessage)
		for {
			p, err := b.Receive(buf)
			if err != nil {
				fmt.Println(err)
				return nil
			}
			var m codec.Message
			if c.Decode(buf[:p.N], &m) == nil && m.Kind == kind && m.ID == id {
				return &m
			}
		}
	}

	send(&codec.Message{Kind: codec.Announce, Group: "web", ID: "m1",
		Health: "tcp://198.18.255.1:4000", Comms: "tcp://198.18.255.1:80",
		Meta: map[string]string{"role": "db"}})
	if m := next(codec.Announce, "m1"); m != nil {
		fmt.Println("b sees", m.ID, "of", m.Group, "health", m.Health, "role", m.Meta["role"])
	}
	send(&codec.Message{Kind: codec.Goodbye, Group: "web", ID: "m1"})
	if m := next(codec.Goodbye, "m1"); m != nil {
		fmt.Println("b sees", m.ID, "leave")
	}
	// Output:
	// b sees m1 of web health tcp://198.18.255.1:4000 role db
	// b sees m1 leave
}
