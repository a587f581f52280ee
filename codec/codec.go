package codec

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
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
	// Confirm asks the member it is sent to (by unicast) what it knows of
	// Target, which the sender is about to declare dead: the receiver
	// answers with an Evidence. It is the indirect confirmation of SWIM.
	Confirm
	// Evidence answers a Confirm: when the sender last heard Target and
	// last probed it successfully.
	Evidence
	// Obituary tells the group that Target failed: it stopped announcing,
	// a probe of it failed and no member asked could vouch for it.
	Obituary

	// The kinds below belong to the ping protocol and the state transfer
	// of docs/design/frugal.md. They go only, by unicast, to members that
	// said they answer pings (Pings); a pir version older than them counts
	// them malformed.

	// Ping asks the member it is sent to, at the address its datagrams
	// come from, to answer at once with an Ack that echoes Nonce: the
	// direct probe of SWIM, on the Group's own socket.
	Ping
	// Ack answers a Ping with its Nonce. Who says the acker does not know
	// the pinger.
	Ack
	// Offer answers a Query, by unicast: the sender offers the querier its
	// member table, Pages pages long, to be pulled with Cookie.
	Offer
	// Pull asks the sender of an Offer for page Page of its table, with
	// the Offer's Cookie.
	Pull
	// Page answers a Pull: page Page of Pages of the sender's table, the
	// members in Entries.
	Page
)

