package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/pirlan/pir/codec"
)

// Transport moves datagrams between the members of one group. It knows
// nothing of the wire format: a Codec turns messages into the bytes it
// carries.
//
// All methods are safe for concurrent use. Receive is normally called from a
// single goroutine; Send and SendTo from any number.
//
// Close releases the transport's sockets and unblocks a pending Receive,
// which then returns an error wrapping ErrClosed. Close is idempotent. After
// Close, Send and SendTo return an error wrapping ErrClosed.
type Transport interface {
	// Send multicasts b to every member of the group, on every interface
	// the transport uses. It does not keep b after it returns. A send that
	// fails on some interfaces but not all is not an error: datagrams are
	// unreliable anyway, and the transport logs or counts the failure.
	Send(b []byte) error

	// SendTo sends b to one member, by unicast. It does not keep b.
	SendTo(b []byte, dst netip.AddrPort) error

	// Receive blocks until a datagram arrives, copies it into buf and
	// describes it. A datagram longer than buf is never silently cut: it is
	// dropped and Receive returns an error wrapping ErrTruncated, after
	// which the caller may go on receiving.
	Receive(buf []byte) (Packet, error)

	// Close stops the transport and waits for anything it started.
	Close() error
}

// Packet describes one received datagram.
type Packet struct {
	// N is the number of bytes copied into the caller's buffer.
	N int
	// Src is the sender's address. An IPv6 link-local source carries its
	// zone, so that a reply can be sent back on the same link.
	Src netip.AddrPort
	// IfIndex is the index of the interface the datagram arrived on, or 0
	// when the transport cannot tell.
	IfIndex int
	// Dst is the datagram's destination address: the group's multicast
	// address for a multicast, one of ours for a unicast. It is invalid
	// when the transport cannot tell. A Group answers requests that expect
	// a unicast answer only when they came by unicast, so that a forged
	// multicast cannot make every member answer a spoofed source.
	Dst netip.Addr
	// Refused reports, instead of a datagram, that a unicast this
	// transport sent was refused: an ICMP port unreachable came back from
	// its destination, where nothing listens on the port (the member there
	// has died). Src is that destination, N is 0 and nothing was copied
	// into the buffer; IfIndex and Dst may be unset. Only transports that
	// implement RefusalReporter deliver such packets, and only when it
	// says so; a receiver that does not care about refusals skips them.
	// A refusal is as easy to forge as any ICMP message: it is a hint to
	// check sooner, not a proof.
	Refused bool
}

var (
	// ErrClosed is returned by every method of a closed Transport.
	ErrClosed = fmt.Errorf("transport closed: %w", net.ErrClosed)
	// ErrTruncated reports a received datagram larger than the buffer
	// given to Receive. The datagram is dropped.
	ErrTruncated = errors.New("transport: datagram larger than receive buffer")
	// ErrTooLarge reports a datagram larger than the transport may send.
	ErrTooLarge = errors.New("transport: datagram too large")
)

// MaxDatagram is the largest datagram a transport is expected to carry
// unless its configuration says otherwise: an IPv6 datagram in a 1500-byte
// Ethernet frame (1500 - 40 IPv6 header - 8 UDP header). It is
// codec.MaxDatagram, the size limit codecs default to, so that what a codec
// encodes by default a transport carries.
const MaxDatagram = codec.MaxDatagram

// Link is one way out of a multi-interface transport: an interface and the
// address family the transport uses on it.
type Link struct {
	// Index and Name identify the interface.
	Index int
	Name  string
	// Addr is the interface's address in the link's family that a member
	// advertises to peers reached this way: a global or unique-local address
	// when the interface has one, else its link-local address (with zone).
	// It is invalid when the interface has no usable address yet.
	Addr netip.Addr
}

// LinkSender is an optional interface for transports that send on several
// interfaces. A Group that advertises an unspecified host (0.0.0.0 or [::])
// in its URIs uses it to send each interface its own announcement, carrying
// that interface's address.
type LinkSender interface {
	// Links reports the links the transport currently sends on. The set may
	// change as interfaces come and go.
	Links() []Link
	// SendVia multicasts b to the group on one link only, from l.Addr
	// where the platform lets the sender choose its source address, so
	// that receivers see the address the announcement carries as its
	// source (a Group checks that they match).
	SendVia(b []byte, l Link) error
}

// UniqueUnicast is an optional interface for transports whose unicast
// reaches exactly one member: SendTo to the Src of a received packet
// reaches the member that sent it and no other, even when several members
// share a host, and that address closes when the member's transport
// closes. A Group pings only over such a transport. The multicast and
// in-memory transports implement it (their sources are ephemeral ports
// and endpoint addresses).
type UniqueUnicast interface {
	UnicastIsUnique() bool
}

// RefusalReporter is an optional interface for transports that report
// refused unicast: ReportsRefusals true says that Receive delivers a
// Packet with Refused set when a datagram SendTo sent reaches an address
// where nothing listens (see Packet.Refused). It is false where the
// platform or the configuration gives no such reports; a member that dies
// is then noticed only by its silence.
type RefusalReporter interface {
	ReportsRefusals() bool
}

// NeighbourConfirmer is an optional interface for transports whose
// unicast goes through the kernel's neighbour cache (ARP for IPv4,
// neighbour discovery for IPv6). A kernel hears no confirmation from UDP,
// so it lets the entry of each member a Group pings go stale about 30 s
// after resolving it, and re-probes it on the next send: two frames per
// member pinged, as many as the ping itself. A Group calls
// ConfirmNeighbour with the address of a member that has just answered
// one of its unicasts (an ack echoing its ping's nonce, proof that the
// way there works), and the transport tells the kernel so (Linux:
// MSG_CONFIRM). It is best-effort: an error changes nothing but the
// probes.
type NeighbourConfirmer interface {
	ConfirmNeighbour(dst netip.AddrPort) error
}

// DefaultCodec is implemented by transports that have a wire format of their
// own: DefaultCodec returns the codec a Group uses on the transport when its
// Config gives none. The multicast, mDNS and in-memory transports return
// pipe.Codec{}, the format of the original pir. A transport without it,
// or whose DefaultCodec returns nil, needs a Config.Codec.
type DefaultCodec interface {
	DefaultCodec() codec.Codec
}
