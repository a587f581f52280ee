package mcast

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// SharedPort lets several sockets bind the group port (SO_REUSEADDR,
// which Go's net.ListenMulticastUDP also sets, and SO_REUSEPORT for peers
// that set only that), and makes the socket receive only the groups it
// joined itself: by default Linux delivers to a socket bound to the
// wildcard address the multicast of every group any socket on the host
// joined on that port.
func SharedPort(network, _ string, c syscall.RawConn) error {
	var err error
	cerr := c.Control(func(fd uintptr) {
		if err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return
		}
		if err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return
		}
		// Best effort: IPV6_MULTICAST_ALL needs Linux 4.20, and the Conn
		// also filters by destination address.
		switch network {
		case "udp4":
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
		case "udp6":
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0)
		}
	})
	if cerr != nil {
		return cerr
	}
	return err
}
