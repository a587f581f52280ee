// Package transport defines how pir moves datagrams: the Transport
// interface, the Packet a receive describes, and optional interfaces that
// richer transports implement.
//
// Implementations live in subpackages: multicast, IPv4 and IPv6 multicast
// on real interfaces (pir's own wire, as the original pir); mdns, multicast
// DNS and DNS-SD, which publishes each member as a service instance that
// avahi-browse, python-zeroconf and the like see, and browses for others; and mem,
// an in-memory LAN for tests and examples. Package transporttest holds the
// conformance suite every implementation must pass.
//
// A Transport carries opaque bytes; framing and meaning belong to a
// codec.Codec. Transports never keep a caller's buffer and never block a
// sender for longer than the kernel takes to queue a datagram.
package transport
