package codec

import (
	"errors"
	"fmt"
)

// Kind says what a message asks of its receivers.
type Kind uint8

const (
	// Announce says "I am a member, here is how to reach me". It is the
	// only kind the original pir knows.
	Announce Kind = iota + 1
	// Query is an announcement that also asks every member that hears it
	// to answer at once with its own announcement, so that a new member
	// learns the group in one round trip.
	Query
	// Goodbye says the sender is leaving the group now.
	Goodbye
)

func (k Kind) String() string {
	switch k {
	case Announce:
		return "announce"
	case Query:
		return "query"
	case Goodbye:
		return "goodbye"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Message is what peers tell each other. Its fields are plain strings so
// that a decoder can fill it without parsing URIs; the receiver parses a
// URI only when it differs from the one it already knows.
type Message struct {
	Kind Kind
	// Group is the name of the group the sender belongs to.
	Group string
	// ID identifies the sender. It is unique within the group: a UUID
	// version 4 by default.
	ID string
	// Health is the URI receivers probe, e.g. tcp://198.18.0.2:37821.
	// Empty in a Goodbye.
	Health string
	// Comms is the URI the application talks to, e.g. tcp://10.1.1.1:80.
	// Empty in a Goodbye.
	Comms string
	// Meta is the sender's metadata. Nil when it has none. A decoder
	// allocates a new map for each message that carries metadata; the
	// receiver may keep it.
	Meta map[string]string
}

// Codec turns messages into datagrams and back.
//
// A Codec is safe for concurrent use. Encode appends to dst and returns the
// extended slice, so that a caller can reuse one buffer. Decode fills m and
// must not keep b: the caller reuses its receive buffer.
//
// Decode never panics, whatever b holds. It returns an error wrapping
// ErrMalformed for bytes that are not a message of this codec, and may wrap
// other sentinels of its own (for example an authentication failure) so
// that callers can count drops by reason.
type Codec interface {
	Encode(dst []byte, m *Message) ([]byte, error)
	Decode(b []byte, m *Message) error
}

var (
	// ErrMalformed reports bytes that do not decode to a message.
	ErrMalformed = errors.New("codec: malformed message")
	// ErrInvalid reports a message that cannot be encoded: an empty or
	// ill-formed field.
	ErrInvalid = errors.New("codec: invalid message")
	// ErrTooLarge reports a message whose encoding exceeds the codec's
	// size limit.
	ErrTooLarge = errors.New("codec: message too large")
)
