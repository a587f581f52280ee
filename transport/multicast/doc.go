// Package multicast is a transport.Transport over UDP multicast on real
// interfaces, IPv4 or IPv6, and a dual-stack combination of both.
//
// # Defaults
//
// A zero Config gives IPv4 multicast to 224.0.0.1, port 9999
// (DefaultGroupV4, DefaultPort), with a TTL of 1 so that announcements
// stay on the local link, multicast loopback on so that members on one
// host see each other, datagrams of at most transport.MaxDatagram (1452)
// bytes, and interfaces checked for changes every 5 s. With Network "udp6"
// the group is ff02::8070:6972 (DefaultGroupV6), a link-local scoped group
// whose ID lies in the range RFC 3307 leaves to dynamic allocation, so no
// IANA assignment collides with it.
//
// 224.0.0.1 is the all-hosts group: every multicast-capable host on the
// link receives every datagram sent to it, and drops it in the kernel when
// nothing listens on the port. It is the default only because the original
// pir used it, so that old and new peers find each other. New deployments
// should use an administratively scoped group (RFC 2365), such as
// 239.255.112.105, which only hosts that joined it receive, and which
// IGMP-snooping switches forward only to them; for IPv6, a group of their
// own in ff02::/16, or ff05::/16 for a site.
//
// # Interfaces
//
// A Conn sends on, and joins the group on, every interface that is up,
// multicast-capable and has an address of the Conn's family. Loopback is
// used only when no other interface qualifies, which is what a host with
// no network, or a test inside a private network namespace, has; members
// on one host reach each other through multicast loopback on the real
// interface otherwise. Config.Interfaces names the interfaces to use
// instead, loopback or not.
//
// Interfaces change: a goroutine checks them and joins the group on
// interfaces that appear or come up, leaves it on those that go down or
// vanish, and updates each link's address. On Linux it checks when the
// kernel reports a link or address change (rtnetlink notices: about 20 ms
// after a burst of them, at most once a second), and otherwise only once
// a minute as a safety net; elsewhere, or without the notices, it polls
// every Config.RescanInterval (5 s by default). Rescan does it at once. A
// named interface that does not exist yet is picked up when it appears. A send that fails on one interface (one that went down
// since the last check, say) is logged at Debug and counted in Stats; Send
// fails only when it failed on every interface, or with ErrNoInterface
// when there is none.
//
// Links and SendVia (transport.LinkSender) send on one interface at a time,
// with the address a member advertises to peers reached through it: for
// IPv4 the interface's first address that is neither link-local nor
// loopback; for IPv6 a global or unique-local address when it has one, else
// its link-local address with the interface's name as zone.
//
// # Sockets
//
// A Conn holds two sockets. One is bound to the group port on the wildcard
// address, with SO_REUSEADDR (and SO_REUSEPORT where needed), so that
// several members, in one process or several, and the original pir, which
// used net.ListenMulticastUDP, can share the port; it joins the group on
// each interface and receives the group's datagrams, and on Linux it is
// told to receive only the groups it joined. The other is bound to an
// ephemeral port: every datagram is sent from it, Send's and SendTo's, and
// it receives unicast. A datagram's source is therefore unique to its
// sender, and SendTo to the Src of a received packet reaches exactly that
// member, even when several share the group port on one host. The
// interface of each multicast is chosen with IP_MULTICAST_IF under a lock,
// which works the same on every platform.
//
// Two goroutines, one per socket, read datagrams into buffers of their own
// and hand them to Receive, which copies each into the caller's buffer or,
// when it does not fit, drops it and returns transport.ErrTruncated.
// Packet.IfIndex is the interface a datagram arrived on where the platform
// reports it (Linux, the BSDs, macOS), and 0 on Windows. An IPv6
// link-local source carries its zone, the interface's name, so a reply with
// SendTo goes back out the same link.
//
// # Refusals
//
// On Linux the unicast socket has IP_RECVERR (IPV6_RECVERR), so that the
// kernel reports the ICMP errors that come back about the datagrams it
// sends. When a SendTo reaches an address where nothing listens on the
// port, such as the unicast port of a member that was killed, the host
// there answers with an ICMP port unreachable, and Receive returns a
// transport.Packet with Refused set, N 0 and Src the refused address,
// about one round trip after the send (ReportsRefusals, the optional
// transport.RefusalReporter). Only a port or host unreachable sent by the
// destination itself counts; other ICMP errors, such as a router's, and
// errors of local origin are read, dropped and counted in
// Stats.ErrorsDropped. Refusals are never returned as errors. Linux limits
// the ICMP errors a host sends (net.ipv4.icmp_ratelimit and
// icmp_msgs_per_sec, and their IPv6 counterparts), so a flood of datagrams
// to a closed port is refused only in part. Other platforms report ICMP
// errors only to connected sockets: there ReportsRefusals is false and no
// Refused packet is delivered.
//
// # Dual stack and IPv6 only
//
// A Conn is one family. NewDual opens an IPv4 and an IPv6 Conn as one
// Transport: Send sends on both, so a dual-stack peer receives each
// announcement twice, once per family; Receive returns what either
// receives; Links lists both families' links, and SendVia picks the family
// of the link's address. For an IPv6-only host, use New with Network
// "udp6": nothing IPv4 is opened.
//
// # Lifecycle
//
// New starts the reader goroutines and the interface check. Close closes
// both sockets, which unblocks Receive with an error wrapping
// transport.ErrClosed, and waits for every goroutine; it is idempotent.
// All methods are safe for concurrent use.
package multicast
