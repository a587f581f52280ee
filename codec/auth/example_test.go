package auth_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/pirlan/pir/codec"
	"github.com/pirlan/pir/codec/auth"
	"github.com/pirlan/pir/codec/pipe"
)

// Two members share a key; a third has another key and cannot read what
// they send, nor can anyone replay it.
func Example() {
	shared := bytes.Repeat([]byte{0x42}, 32) // in real use: auth.NewKey(), kept in a key file
	newMember := func(key []byte) *auth.Codec {
		keys, err := auth.NewKeyring(key)
		if err != nil {
			panic(err)
		}
		c, err := auth.New(pipe.Codec{}, auth.Config{Keys: keys})
		if err != nil {
			panic(err)
		}
		return c
	}
	alice, bob := newMember(shared), newMember(shared)
	eve := newMember(bytes.Repeat([]byte{0x66}, 32))

	b, err := alice.Encode(nil, &codec.Message{Kind: codec.Announce, Group: "web", ID: "alice",
		Health: "tcp://198.18.0.2:37821", Comms: "tcp://198.18.0.2:80"})
	if err != nil {
		panic(err)
	}
	fmt.Println("envelope:", strings.HasPrefix(string(b), auth.Prefix), "with", strings.Count(string(b), "|"), "'|'")

	var m codec.Message
	err = bob.Decode(b, &m)
	fmt.Println("bob:", m.ID, m.Health, err)

	err = eve.Decode(b, &m)
	fmt.Println("eve:", errors.Is(err, auth.ErrUnknownKey))

	err = bob.Decode(b, &m)
	fmt.Println("bob again:", errors.Is(err, auth.ErrDuplicate)) // at once: a copy; later: ErrReplay

	// A peer without authentication is not heard either.
	plain, _ := pipe.Codec{}.Encode(nil, &codec.Message{Kind: codec.Announce, Group: "web", ID: "mallory",
		Health: "tcp://198.18.0.9:1", Comms: "tcp://198.18.0.9:2"})
	err = bob.Decode(plain, &m)
	fmt.Println("plain:", errors.Is(err, auth.ErrUnauthenticated))
	// Output:
	// envelope: true with 0 '|'
	// bob: alice tcp://198.18.0.2:37821 <nil>
	// eve: true
	// bob again: true
	// plain: true
}
