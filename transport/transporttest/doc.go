// Package transporttest checks that a transport.Transport keeps the
// promises the interface makes, as golang.org/x/net/nettest checks a
// net.Conn. Every implementation runs the same suite from its tests:
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, func(t *testing.T, n int) []transport.Transport {
//			... return n members of one fresh group ...
//		})
//	}
//
// Run checks, each in its own subtest: that a multicast reaches every other
// member intact with its source set; that a unicast to the source of a
// received packet reaches that member and no other; that a sender may reuse
// its buffer as soon as Send returns; that a datagram longer than the
// receive buffer yields transport.ErrTruncated and never a cut datagram,
// and that receiving goes on after it; that a datagram of
// transport.MaxDatagram bytes is carried intact and one of 70000 bytes is
// refused, never partly delivered; that Close unblocks a pending Receive
// with transport.ErrClosed (and so net.ErrClosed), is idempotent, and makes
// every later call fail with transport.ErrClosed, also while other
// goroutines are sending and receiving; that concurrent sends and a
// concurrent receive neither race nor tear datagrams; and that an empty
// datagram is either refused by Send or delivered with N == 0, as UDP
// delivers it. No subtest but the last sends to a closed member, so a
// Packet with Refused set fails them. The last, for transports whose
// ReportsRefusals (transport.RefusalReporter) is true and skipped for
// others, checks that a unicast to an open member is never refused and
// that one to a member since closed comes back as a Packet with Refused
// set, N 0 and Src the member's address, never as an error.
//
// The suite asks no more of a network than loopback gives: datagrams from
// one sender to one receiver arrive, in order, when a burst is small. It
// does not assume any order across senders, and it tolerates a member
// receiving its own multicasts and a datagram arriving more than once (a
// transport that sends on several interfaces or address families may
// deliver one send twice).
//
// Every datagram the suite sends starts with a tag unique to the subtest,
// naming its sender, and fills the rest with bytes derived from that tag, so
// that a receiver spots a cut, torn or foreign datagram. Datagrams without
// the tag are logged and ignored, but MakeLAN should still give each call a
// group of its own (a fresh port, say), so that strays cannot fill queues.
//
// The suite waits for nothing longer than a few seconds: a datagram that
// does not arrive fails the test rather than hanging it. It closes every
// transport MakeLAN returned when the subtest ends, and waits for the
// goroutines it started, which Close must unblock.
package transporttest
