// Package mem is an in-memory LAN for tests and examples: a Transport that
// needs no sockets, no network namespace and no root, and whose faults
// (loss, partitions, cable pulls, full queues) a test turns on and off while
// traffic flows.
//
// A LAN is a broadcast domain. Join adds an Endpoint to it; an Endpoint is a
// transport.Transport. Send delivers a copy of the datagram to every
// endpoint on the LAN, the sender included unless Config.NoLoopback is set
// (real multicast loops datagrams back to the sending host, as
// IP_MULTICAST_LOOP does). SendTo delivers to the one endpoint with that
// address.
//
// # Addresses
//
// The n-th endpoint to join a LAN (counting from 1) gets the IPv4 address
// 198.18.0.0 + n, in the range set aside for benchmarking, and port 7946:
// 198.18.0.1:7946, 198.18.0.2:7946, ... 198.18.1.0:7946 for the 256th. An
// address is never reused on a LAN, even after its endpoint closes, so a
// stale address is simply unknown. Received packets carry the sender's
// address as Src and IfIndex 1.
//
// # Delivery
//
// Delivery is synchronous and never blocks: Send copies the datagram once
// and places it in each receiver's queue before it returns. A receiver whose
// queue holds Config.QueueLen datagrams drops further ones, as a full socket
// buffer does. There are no goroutines and no timers, so a LAN works inside
// a testing/synctest bubble, provided its endpoints are joined inside the
// bubble: a Receive waiting for a datagram is durably blocked. Datagrams
// from one sender to one receiver arrive in the order they were sent.
//
// Each datagram a sender emits becomes one copy per receiver it is meant
// for. A copy is dropped, in this order of precedence, when the sender or
// the receiver is down (Endpoint.SetDown), when they are in different
// partitions (LAN.Partition), when loss strikes (LAN.SetLoss,
// LAN.SetLinkLoss), or when the receiver's queue is full. A copy an endpoint
// sends itself, by loopback or by SendTo its own address, never crosses the
// wire: partitions and loss do not apply to it, though being down does.
// Stats counts every outcome.
//
// A datagram SendTo addresses to no open endpoint is dropped, as UDP drops
// it. With Config.Refusals, the sender also receives a refusal: a Packet
// with Refused set and Src the address, at once, as the multicast
// transport reports an ICMP port unreachable on Linux. That is how a test
// plays a member that was killed: close its endpoint.
//
// Loss is decided by a math/rand/v2 source seeded from Config.Seed, so a
// test that sends from one goroutine sees the same losses on every run.
//
// # Concurrency and lifecycle
//
// All methods of LAN and Endpoint are safe for concurrent use, and faults
// may be changed while traffic flows. Endpoint.Close removes the endpoint
// from the LAN, discards its queue and unblocks a pending Receive; it is
// idempotent. A LAN holds no resources and needs no closing.
package mem
