// Package mdns is a transport.Transport over multicast DNS (RFC 6762) and
// DNS service discovery (RFC 6763): pir members show up in avahi-browse,
// python-zeroconf and the like, and a pir Group finds services that other
// software advertises (e2e TestMDNSAvahiInterop runs a real avahi-daemon
// both ways, and this package's interop tests python-zeroconf).
//
// A Conn is a message boundary of its own: it does not carry another
// codec's datagrams. A discovery.Group over it encodes its messages with
// the Conn's Codec, which the Conn returns as its DefaultCodec
// (transport.DefaultCodec), so a Config over mDNS needs no Codec. The Conn
// reads the messages Send is given, publishes the member they describe as
// a DNS-SD service instance and answers queries for it, browses the
// service type, and hands Receive messages, in the same Codec, that it
// synthesizes from the instances it finds. Its messages about another
// member (confirmations, evidence, obituaries) travel between Conns
// opaquely (see Opaque datagrams below). Codec's bytes are private to
// pir's Group and Conn, and are documented in Codec.
//
// Config.Group must be the Group's name:
//
//	tr, err := mdns.New(mdns.Config{Group: "web"})
//	...
//	g, err := discovery.Join(ctx, discovery.Config{Name: "web", Transport: tr, Self: self})
//
// DNS records are not authenticated, so there is nothing a Conn could
// publish for a group whose messages are signed (codec/auth): Send refuses
// bytes that are not messages of Codec with ErrNotMessage, so that Join
// with another codec fails at once. With Config.Opaque, Send carries such
// bytes opaquely instead: members with the same codec still reach each
// other over the mDNS port, but nothing is published as DNS-SD, and other
// software sees nothing of them. The transport conformance suite, whose
// datagrams are no messages, runs with Opaque.
//
// # Names
//
// A Conn of group G publishes its member under the service type
// Config.Service, "_pir._udp" by default, and under the subtype of its
// group (RFC 6763 §7.1):
//
//	_pir._udp.local.              PTR  INSTANCE._pir._udp.local.
//	_G._sub._pir._udp.local.      PTR  INSTANCE._pir._udp.local.
//	INSTANCE._pir._udp.local.     SRV  0 0 PORT HOST.local.
//	INSTANCE._pir._udp.local.     TXT  "txtvers=1" "id=ID" "g=G" "health=URI" "comms=URI" "m.KEY=VALUE"...
//	HOST.local.                   A    each IPv4 address of the link
//	HOST.local.                   AAAA each IPv6 address of the link
//
// The subtype label is "_" and the group name, bytes other than ASCII
// letters, digits and '-' replaced by '-', in lower case; when that
// changes the name, or makes it longer than a DNS label allows (63 bytes),
// the label is cut and ends with '-' and eight hex digits of the SHA-256
// of the name, so that groups "Web", "web!" and "web" get distinct labels.
// The TXT key g holds the exact name and is what receivers match. A
// service name (the "pir" of "_pir._udp") follows RFC 6763 §7.2: at most
// 15 letters, digits and hyphens; Config.Validate refuses another.
//
// By default a Conn browses its group's subtype, so only the group's
// members answer. With Config.Service set, say "_http._tcp", it publishes
// its member as an _http._tcp instance (still with the group subtype) and
// browses the whole type, so that every HTTP service on the link becomes a
// member, whatever published it; pir members of other groups (TXT g) are
// left out unless Config.AllGroups is set.
//
// INSTANCE is Config.Instance, or else the member's ID. HOST is
// Config.HostName, or else this machine's host name, "-pir-" and eight hex
// digits of the SHA-256 of the member's ID: each Conn claims a host name
// of its own, never the one avahi or another responder on the host owns.
// Both names are probed for before they are used (RFC 6762 §8.1), three
// probes 250 ms apart. When another responder answers with different
// records, or wins the tiebreak of simultaneous probes (§8.2), the Conn
// takes the next name, "INSTANCE (2)", "INSTANCE (3)"... and HOST-2,
// HOST-3..., and probes again. Then it sends two announcements a second
// apart (§8.3). A conflict after that (another responder's records for our
// names, §9) sends it back to probing. Records of ours that a change (an
// Update) replaced less than 2 s before are no other responder's: they are
// our own announcement, come back through the loopback after the change
// (TestStaleRecordsNoConflict).
//
// # TXT record
//
// Keys, in this order: txtvers=1; id, the member's ID; g, the group name;
// health and comms, its URIs; then its metadata, sorted by key, as
// m.KEY=VALUE. Each string is at most 255 bytes: a metadata pair longer
// than that is not published (and logged); an ID, group or URI that does
// not fit makes Send fail with transport.ErrTooLarge. TXT keys are
// compared without case (RFC 6763 §6.4), so metadata keys that differ
// only in case reach receivers as one.
//
// A URI whose host is a link's address, as a Group writes it for each
// link (transport.LinkSender) when the member listens on every address
// (0.0.0.0 or [::]), is published with HOST.local in its place, so that the
// TXT record is the same on every link and family; receivers put back the
// address they resolved. A URI that names the same address through every
// link (a comms URI given as tcp://192.0.2.7:8080, say) is published as it
// is, even through the link whose address it names
// (TestPublishedTXTSameOnEveryLink). A member that listens on 0.0.0.0 is
// sent only on IPv4 links, and then publishes only A records, so that
// receivers use IPv4.
//
// # Synthesized messages
//
// Receive returns, for each browsed instance whose SRV and TXT records
// (and its host's addresses, where needed) are in the cache, an Announce
// of group Config.Group, encoded with Codec, whose ID, HEALTH, COMMS and
// metadata are:
//
//   - An instance whose TXT record has an id key is a pir member: ID, HEALTH
//     and COMMS are its id, health and comms values, metadata its m.*
//     pairs. A .local host name in a URI becomes an address of that host.
//     An instance whose g differs from the Conn's group is ignored, unless
//     Config.AllGroups.
//   - Any other instance is foreign software. ID is its instance label made
//     printable (letters, digits, '.', '_' and '-' kept, other bytes
//     '-'), cut to 40 bytes, then '-' and eight hex digits of the SHA-256
//     of its full name in lower case: "My Printer" gives
//     "My-Printer-1a2b3c4d", the same on every host and every run. COMMS
//     is tcp://ADDR:PORT or udp://ADDR:PORT, the protocol from the service
//     type and the port from the SRV record. HEALTH is mdns://ADDR:PORT:
//     the service is healthy while it is advertised, whether or not
//     anything listens on its port, so its membership follows what mDNS
//     says (records, TTLs, goodbyes) and never flaps with a probe.
//     Metadata is the TXT record, every key=value pair as it is. Its
//     message decodes with Extended false (it cannot answer pir's
//     confirmations); every other message with Extended true.
//
// ADDR is an address of the SRV target: the one chosen before while it is
// valid, else one of the family the instance was heard over (IPv4 first),
// a global or unique-local address before a link-local one (which gets the
// zone of the interface it was heard on). Metadata is dropped, longest
// first, until the message fits Config.SynthMax.
//
// Packet.Src is the responder that last spoke for the instance (its
// address and port 5353); Packet.IfIndex the interface that brought it.
//
// An instance is delivered when it appears or changes, and again every
// Config.Heartbeat while its records live, so that a Group, which removes
// members it does not hear for its ExpireAfter, keeps it. A goodbye of its
// PTR or SRV record (TTL 0, RFC 6762 §10.1) is delivered as a Goodbye,
// from the source its announcements were delivered from (a Group takes a
// goodbye only from there), so the Group removes the member with reason
// goodbye,
// once it is checked: anyone on the link can send a record with TTL 0, so
// the Conn asks for the instance's PTR, SRV and TXT records, at once and
// again 250 ms later, in a one-shot query from its ephemeral port (§6.7),
// which responders answer by unicast at once, echoing its ID (the limit
// of one multicast per record and second, §6, does not apply). If such an
// answer brings the records back with a TTL, the goodbye was forged (or the
// responder is back): it is dropped and counted (Stats.Refuted), and the
// instance stays. If none has come 500 ms after the goodbye, it is
// delivered; while it is checked, the instance's mdns:// probes still
// pass. A real goodbye thus removes the member half a second after it was
// sent rather than at once.
//
// Only a direct answer to that query counts, never records multicast
// meanwhile: python-zeroconf 0.47 holds its multicast answers for up to
// 1.5 s to aggregate them and sends those it queued before its goodbye
// after it, with their full TTLs. Records that name an instance whose
// goodbye was delivered likewise bring it back only if it answers the same
// check: a service registered again does, stale answers of a responder
// that left do not (they are counted in Stats.Stale). When an instance's
// records expire without a goodbye (the responder crashed or left the
// link), heartbeats stop and the Group expires it.
//
// Queries are not delivered: the Conn answers them itself.
//
// # Probing foreign services
//
// No default prober serves mdns:// or tcpconnect://: no probe at all, or a
// bare connect, would let anyone who can send a pir announcement on some
// other transport join with them. Conn.Probers returns the probers of both
// schemes, and a discovery.Group whose Config.Prober is nil registers them
// (the Conn implements healthcheck.SchemeProvider). mdns:// passes only a
// target that is the health URI the Conn synthesized for a foreign
// instance it delivered, that has not said goodbye (or whose goodbye is
// being checked) and whose SRV record is alive; tcpconnect:// passes only
// such an instance's address, and then connects to it. Both fail with
// ErrNotFound otherwise, without touching the network. The Conn gives no
// instance a tcpconnect:// URI: an application that wants to know whether
// a found service listens probes its address with tcpconnect:// apart,
// and shows the answer beside the membership, not as one. An application
// that gives the Group a Prober of its own registers Conn.Probers in it to
// admit foreign services; pir members found over mDNS announce their own
// tcp://, udp:// or http:// URIs and need nothing more.
//
// # What Send does with messages
//
// An Announce or Query of the Conn's group publishes the member, or
// updates its records and announces them again when they changed (RFC
// 6762 §8.4); a Query also queries the browsed name within 20-120 ms, so
// that a joining Group hears existing members at once. A passive Query
// (no URIs, from a watcher) only queries. A Goodbye withdraws the records:
// it multicasts them all with TTL 0 (§10.1). Announces that change nothing
// send nothing: the records are announced again after 80 % of their TTL,
// and queriers refresh them (§5.2).
//
// # Opaque datagrams
//
// Messages of Codec that publish nothing (about another member, or of
// another group), and with Config.Opaque any bytes that are not messages
// of Codec, up to MaxRaw (8909) bytes, travel as a DNS response (ID 0, flags QR and AA) with one
// answer: the name _pir-raw._udp.local, type 0xFF70 (private use, RFC 6895
// §3.1), class IN, TTL 0, and the bytes as rdata. Byte by byte, 43 bytes
// then the datagram:
//
//	00 00 84 00 00 00 00 01 00 00 00 00      header: ID 0, QR AA, 1 answer
//	08 "_pir-raw" 04 "_udp" 05 "local" 00    name (21 bytes)
//	ff 70 00 01 00 00 00 00 LL LL            type, class IN, TTL 0, length
//	...                                      the datagram (LL LL bytes)
//
// A receiver accepts any ID and flags as long as QR is set and the opcode
// and response code are zero, and a class with the cache-flush bit; the
// counts, name, type and length must be exactly these. It is sent from an
// ephemeral port, not 5353, so that other mDNS software ignores it (RFC
// 6762 §11 makes them drop responses from other ports, and a private type
// is skipped anyway), and so that Packet.Src names exactly one Conn for
// SendTo. Receivers deliver its rdata as it is.
//
// # Protocol details
//
// The Conn joins 224.0.0.251 and ff02::fb, port 5353, on each interface,
// sharing the port with other responders (SO_REUSEADDR, SO_REUSEPORT), and
// sends with IP TTL 255 (RFC 6762 §11). It drops responses whose source is
// not on the link they arrived on, or not from port 5353. It answers
// queries for the service type, the subtype, the instance's SRV and TXT,
// the host's A and AAAA, and service type enumeration
// (_services._dns-sd._udp.local, RFC 6763 §9), with the additional
// records RFC 6763 §12 lists. It omits answers the query lists as known
// answers with at least half their TTL (§7.1), waiting 400-500 ms for the
// rest of a query with the TC bit (§7.2). A question with the
// unicast-response bit is answered by unicast when the record was
// multicast on the link within a quarter of its TTL, by multicast
// otherwise (§5.4); a query from a port other than 5353 gets a legacy
// unicast response with its ID and question and TTLs of at most 10 s
// (§6.7). A multicast answer holding a shared (PTR) record waits 20-120 ms;
// no record is multicast on a link twice within a second, a quarter second
// when defending a name against a probe (§6). Probes and queries go out
// without the unicast-response bit: several responders share port 5353 on
// one host and a unicast answer would reach only one of them (§15.1).
//
// The cache keeps records of the browsed type and its instances' hosts,
// up to 4096, until their TTL runs out. A received TTL is cut to the
// normal values of §10: 120 s for SRV, A and AAAA records, 75 minutes for
// PTR and TXT, so that no record holds its place longer. When the cache is
// full, a new record makes room: the records received longest ago that
// describe no delivered instance (instances that never resolved, a flood
// of forged PTR records, pir members of other groups) are evicted, 256 at
// a time (Stats.Evicted); only when every record describes a delivered
// instance is the new one refused (Stats.CacheFull). A record with the
// cache-flush bit expires, within a second, the records of its set
// received more than a second earlier (§10.2); a goodbye expires its
// record in a second (§10.1), the instance itself being checked as above. Records of live instances are queried again at 80, 85, 90 and
// 95 % of their TTL (§5.2); a missing SRV, TXT or address is asked for
// (at most four times a second apart). The browse query repeats at
// intervals doubling from 1 s to an hour, listing the instances known as
// known answers.
//
// Messages are at most Config.MaxMessage bytes (1452 by default, a
// 1500-byte frame over IPv6): larger responses are split over several
// messages, larger queries too, with the TC bit (§7.2). Received messages
// up to 9000 bytes are accepted; larger ones, and anything that is not a
// DNS message, are dropped and counted in Stats, never an error. A message
// is read record by record: records of types the transport does not use
// (NSEC, HINFO...) are skipped unread, so the NSEC records python-zeroconf
// 0.47 writes, whose type bitmap begins with an empty block, cost nothing;
// a PTR, SRV, TXT, A or AAAA record whose data does not fit its type is
// left out and counted (Stats.BadRecords), and the rest of the message is
// used; only a message whose framing breaks (a
// header, question or record header running past its end, a name that
// does not decompress) is dropped whole.
// Not implemented: negative responses (NSEC, §6.1), duplicate question
// and answer suppression (§7.3, §7.4), passive observation of failures
// (§10.5), and probing anew on an interface that appears (the Conn only
// announces there).
//
// Records are published with Config.TTL, 120 s by default, which RFC 6762
// §10 recommends for SRV and address records (it suggests 75 minutes for
// PTR and TXT; pir uses 120 s for them too, so that a crashed member
// leaves every cache, pir's and other software's, within two minutes).
//
// # Lifecycle
//
// New opens the sockets and starts the goroutines: a reader per socket
// (two per address family), the engine that owns the publication, the
// cache and the timers, and the interface check: on Linux when the kernel
// reports a link or address change (rtnetlink notices; about 20 ms after a
// burst of them, at most once a second) and once a minute as a safety
// net, elsewhere, or without the notices, every Config.RescanInterval (5 s
// by default). Close sends goodbyes for what the Conn published
// (unless Config.SilentClose), so a Group's Close over mDNS looks like its
// Leave to the others, then closes the sockets, which unblocks Receive
// with an error wrapping transport.ErrClosed, and waits for every
// goroutine. It is idempotent. All methods are safe for concurrent use.
//
// Synthesized messages wait for Receive in a queue of 256; when it is full
// they are dropped and counted (a heartbeat repeats them), so that a
// caller that does not receive never stalls the responder. Raw datagrams
// wait for Receive as a multicast.Conn's do.
package mdns
