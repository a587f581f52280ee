// Package mcast owns the multicast sockets of pir's two multicast
// transports, transport/multicast and transport/mdns, so that they set up
// sockets, read control messages, list interfaces, choose links and rescan
// them the same way:
//
//   - Socket: one UDP socket of one address family, bound to the wildcard
//     address, optionally sharing its port with other sockets and programs
//     (SharedPort); reads report each datagram's destination address and
//     arrival interface (IP_PKTINFO, IPV6_RECVPKTINFO) where the platform
//     gives them; writes choose the outgoing interface, or the source
//     address and interface with a control message (WriteFrom). On
//     Linux, ReportRefusals makes it report the ICMP errors about the
//     datagrams it sent (IP_RECVERR): ReadFrom returns each as a
//     *QueuedError, and Refused tells a port unreachable from the
//     destination itself.
//   - Interfaces, Choose and LinkAddr: the host's interfaces with their
//     addresses and on-link prefixes, which of them to use for one family,
//     and the address a member advertises on each.
//   - Membership: one socket joined to one group on the chosen links,
//     brought up to date by Update at each rescan.
//   - RescanLoop and Watcher: when to rescan. On Linux a Watcher listens
//     to the kernel's notices of link and address changes (an rtnetlink
//     socket) and RescanLoop rescans after each burst of them, polling
//     only as a slow safety net; elsewhere RescanLoop polls.
//
// It is internal: the transports' public APIs are the promise, not this
// package's.
package mcast
