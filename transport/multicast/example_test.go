package multicast_test

import (
	"fmt"
	"net/netip"

	"github.com/pirlan/pir/transport/multicast"
)

// Two members on one host: a multicasts to the group, and b, which hears
// it, answers by unicast to the datagram's source, as a pir member answers
// a query. Both use only the loopback interface here, with IPv4
// multicast on lo, which this package's tests set up inside a private
// network namespace (internal/netlab); on a real host, name your LAN
// interface or leave Interfaces empty for every one.
func Example() {
	cfg := multicast.Config{
		Group:      netip.MustParseAddrPort("224.0.0.1:9999"),
		Interfaces: []string{"lo"},
	}
	a, err := multicast.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	b, err := multicast.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	for _, l := range a.Links() {
		fmt.Println("link:", l.Name)
	}

	if err := a.Send([]byte("hello")); err != nil {
		fmt.Println(err)
		return
	}
	buf := make([]byte, 1500)
	p, err := b.Receive(buf)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("b: %q from a's port: %t\n", buf[:p.N], p.Src.Port() == a.LocalAddr().Port())
	fromA := p.Src
	// a hears its own datagram too (loopback is on by default, so that
	// members on one host meet); discovery.Group drops such copies.
	if p, err = a.Receive(buf); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("a: %q (its own)\n", buf[:p.N])

	if err := b.SendTo([]byte("hello back"), fromA); err != nil {
		fmt.Println(err)
		return
	}
	if p, err = a.Receive(buf); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("a: %q from b's port: %t\n", buf[:p.N], p.Src.Port() == b.LocalAddr().Port())
	// Output:
	// link: lo
	// b: "hello" from a's port: true
	// a: "hello" (its own)
	// a: "hello back" from b's port: true
}
