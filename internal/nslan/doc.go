// Package nslan builds a LAN of Linux network namespaces for end-to-end tests
// and benchmarks: N hosts, each a namespace with one interface eth0, all
// cabled to one switch, a bridge in a namespace of its own.
//
//	X-sw   br0 (stp off, forward delay 0, multicast snooping off)
//	       sw-h0 ... sw-h{N-1}: the switch ports, enslaved to br0
//	X-hI   lo, eth0 (the peer of sw-hI): 198.18.0.(I+1)/15, fd42::(I+1)/64
//	       and a link-local address; route 224.0.0.0/4 dev eth0
//
// Nothing is linked to the root namespace, so nothing a test sends can reach
// the machine's real interfaces; the only trace a lab leaves in the root
// namespace is its entries in /run/netns, which Close removes. The switch
// namespace runs with IPv6 disabled, so that the switch itself sends
// nothing. Host namespaces get their sysctls before their links exist (new
// links inherit them): no duplicate address detection (addresses are
// usable at once), addresses kept while a link is down, no reverse-path
// filter, no router solicitations.
//
// # Lifecycle
//
// New makes the lab: namespaces are named Prefix-sw and Prefix-hI, with a
// Prefix unique to the process and the lab unless the caller gives one.
// Before it creates anything it deletes stale namespaces of the same
// Prefix, and those of default-prefixed labs whose process is gone. Close
// kills every process started with Host.Start or Host.StartCommand, waits
// for them, and deletes every namespace of the lab; it is idempotent, and
// New calls it itself when it fails half-way. A test writes
//
//	l, err := nslan.New(nslan.Config{Hosts: 5, Logf: t.Logf})
//	require.NoError(t, err)
//	t.Cleanup(func() { l.Close() })
//
// # Processes
//
// Host.Command runs a program in a host's namespace (through
// nsenter --net, which execs the program, so the process ID is the
// program's). Host.Start and Host.StartCommand fork the program straight
// into the namespace instead, from a thread that enters it for the
// moment, so that a process's start is timed without nsenter's. They also
// keep the process's stdout as lines stamped with the time the lab read
// them, which a test waits on with Proc.WaitLine, and let the test
// interrupt it (SIGINT), kill it (SIGKILL) or wait for it. On Linux every such process gets SIGKILL if
// the process that started it dies.
//
// # Faults
//
// LinkDown and LinkUp pull and replug a host's cable at its switch port:
// its datagrams vanish without an error, and the host's eth0 loses its
// carrier. SetLoss drops a share of the frames a host sends and receives,
// at random, with an nftables rule in the switch namespace (bridge family,
// forward hook, on the host's port in both directions); it needs nft(8),
// which AvailableLoss checks. The kernel here has no netem qdisc, hence
// nftables.
//
// # Routed labs
//
// NewRouted makes a lab of several LANs, each a bridge of its own, joined by
// a router: the switch namespace routes between the bridges, so unicast
// crosses from LAN to LAN and multicast does not. Routed embeds the Lab, so
// every method above works on it; LAN, Net and Router tell its topology.
//
// # Requirements
//
// Linux, root (or CAP_SYS_ADMIN and CAP_NET_ADMIN), ip(8) from iproute2 and
// nsenter(1) from util-linux; nft(8) from nftables for SetLoss. Available
// reports whether a lab can be made here and, if not, why, so that a test
// can skip with that reason. All methods are safe for concurrent use.
package nslan
