package mem_test

import (
	"fmt"

	"github.com/pirlan/pir/transport"
	"github.com/pirlan/pir/transport/mem"
)

// Two endpoints on an in-memory LAN exchange a datagram: a multicasts, b
// answers a by unicast. a also hears its own multicast, looped back as on a
// real host.
func Example() {
	lan, err := mem.NewLAN(mem.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	a, b := lan.Join(), lan.Join()
	defer a.Close()
	defer b.Close()

	buf := make([]byte, transport.MaxDatagram)
	_ = a.Send([]byte("hello"))
	p, _ := b.Receive(buf)
	fmt.Printf("b got %q from %v\n", buf[:p.N], p.Src)

	_ = b.SendTo([]byte("hi a"), p.Src)
	for range 2 {
		p, _ = a.Receive(buf)
		if p.Src == a.Addr() {
			fmt.Printf("a got %q from itself\n", buf[:p.N])
			continue
		}
		fmt.Printf("a got %q from %v\n", buf[:p.N], p.Src)
	}
	// Output:
	// b got "hello" from 198.18.0.1:7946
	// a got "hello" from itself
	// a got "hi a" from 198.18.0.2:7946
}

// A partition cuts a LAN in two; Heal joins it again. Stats tell what
// happened to every copy of every datagram.
func ExampleLAN_Partition() {
	lan, _ := mem.NewLAN(mem.Config{NoLoopback: true})
	a, b, c := lan.Join(), lan.Join(), lan.Join()
	defer a.Close()
	defer b.Close()
	defer c.Close()

	lan.Partition([]*mem.Endpoint{a}) // a alone; b and c together
	_ = a.Send([]byte("anyone?"))
	fmt.Printf("partitioned: %+v\n", lan.Stats())

	lan.Heal()
	_ = a.Send([]byte("anyone?"))
	fmt.Printf("healed:      %+v\n", lan.Stats())
	// Output:
	// partitioned: {Sent:1 Delivered:0 Received:0 Truncated:0 Lost:0 Partitioned:2 Down:0 QueueFull:0 Unknown:0 Refused:0}
	// healed:      {Sent:2 Delivered:2 Received:0 Truncated:0 Lost:0 Partitioned:2 Down:0 QueueFull:0 Unknown:0 Refused:0}
}
