// Package memberlist carries a pir group across routers: a
// transport.Transport that wraps a member's LAN transport (multicast) and
// relays its datagrams, by UDP unicast, to the members of other sites that
// github.com/hashicorp/memberlist finds.
//
// Multicast stays on its link: a router does not forward it. Members on
// different LANs therefore never hear each other, although unicast between
// them is routed. With this package every pir member is also a memberlist
// node. Memberlist's gossip, over unicast, tells each member which other
// members exist, on which site (Config.Site, carried in memberlist's node
// metadata) and where each receives relayed datagrams. Send multicasts on
// the LAN as before, through Config.Inner, and sends the same bytes to
// every node of another site; Receive returns what the LAN and the relay
// bring. A pir Group on any site thus hears every member's announcements,
// queries, answers and goodbyes with their URIs and metadata, and probes
// every member's health URI directly, by unicast across the routers.
//
//	site A (multicast)                 site B (multicast)
//	  a1 ─┐                               ┌─ b1
//	  a2 ─┴── relay: UDP unicast ────────┴─ b2     (every member to every
//	          memberlist: gossip over unicast        member of the other sites)
//
// # What crosses, and what does not
//
// Datagrams are relayed unchanged, by the member that sends them: nothing
// is re-encoded and nothing is relayed twice, so there are no loops, and a
// codec/auth envelope stays authentic, its sequence number intact. Members
// of one site relay nothing to each other (they hear each other on the
// LAN), so a datagram reaches each member once. A relayed datagram's
// source (Packet.Src) is the sender's relay address: its own IP address,
// so discovery's default check that a health URI names its announcement's
// source address (see discovery.Config.ForeignHealthHosts) passes when
// members advertise that address. The relay socket accepts datagrams only
// from the relay address of a node memberlist knows alive (or that left
// less than 5 s ago: a goodbye it relayed just before its leave may be read
// after memberlist's news of it): anything else
// arriving there is dropped and counted (Stats.RelayDropped), so that a
// host that is not a memberlist node cannot inject members through it.
// (Joining memberlist is open to anyone who reaches it unless
// Config.SecretKey is set: set it where the network between sites is not
// trusted.) A Group answers a query with Send, like any announcement, so
// the answer is relayed to every site; SendTo (confirmation requests and
// evidence) sends through the relay socket when the destination is a
// node's relay address, and through Inner otherwise.
//
// pir decides membership, not memberlist: a member on another site joins
// when its announcement arrives and its health probe succeeds, and leaves
// on a goodbye, after failed probes (a crash) or when its announcements
// stop. Memberlist only says where to relay; a node it declares dead is
// relayed to no more.
//
// Health URIs must name an address that the other sites can reach: an
// unspecified host (tcp://0.0.0.0:port) is refused by discovery.Join, since
// Conn is not a transport.LinkSender.
//
// # Seeds
//
// Each member joins the memberlist cluster through Config.Seeds, the
// memberlist addresses of a few nodes, at least one on another site. Seeds
// that are down or not yet started are tried again every
// Config.RejoinInterval, so sites start in any order and heal after a
// partition. Without Inner, Conn is a plain memberlist transport: every
// member relays to every other, and no multicast is needed at all.
//
// # Lifecycle and concurrency
//
// New opens the relay socket, starts memberlist and tries the seeds once.
// Close leaves the cluster (bounded by Config.LeaveTimeout), shuts
// memberlist down, closes the relay socket and Inner, and waits for the
// goroutines the Conn started: one reading the relay socket, one reading
// Inner, one rejoining seeds. It is idempotent. The discovery.Group that
// a Conn is given to owns it and closes it. All methods are safe for
// concurrent use.
//
// See docs/plugins/memberlist.md in the pir repository for the design, the
// alternatives and measured timings, and the example directory for a
// program that wires it up.
package memberlist