func (k Kind) String() string {
	switch k {
	case Announce:
		return "announce"
	case Query:
		return "query"
	case Goodbye:
		return "goodbye"
	case Confirm:
		return "confirm"
	case Evidence:
		return "evidence"
	case Obituary:
		return "obituary"
	case Ping:
		return "ping"
	case Ack:
		return "ack"
	case Offer:
		return "offer"
	case Pull:
		return "pull"
	case Page:
		return "page"
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
	// receiver may keep it. Always nil in a Confirm, an Evidence and an
	// Obituary.
	Meta map[string]string

	// Target is the member a Confirm, an Evidence or an Obituary is about;
	// empty in the other kinds, which leave Health and Comms empty.
	Target string
	// Since, in a Confirm, is how recent evidence must be to count: the
	// sender's probe that failed started this long before it sent the
	// Confirm. In an Obituary, the sender's first failed ping of Target
	// started this long before it sent the Obituary; zero in an obituary
	// of the older rule, which carries none. Whole milliseconds on the
	// wire.
	Since time.Duration
	// Probe, in a Confirm, asks the receiver to probe Target at once when
	// its own evidence is older than Since, and to send a second Evidence
	// when that probe succeeds.
	Probe bool
	// Extended, from Decode, says that the sender wrote the message in a
	// form only pir's extensions write (a six-field pipe message, an
	// authenticated envelope): the sender is no original pir peer, and
	// answers Confirm. A codec that cannot tell leaves it false. Given to
	// Encode, it asks for that form even where the original's would do,
	// so that receivers learn the sender speaks the extensions.
	Extended bool

	// Heard and Probed, in an Evidence, are how long before sending it the
	// sender last heard an announcement of Target and last probed Target
	// successfully; negative when it never has (or does not know Target).
	// Whole milliseconds on the wire.
	Heard, Probed time.Duration
	// Failed, in an Evidence, says that the sender's own check of Target,
	// which the Confirm's Probe asked for, failed.
	Failed bool

	// Pings, in an Announce or a Query, says that the sender answers
	// Pings (and takes the other kinds of the ping protocol). A message
	// without it comes from an original or older pir peer, or from a
	// member that pings nobody.
	Pings bool
	// Version, in an Announce, a Query, a Ping and an Ack, is the version
	// of the sender's record: it grows with every change of the sender's
	// URIs, metadata or HealthFails. Zero when the sender gives none.
	Version uint32
	// HealthFails, in an Announce or a Query, is the sender's count of
	// consecutive failed checks of its own health, from 0. At most
	// 2^31-1; negative is invalid.
	HealthFails int
	// Interval, in an Announce or a Query, is the sender's current
	// announce interval. Whole seconds on the wire, rounded up; zero (or
	// negative, to Encode) when the sender gives none.
	Interval time.Duration

	// Nonce, in a Ping, is a random number that the Ack answering it
	// carries back.
	Nonce uint32
	// Who, in an Ack, says that the acker does not know the pinger's ID:
	// the pinger should send it its announcement.
	Who bool

	// Cookie, in an Offer, a Pull and a Page, binds the pulls and pages of
	// one state transfer to the Offer that started it.
	Cookie [8]byte
	// Page, in a Pull and a Page, is the number of a page of the table,
	// from 0. Pages, in an Offer and a Page, is how many pages the table
	// has, at most MaxPages; in a Page, Page < Pages.
	Page, Pages int
	// Entries, in a Page, are members of the sender's table: at most
	// MaxEntries. A decoder allocates a new slice for each Page; the
	// receiver may keep it.
	Entries []Entry
}

// Entry is one member in a Page: what the sender of the Page knows of it.
type Entry struct {
	// ID is the member's ID.
	ID string
	// Addr is the source address of the member's datagrams as the sender
	// knows it. Zero when the sender has none to give: the entry of the
	// sender itself, whose address is the Page's source.
	Addr netip.AddrPort
	// Health and Comms are the member's URIs, as in a Message.
	Health, Comms string
	// Meta is the member's metadata, nil when it has none.
	Meta map[string]string
	// Version, HealthFails and Pings are the member's, as its own
	// Announce gave them (see Message).
	Version     uint32
	HealthFails int
	Pings       bool
	// Extended says that the member speaks pir's extensions (see
	// Message.Extended): it answers Confirm.
	Extended bool
	// Suspect says that the sender's health policy judges the member
	// Suspect. An entry without it is a member the sender holds healthy.
	Suspect bool
}

// MaxPages is the most pages a state transfer may have (Message.Pages):
// room for a table far beyond any Group's MaxPeers, whatever its metadata.
// A decoder refuses more as malformed, so that a receiver can size what it
// keeps per page without trusting the sender.
const MaxPages = 1 << 16

// MaxEntries is the most entries a Page may carry: more than fit in a
// codec.MaxDatagram datagram (an entry takes at least 10 bytes). Encode
// refuses more with ErrTooLarge (the sender should make smaller pages),
// Decode as ErrMalformed (no sender writes such a page), so that a codec
// given a larger MaxSize still allocates a bounded slice.
const MaxEntries = 256

// HasTarget reports whether messages of kind k are about another member,
// Message.Target, rather than about their sender.
func (k Kind) HasTarget() bool { return k == Confirm || k == Evidence || k == Obituary }

// Codec turns messages into datagrams and back.
//
// A Codec is safe for concurrent use. Encode appends to dst and returns the
// extended slice, so that a caller can reuse one buffer. Decode fills m and
// must not keep b: the caller reuses its receive buffer.
//
// Decode never panics, whatever b holds. It returns an error wrapping
// ErrMalformed for bytes that are not a message of this codec, and may wrap
// other sentinels of its own (for example an authentication failure),
// declared with NewDropError, so that callers can count drops by reason
// (see DropReasoner).
type Codec interface {
	Encode(dst []byte, m *Message) ([]byte, error)
	Decode(b []byte, m *Message) error
}

var (
	// ErrMalformed reports bytes that do not decode to a message. Its drop
	// reason is "malformed".
	ErrMalformed = NewDropError("malformed", "codec: malformed message")
	// ErrInvalid reports a message that cannot be encoded: an empty or
	// ill-formed field.
	ErrInvalid = errors.New("codec: invalid message")
	// ErrTooLarge reports a message whose encoding exceeds the codec's
	// size limit. Its drop reason is "oversize".
	ErrTooLarge = NewDropError("oversize", "codec: message too large")
)

// MaxDatagram is the size limit, in bytes, of a codec whose configuration
// gives none: an IPv6 datagram in a 1500-byte Ethernet frame (1500 - 40
// IPv6 header - 8 UDP header). transport.MaxDatagram is the same number.
const MaxDatagram = 1452

// DropReasoner is implemented by the errors Decode returns, and by the
// sentinels they wrap, that name why a datagram was refused: a short
// snake_case word such as "malformed", "oversize" or "replay". A receiver
// counts drops by reason with errors.As, without knowing the codec; the
// first DropReasoner in an error's chain names its reason. The discovery
// package counts the reasons its DropReason type names, and any other
// under "rejected".
type DropReasoner interface {
	error
	DropReason() string
}

// NewDropError returns an error whose text is text and whose DropReason is
// reason. Codecs declare their sentinel errors with it and wrap them with
// fmt.Errorf("%w: ...") to add detail; errors.Is and errors.As both work
// on the result.
func NewDropError(reason, text string) error {
	return &dropError{reason: reason, text: text}
}

type dropError struct{ reason, text string }

func (e *dropError) Error() string      { return e.text }
func (e *dropError) DropReason() string { return e.reason }

// NameChecker is implemented by codecs that limit the group names and
// member IDs they can carry: CheckGroup and CheckID report why name or id
// cannot be sent. A Group's Config.Validate calls them on its Name and
// Self.ID.
type NameChecker interface {
	CheckGroup(name string) error
	CheckID(id string) error
}
