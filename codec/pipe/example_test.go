package pipe_test

import (
	"errors"
	"fmt"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/pipe"
)

// An announcement with no metadata is written in the original pir's four
// fields, which original peers parse; one with metadata takes the
// extended form. Decode reads both, and refuses what is not pir.
func Example() {
	var c pipe.Codec
	plain := &codec.Message{Kind: codec.Announce, Group: "abc", ID: "m1",
		Health: "tcp://198.18.0.1:4000", Comms: "tcp://10.1.1.1:12000"}
	b, err := c.Encode(nil, plain)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", b)

	tagged := *plain
	tagged.Meta = map[string]string{"zone": "eu-1"}
	if b, err = c.Encode(nil, &tagged); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", b)

	var m codec.Message
	if err := c.Decode(b, &m); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Kind, m.Group, m.ID, m.Health, m.Meta["zone"])

	err = c.Decode([]byte("GET / HTTP/1.1\r\n"), &m)
	fmt.Println(errors.Is(err, codec.ErrMalformed))
	// Output:
	// abc|m1|tcp://198.18.0.1:4000|tcp://10.1.1.1:12000
	// abc|m1|tcp://198.18.0.1:4000|tcp://10.1.1.1:12000|ann|zone=eu-1
	// announce abc m1 tcp://198.18.0.1:4000 eu-1
	// true
}
